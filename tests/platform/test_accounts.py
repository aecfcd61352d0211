"""Account queries the doors use: one's API tokens, and who an id stands for (active accounts only)."""

from __future__ import annotations

from egocrowd.accounts import policy
from egocrowd.accounts import service as accounts
from egocrowd.db.models import User
from tests.platform.helpers import API, make_user


def test_list_tokens_shows_ones_own_revoked_included(client, db):
    w, other = make_user(db, "worker"), make_user(db, "worker")
    with db.transaction() as s:
        accounts.issue_token(s, s.get(User, w.id), "phone")
    first = client.get(f"{API}/me/tokens", headers=w.headers).json()["items"][0]["id"]
    assert client.delete(f"{API}/me/tokens/{first}", headers=w.headers).status_code == 204
    with db.transaction(write=False) as s:
        rows = accounts.list_tokens(s, s.get(User, w.id))
        assert [(t.name, t.revoked_at is not None) for t in rows] == [("test", True), ("phone", False)]
        assert [t.user_id for t in accounts.list_tokens(s, s.get(User, other.id))] == [other.id]


def test_active_user_skips_suspended_and_unknown_accounts(db):
    w = make_user(db, "worker")
    with db.transaction() as s:
        assert accounts.active_user(s, w.id).id == w.id
        s.get(User, w.id).is_active = False
    with db.transaction(write=False) as s:
        assert accounts.active_user(s, w.id) is None
        assert accounts.active_user(s, 424242) is None


def test_work_take_rule_names_the_workers(db):
    actors = {
        role: make_user(db, role, org="Lab A" if role == "requester" else None, token=False)
        for role in ("worker", "reviewer", "requester", "admin")
    }
    with db.transaction(write=False) as s:
        takes = {role: policy.can(s.get(User, a.id), "work.take") for role, a in actors.items()}
    assert takes == {"worker": True, "reviewer": False, "requester": False, "admin": False}
    assert policy.can(None, "work.take") is False

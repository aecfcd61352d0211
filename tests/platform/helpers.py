"""Building blocks for platform tests: real accounts, real tokens, real campaigns through the API."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import sqlalchemy as sa

from egocrowd import audit, consent, problem_titles
from egocrowd.accounts import service as accounts
from egocrowd.clock import utcnow
from egocrowd.db.models import Campaign, OrgRole, Role, User
from egocrowd.demo import CONSENT_TEXT, CONSENT_VERSION, KITCHEN_NOUNS, KITCHEN_VERBS, SCOPES
from egocrowd.pay import budgets
from egocrowd.pay.money import Money

PASSWORD = "correct horse battery"
API = "/api/v1"
_seq = itertools.count(1)


@dataclass
class Actor:
    id: int
    email: str
    role: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


@functools.cache
def password_hash() -> str:
    """Argon2 is deliberately slow (~0.1-0.2 s here): hash the shared test password once."""
    return accounts.hash_password(PASSWORD)


def make_user(
    db,
    role: str,
    *,
    email: str | None = None,
    org: str | None = None,
    country: str | None = "KE",
    token: bool = True,
    org_role: str = "owner",
) -> Actor:
    """A real user row (password ``PASSWORD``) and a real API token, written like create_user does
    (same columns, same audit event) but without re-hashing the password for every test user."""
    email = email or f"{role}-{next(_seq)}@example.org"
    with db.transaction() as s:
        o = accounts.get_or_create_organization(s, org) if org else None
        u = User(
            email=email,
            display_name=role,
            password_hash=password_hash(),
            role=Role(role),
            organization=o,
            country=country,
            org_role=OrgRole(org_role) if role == "requester" else None,
            email_verified_at=utcnow(),
        )
        s.add(u)
        audit.record(s, None, "user.created", u, {"role": role})
        plaintext = accounts.issue_token(s, u, "test")[1] if token else ""
        return Actor(u.id, u.email, role, plaintext)


def publish_consent(db, version: str = CONSENT_VERSION, body: str = CONSENT_TEXT) -> None:
    with db.transaction() as s:
        consent.create_document(s, version=version, title="Recording consent", body=body, scopes=SCOPES)


def campaign_body(**over) -> dict:
    body = {
        "title": "Fold a T-shirt",
        "instructions": "Fold a T-shirt on a table with both hands in view.",
        "taxonomy": {"verbs": KITCHEN_VERBS, "nouns": KITCHEN_NOUNS},
        "target_clips": 5,
        "pay_cents": 150,
        "expected_minutes": 4,
        "buyer_name": "Test Lab",
        "consent_version": CONSENT_VERSION,
    }
    body.update(over)
    return body


def create_campaign(client, requester: Actor, **over) -> dict:
    r = client.post(f"{API}/campaigns", json=campaign_body(**over), headers=requester.headers)
    assert r.status_code == 201, r.text
    return r.json()


def set_status(client, actor: Actor, cid: int, status: str, *, funded: bool = True):
    """Move a campaign; opening it first funds its target (``funded=False``: as it is)."""
    if status == "open" and funded:
        fund(db_of(client), cid)
    return client.post(f"{API}/campaigns/{cid}/status", json={"status": status}, headers=actor.headers)


FUNDER_EMAIL = "funder@example.org"


def fund(db, campaign_id: int, amount: str | None = None) -> None:
    """An admin deposits ``amount`` (default: what the campaign's target still lacks) into its budget,
    as the admin's deposit form does: a campaign opens, and raises its target, only when funded."""
    with db.transaction() as s:
        c = s.get_one(Campaign, campaign_id)
        # any admin the test made already (so that counts of people stay the test's own), else one
        admin = s.scalar(sa.select(User).where(User.role == Role.admin).order_by(User.id).limit(1))
        if admin is None:
            admin = User(email=FUNDER_EMAIL, display_name="funder", password_hash=password_hash(), role=Role.admin)
            s.add(admin)
            s.flush()
        money = Money.parse(amount, c.currency) if amount is not None else budgets.budget(s, c).short
        if money.minor:
            budgets.record_deposit(
                s, c, money, admin, reason="test funding", idempotency_key=f"test-fund:{c.id}:{next(_seq)}"
            )


def db_of(client):
    """The database behind a test client of the app (its ``app.state``)."""
    return client.app.state.db


def open_campaign(client, requester: Actor, *, db=None, **over) -> dict:
    """A campaign made and opened through the API, its target funded first (``db``: the database
    behind ``client`` when it is not a test client of the app, e.g. httpx to a live server)."""
    cid = create_campaign(client, requester, **over)["id"]
    fund(db or db_of(client), cid)
    r = set_status(client, requester, cid, "open", funded=False)
    assert r.status_code == 200, r.text
    return r.json()


def sign(client, worker: Actor, version: str = CONSENT_VERSION, scopes=("record_hands",)) -> dict:
    r = client.post(f"{API}/consents", json={"version": version, "scopes": list(scopes)}, headers=worker.headers)
    assert r.status_code == 201, r.text
    return r.json()


def claim(client, worker: Actor, cid: int):
    return client.post(f"{API}/campaigns/{cid}/claim", headers=worker.headers)


def assert_problem(r, status: int, code: str) -> dict:
    """``r`` is an RFC 9457 problem document with this status and code and a human message."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body = r.json()
    assert body["code"] == code, body
    assert body["status"] == status and body["type"].endswith(code), body
    assert body["title"] == problem_titles.title(code, status), body  # the type's title, not the occurrence's words
    assert isinstance(body.get("detail"), str) and len(body["detail"]) >= 5, body
    assert "Traceback" not in r.text
    return body

"""Campaign lifecycle, edit rules and field validation (API and page forms)."""

from __future__ import annotations

import json

import pytest

from tests.platform.helpers import (
    API,
    assert_problem,
    campaign_body,
    claim,
    create_campaign,
    db_of,
    fund,
    make_user,
    open_campaign,
    publish_consent,
    set_status,
    sign,
)
from tests.platform.test_access import page_login

#: The lifecycle, written out independently of egocrowd.campaigns.service.TRANSITIONS.
ALLOWED = {
    ("draft", "open"),
    ("draft", "closed"),
    ("open", "paused"),
    ("open", "closed"),
    ("paused", "open"),
    ("paused", "closed"),
}
STATES = ("draft", "open", "paused", "closed")
PATH_TO = {"draft": [], "open": ["open"], "paused": ["open", "paused"], "closed": ["open", "closed"]}


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab A")


def _campaign_in(client, lab, state: str) -> int:
    cid = create_campaign(client, lab)["id"]
    for step in PATH_TO[state]:
        assert set_status(client, lab, cid, step).status_code == 200
    return cid


def test_every_transition(client, lab):
    for src in STATES:
        for dst in ("open", "paused", "closed"):
            cid = _campaign_in(client, lab, src)
            r = set_status(client, lab, cid, dst)
            if (src, dst) in ALLOWED:
                assert r.status_code == 200 and r.json()["status"] == dst, (src, dst, r.text)
            else:
                body = assert_problem(r, 409, "campaign.bad_transition")
                assert body["allowed"] == sorted(d for s, d in ALLOWED if s == src), (src, dst)
                assert client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()["status"] == src
    cid = _campaign_in(client, lab, "open")
    assert_problem(set_status(client, lab, cid, "draft"), 422, "validation.failed")  # never back to draft


FROZEN_WHEN_LIVE = {
    "requirements": {"min_duration_s": 5, "max_duration_s": 30},
    "taxonomy": {"verbs": ["fold"], "nouns": ["shirt"]},
    "pay_cents": 99,
    "currency": "EUR",
    "expected_minutes": 10,
    "allowed_countries": ["KE"],
    "data_use": {"train": True, "commercial": True, "redistribute": True},
    "buyer_name": "Somebody Else",
    "consent_version": "egocrowd-worker-1",
}
EDITABLE_WHEN_LIVE = {
    "title": "A better title",
    "instructions": "Clearer instructions for everyone.",
    "target_clips": 9,
}


@pytest.mark.parametrize("state", ["open", "paused"])
def test_live_campaign_keeps_its_deal(client, lab, state):
    cid = _campaign_in(client, lab, state)
    for name, value in FROZEN_WHEN_LIVE.items():
        r = client.patch(f"{API}/campaigns/{cid}", json={name: value}, headers=lab.headers)
        body = assert_problem(r, 409, "campaign.frozen_field")
        assert name in body["detail"]
    r = client.patch(f"{API}/campaigns/{cid}", json={"title": "ok title", "pay_cents": 1}, headers=lab.headers)
    assert_problem(r, 409, "campaign.frozen_field")
    after = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert after["title"] == "Fold a T-shirt" and after["pay"]["per_clip_cents"] == 150  # all or nothing
    # a live target grows only as far as the budget reaches: 4 more clips at 1.50
    r = client.patch(f"{API}/campaigns/{cid}", json={"target_clips": 9}, headers=lab.headers)
    assert assert_problem(r, 409, "campaign.budget_short")["missing"] == "6.00"
    fund(db_of(client), cid, "6.00")
    for name, value in EDITABLE_WHEN_LIVE.items():
        r = client.patch(f"{API}/campaigns/{cid}", json={name: value}, headers=lab.headers)
        assert r.status_code == 200 and r.json()[name] == value, r.text


def test_draft_can_change_everything_closed_nothing(client, lab):
    cid = _campaign_in(client, lab, "draft")
    r = client.patch(f"{API}/campaigns/{cid}", json={**FROZEN_WHEN_LIVE, **EDITABLE_WHEN_LIVE}, headers=lab.headers)
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["pay"]["per_clip_cents"] == 99 and c["pay"]["currency"] == "EUR"
    assert c["allowed_countries"] == ["KE"] and c["taxonomy"] == {"verbs": ["fold"], "nouns": ["shirt"]}
    assert c["requirements"]["max_duration_s"] == 30 and c["buyer_name"] == "Somebody Else"
    # a partial nested object is stored whole, defaults filled in (the pages and QC read every key)
    assert c["requirements"]["min_fps"] == 24 and c["requirements"]["orientation"] == "landscape"
    assert c["data_use"] == {
        "train": True,
        "commercial": True,
        "redistribute": True,
        "keep_face": False,
        "audio": False,
    }
    cid = _campaign_in(client, lab, "closed")
    assert_problem(
        client.patch(f"{API}/campaigns/{cid}", json={"title": "Too late now"}, headers=lab.headers),
        409,
        "campaign.closed",
    )


def test_target_cannot_go_below_taken_slots(client, db, lab):
    cid = open_campaign(client, lab, target_clips=3)["id"]
    for _ in range(2):
        w = make_user(db, "worker")
        sign(client, w)
        assert claim(client, w, cid).status_code == 201
    r = client.patch(f"{API}/campaigns/{cid}", json={"target_clips": 1}, headers=lab.headers)
    assert_problem(r, 409, "campaign.target_below_taken")
    r = client.patch(f"{API}/campaigns/{cid}", json={"target_clips": 2}, headers=lab.headers)
    assert r.status_code == 200 and r.json()["slots_left"] == 0


BAD_FIELDS = [  # (what, body override) → 422 validation.failed naming the field; nothing created
    ("title empty", {"title": ""}),
    ("title short", {"title": "ab"}),
    ("title long", {"title": "x" * 201}),
    ("title null", {"title": None}),
    ("instructions short", {"instructions": "too short"}),
    ("instructions long", {"instructions": "x" * 20001}),
    ("target negative", {"target_clips": -5}),
    ("target huge", {"target_clips": 1_000_001}),
    ("target text", {"target_clips": "many"}),
    ("target fraction", {"target_clips": 2.5}),
    ("pay zero", {"pay_cents": 0}),
    ("pay huge", {"pay_cents": 1_000_001}),
    ("currency lower", {"currency": "usd"}),
    ("currency long", {"currency": "EURO"}),
    ("minutes zero", {"expected_minutes": 0}),
    ("minutes huge", {"expected_minutes": 601}),
    ("minutes text", {"expected_minutes": "four"}),
    ("minutes NaN", {"expected_minutes": float("nan")}),
    ("duration infinite", {"requirements": {"max_duration_s": float("inf")}}),
    ("country name", {"allowed_countries": ["Kenya"]}),
    ("country digits", {"allowed_countries": ["K1"]}),
    ("country number", {"allowed_countries": [254]}),
    ("countries null", {"allowed_countries": None}),
    ("countries object", {"allowed_countries": {"KE": True}}),
    ("buyer short", {"buyer_name": "x"}),
    ("buyer long", {"buyer_name": "x" * 201}),
    ("consent empty", {"consent_version": ""}),
    ("duration zero", {"requirements": {"min_duration_s": 0}}),
    ("duration huge", {"requirements": {"max_duration_s": 3601}}),
    ("min > max", {"requirements": {"min_duration_s": 60, "max_duration_s": 30}}),
    ("width tiny", {"requirements": {"min_width": 10}}),
    ("fps zero", {"requirements": {"min_fps": 0}}),
    ("orientation", {"requirements": {"orientation": "diagonal"}}),
    ("placement", {"requirements": {"camera_placement": "drone"}}),
    ("upload size", {"requirements": {"max_upload_mb": 0}}),
    ("unknown requirement", {"requirements": {"min_lux": 100}}),
    ("requirements list", {"requirements": [1, 2]}),
    ("no verbs", {"taxonomy": {"verbs": [], "nouns": ["cup"]}}),
    ("no nouns", {"taxonomy": {"verbs": ["take"]}}),
    ("free text term", {"taxonomy": {"verbs": ["open the door"], "nouns": ["door"]}}),
    ("term starts with digit", {"taxonomy": {"verbs": ["1take"], "nouns": ["cup"]}}),
    ("term too long", {"taxonomy": {"verbs": ["t" * 41], "nouns": ["cup"]}}),
    ("duplicate terms", {"taxonomy": {"verbs": ["take", "Take"], "nouns": ["cup"]}}),
    ("too many terms", {"taxonomy": {"verbs": [f"v{i}" for i in range(301)], "nouns": ["cup"]}}),
    ("term not text", {"taxonomy": {"verbs": [1, 2], "nouns": ["cup"]}}),
    ("terms null", {"taxonomy": {"verbs": None, "nouns": ["cup"]}}),
    ("unknown taxonomy key", {"taxonomy": {"verbs": ["take"], "nouns": ["cup"], "adverbs": ["fast"]}}),
    ("data use key", {"data_use": {"sell": True}}),
    ("unknown field", {"bonus_cents": 5}),
]


def test_campaign_validation(client, lab, subtests):
    for what, over in BAD_FIELDS:
        with subtests.test(what):
            # json.dumps, not httpx's json=: it writes NaN/Infinity, which Python-based clients may send
            r = client.post(
                f"{API}/campaigns",
                content=json.dumps(campaign_body(**over)),
                headers={**lab.headers, "content-type": "application/json"},
            )
            body = assert_problem(r, 422, "validation.failed")
            assert body["errors"] and all(e["message"] for e in body["errors"])
            field = next(iter(over))
            assert field in body["detail"] or any(field in (e["field"] or "") for e in body["errors"]), body
    assert client.get(f"{API}/campaigns", headers=lab.headers).json()["items"] == []  # nothing was created


def test_patch_validation_and_unknown_consent(client, lab):
    cid = _campaign_in(client, lab, "draft")
    for over in (
        {"title": None},
        {"target_clips": -1},  # 0: evaluation only (#19)
        {"taxonomy": {"verbs": ["a b"], "nouns": ["x"]}},
        {"requirements": {"min_duration_s": 50, "max_duration_s": 40}},
        {"status": "open"},
    ):
        assert_problem(client.patch(f"{API}/campaigns/{cid}", json=over, headers=lab.headers), 422, "validation.failed")
    r = client.post(f"{API}/campaigns", json=campaign_body(consent_version="1999-01"), headers=lab.headers)
    assert_problem(r, 422, "campaign.unknown_consent_version")
    r = client.patch(f"{API}/campaigns/{cid}", json={"consent_version": "1999-01"}, headers=lab.headers)
    assert_problem(r, 422, "campaign.unknown_consent_version")


def test_normalisation_of_countries_and_terms(client, lab):
    r = client.post(
        f"{API}/campaigns",
        headers=lab.headers,
        json=campaign_body(allowed_countries="ke, ug;KE", taxonomy={"verbs": "Take, put", "nouns": [" Cup "]}),
    )
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["allowed_countries"] == ["KE", "UG"]
    assert c["taxonomy"] == {"verbs": ["take", "put"], "nouns": ["cup"]}


def _form(**over) -> dict:
    f = {
        "title": "Pour water",
        "instructions": "Pour water into a glass over a sink.",
        "verbs": "pour, take",
        "nouns": "water, glass",
        "target_clips": "10",
        "pay": "1.20",
        "currency": "USD",
        "expected_minutes": "3",
        "allowed_countries": "KE",
        "buyer_name": "Test Lab",
        "consent_version": "egocrowd-worker-1",
        "min_duration_s": "10",
        "max_duration_s": "60",
        "orientation": "landscape",
        "camera_placement": "head_mounted",
        "hands_in_view": "on",
        "use_train": "on",
    }
    f.update(over)
    return f


def test_campaign_form_pages(client, db, lab):
    token = page_login(client, lab)
    for over, field, needle in (
        ({"pay": "lots"}, "pay", "Must be an amount, such as 1.50."),
        ({"pay": "inf"}, "pay", "Must be an amount, such as 1.50."),
        ({"pay": "nan"}, "pay", "Must be an amount, such as 1.50."),
        ({"pay": ""}, "pay", "Please fill this in."),
        ({"expected_minutes": "nan"}, "expected_minutes", "Must be"),
        (
            {"min_duration_s": "90", "max_duration_s": "30"},
            "max_duration_s",
            "The longest clip must be at least as long as the shortest.",
        ),
        ({"verbs": "open the door!"}, "verbs", "Use lower-case words such as fold or open_lid; “door!” is not one."),
        ({"title": "x" * 300}, "title", "Must be at most 200 characters."),
        ({"consent_version": "nope"}, "consent_version", "There is no published consent document version"),
    ):
        r = client.post("/campaigns/new", data={**_form(**over), "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 422, (over, r.status_code)
        assert 'role="alert"' in r.text and f'href="#{field}"' in r.text, over
        assert f'id="{field}-error">{needle}' in r.text.replace("&#34;", '"').replace("&#39;", "'"), over
        assert "Value error" not in r.text and "String should" not in r.text, over
    r = client.post("/campaigns/new", data={**_form(), "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].split("/")[2].split("?")[0])
    c = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert c["pay"]["per_clip_cents"] == 120 and c["requirements"]["max_duration_s"] == 60
    # a draft: every field may change through the form
    r = client.post(
        f"/campaigns/{cid}/edit",
        data={**_form(allowed_countries="ug, ke", pay="1.30", nouns="cup"), "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    c = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert c["allowed_countries"] == ["KE", "UG"] and c["pay"]["per_clip_cents"] == 130
    assert c["taxonomy"]["nouns"] == ["cup"]
    r = client.post(f"/campaigns/{cid}/status", data={"status": "open", "csrf_token": token})
    assert r.status_code == 409 and 'data-code="campaign.budget_short"' in r.text  # nothing deposited yet
    fund(db, cid)
    r = client.post(f"/campaigns/{cid}/status", data={"status": "open", "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    # live: the form may still send every field, but only the pause-safe ones change
    r = client.post(
        f"/campaigns/{cid}/edit",
        data={**_form(title="Pour water, carefully", pay="9.99"), "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    c = client.get(f"{API}/campaigns/{cid}", headers=lab.headers).json()
    assert c["title"] == "Pour water, carefully" and c["pay"]["per_clip_cents"] == 130
    r = client.post(f"/campaigns/{cid}/status", data={"status": "open", "csrf_token": token})
    assert r.status_code == 409 and 'data-code="campaign.bad_transition"' in r.text
    for bogus in ("", "archived"):
        r = client.post(f"/campaigns/{cid}/status", data={"status": bogus, "csrf_token": token})
        assert r.status_code == 422 and 'data-code="validation.failed"' in r.text
    assert client.get(f"/campaigns/{cid}").status_code == 200
    assert client.get(f"/campaigns/{cid}/edit").status_code == 200


def test_get_managed_campaign(client, db, lab):
    from egocrowd.campaigns import service as campaigns
    from egocrowd.db.models import User
    from egocrowd.errors import Forbidden, NotFound

    cid = open_campaign(client, lab)["id"]
    draft = create_campaign(client, lab)["id"]
    worker, other_lab = make_user(db, "worker"), make_user(db, "requester", org="Lab B")
    admin = make_user(db, "admin")
    with db.transaction(write=False) as s:
        assert campaigns.get_managed_campaign(s, s.get(User, lab.id), draft).id == draft
        assert campaigns.get_managed_campaign(s, s.get(User, admin.id), cid).id == cid
        # sees it but does not manage it: forbidden; may not even see it: not found (it stays secret)
        for user_id, campaign_id, error, code in (
            (worker.id, cid, Forbidden, "auth.forbidden"),
            (worker.id, draft, NotFound, "campaign.not_found"),
            (other_lab.id, cid, NotFound, "campaign.not_found"),
            (lab.id, 424242, NotFound, "campaign.not_found"),
        ):
            with pytest.raises(error) as caught:
                campaigns.get_managed_campaign(s, s.get(User, user_id), campaign_id)
            assert caught.value.code == code
        with pytest.raises(NotFound):  # anonymous: nothing is visible
            campaigns.get_managed_campaign(s, None, cid)

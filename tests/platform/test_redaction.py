"""Reviewing a clip's redaction (issue #9): the queue, reviewers' corrections with their checks and
audit events, re-rendering, and "Mark reviewed" once the video includes every correction."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from egocrowd.clock import utcnow
from egocrowd.db.models import AuditEvent, Clip, ClipStatus, DeidStatus, Job
from tests.platform.helpers import API, assert_problem, make_user, sign
from tests.platform.test_access import page_login
from tests.support.deid import add_clip, attach_derivative, make_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("redaction-videos")
    return {"raw": make_video(d / "raw.mp4", seconds=3), "derived": make_video(d / "derived.mp4", seconds=3, shade=90)}


@pytest.fixture
def review(app, db, world, videos):
    campaign = world.open_campaign()

    def make(deid=DeidStatus.review, *, campaign_id=None, worker_id=None, **kw) -> int:
        return add_clip(
            db,
            app.state.blobs,
            campaign_id=campaign_id or campaign["id"],
            worker_id=worker_id or world.worker.id,
            raw=videos["raw"],
            derived=videos["derived"] if deid in (DeidStatus.review, DeidStatus.clean) else None,
            deid=deid,
            reason="deid.low_confidence" if deid is DeidStatus.review else None,
            **kw,
        )

    return make


@pytest.fixture
def reviewer(db):
    return make_user(db, "reviewer")


def _events(db, cid: int, action: str) -> list[dict]:
    with db.transaction() as s:
        q = (
            sa.select(AuditEvent)
            .where(AuditEvent.action == action, AuditEvent.entity_id == str(cid))
            .order_by(AuditEvent.id)
        )
        return [e.payload for e in s.scalars(q)]


def _new_render(db, blobs, cid: int, videos) -> int:
    """What the deidentify stage leaves after a re-render: a new derivative the clip points at."""
    return attach_derivative(db, blobs, cid, videos["derived"], DeidStatus.review, frames=30, seconds=3.0)


def test_the_queue_lists_clips_in_review_oldest_first_to_reviewers_only(client, db, world, review, reviewer):
    first, _, second = review(), review(DeidStatus.clean), review()
    with db.transaction() as s:  # the first waited longer
        s.get(Clip, second).updated_at = utcnow()
    for who in (reviewer, make_user(db, "admin")):
        r = client.get(f"{API}/review/redaction", headers=who.headers)
        assert [c["clip_id"] for c in r.json()] == [first, second]
        assert r.json()[0]["deid_reason"] == "deid.low_confidence"
    for who in (world.worker, world.lab):
        assert_problem(client.get(f"{API}/review/redaction", headers=who.headers), 403, "auth.forbidden")
        assert_problem(client.get(f"{API}/clips/{first}/redactions", headers=who.headers), 403, "auth.forbidden")
    page = client.get("/review/redaction", headers=reviewer.headers)
    assert page.status_code == 200 and f'href="/review/redaction/{first}"' in page.text
    assert page.text.index(f"Clip {first}") < page.text.index(f"Clip {second}")
    assert "detectors unsure" in page.text
    assert client.get("/review/redaction", headers=world.worker.headers).status_code == 403


def test_corrections_are_checked_stored_and_audited(client, db, world, review, reviewer):
    cid = review()
    url = f"{API}/clips/{cid}/redactions"
    plan = client.get(url, headers=reviewer.headers).json()
    assert [t["id"] for t in plan["plan"]["tracks"]] == [1, 2] and len(plan["frame_times"]) == 30
    assert plan["frame_times"][10] == 1.0 and plan["up_to_date"] and not plan["keep_face_allowed"]

    def post(body):
        return client.post(url, json=body, headers=reviewer.headers)

    added = post(
        {"kind": "add", "box": [0.1, 0.2, 0.4, 0.5], "frame_start": 3, "frame_end": 12, "note": "a face on a photo"}
    )
    assert added.status_code == 201, added.text
    assert added.json()["box"] == [0.1, 0.2, 0.4, 0.5] and added.json()["derivative_id"] == plan["derivative_id"]
    for box in (
        [0.1, 0.2, 1.4, 0.5],
        [0.5, 0.2, 0.5, 0.6],
        [0.6, 0.2, 0.4, 0.5],
        [0.1, 0.2, 0.3],
        None,
        [-0.1, 0, 0.2, 0.2],
    ):
        assert_problem(post({"kind": "add", "box": box, "frame_start": 0, "frame_end": 1}), 422, "redaction.bad_box")
    for start, end in ((0, 30), (5, 4), (None, 3)):
        assert_problem(
            post({"kind": "add", "box": [0, 0, 0.5, 0.5], "frame_start": start, "frame_end": end}),
            422,
            "redaction.bad_frames",
        )
    assert_problem(post({"kind": "false", "track_id": 99}), 422, "redaction.unknown_track")
    false = post({"kind": "false", "track_id": 2})
    assert false.status_code == 201 and (false.json()["frame_start"], false.json()["frame_end"]) == (15, 29)
    # The wearer's face stays blurred unless the campaign keeps faces and the worker agreed.
    assert_problem(post({"kind": "keep", "track_id": 1}), 403, "consent.missing")
    assert_problem(post({"kind": "keep", "track_id": 2}), 422, "redaction.keep_not_face")
    edited = _events(db, cid, "clip.redaction_edited")
    assert [(e["action"], e["kind"]) for e in edited] == [("add", "add"), ("add", "false")]
    assert edited[0]["note"] == "a face on a photo"
    # Withdrawing is audited too, and a withdrawn correction stays listed.
    r = client.delete(f"{url}/{false.json()['id']}", headers=reviewer.headers)
    assert r.status_code == 200 and r.json()["withdrawn_at"]
    assert_problem(client.delete(f"{url}/424242", headers=reviewer.headers), 404, "redaction.edit_not_found")
    assert _events(db, cid, "clip.redaction_edited")[-1]["action"] == "withdraw"
    listed = client.get(url, headers=reviewer.headers).json()["edits"]
    assert [(e["kind"], bool(e["withdrawn_at"])) for e in listed] == [("add", False), ("false", True)]
    # Only a clip in review takes corrections.
    clean = review(DeidStatus.clean)
    r = client.post(f"{API}/clips/{clean}/redactions", json={"kind": "false", "track_id": 1}, headers=reviewer.headers)
    assert_problem(r, 409, "redaction.not_in_review")


def test_keeping_the_wearers_face_needs_the_campaign_and_the_consent(client, db, world, review, reviewer):
    keeps = world.open_campaign(title="Mirror task", data_use={"train": True, "keep_face": True})
    agreed = make_user(db, "worker")
    sign(client, agreed, scopes=("record_hands", "face_visible"))
    cid = review(campaign_id=keeps["id"], worker_id=agreed.id)
    url = f"{API}/clips/{cid}/redactions"
    assert client.get(url, headers=reviewer.headers).json()["keep_face_allowed"]
    r = client.post(url, json={"kind": "keep", "track_id": 1}, headers=reviewer.headers)
    assert r.status_code == 201 and r.json()["kind"] == "keep"
    # The same campaign, a worker who did not tick the scope (their clip came from another path).
    other = review(campaign_id=keeps["id"], worker_id=world.worker.id)
    r = client.post(f"{API}/clips/{other}/redactions", json={"kind": "keep", "track_id": 1}, headers=reviewer.headers)
    assert_problem(r, 403, "consent.missing")
    page = client.get(f"/review/redaction/{other}", headers=reviewer.headers).text
    assert "Wearer's face: keep" not in page
    assert "Wearer's face: keep track 1" in client.get(f"/review/redaction/{cid}", headers=reviewer.headers).text


def test_rerender_then_mark_reviewed(app, client, db, world, review, reviewer, videos):
    cid = review()
    url = f"{API}/clips/{cid}"
    assert (
        client.post(f"{url}/redactions", json={"kind": "false", "track_id": 2}, headers=reviewer.headers).status_code
        == 201
    )
    assert_problem(
        client.post(f"{url}/redactions/reviewed", headers=reviewer.headers), 409, "redaction.rerender_needed"
    )
    assert_problem(client.post(f"{url}/rerender", headers=world.worker.headers), 403, "auth.forbidden")
    r = client.post(f"{url}/rerender", headers=reviewer.headers)
    assert r.status_code == 202 and r.json()["deid_status"] == "pending"
    assert_problem(client.post(f"{url}/rerender", headers=reviewer.headers), 409, "clip.deid_pending")
    with db.transaction() as s:
        assert s.scalar(sa.select(Job.stage).where(Job.clip_id == cid, Job.status == "pending")) == "deidentify"
    assert _events(db, cid, "clip.deid_requested")
    # While it re-renders: no corrections, and the page says so.
    r = client.post(f"{url}/redactions", json={"kind": "false", "track_id": 1}, headers=reviewer.headers)
    assert_problem(r, 409, "redaction.not_in_review")
    assert "being re-rendered" in client.get(f"/review/redaction/{cid}", headers=reviewer.headers).text
    _new_render(db, app.state.blobs, cid, videos)  # the text track (2) is gone from the new render
    plan = client.get(f"{url}/redactions", headers=reviewer.headers).json()
    assert [t["id"] for t in plan["plan"]["tracks"]] == [1] and "auto_plan" not in plan["plan"] and plan["up_to_date"]
    assert_problem(client.get(f"{url}/video", headers=world.worker.headers), 409, "clip.not_deidentified")
    r = client.post(f"{url}/redactions/reviewed", headers=reviewer.headers)
    assert r.status_code == 200 and r.json()["deid_status"] == "clean"
    assert _events(db, cid, "clip.redaction_reviewed")
    assert client.get(f"{url}/video", headers=world.worker.headers).status_code == 200
    # A correction withdrawn after the render also needs a render before "reviewed".
    cid2 = review()
    e = client.post(
        f"{API}/clips/{cid2}/redactions", json={"kind": "false", "track_id": 2}, headers=reviewer.headers
    ).json()
    _new_render(db, app.state.blobs, cid2, videos)
    client.delete(f"{API}/clips/{cid2}/redactions/{e['id']}", headers=reviewer.headers)
    assert_problem(
        client.post(f"{API}/clips/{cid2}/redactions/reviewed", headers=reviewer.headers),
        409,
        "redaction.rerender_needed",
    )


def test_a_reviewer_can_ask_for_a_qc_failed_clip_to_be_deidentified(client, db, world, review, reviewer):
    cid = review(None, status=ClipStatus.qc_failed)
    page = client.get(f"/clips/{cid}", headers=reviewer.headers)
    assert page.status_code == 200 and "De-identify this clip" in page.text
    assert "De-identify this clip" not in client.get(f"/clips/{cid}", headers=world.worker.headers).text
    token = page_login(client, reviewer)
    r = client.post(f"/clips/{cid}/deidentify", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/clips/{cid}?m=deid_requested"
    # The button and the message say where the new video goes: a person's request lands in review.
    assert "goes to the redaction review" in client.get(r.headers["location"]).text
    assert "De-identify this clip for review" in page.text and 'href="/review/redaction"' in page.text
    with db.transaction() as s:
        assert s.get(Clip, cid).deid_status is DeidStatus.pending
    processing = review(None, status=ClipStatus.processing)
    assert_problem(
        client.post(f"{API}/clips/{processing}/rerender", headers=reviewer.headers), 409, "clip.not_deidentifiable"
    )


def test_the_review_page_forms(client, db, world, review, reviewer):
    cid = review()
    page = client.get(f"/review/redaction/{cid}", headers=reviewer.headers)
    assert page.status_code == 200
    assert f'data-plan-url="/api/v1/clips/{cid}/redactions"' in page.text and "Show track 2" in page.text
    token = page_login(client, reviewer)
    form = {
        "csrf_token": token,
        "kind": "add",
        "x0": "0.1",
        "y0": "0.1",
        "x1": "0.3",
        "y1": "0.3",
        "frame_start": "2",
        "frame_end": "8",
    }
    r = client.post(f"/review/redaction/{cid}/edits", data=form, follow_redirects=False)
    assert r.status_code == 303, r.text
    bad = client.post(f"/review/redaction/{cid}/edits", data={**form, "x1": "2"})
    assert bad.status_code == 422 and 'data-code="redaction.bad_box"' in bad.text and 'value="2"' in bad.text
    # The refusal also sits in the form, by the box (the page top is far above it on a phone), and
    # every label shares a grid cell with its input (loose ones fell into other columns when wide).
    assert 'id="rv-add-error" data-code="redaction.bad_box"' in bad.text
    assert bad.text.count('<div class="rv-field') == 7
    assert "rv-add-error" not in page.text
    page = client.get(f"/review/redaction/{cid}?m=edit_added").text
    assert "Added region over frames 2–8" in page and "Withdraw correction" in page and "Correction saved" in page
    edit_id = int(page.split('data-edit="')[1].split('"')[0])
    r = client.post(
        f"/review/redaction/{cid}/edits/{edit_id}/withdraw", data={"csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303 and "withdrawn" in client.get(r.headers["location"]).text
    assert client.post(f"/review/redaction/{cid}/edits", data=form, follow_redirects=False).status_code == 303
    r = client.post(f"/review/redaction/{cid}/reviewed", data={"csrf_token": token})
    assert r.status_code == 409 and "re-render first" in r.text
    r = client.post(f"/review/redaction/{cid}/rerender", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and "being re-rendered" in client.get(r.headers["location"]).text
    assert client.get(f"/review/redaction/{cid}", headers=world.worker.headers).status_code == 403


def test_reviewer_regions_are_read_back_from_the_render(app, client, db, review, reviewer, videos):
    """An added region is the render's track REVIEWER_TRACK_BASE + edit id (media.deid.render)."""
    from egocrowd.media.deid.render import REVIEWER_TRACK_BASE

    cid = review()
    url = f"{API}/clips/{cid}/redactions"
    body = {"kind": "add", "box": [0.5, 0.5, 0.9, 0.9], "frame_start": 0, "frame_end": 9}
    e = client.post(url, json=body, headers=reviewer.headers).json()
    assert not client.get(url, headers=reviewer.headers).json()["up_to_date"]
    _new_render(db, app.state.blobs, cid, videos)
    plan = client.get(url, headers=reviewer.headers).json()
    assert plan["up_to_date"] and REVIEWER_TRACK_BASE + e["id"] in [t["id"] for t in plan["plan"]["tracks"]]
    # The page names that region by its correction and offers no "Not private" button (refused below).
    page = client.get(f"/review/redaction/{cid}", headers=reviewer.headers).text
    assert f"Region of correction {e['id']}" in page and f"Show correction {e['id']}" in page
    assert f"withdraw correction {e['id']} below" in page
    assert f"track {REVIEWER_TRACK_BASE + e['id']}" not in page.lower()
    assert "Not private: unblur track 1" in page  # the detector's own track keeps its button
    r = client.post(url, json={"kind": "false", "track_id": REVIEWER_TRACK_BASE + e["id"]}, headers=reviewer.headers)
    assert_problem(r, 422, "redaction.reviewer_track")
    client.delete(f"{url}/{e['id']}", headers=reviewer.headers)  # withdrawn: the render still shows it
    assert not client.get(url, headers=reviewer.headers).json()["up_to_date"]


# --- pay (egocrowd.pay.redaction) ---------------------------------------------------------------
def test_a_platform_reviewer_is_paid_once_per_clip_owed_when_short_admins_are_not(
    app, client, db, world, videos, reviewer
):
    """A campaign paying for redaction review pays the platform reviewer who marks a clip reviewed,
    once per clip (kind redaction_review), owes it when the budget is short until the next deposit,
    and pays an admin nothing; the budget counts it per clip; the reviewer's earnings show it."""
    from egocrowd.db.models import Campaign, LedgerTransaction, User
    from egocrowd.pay import budgets, earnings, ledger, redaction
    from egocrowd.pay.money import Money
    from tests.platform.helpers import fund
    from tests.support.world import take_budget_back

    campaign_id = world.open_campaign(review={"redaction_pay_cents": 25})["id"]
    with db.transaction() as s:
        c = s.get_one(Campaign, campaign_id)
        plain = Campaign(pay_cents=c.pay_cents, currency=c.currency, review={}, annotation=c.annotation)
        assert budgets.cost_per_clip(c) - budgets.cost_per_clip(plain) == Money(25, "USD")  # every clip may need it

    def in_review() -> int:
        return add_clip(
            db,
            app.state.blobs,
            campaign_id=campaign_id,
            worker_id=world.worker.id,
            raw=videos["raw"],
            derived=videos["derived"],
            deid=DeidStatus.review,
            reason="deid.low_confidence",
        )

    def earned() -> Money:
        with db.transaction() as s:
            return ledger.balance(s, ledger.worker_account(s, s.get_one(User, reviewer.id), "USD"))

    def mark(who, cid):
        r = client.post(f"{API}/clips/{cid}/redactions/reviewed", headers=who.headers)
        assert r.status_code == 200, r.text

    first, by_admin, owed = in_review(), in_review(), in_review()
    mark(reviewer, first)
    assert earned() == Money(25, "USD")
    with db.transaction() as s:
        txn = s.scalar(
            sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == f"redaction:{first}:reviewed")
        )
        assert txn is not None and txn.kind.value == "redaction_review" and txn.refs["pay_minor"] == 25
        clip = s.get_one(Clip, first)
        assert clip.redaction_reviewed_by == reviewer.id and clip.redaction_reviewed_at is not None
        assert redaction.pay_for_redaction_review(s, clip, None).id == txn.id  # a retry: the same posting
        clip.deid_status = DeidStatus.review  # back to review (a new render): reviewing again pays nothing more
    mark(reviewer, first)
    assert earned() == Money(25, "USD")
    mark(make_user(db, "admin"), by_admin)  # an admin's review is an intervention, not paid work
    with db.transaction() as s:
        assert redaction.pay_for_redaction_review(s, s.get_one(Clip, by_admin), None) is None
        take_budget_back(s, s.get_one(Campaign, campaign_id), leave=Money(0, "USD"))
    mark(reviewer, owed)
    assert earned() == Money(25, "USD")
    assert _events(db, owed, "clip.redaction_pay_owed")
    with db.transaction() as s:
        assert [c.id for c in redaction.owed_reviews(s, campaign_id)] == [owed]
        lines = earnings.earnings(s, s.get_one(User, reviewer.id)).redactions
        assert [(x.clip_id, x.state, x.amount.minor) for x in lines] == [(owed, "owed", 25), (first, "approved", 25)]
        assert earnings.earnings(s, s.get_one(User, world.lab.id)).redactions == []
    page = client.get("/earnings", headers=reviewer.headers).text
    assert f'data-redaction="{owed}" data-state="owed"' in page
    fund(db, campaign_id, "10.00")  # the deposit pays what is owed
    assert earned() == Money(50, "USD")
    with db.transaction() as s:
        assert redaction.owed_reviews(s, campaign_id) == [] and ledger.verify(s) == []
    r = client.get(f"{API}/me/earnings", headers=reviewer.headers)
    assert [(x["clip_id"], x["state"], x["amount"]) for x in r.json()["redactions"]] == [
        (owed, "approved", "0.25"),
        (first, "approved", "0.25"),
    ]

"""Clip review and acceptance (labels.review) on a real database, both backends: routing by the
campaign's settings, accept and reject with their effects, two reviewers at once, auto-accept after
N days, appeals, who may decide, and campaign progress counting accepted clips."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd.campaigns import assignments
from egocrowd.clock import db_now
from egocrowd.db.models import (
    Assignment,
    AssignmentStatus,
    AuditEvent,
    Campaign,
    Clip,
    ClipStatus,
    DeidStatus,
    Job,
    Notification,
    ReviewItem,
    ReviewKind,
    ReviewState,
    User,
)
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.labels import review
from egocrowd.pay import budgets, earnings, ledger, reviews
from egocrowd.pay.money import Money
from tests.platform.helpers import API, make_user
from tests.support.deid import add_clip, make_video
from tests.support.world import take_budget_back


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("review") / "clip.mp4", seconds=2)


@pytest.fixture
def clip_maker(app, db, world, video):
    """A clip that passed QC and de-identification (clean), with its worker's assignment submitted."""

    def make(campaign_id: int, *, worker=None, status=ClipStatus.qc_passed, deid=DeidStatus.clean) -> int:
        worker = worker or world.worker
        a = world.claim(campaign_id, worker)
        cid = add_clip(
            db,
            app.state.blobs,
            campaign_id=campaign_id,
            worker_id=worker.id,
            raw=video,
            derived=video if deid else None,
            deid=deid,
            status=status,
        )
        with db.transaction() as s:
            s.get_one(Clip, cid).assignment_id = a["id"]
            s.get_one(Assignment, a["id"]).status = (
                AssignmentStatus.active if status is ClipStatus.qc_failed else AssignmentStatus.submitted
            )
        return cid

    return make


def _campaign(world, **review_settings) -> int:
    return world.open_campaign(review={"sample_fraction": 1.0, **review_settings})["id"]


def _user(db, actor) -> User:
    with db.transaction() as s:
        u = s.get_one(User, actor.id)
        s.expunge(u)
        return u


def _route(db, clip_id: int) -> int | None:
    with db.transaction() as s:
        item = review.route_clip(s, s.get_one(Clip, clip_id))
        return item.id if item else None


def _decide(db, actor, item_id: int, decision: str, **kw):
    with db.transaction() as s:
        return review.decide_item(s, s.get_one(User, actor.id), item_id, decision, **kw).id


def _clip(db, clip_id: int) -> tuple[ClipStatus, str | None, AssignmentStatus | None]:
    with db.transaction() as s:
        c = s.get_one(Clip, clip_id)
        return c.status, c.reason_code, c.assignment.status if c.assignment else None


def _actions(db, entity_type: str, entity_id: int) -> list[str]:
    with db.transaction() as s:
        q = sa.select(AuditEvent.action).where(
            AuditEvent.entity_type == entity_type, AuditEvent.entity_id == str(entity_id)
        )
        return list(s.scalars(q.order_by(AuditEvent.id)))


def _notes(db, user_id: int) -> list[tuple[str, str]]:
    with db.transaction() as s:
        q = sa.select(Notification.kind, Notification.body).where(Notification.user_id == user_id)
        return [(k, b) for k, b in s.execute(q.order_by(Notification.id))]


# --- routing --------------------------------------------------------------------------------------
def test_sampling_is_deterministic_and_near_its_fraction():
    picks = [review.sampled(i, 7, 0.3) for i in range(4000)]
    assert picks == [review.sampled(i, 7, 0.3) for i in range(4000)]
    assert 0.27 < sum(picks) / len(picks) < 0.33
    assert all(review.sampled(i, 7, 1.0) for i in range(50)) and not any(review.sampled(i, 7, 0.0) for i in range(50))


def test_a_sampled_clip_gets_one_acceptance_item_due_after_n_days(db, world, clip_maker):
    cid = clip_maker(_campaign(world, auto_accept_days=4, reviewers="both"))
    first = _route(db, cid)
    assert first is not None and _route(db, cid) == first  # a second run of the stage does nothing new
    with db.transaction() as s:
        item = s.get_one(ReviewItem, first)
        assert item.kind is ReviewKind.acceptance and item.state is ReviewState.open and item.audience == "both"
        assert timedelta(days=3, hours=23) < item.due_at - db_now(s) <= timedelta(days=4)
        assert s.scalar(sa.select(sa.func.count()).select_from(ReviewItem)) == 1
    assert _clip(db, cid)[0] is ClipStatus.qc_passed


def test_a_clip_not_sampled_is_accepted_at_once(db, world, clip_maker):
    cid = clip_maker(_campaign(world, sample_fraction=0.0))
    assert _route(db, cid) is None
    assert _clip(db, cid) == (ClipStatus.accepted, None, AssignmentStatus.accepted)
    assert _route(db, cid) is None  # idempotent: a decided clip is left alone
    with db.transaction() as s:
        ev = s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "clip.accepted"))
        assert ev.payload["how"] == "auto" and ev.actor_id is None
        assert s.get_one(Clip, cid).decided_at is not None
    assert [k for k, _ in _notes(db, world.worker.id)] == ["review.accepted"]


@pytest.mark.parametrize(
    ("status", "deid"),
    [
        (ClipStatus.qc_failed, None),
        (ClipStatus.qc_passed, DeidStatus.review),
        (ClipStatus.qc_passed, DeidStatus.pending),
        (ClipStatus.qc_passed, DeidStatus.failed),
    ],
)
def test_only_clean_qc_passed_clips_are_routed(db, world, clip_maker, status, deid):
    cid = clip_maker(_campaign(world, sample_fraction=0.0), status=status, deid=deid)
    assert _route(db, cid) is None
    assert _clip(db, cid)[0] is status
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(ReviewItem)) == 0


# --- deciding -------------------------------------------------------------------------------------
def test_accept_by_a_reviewer(db, world, clip_maker):
    reviewer = make_user(db, "reviewer")
    cid = clip_maker(_campaign(world))
    item = _route(db, cid)
    _decide(db, reviewer, item, "accept", comment="Nice and steady.")
    assert _clip(db, cid) == (ClipStatus.accepted, None, AssignmentStatus.accepted)
    with db.transaction() as s:
        ev = s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "clip.accepted"))
        assert ev.payload["how"] == "review" and ev.actor_id == reviewer.id
        it = s.get_one(ReviewItem, item)
        assert (it.state, it.decision, it.decided_by, it.comment) == (
            ReviewState.done,
            "accept",
            reviewer.id,
            "Nice and steady.",
        )
    assert "review.decided" in _actions(db, "review_item", item)


def test_reject_declines_frees_the_slot_and_tells_the_worker_why(db, world, clip_maker):
    reviewer = make_user(db, "reviewer")
    camp = _campaign(world)
    cid = clip_maker(camp)
    with db.transaction() as s:
        taken = s.get_one(Campaign, camp).slots_taken
    item = _route(db, cid)
    _decide(db, reviewer, item, "reject", reason="hands_not_visible", comment="Only the left hand shows.")
    assert _clip(db, cid) == (ClipStatus.declined, "review.hands_not_visible", AssignmentStatus.rejected)
    with db.transaction() as s:
        assert s.get_one(Campaign, camp).slots_taken == taken - 1
    kind, body = _notes(db, world.worker.id)[-1]
    assert kind == "review.rejected"
    assert review.REJECT_REASONS["hands_not_visible"] in body and "Only the left hand shows." in body


@pytest.mark.parametrize(
    ("decision", "kw", "code"),
    [
        ("reject", {}, "review.bad_reason"),
        ("reject", {"reason": "ugly"}, "review.bad_reason"),
        ("reject", {"reason": "other"}, "review.comment_required"),
        ("uphold", {}, "review.bad_decision"),
        ("accept", {"comment": "x" * 2001}, "review.comment_too_long"),
    ],
)
def test_bad_decisions_are_refused_and_leave_the_item_open(db, world, clip_maker, decision, kw, code):
    reviewer = make_user(db, "reviewer")
    cid = clip_maker(_campaign(world))
    item = _route(db, cid)
    with pytest.raises(InvalidInput) as err:
        _decide(db, reviewer, item, decision, **kw)
    assert err.value.code == code
    with db.transaction() as s:
        assert s.get_one(ReviewItem, item).state is ReviewState.open
    assert _clip(db, cid)[0] is ClipStatus.qc_passed


def test_a_decided_item_cannot_be_decided_again(db, world, clip_maker):
    reviewer, other = make_user(db, "reviewer"), make_user(db, "reviewer")
    item = _route(db, clip_maker(_campaign(world)))
    _decide(db, reviewer, item, "accept")
    with pytest.raises(Conflict) as err:
        _decide(db, other, item, "reject", reason="off_task")
    assert err.value.code == "review.already_decided"
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "clip.accepted")) == 1
        assert s.scalar(sa.select(sa.func.count()).where(AuditEvent.action == "clip.declined")) == 0


def test_two_reviewers_at_once_one_wins(db, world, clip_maker):
    reviewers = [make_user(db, "reviewer") for _ in range(2)]
    cid = clip_maker(_campaign(world))
    item = _route(db, cid)
    barrier, results = threading.Barrier(2), []

    def decide(actor, decision, kw):
        barrier.wait()
        try:
            _decide(db, actor, item, decision, **kw)
            results.append(decision)
        except Conflict as exc:
            results.append(exc.code)

    threads = [
        threading.Thread(target=decide, args=(reviewers[0], "accept", {})),
        threading.Thread(target=decide, args=(reviewers[1], "reject", {"reason": "off_task"})),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results, key=str) in (["accept", "review.already_decided"], ["reject", "review.already_decided"])
    winner = next(r for r in results if r != "review.already_decided")
    assert _clip(db, cid)[0] is (ClipStatus.accepted if winner == "accept" else ClipStatus.declined)
    with db.transaction() as s:
        decided = s.scalar(sa.select(sa.func.count()).where(AuditEvent.action.in_(("clip.accepted", "clip.declined"))))
        assert decided == 1
        assert len(s.scalars(sa.select(Notification).where(Notification.user_id == world.worker.id)).all()) == 1


# --- who decides ----------------------------------------------------------------------------------
def test_requester_audience_the_lab_decides_not_platform_reviewers(db, world, clip_maker):
    reviewer = make_user(db, "reviewer")
    other_lab = make_user(db, "requester", org="Lab B")
    viewer = make_user(db, "requester", org="Lab A", org_role="viewer")
    cid = clip_maker(_campaign(world, reviewers="requester"))
    item = _route(db, cid)
    with db.transaction() as s:
        assert [i.id for i in review.queue(s, s.get_one(User, world.lab.id))] == [item]
        assert review.queue(s, s.get_one(User, reviewer.id)) == []
        assert review.queue(s, s.get_one(User, other_lab.id)) == []
    for outsider in (reviewer, other_lab):
        with pytest.raises(Forbidden):
            _decide(db, outsider, item, "accept")
    with pytest.raises(Forbidden), db.transaction() as s:
        review.queue(s, s.get_one(User, viewer.id))
    _decide(db, world.lab, item, "accept")
    assert _clip(db, cid)[0] is ClipStatus.accepted


def test_platform_audience_reviewers_decide_not_the_lab(db, world, clip_maker):
    reviewer = make_user(db, "reviewer")
    item = _route(db, clip_maker(_campaign(world, reviewers="platform")))
    with db.transaction() as s:
        assert review.queue(s, s.get_one(User, world.lab.id)) == []
        assert [i.id for i in review.queue(s, s.get_one(User, reviewer.id), kind=ReviewKind.acceptance)] == [item]
        assert review.queue(s, s.get_one(User, reviewer.id), kind=ReviewKind.appeal) == []
    with pytest.raises(Forbidden):
        _decide(db, world.lab, item, "accept")
    with pytest.raises(Forbidden), db.transaction() as s:
        review.queue(s, s.get_one(User, world.worker.id))


# --- auto-accept ----------------------------------------------------------------------------------
def test_auto_accept_after_n_days_once(db, world, clip_maker):
    reviewer = make_user(db, "reviewer")
    camp = _campaign(world, auto_accept_days=2)
    late, decided = clip_maker(camp), clip_maker(camp, worker=world.signed_worker())
    items = [_route(db, late), _route(db, decided)]
    _decide(db, reviewer, items[1], "reject", reason="poor_quality")
    with db.transaction() as s:
        now = db_now(s)
        assert review.auto_accept_due(s, now + timedelta(days=1)) == 0
        assert review.auto_accept_due(s, now + timedelta(days=2, minutes=1)) == 1
    with db.transaction() as s:
        assert review.auto_accept_due(s, db_now(s) + timedelta(days=3)) == 0  # each item exactly once
    assert _clip(db, late)[0] is ClipStatus.accepted and _clip(db, decided)[0] is ClipStatus.declined
    with db.transaction() as s:
        it = s.get_one(ReviewItem, items[0])
        assert (it.state, it.decision, it.decided_by) == (ReviewState.done, "auto_accept", None)
        ev = s.scalar(sa.select(AuditEvent).where(AuditEvent.action == "clip.accepted"))
        assert ev.payload["how"] == "auto_accept" and ev.entity_id == str(late)


# --- appeals --------------------------------------------------------------------------------------
def _appeal(db, actor, clip_id: int, comment: str = "My hands were in gloves the whole time.") -> int:
    with db.transaction() as s:
        return review.appeal(s, s.get_one(User, actor.id), clip_id, comment).id


def test_appeal_once_with_a_comment_only_on_failed_or_declined_clips(db, world, clip_maker):
    camp = _campaign(world)
    failed = clip_maker(camp, status=ClipStatus.qc_failed, deid=None)
    passed = clip_maker(camp, worker=world.signed_worker())
    with pytest.raises(InvalidInput) as err:
        _appeal(db, world.worker, failed, "no")
    assert err.value.code == "appeal.comment_required"
    stranger = world.signed_worker()
    with pytest.raises(NotFound):
        _appeal(db, stranger, failed)
    item = _appeal(db, world.worker, failed)
    with pytest.raises(Conflict) as err:
        _appeal(db, world.worker, failed)
    assert err.value.code == "appeal.already_made"
    with db.transaction() as s:
        owner = s.get_one(Clip, passed).worker_id
        worker = s.get_one(User, owner)
        with pytest.raises(Conflict) as err:
            review.appeal(s, worker, passed, "It was fine, really it was.")
        assert err.value.code == "appeal.not_appealable"
        it = s.get_one(ReviewItem, item)
        assert (it.kind, it.disputes, it.audience, it.excluded_user_id) == (ReviewKind.appeal, "qc", "platform", None)
    assert "clip.appealed" in _actions(db, "clip", failed)


def test_the_rejecting_reviewer_cannot_decide_the_appeal_overturn_accepts(db, world, clip_maker):
    first, second = make_user(db, "reviewer"), make_user(db, "reviewer")
    cid = clip_maker(_campaign(world))
    _decide(db, first, _route(db, cid), "reject", reason="off_task")
    appeal_id = _appeal(db, world.worker, cid, "I folded the shirt, it is at the end of the clip.")
    with db.transaction() as s:
        assert s.get_one(ReviewItem, appeal_id).excluded_user_id == first.id
        assert review.queue(s, s.get_one(User, first.id)) == []
        assert [i.id for i in review.queue(s, s.get_one(User, second.id))] == [appeal_id]
    with pytest.raises(Forbidden):
        _decide(db, first, appeal_id, "overturn")
    with pytest.raises(InvalidInput):
        _decide(db, second, appeal_id, "accept")
    _decide(db, second, appeal_id, "overturn", comment="The fold is there at 0:40.")
    assert _clip(db, cid) == (ClipStatus.accepted, None, AssignmentStatus.accepted)
    kind, body = _notes(db, world.worker.id)[-1]
    assert kind == "appeal.granted" and "0:40" in body
    with db.transaction() as s:
        ev = s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "clip.accepted")).one()
        assert ev.payload["how"] == "appeal" and ev.actor_id == second.id


def test_uphold_keeps_the_verdict_and_says_why(db, world, clip_maker):
    reviewer = make_user(db, "reviewer")
    cid = clip_maker(_campaign(world), status=ClipStatus.qc_failed, deid=None)
    item = _appeal(db, world.worker, cid)
    with pytest.raises(InvalidInput) as err:
        _decide(db, reviewer, item, "uphold")
    assert err.value.code == "review.comment_required"
    _decide(db, reviewer, item, "uphold", comment="No hands are visible for most of the clip.")
    assert _clip(db, cid)[0] is ClipStatus.qc_failed
    kind, body = _notes(db, world.worker.id)[-1]
    assert kind == "appeal.upheld" and "No hands are visible" in body


def test_overturned_qc_failure_is_deidentified_then_accepted_without_sampling(db, world, clip_maker, app, video):
    reviewer = make_user(db, "reviewer")
    cid = clip_maker(_campaign(world), status=ClipStatus.qc_failed, deid=None)
    _decide(db, reviewer, _appeal(db, world.worker, cid), "overturn")
    with db.transaction() as s:
        c = s.get_one(Clip, cid)
        assert (c.status, c.deid_status) == (ClipStatus.qc_passed, DeidStatus.pending)
        assert s.scalar(sa.select(Job.stage).where(Job.clip_id == cid)) == "deidentify"
        c.deid_status = DeidStatus.clean  # what the deidentify stage does (its own tests run it for real)
    assert _route(db, cid) is None  # sample_fraction is 1, yet no second review
    assert _clip(db, cid) == (ClipStatus.accepted, None, AssignmentStatus.accepted)
    with db.transaction() as s:
        ev = s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "clip.accepted")).one()
        assert ev.payload["how"] == "appeal"


# --- progress -------------------------------------------------------------------------------------
def test_progress_counts_accepted_clips_against_the_target(db, world, clip_maker):
    reviewer = make_user(db, "reviewer")
    camp = _campaign(world)
    ids = [clip_maker(camp, worker=world.signed_worker()) for _ in range(3)]
    items = [_route(db, c) for c in ids]
    _decide(db, reviewer, items[0], "accept")
    _decide(db, reviewer, items[1], "reject", reason="duplicate")
    with db.transaction() as s:
        p = assignments.progress(s, s.get_one(Campaign, camp))
    assert (p["target"], p["accepted"], p["accepted_left"], p["awaiting_decision"], p["clips_declined"]) == (
        5,
        1,
        4,
        1,
        1,
    )
    r = world.client.get(f"/api/v1/campaigns/{camp}/progress", headers=world.lab.headers)
    assert r.status_code == 200 and r.json()["accepted"] == 1 and r.json()["accepted_left"] == 4


# --- pay ------------------------------------------------------------------------------------------
def _earned(db, actor) -> Money:
    with db.transaction() as s:
        return ledger.balance(s, ledger.worker_account(s, s.get_one(User, actor.id), "USD"))


def test_platform_reviewers_are_paid_once_per_decision_the_labs_team_is_not(db, world, clip_maker):
    """A campaign paying for review pays a platform reviewer each decision once (kind review_work),
    owes it when the budget is short until the next deposit, and pays nobody for the lab's own
    decisions; the budget counts a review per reviewed clip."""
    reviewer = make_user(db, "reviewer")
    campaign_id = _campaign(world, reviewers="both", pay_cents=30, sample_fraction=0.5)
    with db.transaction() as s:
        c = s.get_one(Campaign, campaign_id)
        plain = Campaign(pay_cents=c.pay_cents, currency=c.currency, review={}, annotation=c.annotation)
        # half the clips reviewed, each decision 0.30 and its fee, rounded up to the cent
        one = Money(31, "USD")  # an odd amount: half of it is no whole cent
        c.review = {**c.review, "pay_cents": 31}
        per_review = (one + ledger.fee_for(one, budgets.fee_bps())).minor
        assert budgets.cost_per_clip(c) - budgets.cost_per_clip(plain) == Money(-(-per_review // 2), "USD")
        c.review = {**c.review, "pay_cents": 30}
        c.review = {**c.review, "sample_fraction": 1.0}  # every clip to a person from here on
    first = _route(db, clip_maker(campaign_id))
    _decide(db, reviewer, first, "accept")
    assert _earned(db, reviewer) == Money(30, "USD")
    with db.transaction() as s:
        again = reviews.pay_for_decision(s, s.get_one(ReviewItem, first), None)  # a retry: the same posting
        assert again is not None and again.idempotency_key == f"review:{first}:decided"
        assert again.kind.value == "review_work" and again.refs["review_item_id"] == first
    lab_item = _route(db, clip_maker(campaign_id))
    _decide(db, world.lab, lab_item, "accept")  # the lab's own team: part of its job
    with db.transaction() as s:
        assert reviews.pay_for_decision(s, s.get_one(ReviewItem, lab_item), None) is None
        take_budget_back(s, s.get_one(Campaign, campaign_id), leave=Money(0, "USD"))
    owed = _route(db, clip_maker(campaign_id))
    _decide(db, reviewer, owed, "reject", reason="unsafe")  # a rejection is work too
    assert _earned(db, reviewer) == Money(30, "USD")
    assert "review.pay_owed" in _actions(db, "review_item", owed)
    with db.transaction() as s:
        assert [i.id for i in reviews.owed_decisions(s, campaign_id)] == [owed]
        lines = earnings.earnings(s, s.get_one(User, reviewer.id)).reviews  # the reviewer's earnings page
        assert [(x.item_id, x.kind, x.state, x.amount.minor) for x in lines] == [
            (owed, "acceptance", "owed", 30),
            (first, "acceptance", "approved", 30),
        ]
        assert earnings.earnings(s, s.get_one(User, world.lab.id)).reviews == []
        c = s.get_one(Campaign, campaign_id)
        admin = s.scalar(sa.select(User).where(User.role == "admin").limit(1))
        budgets.record_deposit(s, c, Money(1000, "USD"), admin, reason="more", idempotency_key=f"more:{campaign_id}")
        assert reviews.owed_decisions(s, campaign_id) == []
        assert ledger.verify(s) == []
    assert _earned(db, reviewer) == Money(60, "USD")
    r = world.client.get(f"{API}/me/earnings", headers=reviewer.headers)
    assert [(x["review_item_id"], x["state"], x["amount"]) for x in r.json()["reviews"]] == [
        (owed, "approved", "0.30"),
        (first, "approved", "0.30"),
    ]

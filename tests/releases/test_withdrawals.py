"""Withdrawal reaches everyone (#12 part 4): a consent withdrawn through the real API (or page, or an
account deletion) withdraws the clips it covered, tells the buyers who downloaded a release holding
them (and only those), who acknowledge; an admin removes a clip for cause; the housekeeping sweep is
idempotent and catches what the doors missed; media is purged after the grace period, never a blob
something live still needs; media of a withdrawn clip is refused; the feed pages with a cursor."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd import audit, consent
from egocrowd.clips import sweep_orphan_blobs
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    Clip,
    ClipStatus,
    ConsentRecord,
    Job,
    JobStatus,
    Notification,
    ReviewItem,
    ReviewKind,
    ReviewState,
    User,
    Withdrawal,
    WithdrawalNotice,
)
from egocrowd.labels import review
from egocrowd.pipeline.runner import enqueue
from egocrowd.releases import withdrawals
from egocrowd.worker import housekeeping
from tests.platform.helpers import API, assert_problem, make_user
from tests.releases.withdraw_world import WithdrawWorld, build

GRACE = 30.0


@pytest.fixture
def ww(world, db, app, tmp_path) -> WithdrawWorld:
    return build(world, db, app.state.blobs, tmp_path)


def _withdraw(ww: WithdrawWorld, record_id: int | None = None):
    r = ww.client.post(f"{API}/consents/{record_id or ww.consent_id}/withdraw", headers=ww.world.worker.headers)
    assert r.status_code == 200, r.text
    return r.json()


def _notices(db) -> list[WithdrawalNotice]:
    with db.transaction(write=False) as s:
        rows = list(s.scalars(sa.select(WithdrawalNotice).order_by(WithdrawalNotice.id)))
        s.expunge_all()
        return rows


def _feed(ww, actor, **params) -> dict:
    r = ww.client.get(f"{API}/withdrawals/feed", params=params, headers=actor.headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_consent_withdrawal_reaches_the_downloading_buyer_only(ww, db):
    campaign = ww.world.open_campaign()["id"]
    kept_by_other = make_user(db, "worker")  # another worker's clip in the same release stays
    from tests.platform.helpers import sign

    other_consent = sign(ww.client, kept_by_other)["id"]
    gone = ww.clip(campaign)
    stays = ww.clip(campaign, worker=kept_by_other, consent_id=other_consent)
    rid = ww.release([gone, stays])
    ww.download(rid, ww.buyer)

    body = _withdraw(ww)

    with db.transaction(write=False) as s:
        clip = s.get_one(Clip, gone)
        assert clip.status is ClipStatus.withdrawn
        assert s.get_one(Clip, stays).status is ClipStatus.accepted
        w = s.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == gone))
        rec = s.get_one(ConsentRecord, ww.consent_id)
        assert body["withdrawn_at"] is not None and rec.withdrawn_at is not None
        assert w.reason == "consent_withdrawn" and w.by is None
        assert w.withdrawn_at == rec.withdrawn_at
        assert w.purge_after == rec.withdrawn_at + timedelta(days=GRACE)
        derived = clip.derived.sha256
        assert sorted(w.media) == sorted({clip.sha256, derived}) and w.clip_sha256 == clip.sha256
        assert w.purged_at is None
        [event] = audit.find(s, action="clip.withdrawn", entity_type="clip", entity_id=gone)
        assert event.payload["previous_status"] == "accepted" and event.payload["withdrawal_id"] == w.id
        assert s.scalar(sa.select(sa.func.count()).select_from(Withdrawal).where(Withdrawal.clip_id == stays)) == 0
        tombstone = w.clip_sha256

    [notice] = _notices(db)
    assert notice.organization_id == ww.buyer.org_id and notice.release_id == rid
    assert notice.files == [
        {"path": p, "sha256": ww.file_sha(rid, p)}
        for p in sorted(["webdataset/shard-000000.tar", "lerobot/data/chunk-000/episode_000000.parquet"])
    ]
    assert all(re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) for f in notice.files)

    # every member of the buyer's lab is told in the app (the outbox emails it); nobody else
    with db.transaction(write=False) as s:
        told = set(s.scalars(sa.select(Notification.user_id).where(Notification.kind == "withdrawal.notice")))
    assert told == {ww.buyer.owner.id, ww.buyer.viewer.id}

    feed = _feed(ww, ww.buyer.viewer)
    [item] = feed["items"]
    assert feed["next_cursor"] is None
    assert item["id"] == notice.id and item["reason"] == "consent_withdrawn"
    assert item["clip_sha256"] == tombstone and item["media_sha256"] == derived
    assert item["release"]["id"] == rid and item["files"] == notice.files and item["acknowledged_at"] is None
    assert _feed(ww, ww.bystander.owner)["items"] == []  # never downloaded: never told
    assert _feed(ww, ww.bystander.viewer)["items"] == []

    # a viewer reads but does not acknowledge; another lab cannot even see it; the owner does
    ack = f"{API}/withdrawals/notices/{notice.id}/acknowledge"
    assert_problem(ww.client.post(ack, headers=ww.buyer.viewer.headers), 403, "auth.forbidden")
    assert_problem(ww.client.post(ack, headers=ww.bystander.owner.headers), 404, "withdrawal.notice_not_found")
    assert_problem(ww.client.post(ack, headers=ww.world.worker.headers), 403, "auth.forbidden")
    r = ww.client.post(ack, headers=ww.buyer.owner.headers)
    assert r.status_code == 200, r.text
    first = r.json()["acknowledged_at"]
    assert first is not None and r.json()["acknowledged_by"] == ww.buyer.owner.id
    again = ww.client.post(ack, headers=ww.buyer.owner.headers).json()
    assert again["acknowledged_at"] == first  # the first acknowledgement stands
    with db.transaction(write=False) as s:
        assert (
            len(audit.find(s, action="withdrawal.acknowledged", entity_type="withdrawal_notice", entity_id=notice.id))
            == 1
        )


def test_withdrawing_on_the_page_and_deleting_the_account_withdraw_clips_too(ww, db, client):
    from tests.platform.test_access import page_login

    campaign = ww.world.open_campaign()["id"]
    first = ww.clip(campaign)
    csrf = page_login(client, ww.world.worker)
    r = client.post(
        f"/consents/{ww.consent_id}/withdraw", data={"csrf_token": csrf, "confirmed": "yes"}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    with db.transaction(write=False) as s:
        assert s.get_one(Clip, first).status is ClipStatus.withdrawn
    client.cookies.clear()

    # another worker deletes their account: each of their clips is withdrawn
    leaving = make_user(db, "worker")
    from tests.platform.helpers import sign

    rec = sign(ww.client, leaving)["id"]
    theirs = ww.clip(campaign, worker=leaving, consent_id=rec)
    rid = ww.release([theirs], name="leaving")
    ww.download(rid, ww.buyer)
    assert ww.client.delete(f"{API}/me", headers=leaving.headers).status_code == 204
    with db.transaction(write=False) as s:
        assert s.get_one(Clip, theirs).status is ClipStatus.withdrawn
        w = s.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == theirs))
        assert w.reason == "consent_withdrawn"
        wid = w.id
    assert [n.withdrawal_id for n in _notices(db)] == [wid]


def test_removal_for_cause(ww, db):
    campaign = ww.world.open_campaign()["id"]
    cid = ww.clip(campaign)
    rid = ww.release([cid])
    ww.download(rid, ww.buyer)
    url = f"{API}/clips/{cid}/withdrawal"
    why = {"comment": "The worker filmed a stranger's home without asking."}

    assert_problem(ww.client.post(url, json=why, headers=ww.world.lab.headers), 403, "auth.forbidden")
    assert_problem(
        ww.client.post(url, json={"comment": "bad"}, headers=ww.admin.headers), 422, "withdrawal.comment_required"
    )
    assert_problem(
        ww.client.post(f"{API}/clips/424242/withdrawal", json=why, headers=ww.admin.headers), 404, "clip.not_found"
    )
    r = ww.client.post(url, json=why, headers=ww.admin.headers)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["reason"] == "removed" and out["by"] == ww.admin.id and out["comment"] == why["comment"]
    assert_problem(ww.client.post(url, json=why, headers=ww.admin.headers), 409, "withdrawal.already_withdrawn")

    with db.transaction(write=False) as s:
        assert s.get_one(Clip, cid).status is ClipStatus.withdrawn
        note = s.scalar(
            sa.select(Notification).where(
                Notification.user_id == ww.world.worker.id, Notification.kind == "clip.removed"
            )
        )
        assert why["comment"] in note.body  # the worker is told why
    [notice] = _notices(db)
    assert notice.organization_id == ww.buyer.org_id
    assert _feed(ww, ww.buyer.owner)["items"][0]["reason"] == "removed"
    # the consent stays signed: removal is not a withdrawal of consent
    with db.transaction(write=False) as s:
        assert s.get_one(ConsentRecord, ww.consent_id).withdrawn_at is None


def test_the_sweep_records_what_the_doors_missed_once_and_reaches_later_buyers(ww, db, app):
    campaign = ww.world.open_campaign()["id"]
    a, b = ww.clip(campaign), ww.clip(campaign)
    rid = ww.release([a, b])
    ww.download(rid, ww.buyer)
    # withdrawn below the doors (as before this code existed): no Withdrawal yet
    with db.transaction() as s:
        consent.withdraw(s, s.get_one(User, ww.world.worker.id), ww.consent_id)
    with db.transaction(write=False) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Withdrawal)) == 0

    blobs = app.state.blobs
    first = withdrawals.sweep(db, blobs, grace_days=GRACE)
    assert first == {"recorded": 2, "notices": 2, "purged": 0}
    assert withdrawals.sweep(db, blobs, grace_days=GRACE) == {"recorded": 0, "notices": 0, "purged": 0}
    with db.transaction(write=False) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Withdrawal)) == 2
        assert len(audit.find(s, action="clip.withdrawn", entity_type="clip", entity_id=a)) == 1
    assert len(_notices(db)) == 2

    # the bystander downloads the release later: the next round tells them, once
    ww.download(rid, ww.bystander)
    assert withdrawals.sweep(db, blobs, grace_days=GRACE)["notices"] == 2
    assert withdrawals.sweep(db, blobs, grace_days=GRACE)["notices"] == 0
    assert sorted(n.organization_id for n in _notices(db)) == sorted([ww.buyer.org_id] * 2 + [ww.bystander.org_id] * 2)
    # the housekeeping round runs the same step (nothing left to do)
    assert housekeeping(db, blobs, app.state.upload_store, app.state.settings)["withdrawals"] == 0

    # the download hook tells a buyer at once, without waiting for the round
    third = make_user(db, "requester", org="Third Lab")
    with db.transaction(write=False) as s:
        third_org = s.get_one(User, third.id).organization_id
    from tests.releases.withdraw_world import Buyer

    ww.download(rid, Buyer(third_org, third, third))
    with db.transaction() as s:
        told = withdrawals.notices_after_download(s, rid, third_org)
    assert len(told) == 2 and {n.organization_id for n in told} == {third_org}


def test_purge_after_grace_keeps_shared_blobs(ww, db, app):
    blobs = app.state.blobs
    campaign = ww.world.open_campaign()["id"]
    shared_raw = ww.video(200)
    gone = ww.clip(campaign, raw=shared_raw, shade=200)
    other = make_user(db, "worker")
    from tests.platform.helpers import sign

    rec = sign(ww.client, other)["id"]
    twin = ww.clip(campaign, raw=shared_raw, shade=210, worker=other, consent_id=rec)  # the same bytes, another clip
    rid = ww.release([gone, twin])
    # a later release of the twin only, whose metadata file has the same bytes as the first's
    rid2 = ww.release([twin])
    _withdraw(ww)
    with db.transaction(write=False) as s:
        g, t = s.get_one(Clip, gone), s.get_one(Clip, twin)
        raw, derived, twin_derived = g.sha256, g.derived.sha256, t.derived.sha256
        w = s.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == gone))
        purge_after, wid = w.purge_after, w.id
        manifest_shas = [sha for (sha,) in s.execute(sa.text("SELECT manifest_sha256 FROM releases")).all()]
        assert raw == t.sha256
    shard = ww.file_sha(rid, "webdataset/shard-000000.tar")
    # the clip's rows have the same bytes as its twin's, which live releases still carry
    rows = ww.file_sha(rid, "lerobot/data/chunk-000/episode_000000.parquet")
    assert rows == ww.file_sha(rid2, "lerobot/data/chunk-000/episode_000000.parquet")
    meta = ww.file_sha(rid, "meta/info.json")

    # not before the grace period
    assert withdrawals.purge_due(db, blobs, now=purge_after - timedelta(seconds=1)) == []
    assert blobs.exists(derived)

    [done] = withdrawals.purge_due(db, blobs, now=purge_after + timedelta(seconds=1))
    assert done.withdrawal_id == wid
    assert sorted(done.deleted) == sorted([derived, shard])
    assert sorted(done.kept) == sorted([raw, rows])  # the twin still needs both
    assert not blobs.exists(derived) and not blobs.exists(shard)
    for sha in (raw, rows, twin_derived, meta, *manifest_shas, ww.file_sha(rid, "webdataset/shard-000001.tar")):
        assert blobs.exists(sha), sha
    with db.transaction(write=False) as s:
        w = s.get_one(Withdrawal, wid)
        assert w.purged_at is not None and w.clip_sha256 == raw and derived in w.media  # the tombstone
        [event] = audit.find(s, action="clip.purged", entity_type="clip", entity_id=gone)
        assert event.payload["deleted"] == done.deleted
        # release rows never change
        assert s.execute(sa.text(f"SELECT count(*) FROM release_files WHERE release_id = {rid}")).scalar() == 6
    assert withdrawals.purge_due(db, blobs, now=purge_after + timedelta(days=1)) == []  # once

    # the orphan sweep agrees: it keeps the shared raw blob, and does not let a purged blob live again
    far = (purge_after + timedelta(days=2)).timestamp()
    assert raw not in sweep_orphan_blobs(db, blobs, grace=timedelta(0), now=far)
    assert blobs.exists(raw)
    back = blobs.put_file(ww.video(203))  # the withdrawn clip's derived bytes written again
    assert back.sha256 == derived
    assert derived in sweep_orphan_blobs(db, blobs, grace=timedelta(0), now=far)
    assert not blobs.exists(derived)

    # once the twin is withdrawn and purged too, the raw bytes go
    with db.transaction() as s:
        w2, _ = withdrawals.record_withdrawal(
            s, s.get_one(Clip, twin), reason="removed", withdrawn_at=utcnow() - timedelta(days=40), grace_days=GRACE
        )
    [done2] = withdrawals.purge_due(db, blobs, now=utcnow() + timedelta(hours=1))
    assert raw in done2.deleted and rows in done2.deleted and not blobs.exists(raw)


def test_media_of_a_withdrawn_clip_is_refused_then_gone(ww, db, app):
    campaign = ww.world.open_campaign()["id"]
    cid = ww.clip(campaign)
    url = f"{API}/clips/{cid}/video"
    assert ww.client.get(url, headers=ww.world.worker.headers).status_code == 200
    _withdraw(ww)
    for who in (ww.world.worker, ww.world.lab):
        body = assert_problem(ww.client.get(url, headers=who.headers), 410, "clip.withdrawn")
        assert body["purged"] is False
    assert ww.client.get(url, headers=ww.admin.headers).status_code == 200  # admins, until the purge
    # the raw footage: an admin's link works until the purge
    r = ww.client.post(
        f"{API}/admin/clips/{cid}/raw", json={"reason": "Checking the withdrawal"}, headers=ww.admin.headers
    )
    raw_url = r.json()["url"]
    assert ww.client.get(raw_url, headers=ww.admin.headers).status_code == 200

    with db.transaction(write=False) as s:
        due = s.scalar(sa.select(Withdrawal.purge_after).where(Withdrawal.clip_id == cid))
    withdrawals.purge_due(db, app.state.blobs, now=due + timedelta(seconds=1))
    for who in (ww.admin, ww.world.worker):
        body = assert_problem(ww.client.get(url, headers=who.headers), 410, "clip.withdrawn")
        assert body["purged"] is True
    assert_problem(ww.client.get(raw_url, headers=ww.admin.headers), 410, "clip.withdrawn")


def test_feed_pages_with_a_stable_cursor_newest_last(ww, db):
    campaign = ww.world.open_campaign()["id"]
    clips = [ww.clip(campaign) for _ in range(5)]
    rid = ww.release(clips)
    ww.download(rid, ww.buyer)
    _withdraw(ww)
    ids = [n.id for n in _notices(db)]
    assert len(ids) == 5

    seen, cursor, pages = [], None, 0
    while True:
        page = _feed(ww, ww.buyer.owner, limit=2, **({"cursor": cursor} if cursor is not None else {}))
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3  # oldest first, newest last, each once
    assert [i["id"] for i in _feed(ww, ww.buyer.owner, cursor=ids[2])["items"]] == ids[3:]
    # a poller comes back later with its last cursor and gets only what is new
    more = ww.clip(campaign, worker=ww.world.worker)
    with db.transaction() as s:
        withdrawals.record_withdrawal(
            s, s.get_one(Clip, more), reason="removed", withdrawn_at=utcnow(), grace_days=GRACE
        )
    rid2 = ww.release([more], name="more")
    ww.download(rid2, ww.buyer)
    with db.transaction() as s:
        withdrawals.send_notices(s)
    latest = _feed(ww, ww.buyer.owner, cursor=ids[-1])["items"]
    assert len(latest) == 1 and latest[0]["id"] > ids[-1] and latest[0]["release"]["id"] == rid2
    # since: a moment after everything made so far
    with db.transaction(write=False) as s:
        newest = s.scalar(sa.select(sa.func.max(WithdrawalNotice.created_at)))
    assert [i["id"] for i in _feed(ww, ww.buyer.owner, since=newest.isoformat())["items"]] == [latest[0]["id"]]
    assert _feed(ww, ww.buyer.owner, since=(newest + timedelta(seconds=1)).isoformat())["items"] == []
    assert len(_feed(ww, ww.admin)["items"]) == 6  # admins read every lab's
    assert_problem(ww.client.get(f"{API}/withdrawals/feed", headers=ww.world.worker.headers), 403, "auth.forbidden")


def test_withdrawing_stops_the_work_waiting_on_the_clip(ww, db):
    campaign = ww.world.open_campaign()["id"]
    cid = ww.clip(campaign)
    annotator = make_user(db, "worker")
    with db.transaction() as s:
        clip = s.get_one(Clip, cid)
        item = review.open_item(s, clip, ReviewKind.acceptance, audience="both").id
        enqueue(s, clip, "qc")
        s.add(
            AnnotationTask(
                clip_id=cid,
                campaign_id=campaign,
                annotator_id=annotator.id,
                lease_expires_at=utcnow() + timedelta(hours=1),
            )
        )
    _withdraw(ww)
    with db.transaction(write=False) as s:
        assert s.get_one(ReviewItem, item).state is ReviewState.cancelled
        assert (
            s.scalar(sa.select(AnnotationTask.status).where(AnnotationTask.clip_id == cid))
            is AnnotationTaskStatus.released
        )
        job = s.scalar(sa.select(Job).where(Job.clip_id == cid))
        assert job.status is JobStatus.done and job.last_error == "clip.withdrawn"


def test_withdrawn_since_lists_the_previous_releases_withdrawn_clips(ww, db):
    campaign = ww.world.open_campaign()["id"]
    a, b = ww.clip(campaign), ww.clip(campaign)
    rid = ww.release([a])
    _withdraw(ww)  # both a and b withdrawn; only a was in the release
    with db.transaction(write=False) as s:
        assert withdrawals.withdrawn_since(s, rid) == [s.get_one(Clip, a).sha256]
        assert withdrawals.withdrawn_since(s, None) == []
        assert s.get_one(Clip, b).status is ClipStatus.withdrawn


def test_the_admin_overview_measures_the_time_to_notice(ww, db, client):
    campaign = ww.world.open_campaign()["id"]
    cid = ww.clip(campaign)
    rid = ww.release([cid])
    ww.download(rid, ww.buyer, ago=timedelta(hours=2))
    with db.transaction() as s:  # withdrawn an hour ago, noticed now (the sweep found it late)
        withdrawals.record_withdrawal(
            s, s.get_one(Clip, cid), reason="removed", withdrawn_at=utcnow() - timedelta(hours=1), grace_days=GRACE
        )
    with db.transaction() as s:
        withdrawals.send_notices(s)
    r = client.get(f"{API}/withdrawals", headers=ww.admin.headers)
    assert r.status_code == 200, r.text
    o = r.json()
    assert o["total"] == 1 and o["notices_in_window"] == 1 and o["awaiting_purge"] == 1
    assert 3600 <= o["median_seconds_to_notice"] == o["max_seconds_to_notice"] < 3600 + 600
    [row] = o["items"]
    assert row["clip_id"] == cid and row["notices"][0]["organization"].startswith("Buyer Lab")
    assert_problem(client.get(f"{API}/withdrawals", headers=ww.buyer.owner.headers), 403, "auth.forbidden")
    # a buyer who downloads after the withdrawal is owed a notice from their download on
    ww.download(rid, ww.bystander, ago=timedelta(minutes=5))
    with db.transaction() as s:
        [late] = withdrawals.send_notices(s)
    o = client.get(f"{API}/withdrawals", headers=ww.admin.headers).json()
    took = {n["notice_id"]: n["seconds_to_notice"] for n in o["items"][0]["notices"]}
    assert 300 <= took[late.id] < 900 and o["max_seconds_to_notice"] >= 3600

    from tests.platform.test_access import page_login

    page_login(client, ww.admin)
    html = client.get("/admin/withdrawals").text
    assert (
        f'data-clip="{cid}"' in html
        and 'data-figure="max">1 h 0 min<' in html
        and 'data-figure="median">32 min<' in html
    )


def test_the_command_line(ww, db, app, tmp_path):
    from click.testing import CliRunner

    from egocrowd.cli import main

    campaign = ww.world.open_campaign()["id"]
    cid = ww.clip(campaign)
    rid = ww.release([cid])
    ww.download(rid, ww.buyer)
    env = {
        "EGOCROWD_DATA_DIR": str(app.state.settings.data_dir),
        "EGOCROWD_CONFIG": None,
        "EGOCROWD_DATABASE_URL": db.url,
    }
    run = CliRunner().invoke
    assert "Remove clip CLIP_ID for cause" in run(main, ["withdrawals", "remove", "--help"], env=env).output
    r = run(main, ["withdrawals", "remove", str(cid), "--reason", "short"], env=env)
    assert r.exit_code == 1 and "withdrawal.comment_required" in r.output
    r = run(main, ["withdrawals", "remove", str(cid), "--reason", "Filmed a stranger's home without asking."], env=env)
    assert r.exit_code == 0, r.output
    with db.transaction(write=False) as s:
        w = s.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == cid))
        assert w.reason == "removed" and w.by is None
    assert len(_notices(db)) == 1
    r = run(main, ["withdrawals", "list"], env=env)
    assert r.exit_code == 0 and "1 withdrawals; last 30 days: 1 notices" in r.output and "removed" in r.output
    r = run(main, ["withdrawals", "sweep"], env=env)
    assert r.exit_code == 0 and r.output.strip() == "0 withdrawals recorded, 0 notices sent, 0 purged"


def test_the_clip_page_says_the_clip_was_withdrawn(ww, db, client):
    from tests.platform.test_access import page_login

    campaign = ww.world.open_campaign()["id"]
    cid = ww.clip(campaign)
    page_login(client, ww.world.worker)
    assert f'src="/clips/{cid}/video"' in client.get(f"/clips/{cid}").text
    client.cookies.clear()
    _withdraw(ww)
    page_login(client, ww.world.worker)
    html = client.get(f"/clips/{cid}").text
    assert f'src="/clips/{cid}/video"' not in html and "it was withdrawn" in html


def test_the_notice_is_emailed_to_the_buyers_members(ww, db, app):
    from email import message_from_bytes, policy

    campaign = ww.world.open_campaign()["id"]
    rid = ww.release([ww.clip(campaign)])
    ww.download(rid, ww.buyer)
    _withdraw(ww)
    done = housekeeping(db, app.state.blobs, app.state.upload_store, app.state.settings)
    assert done["notices_emailed"] >= 2
    letters = [
        message_from_bytes(p.read_bytes(), policy=policy.default) for p in app.state.settings.outbox_path.glob("*.eml")
    ]
    told = {m["To"] for m in letters if "withdrawn from a release you downloaded" in m["Subject"]}
    assert told == {ww.buyer.owner.email, ww.buyer.viewer.email}
    body = next(m for m in letters if m["To"] == ww.buyer.owner.email).get_content()
    assert "/withdrawals" in body and "acknowledge" in body


def test_the_door_and_the_sweep_meeting_send_one_notice(ww, db):
    """Two transactions owe the same notice at once (a door and the housekeeping sweep): one is sent.
    On PostgreSQL the second waits on the unique index, then skips; SQLite queues the second writer."""
    import threading

    campaign = ww.world.open_campaign()["id"]
    cid = ww.clip(campaign)
    rid = ww.release([cid])
    ww.download(rid, ww.buyer)
    with db.transaction() as s:
        withdrawals.record_withdrawal(
            s, s.get_one(Clip, cid), reason="removed", withdrawn_at=utcnow(), grace_days=GRACE
        )
    first_inserted, results = threading.Event(), {}

    def door():
        with db.transaction() as s:
            results["door"] = len(withdrawals.send_notices(s))
            first_inserted.set()
            threading.Event().wait(0.5)  # hold the transaction open while the sweep tries

    def sweep():
        first_inserted.wait(10)
        with db.transaction() as s:
            results["sweep"] = len(withdrawals.send_notices(s))

    threads = [threading.Thread(target=door), threading.Thread(target=sweep)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {"door": 1, "sweep": 0}
    assert len(_notices(db)) == 1

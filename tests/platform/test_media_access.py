"""Who gets which bytes of a clip (issue #9): the de-identified video for the clip's worker, its lab,
reviewers and admins once it is ready; the raw file for admins only, through a short-lived link that
is audited with the admin's reason. Both are served with HTTP Range, as a browser's player asks."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
import sqlalchemy as sa
from itsdangerous import URLSafeTimedSerializer

from egocrowd.clips import media
from egocrowd.db.models import AuditEvent, Clip, ClipStatus, DeidStatus, Derivative
from tests.platform.helpers import API, assert_problem, make_user
from tests.support.deid import add_clip, make_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("deid-videos")
    return {"raw": make_video(d / "raw.mp4", shade=0), "derived": make_video(d / "derived.mp4", shade=90)}


@pytest.fixture
def clip_of(app, db, world, videos):
    campaign = world.open_campaign()

    def make(deid=DeidStatus.clean, *, derived=True, **kw) -> int:
        return add_clip(
            db,
            app.state.blobs,
            campaign_id=campaign["id"],
            worker_id=world.worker.id,
            raw=videos["raw"],
            derived=videos["derived"] if derived else None,
            deid=deid,
            **kw,
        )

    return make


def test_the_derived_video_goes_to_the_worker_the_lab_reviewers_and_admins(client, db, world, clip_of, videos):
    cid = clip_of()
    url = f"{API}/clips/{cid}/video"
    expect = {
        "worker": (world.worker, 200),
        "lab": (world.lab, 200),
        "reviewer": (make_user(db, "reviewer"), 200),
        "admin": (make_user(db, "admin"), 200),
        "other worker": (make_user(db, "worker"), 404),
        "other lab": (make_user(db, "requester", org="Lab B"), 404),
    }
    got = {name: client.get(url, headers=who.headers).status_code for name, (who, _) in expect.items()}
    assert got == {name: status for name, (_, status) in expect.items()}
    assert client.get(url).status_code == 401
    r = client.get(url, headers=world.worker.headers)
    assert r.content == videos["derived"].read_bytes() != videos["raw"].read_bytes()
    assert r.headers["content-type"] == "video/mp4"
    assert r.headers["cache-control"].startswith("private")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"].startswith("inline")
    # The page route the <video> tag uses (session cookie) answers the same bytes.
    page = client.get(f"/clips/{cid}/video", headers=world.lab.headers)
    assert page.status_code == 200 and page.content == r.content


def test_no_derived_video_says_where_the_clip_stands(client, db, world, clip_of):
    reviewer = make_user(db, "reviewer")
    in_review = clip_of(DeidStatus.review)
    body = assert_problem(
        client.get(f"{API}/clips/{in_review}/video", headers=world.worker.headers), 409, "clip.not_deidentified"
    )
    assert body["deid_status"] == "review" and "reviewer is checking" in body["detail"]
    assert client.get(f"{API}/clips/{in_review}/video", headers=reviewer.headers).status_code == 200
    pending = clip_of(DeidStatus.pending, derived=False)
    body = assert_problem(
        client.get(f"{API}/clips/{pending}/video", headers=reviewer.headers), 409, "clip.not_deidentified"
    )
    assert "being de-identified" in body["detail"]
    failed = clip_of(DeidStatus.failed, derived=False, reason="deid.model_missing")
    body = assert_problem(
        client.get(f"{API}/clips/{failed}/video", headers=world.lab.headers), 409, "clip.not_deidentified"
    )
    # plain words for the worker and the lab; the code for those who fix it
    assert "deid_reason" not in body and "deid." not in body["detail"] and "model" not in body["detail"]
    assert "could not finish hiding the faces" in body["detail"]
    for who in (world.worker, world.lab):
        page = client.get(f"/clips/{failed}", headers=who.headers)
        assert page.status_code == 200 and "could not finish hiding the faces" in page.text
        assert "deid.model_missing" not in page.text
    for who in (reviewer, make_user(db, "admin")):
        body = assert_problem(
            client.get(f"{API}/clips/{failed}/video", headers=who.headers), 409, "clip.not_deidentified"
        )
        assert body["deid_reason"] == "deid.model_missing" and "deid.model_missing" in body["detail"]
        assert "deid.model_missing" in client.get(f"/clips/{failed}", headers=who.headers).text
    never = clip_of(None, derived=False, status=ClipStatus.qc_failed)
    assert_problem(client.get(f"{API}/clips/{never}/video", headers=world.worker.headers), 409, "clip.not_deidentified")


def test_range_requests_from_a_real_client(live, world, clip_of, videos):
    cid = clip_of()
    data = videos["derived"].read_bytes()
    with live.client(headers=world.worker.headers) as http:
        url = f"{API}/clips/{cid}/video"
        r = http.get(url, headers={"Range": "bytes=0-99"})
        assert r.status_code == 206 and r.content == data[:100]
        assert r.headers["content-range"] == f"bytes 0-99/{len(data)}"
        assert r.headers["accept-ranges"] == "bytes"
        r = http.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
        assert r.status_code == 206 and r.content == data[-10:]
        r = http.get(url, headers={"Range": f"bytes={len(data) + 5}-{len(data) + 10}"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(data)}"
        r = http.get(url)
        assert r.status_code == 200 and r.content == data and r.headers["accept-ranges"] == "bytes"


def _raw_events(db, cid: int, action: str) -> list[dict]:
    with db.transaction() as s:
        q = sa.select(AuditEvent).where(AuditEvent.action == action, AuditEvent.entity_id == str(cid))
        return [{"actor": e.actor_id, **e.payload} for e in s.scalars(q)]


def test_raw_footage_is_admin_only_with_a_reason_audited_once_per_link(live, client, db, world, clip_of, videos):
    cid = clip_of()
    admin, other_admin = make_user(db, "admin"), make_user(db, "admin")
    reason = {"reason": "A bystander asked us to check clip content"}
    for who in (world.worker, world.lab, make_user(db, "reviewer")):
        assert_problem(
            client.post(f"{API}/admin/clips/{cid}/raw", json=reason, headers=who.headers), 403, "auth.forbidden"
        )
    assert_problem(
        client.post(f"{API}/admin/clips/{cid}/raw", json={"reason": "  look   "}, headers=admin.headers),
        422,
        "clip.raw_reason_required",
    )
    assert _raw_events(db, cid, "clip.raw_link_issued") == []
    r = client.post(f"{API}/admin/clips/{cid}/raw", json=reason, headers=admin.headers)
    assert r.status_code == 200 and r.json()["expires_in"] == 300
    link = r.json()["url"]
    assert _raw_events(db, cid, "clip.raw_link_issued")[0]["reason"] == reason["reason"]
    _, payload = URLSafeTimedSerializer("any key", salt="egocrowd-raw-media").loads_unsafe(link.split("token=")[1])
    assert set(payload) == {"c", "u", "n"}  # the reason stays out of the link (history, proxy logs)
    # Bound to the admin who asked: another admin (and a worker) cannot use it.
    assert_problem(client.get(link, headers=other_admin.headers), 403, "clip.raw_link_invalid")
    assert_problem(client.get(link, headers=world.worker.headers), 403, "auth.forbidden")
    assert_problem(client.get(link.replace("token=", "token=x"), headers=admin.headers), 403, "clip.raw_link_invalid")
    assert _raw_events(db, cid, "clip.raw_accessed") == []
    data = videos["raw"].read_bytes()
    with live.client(headers=admin.headers) as http:
        first = http.get(link, headers={"Range": "bytes=0-1023"})
        assert first.status_code == 206 and first.content == data[:1024]
        rest = http.get(link, headers={"Range": "bytes=1024-"})
        assert rest.status_code == 206 and first.content + rest.content == data
        assert rest.headers["cache-control"] == "no-store"  # no copy of raw footage on the admin's disk
    events = _raw_events(db, cid, "clip.raw_accessed")
    assert len(events) == 1 and events[0]["reason"] == reason["reason"] and events[0]["actor"] == admin.id
    # A second link is a second access.
    link2 = client.post(f"{API}/admin/clips/{cid}/raw", json=reason, headers=admin.headers).json()["url"]
    assert client.get(link2, headers=admin.headers).status_code == 200
    assert len(_raw_events(db, cid, "clip.raw_accessed")) == 2
    # A link for one clip does not open another.
    other = clip_of()
    assert_problem(
        client.get(link.replace(f"/clips/{cid}/", f"/clips/{other}/"), headers=admin.headers),
        403,
        "clip.raw_link_invalid",
    )


def test_a_raw_link_expires(client, db, clip_of, monkeypatch):
    cid = clip_of()
    admin = make_user(db, "admin")
    link = client.post(
        f"{API}/admin/clips/{cid}/raw", json={"reason": "Checking a reported problem"}, headers=admin.headers
    ).json()["url"]
    monkeypatch.setattr(media, "RAW_TOKEN_SECONDS", -1)  # five minutes later
    assert_problem(client.get(link, headers=admin.headers), 403, "clip.raw_link_expired")
    assert _raw_events(db, cid, "clip.raw_accessed") == []


def test_the_export_carries_derived_videos_only_and_deletion_removes_them(app, client, db, world, clip_of, videos):
    clean, in_review, pending = clip_of(), clip_of(DeidStatus.review), clip_of(DeidStatus.pending, derived=False)
    r = client.post(f"{API}/me/export", headers=world.worker.headers)
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    data = json.loads(zf.read("data.json"))
    by_id = {c["id"]: c for c in data["clips"]}
    assert by_id[clean]["file"] == f"clips/{clean}-deidentified.mp4"
    assert zf.read(by_id[clean]["file"]) == videos["derived"].read_bytes()
    for cid in (in_review, pending):
        assert by_id[cid]["file"] is None and "may show other people" in by_id[cid]["file_note"]
    names = [n for n in zf.namelist() if n.startswith("clips/")]
    assert names == [f"clips/{clean}-deidentified.mp4"]
    assert all(zf.read(n) != videos["raw"].read_bytes() for n in zf.namelist())
    assert "original footage is not included" in zf.read("README.txt").decode()

    # Another worker's clip with the very same derived bytes keeps its blob.
    other = make_user(db, "worker")
    shared = add_clip(
        db,
        app.state.blobs,
        campaign_id=world.open_campaign()["id"],
        worker_id=other.id,
        raw=videos["raw"],
        derived=videos["derived"],
    )
    with db.transaction() as s:
        sha = s.get(Derivative, s.get(Clip, clean).derived_id).sha256
    assert client.delete(f"{API}/me", headers=world.worker.headers).status_code == 204
    assert app.state.blobs.exists(sha)  # still the other worker's clip's video
    assert client.get(f"{API}/clips/{shared}/video", headers=other.headers).status_code == 200
    with db.transaction() as s:
        c = s.get(Clip, clean)
        assert (c.derived_id, c.deid_status, c.deid_reason) == (None, DeidStatus.failed, "account.deleted")
    body = assert_problem(
        client.get(f"{API}/clips/{clean}/video", headers=world.lab.headers), 409, "clip.not_deidentified"
    )
    assert "deleted their account" in body["detail"] and "account.deleted" not in body["detail"]
    # Alone, the blob goes; the raw footage stays with the clip (admin-only, as before).
    assert client.delete(f"{API}/me", headers=other.headers).status_code == 204
    assert not app.state.blobs.exists(sha)
    with db.transaction() as s:
        assert app.state.blobs.exists(s.get(Clip, clean).sha256)


def test_an_uploaded_clip_is_served_de_identified_after_the_pipeline(app, db, client, live, world, qc_media):
    """The whole path with the real stages: upload, probe, QC, deidentify, then the video."""
    from tusclient import client as tus

    from tests.pipeline.test_clip_flow import REQ, drain

    c = world.open_campaign(requirements=REQ)
    a = world.claim(c["id"])
    up = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers)
    up.uploader(str(qc_media["good"]), chunk_size=1024 * 1024, metadata={"assignment": str(a["id"])}).upload()
    with db.transaction() as s:
        cid = s.scalar(sa.select(Clip.id))
    assert_problem(client.get(f"{API}/clips/{cid}/video", headers=world.worker.headers), 409, "clip.not_deidentified")
    drain(app, db)
    with db.transaction() as s:
        clip = s.get(Clip, cid)
        status, derived = clip.deid_status, s.get(Derivative, clip.derived_id)
        assert derived is not None and derived.source_sha256 == clip.sha256
    if status is DeidStatus.review:  # the detectors were unsure: a reviewer looks first
        reviewer = make_user(db, "reviewer")
        assert client.get(f"{API}/clips/{cid}/video", headers=reviewer.headers).status_code == 200
        assert client.post(f"{API}/clips/{cid}/redactions/reviewed", headers=reviewer.headers).status_code == 200
    r = client.get(f"{API}/clips/{cid}/video", headers=world.lab.headers, params={})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(r.content).hexdigest() == derived.sha256 != clip.sha256
    assert f'src="/clips/{cid}/video"' in client.get(f"/clips/{cid}", headers=world.worker.headers).text


def test_view_original_on_the_admins_clip_page(client, db, world, clip_of, videos):
    from tests.platform.test_access import page_login

    cid = clip_of()
    assert "View original (audited)" not in client.get(f"/clips/{cid}", headers=world.lab.headers).text
    admin = make_user(db, "admin")
    token = page_login(client, admin)
    page = client.get(f"/clips/{cid}").text
    assert "View original (audited)" in page and f'action="/clips/{cid}/raw"' in page
    short = client.post(f"/clips/{cid}/raw", data={"csrf_token": token, "reason": "why not"})
    assert short.status_code == 422 and 'data-code="clip.raw_reason_required"' in short.text
    assert 'value="why not"' in short.text  # what was typed is kept
    # next to the field (a form sent without JS skips the browser's minlength check)
    import re

    field = re.search(r'<label for="raw-reason">.*?</form>', short.text, re.S).group(0)
    assert 'id="raw-reason-error"' in field and "at least 10 characters" in field.split('id="raw-reason-error"')[1]
    assert re.search(r'<input id="raw-reason"[^>]*aria-invalid="true"[^>]*aria-describedby="raw-reason-error"', field)
    r = client.post(
        f"/clips/{cid}/raw", data={"csrf_token": token, "reason": "Worker asked about a blur"}, follow_redirects=False
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"/api/v1/admin/clips/{cid}/raw?token=")
    raw = client.get(r.headers["location"])
    assert raw.status_code == 200 and raw.content == videos["raw"].read_bytes()
    assert _raw_events(db, cid, "clip.raw_accessed")[0]["reason"] == "Worker asked about a blur"
    assert (
        client.post(
            f"/clips/{cid}/raw", data={"csrf_token": "wrong", "reason": "Worker asked about a blur"}
        ).status_code
        == 403
    )


def test_the_clip_page_says_what_its_copy_hides_from_the_campaigns_privacy_settings(client, db, world, clip_of):
    """The sentence above the video follows the campaign: text and sound are named only when they are
    hidden (a campaign that keeps sound used to read "Faces of other people, readable text are hidden")."""
    import re

    from egocrowd.db.models import Campaign

    cid = clip_of()

    def sentence() -> str:
        page = client.get(f"/clips/{cid}", headers=world.worker.headers)
        assert page.status_code == 200
        return re.sub(r"\s+", " ", re.search(r'id="clip-hidden">(.*?)</p>', page.text, re.S).group(1))

    assert sentence() == (
        "In this copy faces of other people, readable text and the sound are hidden. "
        "Only this copy leaves the platform."
    )
    with db.transaction() as s:
        campaign = s.get(Campaign, s.get(Clip, cid).campaign_id)
        campaign.privacy = {"blur_text": False, "audio": "keep"}
    assert sentence() == (
        "In this copy faces of other people are hidden; the sound is kept. Only this copy leaves the platform."
    )
    with db.transaction() as s:
        s.get(Campaign, s.get(Clip, cid).campaign_id).privacy = {"audio": "mute_speech"}
    assert "faces of other people, readable text and speech are hidden." in sentence()

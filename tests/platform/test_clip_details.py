"""What the API tells about a clip's raw file (issue #9): the de-identified video keeps only the
recording date and drops device tags, so a lab reads no more than that through
/api/v1/clips; the clip's worker and admins read it all. Nobody reads the server's path of the file."""

from __future__ import annotations

import pytest

from egocrowd.db.models import Clip, DeidStatus
from tests.platform.helpers import API, make_user
from tests.support.deid import add_clip, make_video

META = {"device": "Pixel 8 serial 1A2B3C", "os": "Android 15", "recorded_at": "2026-11-02T18:45:10Z", "mount": "head"}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("details") / "raw.mp4")


def _clip(app, db, world, raw, **privacy) -> int:
    campaign = world.open_campaign(privacy=privacy) if privacy else world.open_campaign()
    cid = add_clip(db, app.state.blobs, campaign_id=campaign["id"], worker_id=world.worker.id, raw=raw, derived=None)
    with db.transaction() as s:
        clip = s.get_one(Clip, cid)
        clip.original_name, clip.client_meta, clip.deid_status = "Anna_kitchen.mov", META, DeidStatus.clean
        clip.probe = {"path": "/srv/egocrowd/blobs/ab/cd", "duration_s": 3.0, "recorded_at": "2026-11-02T18:45:10Z"}
    return cid


def test_the_lab_reads_the_date_not_the_device(app, client, db, world, raw):
    cid = _clip(app, db, world, raw)
    got = client.get(f"{API}/clips/{cid}", headers=world.lab.headers).json()
    assert got["probe"]["recorded_at"] == "2026-11-02" and "path" not in got["probe"]
    assert got["client_meta"] == {"mount": "head"}
    assert got["original_name"] == f"clip-{cid}.mov"
    listed = client.get(f"{API}/clips", headers=world.lab.headers).json()["items"]
    assert [(c["id"], c["client_meta"]) for c in listed] == [(cid, {"mount": "head"})]


def test_the_worker_and_admins_read_everything_but_the_server_path(app, client, db, world, raw):
    cid = _clip(app, db, world, raw)
    for who in (world.worker, make_user(db, "admin")):
        got = client.get(f"{API}/clips/{cid}", headers=who.headers).json()
        assert got["probe"] == {"duration_s": 3.0, "recorded_at": "2026-11-02T18:45:10Z"}
        assert got["client_meta"] == META and got["original_name"] == "Anna_kitchen.mov"


def test_a_campaign_that_keeps_the_time_of_day_shows_it_to_its_lab(app, client, db, world, raw):
    cid = _clip(app, db, world, raw, recording_time="full")
    got = client.get(f"{API}/clips/{cid}", headers=world.lab.headers).json()
    assert got["probe"]["recorded_at"] == "2026-11-02T18:45:10Z"
    assert "device" not in got["client_meta"]


def test_who_may_watch_a_clip_is_who_may_list_it_plus_reviewers(app, db, world, raw):
    """policy: clip.view_derived (one clip, Python) and visible_clips (SQL) are one rule."""
    import sqlalchemy as sa

    from egocrowd.accounts import policy
    from egocrowd.db.models import Role, User

    mine, other = _clip(app, db, world, raw), _clip(app, db, world, raw)
    with db.transaction() as s:
        s.get_one(Clip, other).worker_id = make_user(db, "worker").id
    people = [world.worker, world.lab, make_user(db, "requester", org="Lab B"), make_user(db, "admin")]
    people += [make_user(db, "reviewer"), make_user(db, "worker")]
    with db.transaction() as s:
        for p in people:
            user = s.get_one(User, p.id)
            listed = set(s.scalars(sa.select(Clip.id).where(policy.visible_clips(user), Clip.id.in_([mine, other]))))
            may_watch = {c for c in (mine, other) if policy.can(user, "clip.view_derived", s.get_one(Clip, c))}
            assert may_watch == ({mine, other} if user.role is Role.reviewer else listed), user.role


def test_the_pages_name_the_file_by_the_same_rule(app, client, db, world, raw):
    """The clip card (list and clip page) showed the phone's file name to the lab and reviewers."""
    cid = _clip(app, db, world, raw)
    with db.transaction() as s:
        s.get_one(Clip, cid).probe = None  # the page's facts need a whole probe; the name is the point
    reviewer = make_user(db, "reviewer")
    for who, url in ((world.lab, "/clips"), (world.lab, f"/clips/{cid}"), (reviewer, f"/clips/{cid}")):
        page = client.get(url, headers=who.headers)
        assert page.status_code == 200 and f"clip-{cid}.mov" in page.text, (who.role, url)
        assert "Anna_kitchen" not in page.text, (who.role, url)
    for who in (world.worker, make_user(db, "admin")):
        page = client.get(f"/clips/{cid}", headers=who.headers)
        assert page.status_code == 200 and "Anna_kitchen.mov" in page.text
    assert "Anna_kitchen.mov" in client.get("/clips", headers=world.worker.headers).text


def test_reviewers_read_a_clip_as_a_lab_does(app, client, db, world, raw):
    """A reviewer opens any clip's page and video (clip.view_derived): the API answered 404. They
    read it as the lab does: no device, no time of day, no phone file name, no server path, not
    even inside the QC report's copy of the probe."""
    cid = _clip(app, db, world, raw)
    with db.transaction() as s:
        clip = s.get_one(Clip, cid)
        clip.qc_report = {"status": "qc_passed", "checks": [], "probe": dict(clip.probe)}
    reviewer = make_user(db, "reviewer")
    r = client.get(f"{API}/clips/{cid}", headers=reviewer.headers)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["original_name"] == f"clip-{cid}.mov" and got["client_meta"] == {"mount": "head"}
    assert got["probe"] == {"duration_s": 3.0, "recorded_at": "2026-11-02"}
    assert got["qc_report"]["probe"] == got["probe"]
    assert "Anna_kitchen" not in r.text and "/srv/egocrowd" not in r.text and "18:45" not in r.text
    lab = client.get(f"{API}/clips/{cid}", headers=world.lab.headers).json()
    assert lab["qc_report"]["probe"] == lab["probe"]
    admin = client.get(f"{API}/clips/{cid}", headers=make_user(db, "admin").headers).json()
    assert admin["qc_report"]["probe"] == {"duration_s": 3.0, "recorded_at": "2026-11-02T18:45:10Z"}
    for outsider in (make_user(db, "worker"), make_user(db, "requester", org="Lab B")):
        assert client.get(f"{API}/clips/{cid}", headers=outsider.headers).status_code == 404

"""A clip's page (/clips/{id}): its owner and the campaign's lab see it, nobody else does; the capture
page's checklist follows the campaign's mount and orientation."""

from __future__ import annotations

import sqlalchemy as sa
from tusclient import client as tus

from egocrowd.db.models import Clip
from tests.pipeline.test_clip_flow import REQ, drain
from tests.platform.helpers import make_user


def test_a_clip_page_shows_its_report_to_its_owner_and_lab_only(app, db, client, live, world, qc_media):
    c = world.open_campaign(requirements={**REQ, "camera_placement": "handheld"})
    a = world.claim(c["id"])
    up = tus.TusClient(live.base + "/api/v1/uploads/", headers=world.worker.headers)
    meta = {"assignment": str(a["id"]), "mount": "handheld"}
    up.uploader(str(qc_media["good"]), chunk_size=512 * 1024, metadata=meta).upload()
    with db.transaction() as s:
        clip_id = s.scalar(sa.select(Clip.id))
    path = f"/clips/{clip_id}"
    assert 'data-status="processing"' in client.get(path, headers=world.worker.headers).text
    drain(app, db)
    page = client.get(path, headers=world.worker.headers)
    assert page.status_code == 200 and 'data-status="qc_' in page.text
    assert "Every check" in page.text and "Camera mount: OK" in page.text
    assert "Phone held in one hand" in page.text  # the declared mount, in words
    assert f'href="{path}"' not in page.text  # the card on its own page does not link to itself
    assert f'href="{path}"' in client.get("/clips", headers=world.worker.headers).text
    assert client.get(path, headers=world.lab.headers).status_code == 200
    assert client.get(path, headers=make_user(db, "worker").headers).status_code == 404
    anonymous = client.get(path, follow_redirects=False)
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, f"/login?next={path}")
    assert client.get("/clips/99999999999999999999", headers=world.worker.headers).status_code == 422


def _capture_page(client, world, **requirements) -> str:
    worker = world.signed_worker()  # one slot each: a worker holds at most three at a time
    c = world.open_campaign(requirements={**REQ, **requirements})
    return client.get(f"/assignments/{world.claim(c['id'], worker)['id']}/capture", headers=worker.headers).text


def test_the_checklist_follows_the_campaign(client, world):
    for mount, orientation, line in (
        ("chest_mounted", "landscape", "chest harness at sternum height"),
        ("head_mounted", "portrait", "forehead strap"),
        ("handheld", "any", "held in one hand"),
    ):
        page = _capture_page(client, world, camera_placement=mount, orientation=orientation)
        checklist = page.split('class="checklist"')[1].split("</ul>")[0]
        assert line in checklist and ("forehead" in checklist) == (mount == "head_mounted")
        assert ("sideways" in checklist) == (orientation == "landscape")
        assert ("upright" in checklist) == (orientation == "portrait")
        assert f'value="{mount}"' in page  # the box the worker ticks, sent as the upload's "mount"
    assert 'data-role="mount"' not in _capture_page(client, world, camera_placement="any")


def test_clip_lengths_are_shown_as_the_lab_set_them(client, world):
    """2.5 s read "2 s" on the campaign and in the checklist (|int), and "2.0–30.0 s" above the recorder."""
    page = _capture_page(client, world, min_duration_s=2.5, max_duration_s=30)
    assert "Between 2.5 and 30 seconds." in page and "Clips last 2.5 to 30 seconds." in page
    cid = world.open_campaign(requirements={**REQ, "min_duration_s": 2.5})["id"]
    campaign = client.get(f"/campaigns/{cid}", headers=world.worker.headers)
    assert f"2.5–{REQ['max_duration_s']:g} s" in campaign.text

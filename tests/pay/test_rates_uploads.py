"""Idle time through the upload door (tus Upload-Metadata ``idle_seconds``), both backends: a bad
figure is refused when the upload begins (not after its last byte); a good one lands on the
assignment, kept within claim → submit."""

from __future__ import annotations

import base64
from datetime import timedelta

from egocrowd.db.models import Assignment
from egocrowd.pay import rates
from tests.platform.helpers import claim, make_user, open_campaign, publish_consent, sign

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def test_idle_seconds_travel_with_the_upload_and_are_kept_within_the_slot(db, client):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab Idle")
    worker = make_user(db, "worker")
    campaigns = [open_campaign(client, lab)["id"] for _ in range(2)]
    sign(client, worker)
    aid, other = (claim(client, worker, cid).json()["id"] for cid in campaigns)
    body = b"not a video, but bytes"
    with db.transaction() as s:  # the first slot was taken ten minutes ago
        a = s.get_one(Assignment, aid)
        a.claimed_at -= timedelta(minutes=10)

    bad = client.post(
        "/api/v1/uploads",
        headers={
            **TUS,
            **worker.headers,
            "Upload-Length": "22",
            "Upload-Metadata": _meta(assignment=str(aid), idle_seconds="-5"),
        },
    )
    assert bad.status_code == 422 and bad.json()["code"] == "pay.bad_idle"

    for slot, idle in ((aid, "30"), (other, "604800")):
        r = client.post(
            "/api/v1/uploads",
            headers={
                **TUS,
                **worker.headers,
                "Upload-Length": str(len(body)),
                "Upload-Metadata": _meta(assignment=str(slot), idle_seconds=idle),
            },
        )
        assert r.status_code == 201, r.text
        done = client.patch(
            r.headers["Location"], content=body, headers={**TUS, **OCTETS, **worker.headers, "Upload-Offset": "0"}
        )
        assert done.status_code == 204, done.text
    with db.transaction() as s:
        a, b = s.get_one(Assignment, aid), s.get_one(Assignment, other)
        span = int((a.submitted_at - a.claimed_at).total_seconds())
        assert span >= 600 and a.idle_seconds == 30
        assert rates.working_seconds(a.claimed_at, a.submitted_at, a.idle_seconds) == span - a.idle_seconds
        # a week of idle on a slot held for seconds: kept to the slot's span, working time zero
        assert b.idle_seconds == int((b.submitted_at - b.claimed_at).total_seconds())

"""The platform's upload rules (egocrowd.clips.uploads) as the tus server applies them."""

from __future__ import annotations

import base64
from datetime import timedelta

from egocrowd.db.models import Assignment, utcnow
from tests.platform.helpers import (
    claim,
    make_user,
    open_campaign,
    publish_consent,
    sign,
)

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


def test_bytes_sent_with_a_method_override_are_refused_once_the_lease_is_over(db, client):
    """POST + ``X-HTTP-Method-Override: PATCH`` is a PATCH: the lease check applies to it too (it
    looked at the HTTP method, so a client behind a PATCH-dropping proxy could upload after its
    lease ended and be refused only at the last byte)."""
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab R")
    worker = make_user(db, "worker")
    c = open_campaign(client, lab)
    sign(client, worker)
    aid = claim(client, worker, c["id"]).json()["id"]
    meta = "assignment " + base64.b64encode(str(aid).encode()).decode()
    r = client.post(
        "/api/v1/uploads", headers={**TUS, **worker.headers, "Upload-Length": "20", "Upload-Metadata": meta}
    )
    assert r.status_code == 201, r.text
    url = r.headers["Location"]
    with db.transaction() as s:
        s.get(Assignment, aid).lease_expires_at = utcnow() - timedelta(seconds=1)
    r = client.post(
        url,
        content=b"0123456789",
        headers={**TUS, **OCTETS, **worker.headers, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert r.status_code == 410 and r.json()["code"] == "assignment.lease_expired"
    assert client.head(url, headers={**TUS, **worker.headers}).headers["Upload-Offset"] == "0"


def test_a_worker_cannot_hold_more_unfinished_uploads_than_the_caps(db, client, app):
    """Each open upload may grow to the campaign's limit and lives until it expires: a client opening
    hundreds (300 in 6 s, seen in the field) could fill the disk. Caps per slot and per worker."""
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab C")
    worker = make_user(db, "worker")
    campaigns = [open_campaign(client, lab)["id"] for _ in range(2)]
    sign(client, worker)
    slots = [claim(client, worker, cid).json()["id"] for cid in campaigns]
    per_slot = app.state.settings.max_open_uploads_per_assignment

    def create(aid: int):
        meta = "assignment " + base64.b64encode(str(aid).encode()).decode()
        return client.post(
            "/api/v1/uploads", headers={**TUS, **worker.headers, "Upload-Length": "20", "Upload-Metadata": meta}
        )

    made = [create(slots[0]) for _ in range(per_slot)]
    assert [r.status_code for r in made] == [201] * per_slot
    refused = create(slots[0])
    assert refused.status_code == 409 and refused.json()["code"] == "upload.too_many_open"
    assert refused.json()["open_for_assignment"] == per_slot
    assert create(slots[1]).status_code == 201  # another slot still has room
    # cancelling one (tus termination) frees its place
    assert client.delete(made[0].headers["Location"], headers={**TUS, **worker.headers}).status_code == 204
    assert create(slots[0]).status_code == 201


HOUSEKEEPING = """
import sys
from egocrowd.blobs import BlobStore
from egocrowd.db import Database
from egocrowd.uploads import UploadStore
from egocrowd.worker import housekeeping

out = housekeeping(Database(sys.argv[1]), BlobStore(sys.argv[2]), UploadStore(sys.argv[3]))
assert "uploads_recovered" in out, out
web = sorted(m for m in sys.modules if m.split(".")[0] in ("fastapi", "starlette") or m.startswith("egocrowd.web"))
assert not web, web
"""


def test_housekeeping_recovers_uploads_without_the_web_layer(db_url, tmp_path):
    """A worker process finishes interrupted uploads with the rules alone: no web module is loaded."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", HOUSEKEEPING, db_url, str(tmp_path / "blobs"), str(tmp_path / "uploads")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr

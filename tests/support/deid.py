"""Clips with de-identified media for the web tests of issue #9, written straight into the database
and the blob store (the ``deidentify`` stage is another part's; these rows look like its results)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sqlalchemy as sa

from egocrowd.clock import utcnow
from egocrowd.db.models import Clip, ClipStatus, DeidStatus, Derivative, RedactionEdit
from egocrowd.media.deid.regions import RedactionPlan
from egocrowd.media.deid.render import apply_edits
from egocrowd.media.testmedia import write_video
from egocrowd.pipeline.stages import render_edit

FPS = 10


def make_video(path: Path, seconds: float = 3.0, size: tuple[int, int] = (320, 240), shade: int = 0) -> Path:
    """A real small H.264 mp4 (moov first, so a browser seeks it) with a moving square."""
    w, h = size
    frames = []
    for i in range(int(seconds * FPS)):
        f = np.full((h, w, 3), (40 + shade) % 256, np.uint8)
        x = (i * 7) % (w - 40)
        f[h // 3 : h // 3 + 40, x : x + 40] = (230, 200, 60)
        frames.append(f)
    return write_video(path, frames, FPS, faststart=True)


def plan_for(frames: int, size: tuple[int, int] = (320, 240)) -> dict:
    """A RedactionPlan.to_dict(): one face track over the first half, one text track after it."""
    w, h = size
    half = frames // 2
    return {
        "format": 1,
        "width": w,
        "height": h,
        "frames": frames,
        "tracks": [
            {
                "id": 1,
                "category": "face",
                "source": "centerface",
                "boxes": [[i, 20, 20, 80, 90, 0.9] for i in range(half)],
            },
            {
                "id": 2,
                "category": "text",
                "source": "ppocr-det",
                "boxes": [[i, 150, 150, 300, 200, 0.7] for i in range(half, frames)],
            },
        ],
    }


def add_clip(
    db,
    blobs,
    *,
    campaign_id: int,
    worker_id: int,
    raw: Path,
    derived: Path | None,
    deid: DeidStatus | None = DeidStatus.clean,
    status: ClipStatus = ClipStatus.qc_passed,
    frames: int = 30,
    reason: str | None = None,
    seconds: float = 3.0,
) -> int:
    """A clip of ``raw`` (and, when given, its derivative ``derived``); returns the clip id."""
    raw_ref = blobs.put_file(raw)
    with db.transaction() as s:
        clip = Clip(
            campaign_id=campaign_id,
            worker_id=worker_id,
            source_ref=f"test:{raw_ref.sha256[:12]}:{utcnow().timestamp()}",
            sha256=raw_ref.sha256,
            size=raw_ref.size,
            original_name="kitchen.mp4",
            client_meta={},
            status=status,
            deid_status=deid,
            deid_reason=reason,
        )
        s.add(clip)
        s.flush()
        cid = clip.id
    if derived is not None:
        attach_derivative(db, blobs, cid, derived, deid, frames=frames, seconds=seconds)
    return cid


def attach_derivative(
    db, blobs, clip_id: int, derived: Path, deid: DeidStatus | None, *, frames: int | None = None, seconds: float = 2.0
) -> int:
    """A render of clip ``clip_id`` (the file ``derived``, a plan over ``frames`` frames) that the
    clip now points at, with ``deid`` as its status; returns the derivative's id."""
    frames = frames or int(seconds * FPS)
    ref = blobs.put_file(derived)
    with db.transaction() as s:
        clip = s.get(Clip, clip_id)
        # The reviewer's active corrections, applied as the stage applies them (media.deid.render)
        edits = [
            render_edit(e)
            for e in s.scalars(
                sa.select(RedactionEdit)
                .where(RedactionEdit.clip_id == clip_id, RedactionEdit.withdrawn_at.is_(None))
                .order_by(RedactionEdit.id)
            )
        ]
        auto = RedactionPlan.from_dict(plan_for(frames))
        regions = apply_edits(auto, edits).to_dict()
        if regions != auto.to_dict():
            regions["auto_plan"] = auto.to_dict()
        d = Derivative(
            clip_id=clip.id,
            kind="deid",
            sha256=ref.sha256,
            size=ref.size,
            source_sha256=clip.sha256,
            mime_type="video/mp4",
            stage_version="test",
            params={"faces": {"detector": "centerface"}, "edits": [e["id"] for e in edits]},
            regions=regions,
            summary={"frames": frames, "seconds": seconds, "frame_times": [round(i / FPS, 3) for i in range(frames)]},
        )
        s.add(d)
        s.flush()
        clip.derived_id, clip.deid_status = d.id, deid
        if deid is DeidStatus.review:
            clip.deid_reason = clip.deid_reason or "deid.low_confidence"
        return d.id

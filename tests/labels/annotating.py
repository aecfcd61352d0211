"""Building blocks for the annotation tests: a campaign that asks for labels, accepted clips with a
probe, qualified annotators (through the real service functions)."""

from __future__ import annotations

from pathlib import Path

from egocrowd.db.models import Clip, ClipStatus
from egocrowd.labels import tasks
from egocrowd.media.probe import probe
from tests.platform.helpers import Actor, make_user
from tests.support.deid import add_clip, make_video

SECONDS = 3.0


def annotation_campaign(world, **annotation) -> int:
    settings = {"enabled": True, "per_clip": 3, "gold_rate": 0.0, "min_agreement": 0.6, **annotation}
    return world.open_campaign(annotation=settings)["id"]


def accepted_clip(db, blobs, tmp_path: Path, campaign_id: int, worker_id: int, *, derived: bool = False) -> int:
    """An accepted clip of 3 s (probe written as the probe stage writes it), open for annotation."""
    video = tmp_path / "clip.mp4"
    if not video.exists():
        make_video(video, seconds=SECONDS)
    cid = add_clip(
        db,
        blobs,
        campaign_id=campaign_id,
        worker_id=worker_id,
        raw=video,
        derived=video if derived else None,
        status=ClipStatus.accepted,
        seconds=SECONDS,
    )
    with db.transaction() as s:
        clip = s.get_one(Clip, cid)
        clip.probe = probe(video).to_dict()  # the clip page shows its picture size as the stage stores it
        tasks.open_annotation(s, clip)
    return cid


def annotator(db, staff: Actor, campaign_id: int | None = None) -> Actor:
    """A worker qualified to annotate (everything, or one campaign)."""
    from egocrowd.db.models import User

    a = make_user(db, "worker")
    with db.transaction() as s:
        tasks.grant(s, s.get_one(User, staff.id), a.id, campaign_id=campaign_id)
    return a


def span(start_ms: int, end_ms: int, verb: str = "open", noun: str = "jar") -> dict:
    return {"start_ms": start_ms, "end_ms": end_ms, "verb": verb, "noun": noun}

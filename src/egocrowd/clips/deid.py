"""The database side of de-identification that people start: asking for a (re-)render of a clip.

The pipeline stage ``deidentify`` (egocrowd.pipeline.stages) renders and stores the derived video;
QC hands every passed clip to it. Here: a clip QC failed, or a clip whose redaction a reviewer
corrected, is de-identified (again) on request, with an audit event.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.db.models import Clip, ClipStatus, DeidStatus, Job, User
from egocrowd.errors import Conflict
from egocrowd.pipeline.runner import enqueue
from egocrowd.pipeline.stages import ACCOUNT_DELETED, REVIEW_REQUESTED, latest_derivative

#: clips whose raw bytes decode (probe and QC ran to a verdict)
_RENDERABLE = (ClipStatus.qc_passed, ClipStatus.qc_failed)


def request_deidentify(session: Session, actor: User | None, clip: Clip, reason: str, *, review: bool = False) -> Job:
    """Queue the ``deidentify`` stage for ``clip`` (again), in the caller's transaction.

    ``reason`` (free text) goes into the audit event. With ``review`` — or when the clip is already
    in review — the new render goes to the redaction review whatever the detectors' confidence.
    Raises ``Conflict`` ``clip.not_deidentifiable`` for a clip that never decoded (rejected,
    still processing, or in error)."""
    if clip.status not in _RENDERABLE:
        raise Conflict(
            f"Clip {clip.id} is {clip.status.value}: only a clip that passed or failed QC can be de-identified.",
            code="clip.not_deidentifiable",
        )
    if clip.deid_reason == ACCOUNT_DELETED:
        raise Conflict(
            f"Clip {clip.id}'s worker deleted their account: no de-identified copy of it is made any more.",
            code="clip.not_deidentifiable",
        )
    before = clip.deid_status
    in_review = review or before is DeidStatus.review
    # deid_reason on a pending clip is why its next render goes to review (the stage keeps it)
    clip.deid_reason = (
        (clip.deid_reason if before is DeidStatus.review and clip.deid_reason else REVIEW_REQUESTED)
        if in_review
        else None
    )
    clip.deid_status = DeidStatus.pending
    job = enqueue(session, clip, "deidentify")
    audit.record(
        session,
        actor,
        "clip.deid_requested",
        clip,
        {"reason": reason, "review": in_review, "before": before.value if before else None},
    )
    return job


__all__ = ["latest_derivative", "request_deidentify"]

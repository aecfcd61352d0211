"""The platform's rules for tus uploads: only the assignee, only while the lease runs, only up to
the campaign's ``max_upload_mb``; a finished upload becomes a clip.

The caller is already resolved (the web door authenticates it); nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from egocrowd import consent
from egocrowd.campaigns import assignments
from egocrowd.clips import finish_upload
from egocrowd.db import Database
from egocrowd.db.models import MAX_ID, User
from egocrowd.errors import Conflict, Forbidden, InvalidInput
from egocrowd.pay import rates
from egocrowd.uploads.protocol import Grant
from egocrowd.uploads.store import UploadInfo

__all__ = ["check_owner", "check_upload_access", "clip_from_upload", "grant_upload"]

MB = 1024 * 1024


@dataclass(frozen=True)
class OpenUploadLimits:
    """How many unfinished uploads one worker may hold open: each may grow to the campaign's limit
    and lives until it expires, so without a cap one client could fill the disk (300 were opened on
    one assignment in 6 s)."""

    per_assignment: int = 3
    per_worker: int = 10


def grant_upload(
    session: Session,
    worker: User,
    metadata: dict[str, str],
    *,
    open_uploads: Sequence[UploadInfo] = (),
    limits: OpenUploadLimits = OpenUploadLimits(),
) -> Grant:
    """May ``worker`` start an upload for the assignment its metadata names, and how big?
    ``open_uploads`` are the worker's unfinished ones (see ``UploadStore.open_uploads``)."""
    try:
        assignment_id = int(metadata.get("assignment", ""))
        if not 0 <= assignment_id <= MAX_ID:  # nobody's id; the database driver would fail on it
            raise ValueError(assignment_id)
    except ValueError:
        raise InvalidInput(
            "Upload-Metadata must name the assignment (key 'assignment').", code="upload.bad_metadata"
        ) from None
    rates.parse_idle(metadata.get("idle_seconds"))  # pay.bad_idle now, not after the last byte
    a = assignments.require_active_lease(session, worker, assignment_id)
    consent.require_cover(session, worker, a.campaign)  # a new revision or a withdrawal stops uploads
    same = sum(1 for u in open_uploads if u.context.get("assignment_id") == a.id)
    if same >= limits.per_assignment or len(open_uploads) >= limits.per_worker:
        raise Conflict(
            f"You already have {same} unfinished upload(s) for this slot and {len(open_uploads)} in all: "
            "finish or cancel one first (they resume where they stopped).",
            code="upload.too_many_open",
            open_for_assignment=same,
            open_in_all=len(open_uploads),
        )
    limit = int(a.campaign.requirements.get("max_upload_mb", 500)) * MB
    return Grant(
        owner=str(worker.id),
        max_length=limit,
        context={"assignment_id": a.id, "campaign_id": a.campaign_id, "worker_id": worker.id},
    )


def check_upload_access(session: Session, worker: User, info: UploadInfo, *, writing: bool) -> None:
    """Only the uploader may see, continue or delete an upload; bytes only while the lease runs."""
    check_owner(worker, info)
    if writing and info.offset < info.length:
        # Refuse more bytes once the lease is over, rather than take a phone's whole (metered)
        # upload and refuse it at the last byte.
        assignments.require_active_lease(session, worker, int(info.context["assignment_id"]))


def check_owner(worker: User, info: UploadInfo) -> None:
    if str(worker.id) != info.owner:
        raise Forbidden("This upload belongs to someone else.", code="upload.forbidden")


def clip_from_upload(db: Database, blobs, info: UploadInfo, data_path: Path) -> dict[str, str]:
    """Finish a received upload into a clip (idempotent by upload id); headers for the client."""
    c = info.context
    clip = finish_upload(
        db,
        blobs,
        source_ref=f"tus:{info.id}",
        path=data_path,
        worker_id=int(c["worker_id"]),
        assignment_id=int(c["assignment_id"]),
        campaign_id=int(c["campaign_id"]),
        original_name=info.metadata.get("filename"),
        client_meta=info.metadata,
        sha256=info.sha256,
        move=True,
    )
    return {"Egocrowd-Clip-Id": str(clip.id)}

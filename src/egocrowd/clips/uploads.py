"""The platform's rules for tus uploads: only the assignee, only while the lease runs, only up to
the campaign's ``max_upload_mb``; a finished upload becomes a clip.

The caller is already resolved (the web door authenticates it); nothing here knows HTTP.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from egocrowd.campaigns import assignments
from egocrowd.clips import finish_upload
from egocrowd.db import Database
from egocrowd.db.models import User
from egocrowd.errors import Forbidden, InvalidInput
from egocrowd.uploads.protocol import Grant
from egocrowd.uploads.store import UploadInfo

__all__ = ["check_upload_access", "clip_from_upload", "grant_upload"]

MB = 1024 * 1024
_MAX_ID = 2**63 - 1  # a BIGINT: a larger id is nobody's, and the database driver would fail on it


def grant_upload(session: Session, worker: User, metadata: dict[str, str]) -> Grant:
    """May ``worker`` start an upload for the assignment its metadata names, and how big?"""
    try:
        assignment_id = int(metadata.get("assignment", ""))
        if not 0 <= assignment_id <= _MAX_ID:
            raise ValueError(assignment_id)
    except ValueError:
        raise InvalidInput("Upload-Metadata must name the assignment (key 'assignment').",
                           code="upload.bad_metadata") from None
    a = assignments.require_active_lease(session, worker, assignment_id)
    limit = int(a.campaign.requirements.get("max_upload_mb", 500)) * MB
    return Grant(owner=str(worker.id), max_length=limit,
                 context={"assignment_id": a.id, "campaign_id": a.campaign_id, "worker_id": worker.id})


def check_upload_access(session: Session, worker: User, info: UploadInfo, *, writing: bool) -> None:
    """Only the uploader may see, continue or delete an upload; bytes only while the lease runs."""
    if str(worker.id) != info.owner:
        raise Forbidden("This upload belongs to someone else.", code="upload.forbidden")
    if writing and info.offset < info.length:
        # Refuse more bytes once the lease is over, rather than take a phone's whole (metered)
        # upload and refuse it at the last byte.
        assignments.require_active_lease(session, worker, int(info.context["assignment_id"]))


def clip_from_upload(db: Database, blobs, info: UploadInfo, data_path: Path) -> dict[str, str]:
    """Finish a received upload into a clip (idempotent by upload id); headers for the client."""
    c = info.context
    clip = finish_upload(db, blobs, source_ref=f"tus:{info.id}", path=data_path,
                         worker_id=int(c["worker_id"]), assignment_id=int(c["assignment_id"]),
                         campaign_id=int(c["campaign_id"]), original_name=info.metadata.get("filename"),
                         client_meta=info.metadata, sha256=info.sha256, move=True)
    return {"Egocrowd-Clip-Id": str(clip.id)}

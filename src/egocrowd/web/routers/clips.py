"""Uploads (tus) and clips: the door between received bytes and the
platform's rules (who may upload to which assignment, how big, what becomes of the bytes)."""

from __future__ import annotations

import os

from fastapi import APIRouter, FastAPI, Request

from egocrowd import clips
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.errors import Forbidden, InvalidInput
from egocrowd.uploads.store import UploadInfo
from egocrowd.uploads.tus import Grant, TusHooks, make_tus_router
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import MAX_ID, Id, QueryId
from egocrowd.web.schemas import ClipOut, Page, QCStatsOut, page_of

MB = 1024 * 1024


class PlatformHooks(TusHooks):
    """Only the assignee may upload to an assignment, while its lease runs, up to the campaign's limit."""

    def __init__(self, db, blobs) -> None:
        self.db, self.blobs = db, blobs

    def authorize_create(self, request: Request, length: int, metadata: dict[str, str]) -> Grant:
        with unit(request) as ctx:
            worker = ctx.require_user()
            try:
                assignment_id = int(metadata.get("assignment", ""))
                if not 0 <= assignment_id <= MAX_ID:  # nobody's id; the driver would fail (a 500)
                    raise ValueError(assignment_id)
            except ValueError:
                raise InvalidInput("Upload-Metadata must name the assignment (key 'assignment').",
                                   code="upload.bad_metadata") from None
            a = assignments.require_active_lease(ctx.session, worker, assignment_id)
            limit = int(a.campaign.requirements.get("max_upload_mb", 500)) * MB
            return Grant(owner=str(worker.id), max_length=limit,
                         context={"assignment_id": a.id, "campaign_id": a.campaign_id, "worker_id": worker.id})

    def authorize_access(self, request: Request, info: UploadInfo) -> None:
        with unit(request) as ctx:
            worker = ctx.require_user()
            if str(worker.id) != info.owner:
                raise Forbidden("This upload belongs to someone else.", code="upload.forbidden")
            if request.method == "PATCH" and info.offset < info.length:
                # Refuse more bytes once the lease is over, rather than take a phone's whole
                # (metered) upload and refuse it at the last byte.
                assignments.require_active_lease(ctx.session, worker, int(info.context["assignment_id"]))

    def on_complete(self, info: UploadInfo, data_path: os.PathLike[str]) -> dict[str, str]:
        c = info.context
        clip = clips.finish_upload(self.db, self.blobs, source_ref=f"tus:{info.id}", path=data_path,
                                   worker_id=int(c["worker_id"]), assignment_id=int(c["assignment_id"]),
                                   campaign_id=int(c["campaign_id"]), original_name=info.metadata.get("filename"),
                                   client_meta=info.metadata, sha256=info.sha256, move=True)
        return {"Egocrowd-Clip-Id": str(clip.id)}


router = APIRouter(prefix="/api/v1", tags=["clips"])


@router.get("/clips", response_model=Page[ClipOut])
def list_clips(request: Request, campaign_id: QueryId = None, limit: int = 100, offset: int = 0):
    # Bounded id and offset (see api.MAX_ID): an unbounded one was a 500 from the database driver.
    with unit(request) as ctx:
        rows = clips.list_clips(ctx.session, ctx.require_user(), campaign_id=campaign_id, limit=min(max(limit, 1), 500),
                                offset=min(max(offset, 0), 10_000_000))
        return page_of(ClipOut, rows)


@router.get("/clips/{clip_id}", response_model=ClipOut)
def get_clip(request: Request, clip_id: Id):
    with unit(request) as ctx:
        return ClipOut.model_validate(clips.get_clip(ctx.session, ctx.require_user(), clip_id))


@router.get("/campaigns/{campaign_id}/qc", response_model=QCStatsOut)
def campaign_qc(request: Request, campaign_id: Id):
    """The campaign's QC statistics: pass rate and the most common failures (its requester only)."""
    with unit(request) as ctx:
        c = campaigns.get_managed_campaign(ctx.session, ctx.require_user(), campaign_id)
        return QCStatsOut(campaign_id=c.id, **clips.qc_statistics(ctx.session, c.id))


def install(app: FastAPI, upload_store, hooks: PlatformHooks) -> None:
    """The tus endpoint, bound to this app's upload store and the platform's hooks."""
    app.include_router(make_tus_router(upload_store, hooks, max_size=8192 * MB), prefix="/api/v1/uploads",
                       tags=["uploads"])


__all__ = ["PlatformHooks", "install", "router"]

"""Uploads (tus) and clips: the door between received bytes and the
platform's rules (who may upload to which assignment, how big, what becomes of the bytes)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request

from egocrowd import clips
from egocrowd.campaigns import service as campaigns
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id, QueryId
from egocrowd.web.routers.uploads import PlatformHooks
from egocrowd.web.schemas import ClipOut, Page, QCStatsOut, page_of
from egocrowd.web.tus import UPLOADS_PATH, make_tus_router

MB = 1024 * 1024


router = APIRouter(prefix="/api/v1", tags=["clips"])


@router.get("/clips", response_model=Page[ClipOut])
def list_clips(request: Request, campaign_id: QueryId = None, limit: int = 100, offset: int = 0):
    # Bounded id and offset (see api.MAX_ID): an unbounded one was a 500 from the database driver.
    with unit(request) as ctx:
        rows = clips.list_clips(
            ctx.session,
            ctx.require_user(),
            campaign_id=campaign_id,
            limit=min(max(limit, 1), 500),
            offset=min(max(offset, 0), 10_000_000),
        )
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
    app.include_router(make_tus_router(upload_store, hooks, max_size=8192 * MB), prefix=UPLOADS_PATH, tags=["uploads"])


__all__ = ["install", "router"]

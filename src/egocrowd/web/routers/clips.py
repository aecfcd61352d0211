"""Uploads (tus), clips and the phone capture page: the door between received bytes and the
platform's rules (who may upload to which assignment, how big, what becomes of the bytes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from egocrowd import clips
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.campaigns import service as campaigns
from egocrowd.db.models import ClipStatus, Role
from egocrowd.web.auth import unit
from egocrowd.web.views import Page
from egocrowd.web.routers.api import Id, QueryId
from egocrowd.web.routers.uploads import PlatformHooks
from egocrowd.web.tus import make_tus_router

MB = 1024 * 1024


def clip_out(c) -> dict:
    return {"id": c.id, "campaign_id": c.campaign_id, "assignment_id": c.assignment_id, "worker_id": c.worker_id,
            "sha256": c.sha256, "size": c.size, "original_name": c.original_name, "client_meta": c.client_meta,
            "duplicate_of": c.duplicate_of, "status": c.status.value, "reason_code": c.reason_code,
            "probe": c.probe, "feedback": clips.feedback(c), "qc_report": c.qc_report,
            "created_at": c.created_at.isoformat(), "updated_at": c.updated_at.isoformat()}


class FeedbackOut(BaseModel):
    status: str
    name: str | None
    message: str
    advice: str


class ClipOut(BaseModel):
    id: int
    campaign_id: int
    assignment_id: int | None
    worker_id: int
    sha256: str
    size: int
    original_name: str
    client_meta: dict[str, str]
    duplicate_of: int | None
    status: str
    reason_code: str | None
    probe: dict[str, Any] | None
    feedback: list[FeedbackOut]
    qc_report: dict[str, Any] | None
    created_at: str
    updated_at: str


class QCStatsOut(BaseModel):
    campaign_id: int
    clips: int
    by_status: dict[str, int]
    pass_rate: float | None
    top_failures: list[dict[str, Any]]


api = APIRouter(prefix="/api/v1", tags=["clips"])


@api.get("/clips", response_model=Page[ClipOut])
def list_clips(request: Request, campaign_id: QueryId = None, limit: int = 100, offset: int = 0):
    # Bounded id and offset (see api.MAX_ID): an unbounded one was a 500 from the database driver.
    with unit(request) as ctx:
        rows = clips.list_clips(ctx.session, ctx.require_user(), campaign_id=campaign_id, limit=min(max(limit, 1), 500),
                                offset=min(max(offset, 0), 10_000_000))
        return {"items": [clip_out(c) for c in rows]}


@api.get("/clips/{clip_id}", response_model=ClipOut)
def get_clip(request: Request, clip_id: Id):
    with unit(request) as ctx:
        return clip_out(clips.get_clip(ctx.session, ctx.require_user(), clip_id))


@api.get("/campaigns/{campaign_id}/qc", response_model=QCStatsOut)
def campaign_qc(request: Request, campaign_id: Id):
    """The campaign's QC statistics: pass rate and the most common failures (its requester only)."""
    with unit(request) as ctx:
        c = campaigns.get_campaign(ctx.session, ctx.require_user(), campaign_id)
        policy.require(ctx.user, "campaign.manage", c)
        return {"campaign_id": c.id, **clips.qc_statistics(ctx.session, c.id)}


def install(app: FastAPI, upload_store, hooks: PlatformHooks) -> None:
    from egocrowd.web.routers.pages import render

    app.include_router(make_tus_router(upload_store, hooks, max_size=8192 * MB), prefix="/api/v1/uploads",
                       tags=["uploads"])
    app.include_router(api)

    @app.get("/assignments/{assignment_id}/capture", response_class=HTMLResponse, include_in_schema=False)
    def capture_page(request: Request, assignment_id: Id):
        with unit(request) as ctx:
            worker = ctx.require_user()
            a = assignments.require_active_lease(ctx.session, worker, assignment_id)
            req = a.campaign.requirements
            capture = {"assignment": a.id, "min_duration": req.get("min_duration_s", 0),
                       "max_duration": req.get("max_duration_s", 600), "min_width": req.get("min_width", 0),
                       "min_height": req.get("min_height", 0), "max_bytes": int(req.get("max_upload_mb", 500)) * MB,
                       "redirect": "/clips?m=uploaded", "instructions": a.campaign.instructions}
            return render(request, "capture.html", worker, a=a, capture=capture)

    @app.get("/clips", response_class=HTMLResponse, include_in_schema=False)
    def clips_page(request: Request):
        with unit(request) as ctx:
            user = ctx.require_user()
            rows = clips.list_clips(ctx.session, user)
            return render(request, "clips.html", user, clips=rows, feedback=clips.feedback,
                          flash="Upload complete: your clip is being checked." if request.query_params.get("m") == "uploaded" else None)


__all__ = ["install", "clip_out", "ClipStatus", "Role"]

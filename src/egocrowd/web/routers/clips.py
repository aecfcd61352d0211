"""Uploads (tus) and clips: the door between received bytes and the
platform's rules (who may upload to which assignment, how big, what becomes of the bytes)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import Field

from egocrowd import clips
from egocrowd.campaigns import service as campaigns
from egocrowd.clips import media, redaction
from egocrowd.db.models import MAX_ID
from egocrowd.inputs import InputModel
from egocrowd.releases import lineage
from egocrowd.web.auth import unit
from egocrowd.web.blob_response import blob_response
from egocrowd.web.routers.api import Id, QueryId
from egocrowd.web.routers.uploads import PlatformHooks
from egocrowd.web.schemas import ClipOut, Page, QCStatsOut
from egocrowd.web.tus import UPLOADS_PATH, make_tus_router

MB = 1024 * 1024


router = APIRouter(prefix="/api/v1", tags=["clips"])


@router.get("/clips", response_model=Page[ClipOut])
def list_clips(request: Request, campaign_id: QueryId = None, limit: int = 100, offset: int = 0):
    # Bounded id and offset (see api.MAX_ID): an unbounded one was a 500 from the database driver.
    with unit(request) as ctx:
        user = ctx.require_user()
        rows = clips.list_clips(
            ctx.session,
            user,
            campaign_id=campaign_id,
            limit=min(max(limit, 1), 500),
            offset=min(max(offset, 0), 10_000_000),
        )
        return {"items": [clip_out(user, r) for r in rows]}


def clip_out(user, clip) -> ClipOut:
    """A clip as ``user`` reads it: the raw file's own details only as far as they may
    (clips.source_details), also in the QC report's copy of the probe."""
    details = clips.source_details(user, clip)
    if clip.qc_report and "probe" in clip.qc_report:
        # QC's copy of the probe is the clip's probe (the qc stage is given clip.probe): the same
        # rule, or the report told a lab or a reviewer the time of day and the server's path
        details["qc_report"] = {**clip.qc_report, "probe": details["probe"]}
    return ClipOut.model_validate(clip).model_copy(update=details)


@router.get("/clips/{clip_id}", response_model=ClipOut)
def get_clip(request: Request, clip_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        return clip_out(user, clips.get_clip(ctx.session, user, clip_id))


@router.get(
    "/clips/{clip_id}/lineage",
    responses={200: {"description": "PROV-JSON (W3C PROV): the clip's lineage", "content": {"application/json": {}}}},
)
def get_lineage(request: Request, clip_id: Id) -> JSONResponse:
    """Where the clip came from and everything done to it, as a W3C PROV-JSON document: the consent
    signed, the upload, each pipeline stage with its version, de-identification with its detectors,
    acceptance, annotation (annotators as pseudonyms), aggregation, and every release containing it
    (docs/provenance.md)."""
    with unit(request) as ctx:
        user = ctx.require_user()
        clip, found = lineage.visible_lineage(
            ctx.session, user, clip_id, secret=request.app.state.settings.resolved_secret_key()
        )
        return JSONResponse(lineage.prov_document(found, clip_sha256=clip.sha256))


@router.get("/campaigns/{campaign_id}/qc", response_model=QCStatsOut)
def campaign_qc(request: Request, campaign_id: Id):
    """The campaign's QC statistics: pass rate and the most common failures (its requester only)."""
    with unit(request) as ctx:
        c = campaigns.get_managed_campaign(ctx.session, ctx.require_user(), campaign_id)
        return QCStatsOut(campaign_id=c.id, **clips.qc_statistics(ctx.session, c.id))


# --- media (issue #9) ----------------------------------------------------------------------------------
def media_response(request: Request, f: media.MediaFile, *, cache: str = "private, max-age=300") -> Response:
    """A blob with HTTP Range (206/416, from any blob store: see web.blob_response), never cached by
    a shared cache, never sniffed, shown inline. Raw footage passes ``no-store``: not even the
    admin's browser keeps a copy on disk."""
    return blob_response(
        request,
        request.app.state.blobs,
        f.sha256,
        media_type=f.mime_type,
        filename=f.filename,
        inline=True,
        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff"},
    )


def derived_video(request: Request, clip_id: int) -> Response:
    with unit(request) as ctx:
        f = media.derived_file(ctx.session, ctx.require_user(), clip_id, request.app.state.blobs)
    return media_response(request, f)


_VIDEO = {200: {"content": {"video/mp4": {}}, "description": "The de-identified video (Range requests: 206)"}}


@router.get("/clips/{clip_id}/video", response_class=FileResponse, responses=_VIDEO)  # type: ignore[arg-type]
def clip_video(request: Request, clip_id: Id):
    """The clip's de-identified video (409 ``clip.not_deidentified`` until there is one)."""
    return derived_video(request, clip_id)


class EditIn(InputModel):
    kind: Literal["add", "false", "keep"]
    box: list[float] | None = Field(None, description="add: [x0, y0, x1, y1], fractions 0–1 of the picture")
    frame_start: int | None = Field(None, ge=0, le=MAX_ID)
    frame_end: int | None = Field(None, ge=0, le=MAX_ID)
    track_id: int | None = Field(None, ge=0, le=MAX_ID, description="false/keep: a track of the current render")
    note: str = Field("", max_length=500)


class RerenderIn(InputModel):
    reason: str = Field("rerender", max_length=200)


def _queue_item(c) -> dict[str, Any]:
    return {
        "clip_id": c.id,
        "campaign_id": c.campaign_id,
        "deid_status": c.deid_status.value if c.deid_status else None,
        "deid_reason": c.deid_reason,
        "waiting_since": c.updated_at,
    }


@router.get("/review/redaction")
def redaction_queue(request: Request, limit: int = 200) -> list[dict[str, Any]]:
    """Clips waiting for a person to check their redaction, the longest waiting first."""
    with unit(request) as ctx:
        return [_queue_item(c) for c in redaction.review_queue(ctx.session, ctx.require_user(), limit=limit)]


@router.get("/clips/{clip_id}/redactions")
def list_redactions(request: Request, clip_id: Id) -> dict[str, Any]:
    """The current render's tracks (``plan``), each frame's time, and every correction."""
    with unit(request) as ctx:
        return redaction.plan(ctx.session, ctx.require_user(), clip_id)


@router.post("/clips/{clip_id}/redactions", status_code=201)
def add_redaction(request: Request, clip_id: Id, body: EditIn) -> dict[str, Any]:
    with unit(request) as ctx:
        e = redaction.add_edit(ctx.session, ctx.require_user(), clip_id, **body.model_dump())
        ctx.session.flush()
        return redaction.edit_dict(e)


@router.delete("/clips/{clip_id}/redactions/{edit_id}")
def withdraw_redaction(request: Request, clip_id: Id, edit_id: Id) -> dict[str, Any]:
    with unit(request) as ctx:
        return redaction.edit_dict(redaction.withdraw_edit(ctx.session, ctx.require_user(), clip_id, edit_id))


@router.post("/clips/{clip_id}/rerender", status_code=202)
def rerender(request: Request, clip_id: Id, body: RerenderIn | None = None) -> dict[str, Any]:
    """Queue de-identification again (with the corrections), or for a QC-failed clip."""
    with unit(request) as ctx:
        c = redaction.request_deidentify(ctx.session, ctx.require_user(), clip_id, (body or RerenderIn()).reason)
        return _queue_item(c)


@router.post("/clips/{clip_id}/redactions/reviewed")
def mark_reviewed(request: Request, clip_id: Id) -> dict[str, Any]:
    """review → clean, once the latest render includes every active correction."""
    with unit(request) as ctx:
        return _queue_item(redaction.mark_reviewed(ctx.session, ctx.require_user(), clip_id))


def install(app: FastAPI, upload_store, hooks: PlatformHooks) -> None:
    """The tus endpoint, bound to this app's upload store and the platform's hooks."""
    app.include_router(make_tus_router(upload_store, hooks, max_size=8192 * MB), prefix=UPLOADS_PATH, tags=["uploads"])


__all__ = ["install", "router"]

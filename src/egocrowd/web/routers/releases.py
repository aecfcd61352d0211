"""JSON API: Releases (#12): cut, list, show, build progress, manifest (egocrowd.releases; docs/releases.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from egocrowd.releases import builder, service
from egocrowd.releases.schema import PreviewIn, ReleaseIn
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id, Limit, Offset, QueryId
from egocrowd.web.schemas import Page, Timestamp

router = APIRouter(prefix="/api/v1", tags=["releases"])


class ExcludedOut(BaseModel):
    clip_id: int
    reasons: list[str] = Field(
        description="why it is left out: withdrawn, not_accepted, consent_withdrawn, scope:<scope>..."
    )


class PreviewOut(BaseModel):
    count: int
    hours: float
    seconds: float
    clip_ids: list[int]
    needed_scopes: list[str] = Field(description="the consent scopes the licence's uses need")
    excluded_count: int
    excluded_reasons: dict[str, int] = Field(description="reason → how many clips it keeps out")
    excluded: list[ExcludedOut] = Field(description="the excluded clips (the first 500)")


class ReleaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    organization_id: int
    name: str
    version: int
    title: str
    description: str
    status: str = Field(description="building | published | failed")
    previous_id: int | None
    selection: dict[str, Any]
    licence: dict[str, Any]
    formats: dict[str, Any]
    changes: dict[str, Any] = Field(description="clip sha256s: added, withdrawn, removed since the previous version")
    stats: dict[str, Any] = Field(description="composition: hours, clips, countries, labels, QC, agreement, pay")
    progress: dict[str, Any] = Field(description="the build: stage, done, total")
    error: dict[str, Any] | None = Field(description="why the build failed (a problem: code, message)")
    root_hash: str | None = Field(description="sha256 of the manifest's bytes (set once published)")
    attempts: int
    format_version: int
    created_at: Timestamp
    published_at: Timestamp | None
    clips: int = 0
    files: int = 0


def release_out(session, r) -> ReleaseOut:
    out = ReleaseOut.model_validate(r)
    out.status = r.status.value
    out.clips = service.release_clip_count(session, r)
    out.files = len(service.release_files(session, r))
    return out


@router.post("/releases/preview", response_model=PreviewOut)
def preview(request: Request, body: PreviewIn):
    """What a selection comes to for the caller's lab (eligible clips, hours, excluded clips and why);
    creates nothing. A POST only because filters do not fit a query string; it writes nothing."""
    with unit(request) as ctx:
        return service.preview(ctx.session, ctx.require_user(), body).as_dict()


@router.post("/releases", status_code=202, response_model=ReleaseOut)
def create(request: Request, response: Response, body: ReleaseIn):
    """Cut the next version of ``name``: 202 and its location; the build runs in the background
    (poll the release: ``status``, ``progress``)."""
    with unit(request) as ctx:
        r = service.create_release(ctx.session, ctx.require_user(), body)
        out = release_out(ctx.session, r)
    response.headers["Location"] = f"/api/v1/releases/{out.id}"
    settings = request.app.state.settings
    if settings.run_pipeline_in_server:  # the embedded server builds at once; a worker otherwise
        builder.start_pending(request.app.state.db, request.app.state.blobs, settings)
    return out


@router.get("/releases", response_model=Page[ReleaseOut])
def list_releases(request: Request, organization_id: QueryId = None, limit: Limit = 100, offset: Offset = 0):
    """The releases of the caller's lab (admins: every lab's, or ``organization_id``'s), newest first."""
    with unit(request) as ctx:
        rows = service.list_releases(
            ctx.session, ctx.require_user(), organization_id=organization_id, limit=limit, offset=offset
        )
        return {"items": [release_out(ctx.session, r) for r in rows]}


@router.get("/releases/{release_id}", response_model=ReleaseOut)
def show(request: Request, release_id: Id):
    with unit(request) as ctx:
        return release_out(ctx.session, service.get_release(ctx.session, ctx.require_user(), release_id))


@router.get(
    "/releases/{release_id}/manifest",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}, "description": "the manifest's exact bytes"}},
)
def manifest(request: Request, release_id: Id) -> Response:
    """The published manifest, byte for byte as stored: its sha256 is the release's root hash
    (409 ``release.not_published`` while building or failed)."""
    with unit(request) as ctx:
        r = service.get_release(ctx.session, ctx.require_user(), release_id)
        data = service.manifest_bytes(request.app.state.blobs, r)
        root = r.root_hash or ""
    return Response(
        data, media_type="application/json", headers={"X-Root-Hash": root, "Cache-Control": "private, max-age=3600"}
    )


__all__ = ["ReleaseOut", "router"]

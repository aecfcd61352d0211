"""JSON API: The catalog, access requests and grants, signed download links (#12; egocrowd.releases.buyers)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import Field

from egocrowd.inputs import InputModel
from egocrowd.releases import buyers
from egocrowd.web.auth import unit
from egocrowd.web.blob_response import blob_response
from egocrowd.web.routers.api import Id, Limit, Offset

router = APIRouter(prefix="/api/v1", tags=["catalog"])

#: the filters are matched in Python, never reaching the database's own NUL check (inputs.py)
NO_NUL = r"^[^\x00]*$"
SampleNo = Annotated[int, PathParam(ge=0, le=buyers.SAMPLE_COUNT - 1)]


class AccessRequestIn(InputModel):
    message: str = Field(max_length=buyers.MESSAGE_MAX, description="What your lab means to do with the data")
    accept_terms: bool = Field(description="You read and accept the release's licence terms")


class AccessDecisionIn(InputModel):
    decision: Literal["grant", "refuse"]
    note: str = Field("", max_length=buyers.NOTE_MAX, description="Shown to the asking lab")
    expires_at: datetime | None = Field(None, description="grant: the buyer's licence ends then (ISO 8601)")


class AccessRevokeIn(InputModel):
    note: str = Field("", max_length=buyers.NOTE_MAX)


class DownloadLinksIn(InputModel):
    paths: list[Annotated[str, Field(max_length=500)]] | None = Field(
        None, max_length=10_000, description="Files of the release (their paths); none: every file"
    )
    manifest: bool = Field(False, description="A link to the manifest only")


def _access(a) -> dict[str, Any]:
    return buyers.access_dict(a)


@router.get("/catalog")
def catalog(
    request: Request,
    label: Annotated[str | None, Query(max_length=121, pattern=NO_NUL)] = None,
    country: Annotated[str | None, Query(max_length=2, pattern=NO_NUL)] = None,
    min_hours: Annotated[float | None, Query(ge=0, le=1_000_000)] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Published releases of every lab, newest first, with their slices and sample frames."""
    with unit(request) as ctx:
        rows = buyers.list_catalog(
            ctx.session,
            ctx.user,
            label=label,
            country=country,
            min_hours=min_hours,
            q=q,
            limit=limit,
            offset=offset,
        )
        return {"items": [e.as_dict() for e in rows]}


@router.get("/catalog/requests")
def pending_requests(request: Request) -> dict[str, Any]:
    """Access requests waiting for the caller's lab (admins: every lab's), oldest first."""
    with unit(request) as ctx:
        rows = buyers.pending_requests(ctx.session, ctx.user)
        return {"items": [{**_access(a), "release_title": r.title, "organization": org} for a, r, org in rows]}


@router.get("/catalog/access")
def my_access(request: Request) -> dict[str, Any]:
    """The caller's lab's requests and grants, newest first."""
    with unit(request) as ctx:
        return {"items": [_access(a) for a, _ in buyers.my_access(ctx.session, ctx.user)]}


@router.get("/catalog/{release_id}")
def catalog_entry(request: Request, release_id: Id) -> dict[str, Any]:
    """One published release: its slices, its composition (``stats``) and its licence terms."""
    with unit(request) as ctx:
        e = buyers.catalog_entry(ctx.session, ctx.user, release_id)
        return {**e.as_dict(), "stats": e.release.stats, "terms": (e.release.licence or {}).get("terms", "")}


_JPEG = {200: {"content": {"image/jpeg": {}}, "description": "A frame of the release's de-identified video"}}


@router.get("/catalog/{release_id}/samples/{n}", response_class=Response, responses=_JPEG)  # type: ignore[arg-type]
def sample(request: Request, release_id: Id, n: SampleNo):
    """Sample frame ``n`` (made once per release, from de-identified media only)."""
    blobs = request.app.state.blobs
    with unit(request) as ctx:
        sha = buyers.cached_sample(ctx.session, ctx.user, release_id, n, blobs)
        sources = buyers.sample_sources(ctx.session, release_id, blobs) if sha is None else None
    if sha is None:
        made = buyers.render_samples(sources or [], blobs)  # decoding: outside every transaction
        with request.app.state.db.transaction() as s:
            frames = buyers.record_samples(s, release_id, made)
        sha = buyers.pick_sample(frames, release_id, n, blobs)
    return blob_response(
        request,
        blobs,
        sha,
        media_type="image/jpeg",
        inline=True,
        headers={"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )


@router.post("/catalog/{release_id}/access", status_code=201)
def request_access(request: Request, release_id: Id, body: AccessRequestIn) -> dict[str, Any]:
    """Ask for access for your lab, accepting the licence terms (owners and editors)."""
    with unit(request) as ctx:
        a = buyers.request_access(
            ctx.session, ctx.user, release_id, message=body.message, accept_terms=body.accept_terms
        )
        return _access(a)


@router.get("/catalog/{release_id}/access")
def list_access(request: Request, release_id: Id) -> dict[str, Any]:
    """Every lab's request for the release, pending first (the owning lab and admins)."""
    with unit(request) as ctx:
        rows = buyers.list_access(ctx.session, ctx.user, release_id)
        return {"items": [{**_access(a), "organization": name} for a, name in rows]}


@router.post("/catalog/access/{access_id}/decision")
def decide(request: Request, access_id: Id, body: AccessDecisionIn) -> dict[str, Any]:
    """Grant or refuse a request (the owning lab's owners, admins)."""
    with unit(request) as ctx:
        a = buyers.decide(
            ctx.session,
            ctx.user,
            access_id,
            grant=body.decision == "grant",
            note=body.note,
            expires_at=body.expires_at,
        )
        return _access(a)


@router.post("/catalog/access/{access_id}/revoke")
def revoke(request: Request, access_id: Id, body: AccessRevokeIn | None = None) -> dict[str, Any]:
    """End a grant; links already issued stop working."""
    with unit(request) as ctx:
        return _access(buyers.revoke(ctx.session, ctx.user, access_id, note=(body or AccessRevokeIn()).note))


@router.get("/catalog/{release_id}/files")
def files(request: Request, release_id: Id) -> dict[str, Any]:
    """The release's files (path, size, sha256, format), for whoever may download it."""
    with unit(request) as ctx:
        rows = buyers.list_files(ctx.session, ctx.user, release_id)
        return {"items": [{"path": f.path, "size": f.size, "sha256": f.sha256, "format": f.format} for f in rows]}


def issue_links(
    request: Request, release_id: int, body: DownloadLinksIn, form_csrf: str | None = None
) -> list[buyers.Link]:
    settings = request.app.state.settings
    with unit(request, form_csrf=form_csrf) as ctx:
        return buyers.issue_links(
            ctx.session,
            ctx.user,
            release_id,
            secret=settings.resolved_secret_key(),
            minutes=settings.release_link_minutes,
            paths=body.paths,
            manifest=body.manifest,
        )


@router.post("/catalog/{release_id}/links")
def links(request: Request, release_id: Id, body: DownloadLinksIn) -> dict[str, Any]:
    """Signed links (valid ``release_link_minutes``) to some files, the manifest, or every file."""
    rows = issue_links(request, release_id, body)
    base = str(request.base_url).rstrip("/")
    return {
        "expires_at": rows[0].expires_at if rows else None,
        "items": [{"path": x.path, "url": base + x.url, "size": x.size, "sha256": x.sha256} for x in rows],
    }


_FILE = {200: {"content": {"application/octet-stream": {}}, "description": "The file (Range requests: 206)"}}


@router.get("/catalog/{release_id}/download/{path:path}", response_class=FileResponse, responses=_FILE)  # type: ignore[arg-type]
def download(request: Request, release_id: Id, path: str, token: Annotated[str, Query(max_length=2000)] = ""):
    """A release file through a signed link; the download is recorded before any byte is sent."""
    with unit(request) as ctx:  # who calls, if anyone (a read-only unit: GET)
        caller_id = ctx.user.id if ctx.user else None
    settings = request.app.state.settings
    with request.app.state.db.transaction() as s:
        d = buyers.open_download(
            s,
            caller_id,
            release_id,
            path,
            token,
            request.app.state.blobs,
            secret=settings.resolved_secret_key(),
            byte_range=request.headers.get("range"),
            link_lifetime=timedelta(seconds=settings.blob_link_seconds),
        )
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Checksum-Sha256": d.sha256}
    if d.redirect:  # an object store sends the bytes itself (a presigned GET, Range included)
        return RedirectResponse(d.redirect, status_code=307, headers=headers)
    return blob_response(
        request,
        request.app.state.blobs,
        d.sha256,
        media_type="application/octet-stream",
        filename=d.filename,
        headers=headers,
    )


@router.get("/catalog/{release_id}/downloads")
def downloads(request: Request, release_id: Id) -> dict[str, Any]:
    """Every download of the release, newest first (the owning lab and admins)."""
    with unit(request) as ctx:
        rows = buyers.downloads(ctx.session, ctx.user, release_id)
        return {
            "items": [
                {
                    "id": d.id,
                    "organization_id": d.organization_id,
                    "user_id": d.user_id,
                    "path": d.path,
                    "sha256": d.sha256,
                    "at": d.at,
                }
                for d in rows
            ]
        }

"""JSON API for consent: documents (read by anyone; drafts written by admins and allowed labs),
signatures and withdrawals. Every rule lives in :mod:`egocrowd.consent`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from egocrowd import consent
from egocrowd.accounts import policy
from egocrowd.campaigns import assignments
from egocrowd.db.models import ConsentStatus
from egocrowd.errors import InvalidInput
from egocrowd.inputs import InputModel
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id, Limit, Offset
from egocrowd.web.routers.withdrawals import honour_withdrawals
from egocrowd.web.schemas import ConsentOut, DiffOut, DocumentOut, DocumentTextOut, Page, page_of

router = APIRouter(prefix="/api/v1", tags=["consent"])
Version = Annotated[str, Path(min_length=1, max_length=40)]


class ScopeIn(InputModel):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,39}$", description="lower_snake id, e.g. commercial_use")
    label: str = Field(min_length=1, max_length=300, description="What the worker agrees to, in plain words")
    required: bool = Field(False, description="Needed to take part at all")


class DraftIn(InputModel):
    family: str = Field(min_length=2, max_length=24, description="The document's stable name, e.g. egocrowd-worker")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=60_000, description="The text, in Markdown (raw HTML is shown as text)")
    scopes: list[ScopeIn] = Field(max_length=30)
    language: str = Field("en", min_length=2, max_length=16, description="BCP 47 tag: en, fr, pt-BR…")
    revision: int | None = Field(
        None, ge=1, le=100_000, description="Only for another language version of this existing revision"
    )


class DraftPatch(InputModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    body: str | None = Field(None, min_length=1, max_length=60_000)
    scopes: list[ScopeIn] | None = Field(None, max_length=30)


class SignIn(InputModel):
    version: str = Field(min_length=1, max_length=40)
    scopes: list[Annotated[str, Field(max_length=40)]] = Field(default_factory=list, max_length=50)
    document_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")


@router.get("/consent-documents", response_model=Page[DocumentOut])
def list_documents(
    request: Request,
    family: str | None = Query(None, max_length=60),
    language: str | None = Query(None, max_length=16),
    status: ConsentStatus | None = Query(None, description="Default: published. Drafts: only your own."),
):
    """Published consent texts are public: anyone may read what they would agree to."""
    with unit(request) as ctx:
        rows = consent.list_documents(ctx.session, ctx.user, family=family, language=language, status=status)
        return page_of(DocumentOut, rows)


@router.post("/consent-documents", status_code=201, response_model=DocumentTextOut)
def create_draft(request: Request, body: DraftIn):
    """A draft: a new document, the next revision of one, or (``revision``) another language version."""
    with unit(request) as ctx:
        doc = consent.create_draft(
            ctx.session,
            policy.require(ctx.user, "consent.author"),
            family=body.family,
            title=body.title,
            body=body.body,
            scopes=[s.model_dump() for s in body.scopes],
            language=body.language,
            revision=body.revision,
        )
        return DocumentTextOut.model_validate(doc)


@router.get("/consent-documents/{version}", response_model=DocumentTextOut)
def get_document(request: Request, version: Version):
    with unit(request) as ctx:
        return DocumentTextOut.model_validate(consent.get_document(ctx.session, version, ctx.user))


@router.patch("/consent-documents/{version}", response_model=DocumentTextOut)
def edit_draft(request: Request, version: Version, body: DraftPatch):
    """Drafts only: a published text is frozen."""
    with unit(request) as ctx:
        doc = consent.edit_draft(
            ctx.session,
            policy.require(ctx.user, "consent.author"),
            version,
            title=body.title,
            body=body.body,
            scopes=None if body.scopes is None else [s.model_dump() for s in body.scopes],
        )
        return DocumentTextOut.model_validate(doc)


@router.post("/consent-documents/{version}/publish", response_model=DocumentTextOut)
def publish(request: Request, version: Version):
    """Freeze the text. A new revision's original becomes required: workers holding slots in campaigns
    of the family are notified and must sign it before their next upload."""
    with unit(request) as ctx:
        return DocumentTextOut.model_validate(
            consent.publish(ctx.session, policy.require(ctx.user, "consent.author"), version)
        )


@router.post("/consent-documents/{version}/retire", response_model=DocumentTextOut)
def retire(request: Request, version: Version):
    with unit(request) as ctx:
        return DocumentTextOut.model_validate(
            consent.retire(ctx.session, policy.require(ctx.user, "consent.author"), version)
        )


@router.get("/consent-documents/{version}/diff", response_model=DiffOut)
def diff(request: Request, version: Version, against: str | None = Query(None, min_length=1, max_length=40)):
    """What changed from ``against`` (default: the previous revision, same language) to ``version``."""
    with unit(request) as ctx:
        old = against or _previous(ctx, version)
        return DiffOut(old=old, new=version, unified_diff=consent.diff(ctx.session, old, version, ctx.user))


def _previous(ctx, version: str) -> str:
    prev = consent.previous_revision(ctx.session, consent.get_document(ctx.session, version, ctx.user))
    if prev is None:
        raise InvalidInput(f"{version} is a first revision: name a text to compare with.", code="consent.no_previous")
    return prev.version


@router.get("/consent-documents/{version}/languages", response_model=Page[DocumentOut])
def languages(request: Request, version: Version):
    """The language versions of this text's revision (drafts only to their authors)."""
    with unit(request) as ctx:
        doc = consent.get_document(ctx.session, version, ctx.user)
        return page_of(DocumentOut, consent.language_versions(ctx.session, doc, ctx.user))


@router.post("/consents", status_code=201, response_model=ConsentOut)
def sign_consent(request: Request, body: SignIn):
    with unit(request) as ctx:
        worker = policy.require(ctx.user, "consent.sign")
        rec = consent.sign(ctx.session, worker, body.version, body.scopes, document_sha256=body.document_sha256)
        return ConsentOut.model_validate(rec)


@router.get("/consents", response_model=Page[ConsentOut])
def my_consents(request: Request, limit: Limit = 100, offset: Offset = 0):
    with unit(request) as ctx:
        user = ctx.require_user()
        return page_of(ConsentOut, consent.list_consents(ctx.session, user, limit=limit, offset=offset))


@router.post("/consents/{record_id}/withdraw", response_model=ConsentOut)
def withdraw_consent(request: Request, record_id: Id):
    with unit(request) as ctx:
        user = ctx.require_user()
        rec = assignments.withdraw_consent(ctx.session, user, record_id)
        honour_withdrawals(request, ctx.session, record_id=rec.id)  # its clips leave releases; buyers are told
        return ConsentOut.model_validate(rec)

"""Versioned consent documents (identified by the sha256 of their text), signatures with explicit
scopes, and withdrawal at any time."""

from __future__ import annotations

import hashlib
import re

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.clock import utcnow
from egocrowd.db.models import ConsentDocument, ConsentRecord, User
from egocrowd.errors import Conflict, InvalidInput, NotFound

_SCOPE_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


def text_sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def create_document(
    session: Session, *, version: str, title: str, body: str, scopes: list[dict], actor: User | None = None
) -> ConsentDocument:
    if not version or len(version) > 40 or not body.strip():
        raise InvalidInput("A consent document needs a version and a text.", code="consent.bad_document")
    for s in scopes:
        if not _SCOPE_ID.match(str(s.get("id", ""))) or not s.get("label"):
            raise InvalidInput(f"Bad scope {s!r}: needs an id (lower_snake) and a label.", code="consent.bad_document")
    digest = text_sha256(body)
    if (
        session.scalar(
            sa.select(ConsentDocument.id).where(
                (ConsentDocument.version == version) | (ConsentDocument.sha256 == digest)
            )
        )
        is not None
    ):
        raise Conflict("A consent document with this version or text exists.", code="consent.duplicate")
    doc = ConsentDocument(
        version=version,
        title=title,
        body=body,
        sha256=digest,
        family=version,  # until authoring (issue #14): each document is its own family
        published_at=utcnow(),
        scopes=[{"id": s["id"], "label": s["label"], "required": bool(s.get("required"))} for s in scopes],
    )
    session.add(doc)
    audit.record(session, actor, "consent.document_published", doc, {"version": version, "sha256": digest})
    return doc


def get_document(session: Session, version: str) -> ConsentDocument:
    doc = session.scalar(sa.select(ConsentDocument).where(ConsentDocument.version == version))
    if doc is None:
        raise NotFound(f"No consent document version {version!r}.", code="consent.document_not_found")
    return doc


def list_documents(session: Session) -> list[ConsentDocument]:
    """Every published consent document, oldest first (their texts are public)."""
    return list(session.scalars(sa.select(ConsentDocument).order_by(ConsentDocument.id)))


def list_consents(
    session: Session, viewer: User, *, user_id: int | None = None, limit: int | None = None, offset: int = 0
) -> list[ConsentRecord]:
    """The consent records ``viewer`` may see (their own; admins everyone's), newest first,
    optionally only those of ``user_id``."""
    q = sa.select(ConsentRecord).where(policy.visible_consents(viewer)).order_by(ConsentRecord.id.desc())
    if user_id is not None:
        q = q.where(ConsentRecord.user_id == user_id)
    return list(session.scalars(q.limit(limit).offset(offset)))


def signed_versions(session: Session, user: User) -> set[str]:
    """The document versions ``user`` has signed and not withdrawn."""
    return set(
        session.scalars(
            sa.select(ConsentDocument.version)
            .join(ConsentRecord)
            .where(ConsentRecord.user_id == user.id, ConsentRecord.withdrawn_at.is_(None))
        )
    )


def active_consent(session: Session, user: User, version: str) -> ConsentRecord | None:
    return session.scalar(
        sa.select(ConsentRecord)
        .join(ConsentDocument)
        .where(
            ConsentRecord.user_id == user.id, ConsentDocument.version == version, ConsentRecord.withdrawn_at.is_(None)
        )
        .order_by(ConsentRecord.id.desc())
        .limit(1)
    )


def sign(
    session: Session, worker: User, version: str, scopes: list[str], *, document_sha256: str | None = None
) -> ConsentRecord:
    """Record the worker's signature. ``document_sha256``, when given, must match the text the
    worker read: a document cannot change under someone's signature."""
    doc = get_document(session, version)
    if document_sha256 is not None and document_sha256 != doc.sha256:
        raise Conflict("The consent text changed since you read it; read it again.", code="consent.text_changed")
    known = {s["id"] for s in doc.scopes}
    unknown = sorted(set(scopes) - known)
    if unknown:
        raise InvalidInput(f"Unknown consent scopes: {', '.join(unknown)}.", code="consent.unknown_scope")
    missing = sorted(s["id"] for s in doc.scopes if s["required"] and s["id"] not in scopes)
    if missing:
        raise InvalidInput(
            f"These scopes are required to take part: {', '.join(missing)}.", code="consent.required_scope"
        )
    if active_consent(session, worker, version) is not None:
        raise Conflict(
            "You already signed this consent. Withdraw it first to change your choices.", code="consent.already_signed"
        )
    rec = ConsentRecord(
        user_id=worker.id, document=doc, document_sha256=doc.sha256, scopes=sorted(set(scopes)), signed_at=utcnow()
    )
    session.add(rec)
    audit.record(
        session, worker, "consent.signed", rec, {"version": version, "sha256": doc.sha256, "scopes": rec.scopes}
    )
    return rec


def withdraw(session: Session, worker: User, record_id: int) -> ConsentRecord:
    """Withdraw a consent now. The leases that depended on it are released by the caller
    (:func:`egocrowd.campaigns.assignments.withdraw_consent`, the one the doors call); what this
    means for media already captured is handled downstream (releases honour the withdrawal time)."""
    rec = session.get(ConsentRecord, record_id)
    if rec is None or rec.user_id != worker.id:
        raise NotFound("No such consent record.", code="consent.not_found")
    if rec.withdrawn_at is not None:
        raise Conflict("This consent is already withdrawn.", code="consent.already_withdrawn")
    rec.withdrawn_at = utcnow()
    audit.record(
        session, worker, "consent.withdrawn", rec, {"version": rec.document.version, "sha256": rec.document_sha256}
    )
    return rec

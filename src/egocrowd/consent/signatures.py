"""Signatures: a worker signs one published text with explicit scopes, withdraws at any time, and
the one check every use of a worker's data goes through (:func:`require_cover`)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.clock import utcnow
from egocrowd.consent.documents import get_document, newest_published, required_document
from egocrowd.consent.scopes import SCOPE_WORDS, needed_scopes
from egocrowd.db.models import Campaign, ConsentDocument, ConsentRecord, ConsentStatus, User
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound


def list_consents(
    session: Session, viewer: User, *, user_id: int | None = None, limit: int | None = None, offset: int = 0
) -> list[ConsentRecord]:
    """The consent records ``viewer`` may see (their own; admins everyone's), newest first,
    optionally only those of ``user_id``."""
    q = sa.select(ConsentRecord).where(policy.visible_consents(viewer)).order_by(ConsentRecord.id.desc())
    if user_id is not None:
        q = q.where(ConsentRecord.user_id == user_id)
    return list(session.scalars(q.limit(limit).offset(offset)))


def _active(session: Session, user: User):
    return (
        sa.select(ConsentRecord)
        .join(ConsentDocument)
        .where(ConsentRecord.user_id == user.id, ConsentRecord.withdrawn_at.is_(None))
        .order_by(ConsentRecord.id.desc())
    )


def signed_versions(session: Session, user: User) -> set[str]:
    """The versions a campaign may name for which ``user`` holds a current signature: every text of
    a family whose newest published revision they signed (in any language) and did not withdraw."""
    out: set[str] = set()
    for rec in session.scalars(_active(session, user)):
        newest = newest_published(session, rec.document.family)
        if newest is not None and newest.revision == rec.document.revision:
            out.update(
                session.scalars(sa.select(ConsentDocument.version).where(ConsentDocument.family == newest.family))
            )
    return out


def active_consent(session: Session, user: User, version: str) -> ConsentRecord | None:
    """The worker's active signature of what a campaign naming ``version`` requires: the newest
    published revision of its family, in any language (None: none, or only an older revision)."""
    named = session.scalar(sa.select(ConsentDocument).where(ConsentDocument.version == version))
    newest = newest_published(session, named.family) if named is not None else None
    return active_in_revision(session, user, newest.family, newest.revision) if newest is not None else None


def active_in_revision(session: Session, user: User, family: str, revision: int) -> ConsentRecord | None:
    """The worker's active signature of any language version of this revision."""
    return session.scalar(
        _active(session, user).where(ConsentDocument.family == family, ConsentDocument.revision == revision).limit(1)
    )


def _build_covering_signature() -> sa.Select[ConsentRecord]:
    """The query behind :func:`require_cover`'s one-statement answer: what ``required_document``
    and ``active_in_revision`` find in two steps (any language version of the newest published
    revision of the family that ``version`` belongs to), as subqueries. Built once, with bound
    parameters ``worker_id`` and ``version``: every claim and upload asks it, and building it
    cost more of this server's CPU than the database took to answer it (#17)."""
    family = (
        sa.select(ConsentDocument.family).where(ConsentDocument.version == sa.bindparam("version")).scalar_subquery()
    )
    newest = (
        sa.select(ConsentDocument.revision)
        .where(ConsentDocument.family == family, ConsentDocument.status == ConsentStatus.published)
        .order_by(ConsentDocument.revision.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        sa.select(ConsentRecord)
        .join(ConsentDocument)
        .where(
            ConsentRecord.user_id == sa.bindparam("worker_id"),
            ConsentRecord.withdrawn_at.is_(None),
            ConsentDocument.family == family,
            ConsentDocument.revision == newest,
        )
        .order_by(ConsentRecord.id.desc())
        .limit(1)
    )


_COVERING_SIGNATURE = _build_covering_signature()


def covering_record(session: Session, worker_id: int, campaign: Campaign) -> ConsentRecord | None:
    """The signature a clip for ``campaign`` was taken under: the worker's newest signature of the
    campaign's consent family (withdrawn or not: a later withdrawal is what releases look at)."""
    family = sa.select(ConsentDocument.family).where(ConsentDocument.version == campaign.consent_version)
    return session.scalar(
        sa.select(ConsentRecord)
        .join(ConsentDocument, ConsentDocument.id == ConsentRecord.document_id)
        .where(ConsentRecord.user_id == worker_id, ConsentDocument.family == family.scalar_subquery())
        .order_by(ConsentRecord.signed_at.desc(), ConsentRecord.id.desc())
        .limit(1)
    )


def sign(
    session: Session, worker: User, version: str, scopes: list[str], *, document_sha256: str | None = None
) -> ConsentRecord:
    """Record the worker's signature of the text they read. ``document_sha256``, when given, must
    match it: a document cannot change under someone's signature. Only the newest published
    revision of a family can be signed; any of its language versions counts for the revision."""
    doc = get_document(session, version, worker)
    if document_sha256 is not None and document_sha256 != doc.sha256:
        raise Conflict("The consent text changed since you read it; read it again.", code="consent.text_changed")
    newest = newest_published(session, doc.family)
    if doc.status is not ConsentStatus.published or newest is None or newest.revision != doc.revision:
        raise Conflict(
            f"{version} is no longer in use" + (f": read and sign {newest.version}." if newest else "."),
            code="consent.superseded",
            consent_version=newest.version if newest else None,
        )
    known = {s["id"] for s in doc.scopes}
    unknown = sorted(set(scopes) - known)
    if unknown:
        raise InvalidInput(f"Unknown consent scopes: {', '.join(unknown)}.", code="consent.unknown_scope")
    missing = sorted(s["id"] for s in doc.scopes if s["required"] and s["id"] not in scopes)
    if missing:
        raise InvalidInput(
            f"These scopes are required to take part: {', '.join(missing)}.", code="consent.required_scope"
        )
    if active_in_revision(session, worker, doc.family, doc.revision) is not None:
        raise Conflict(
            "You already signed this consent. Withdraw it first to change your choices.", code="consent.already_signed"
        )
    rec = ConsentRecord(
        user_id=worker.id,
        document=doc,
        document_sha256=doc.sha256,
        scopes=sorted(set(scopes)),
        signed_at=utcnow(),
        language=doc.language,  # the language of the text read and signed, kept with the signature
    )
    session.add(rec)
    audit.record(
        session,
        worker,
        "consent.signed",
        rec,
        {"version": version, "sha256": doc.sha256, "scopes": rec.scopes, "language": doc.language},
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


def require_cover(session: Session, worker: User, campaign: Campaign) -> ConsentRecord:
    """The one consent check before any use of a worker's data for ``campaign`` (claiming a slot,
    every upload): an active signature of the required revision whose scopes cover the campaign's
    data use. Refusals (403) name the version to read and sign."""
    # The common case in one statement (every claim and upload asks): the worker's active signature
    # of the newest published revision of the campaign's family, covering its data use. Anything
    # else takes the steps below, which find the document to name in the refusal.
    rec = session.scalar(_COVERING_SIGNATURE, {"worker_id": worker.id, "version": campaign.consent_version})
    if rec is not None and all(s in rec.scopes for s in needed_scopes(campaign.data_use)):
        return rec
    doc = required_document(session, campaign)
    rec = active_in_revision(session, worker, doc.family, doc.revision)
    if rec is None:
        older = session.scalar(_active(session, worker).where(ConsentDocument.family == doc.family).limit(1))
        if older is not None:
            raise Forbidden(
                f"The consent changed: read what changed and sign {doc.version} before going on.",
                code="consent.resign_required",
                consent_version=doc.version,
                signed_version=older.document.version,
            )
        raise Forbidden(
            f"Sign consent version {doc.version} before claiming.", code="consent.missing", consent_version=doc.version
        )
    missing = [s for s in needed_scopes(campaign.data_use) if s not in rec.scopes]
    if missing:
        raise Forbidden(
            "This campaign needs your consent to " + ", ".join(SCOPE_WORDS.get(s, s) for s in missing) + ", which "
            f"you did not give. Withdraw and sign {doc.version} again with it ticked if you agree.",
            code="consent.scope_missing",
            consent_version=doc.version,
            missing_scopes=missing,
        )
    return rec

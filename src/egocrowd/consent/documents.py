"""Consent documents: families, revisions, language versions; drafts, publishing, retiring.

A *family* ("egocrowd-worker") is one document through time. Each *revision* (1, 2, 3…) is a new
deal; each revision has *language versions* that say the same thing ("en", "fr", "pt-BR"). One row
is one text, named by its ``version``: the revision's first text is ``family-N`` (its original),
the others ``family-N-lang``. A published text is frozen (its sha256 is what workers sign); drafts
are edited by the platform's admins, or by a lab allowed to write its own (usable only by its own
campaigns). The newest published revision of a family is what every campaign naming that family
requires: publishing a new one asks the workers holding slots to sign again.

``actor=None`` is the operator at the command line (``egocrowd consent publish``), trusted like the
database itself; every other caller is checked by the policy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit, notifications
from egocrowd.accounts import policy
from egocrowd.clock import utcnow
from egocrowd.consent.scopes import needed_scopes
from egocrowd.consent.text import LANGUAGE_TAG, unified_diff
from egocrowd.db.models import Assignment, AssignmentStatus, Campaign, ConsentDocument, ConsentStatus, User
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.i18n import N_

# Segments start with a letter, so the first all-digit segment of a version is its revision.
FAMILY = re.compile(r"^[a-z][a-z0-9]*(-[a-z][a-z0-9]*)*$")
FAMILY_MAX = 24  # "family-999-zh-Hant-TW" stays within the 40 characters of a version
_SCOPE_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
S = ConsentStatus


def text_sha256(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def version_name(family: str, revision: int, language: str | None = None) -> str:
    """``family-N`` for a revision's original, ``family-N-lang`` for its other language versions."""
    return f"{family}-{revision}" + (f"-{language}" if language else "")


def clean_scopes(scopes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Scopes as stored: ``{"id", "label", "required"}``, ids unique and lower_snake."""
    out: list[dict[str, Any]] = []
    for s in scopes:
        sid, label = str(s.get("id", "")), str(s.get("label", "")).strip()
        if not _SCOPE_ID.match(sid) or not label or len(label) > 300:
            raise InvalidInput(
                f"Each choice needs a short id (lower case letters, digits and _) and a label; {sid!r} has not.",
                code="consent.bad_document",
                field="scopes",
            )
        if any(o["id"] == sid for o in out):
            raise InvalidInput(f"The choice {sid!r} is listed twice.", code="consent.bad_document", field="scopes")
        out.append({"id": sid, "label": label, "required": bool(s.get("required"))})
    return out


# --- reading ----------------------------------------------------------------------------------------
def _may_manage(viewer: User | None, doc: ConsentDocument) -> bool:
    return policy.can(viewer, "consent.manage", doc)


def get_document(session: Session, version: str, viewer: User | None = None) -> ConsentDocument:
    """One text by its version. Published and retired texts are public (anyone may read what they
    would agree to, or did); a draft only to those who may edit it."""
    doc = session.scalar(sa.select(ConsentDocument).where(ConsentDocument.version == version))
    if doc is None or (doc.status is S.draft and not _may_manage(viewer, doc)):
        raise NotFound(f"No consent document version {version!r}.", code="consent.document_not_found")
    return doc


def list_documents(
    session: Session,
    viewer: User | None = None,
    *,
    family: str | None = None,
    language: str | None = None,
    status: ConsentStatus | None = None,
) -> list[ConsentDocument]:
    """Texts by family, revision and language. Without ``status``: the published ones (what a
    campaign may name); drafts only those ``viewer`` may edit."""
    q = sa.select(ConsentDocument).where(ConsentDocument.status == (status or S.published))
    if family is not None:
        q = q.where(ConsentDocument.family == family)
    if language is not None:
        q = q.where(ConsentDocument.language == language)
    rows = session.scalars(q.order_by(ConsentDocument.family, ConsentDocument.revision, ConsentDocument.id))
    return [d for d in rows if d.status is not S.draft or _may_manage(viewer, d)]


def authored_documents(session: Session, viewer: User) -> list[ConsentDocument]:
    """Every text ``viewer`` may edit or retire, whatever its status (the authoring page)."""
    policy.require(viewer, "consent.author")
    rows = session.scalars(
        sa.select(ConsentDocument).order_by(ConsentDocument.family, ConsentDocument.revision, ConsentDocument.id)
    )
    return [d for d in rows if _may_manage(viewer, d)]


def revision_texts(session: Session, family: str, revision: int) -> list[ConsentDocument]:
    """The language versions of one revision, its original first (drafts included)."""
    return list(
        session.scalars(
            sa.select(ConsentDocument)
            .where(ConsentDocument.family == family, ConsentDocument.revision == revision)
            .order_by(ConsentDocument.id)
        )
    )


def language_versions(session: Session, doc: ConsentDocument, viewer: User | None = None) -> list[ConsentDocument]:
    """The language versions of ``doc``'s revision that ``viewer`` may read, its original first."""
    texts = revision_texts(session, doc.family, doc.revision)
    return [t for t in texts if t.status is not S.draft or _may_manage(viewer, t)]


def newest_published(session: Session, family: str) -> ConsentDocument | None:
    """The original text of the family's newest published revision (None: nothing published)."""
    return session.scalar(
        sa.select(ConsentDocument)
        .where(ConsentDocument.family == family, ConsentDocument.status == S.published)
        .order_by(ConsentDocument.revision.desc(), ConsentDocument.id)
        .limit(1)
    )


def usable_documents(session: Session, organization_id: int | None) -> list[ConsentDocument]:
    """What a campaign of this lab may name (the campaign form's choices): for each family of the
    platform's or the lab's own, the original text of its newest published revision."""
    families = session.scalars(
        sa.select(ConsentDocument.family)
        .where(
            ConsentDocument.status == S.published,
            sa.or_(ConsentDocument.organization_id.is_(None), ConsentDocument.organization_id == organization_id),
        )
        .distinct()
        .order_by(ConsentDocument.family)
    )
    return [d for f in list(families) if (d := newest_published(session, f)) is not None]


def required_document(session: Session, campaign: Campaign) -> ConsentDocument:
    """The consent a worker must hold for ``campaign``: the newest published revision of the family
    its ``consent_version`` belongs to (any language version of it counts)."""
    named = session.scalar(sa.select(ConsentDocument).where(ConsentDocument.version == campaign.consent_version))
    doc = newest_published(session, named.family) if named is not None else None
    if doc is None:
        raise Forbidden(
            f"The consent document {campaign.consent_version} of this campaign is no longer published.",
            code="consent.missing",
            consent_version=campaign.consent_version,
        )
    return doc


def check_campaign_document(
    session: Session, version: str, organization_id: int | None, data_use: Mapping[str, Any]
) -> ConsentDocument:
    """May a campaign of ``organization_id`` with this data use name ``version``? The family must
    have a published revision, belong to the platform or to that lab, and offer every scope the data
    use needs (a worker could not grant it otherwise). Refusals are invalid input on the field."""
    named = session.scalar(sa.select(ConsentDocument).where(ConsentDocument.version == version))
    doc = newest_published(session, named.family) if named is not None else None
    if doc is None or (doc.organization_id is not None and doc.organization_id != organization_id):
        raise InvalidInput(
            f"There is no published consent document version {version!r}.",
            code="campaign.unknown_consent_version",
            field="consent_version",
        )
    offered = {s["id"] for s in doc.scopes}
    missing = [s for s in needed_scopes(data_use) if s not in offered]
    if missing:
        raise InvalidInput(
            f"The consent document {doc.version} does not ask workers for {', '.join(missing)}, which this "
            "campaign's data use needs: choose another document or change the data use.",
            code="consent.scope_not_offered",
            field="consent_version",
            missing_scopes=missing,
        )
    return doc


def diff(session: Session, old_version: str, new_version: str, viewer: User | None = None) -> str:
    """The unified diff between two texts (any two: revisions or languages)."""
    old, new = get_document(session, old_version, viewer), get_document(session, new_version, viewer)
    return unified_diff(old.body, new.body, old.version, new.version)


def text_in(session: Session, family: str, revision: int, language: str) -> ConsentDocument | None:
    """Revision ``revision``'s text in ``language`` (else its original), drafts left out: what to
    compare a text with, so a diff shows what changed rather than a translation."""
    texts = [t for t in revision_texts(session, family, revision) if t.status is not S.draft]
    return next((t for t in texts if t.language == language), texts[0] if texts else None)


def previous_revision(session: Session, doc: ConsentDocument) -> ConsentDocument | None:
    """The text of the revision before ``doc``'s, in its language if there is one."""
    return text_in(session, doc.family, doc.revision - 1, doc.language) if doc.revision > 1 else None


# --- writing ----------------------------------------------------------------------------------------
def _require_author(actor: User | None) -> None:
    if actor is not None:
        policy.require(actor, "consent.author")


def _for_writing(session: Session, actor: User | None, version: str) -> ConsentDocument:
    """The text ``actor`` wants to change, if they may (None: the operator, who may)."""
    doc = get_document(session, version, actor) if actor is not None else None
    doc = doc or session.scalar(sa.select(ConsentDocument).where(ConsentDocument.version == version))
    if doc is None:
        raise NotFound(f"No consent document version {version!r}.", code="consent.document_not_found")
    if actor is not None and not _may_manage(actor, doc):
        raise Forbidden("You may not change this consent document.", code="auth.forbidden", action="consent.manage")
    return doc


def _check_text(session: Session, title: str, body: str, *, other_than: str | None = None) -> str:
    if not title.strip() or len(title) > 200:
        raise InvalidInput("A consent document needs a title (up to 200 characters).", code="consent.bad_document")
    if not body.strip():
        raise InvalidInput("A consent document needs a text.", code="consent.bad_document", field="body")
    digest = text_sha256(body)
    same = session.scalar(sa.select(ConsentDocument.version).where(ConsentDocument.sha256 == digest))
    if same is not None and same != other_than:
        raise Conflict(
            f"This text is exactly the text of {same}: change it first (one text, one document).",
            code="consent.duplicate",
        )
    return digest


def _insert(
    session: Session,
    actor: User | None,
    *,
    version: str,
    family: str,
    revision: int,
    language: str,
    title: str,
    body: str,
    scopes: Sequence[Mapping[str, Any]],
    organization_id: int | None,
) -> ConsentDocument:
    if session.scalar(sa.select(ConsentDocument.id).where(ConsentDocument.version == version)) is not None:
        raise Conflict(f"A consent document {version} exists.", code="consent.duplicate")
    doc = ConsentDocument(
        version=version,
        family=family,
        revision=revision,
        language=language,
        title=title.strip(),
        body=body,
        sha256=_check_text(session, title, body),
        scopes=clean_scopes(scopes),
        status=S.draft,
        organization_id=organization_id,
        created_by=actor.id if actor else None,
        created_at=utcnow(),
    )
    session.add(doc)
    session.flush()
    audit.record(
        session,
        actor,
        "consent.draft_created",
        doc,
        {"version": version, "family": family, "revision": revision, "language": language},
    )
    return doc


def create_draft(
    session: Session,
    actor: User | None,
    *,
    family: str,
    title: str,
    body: str,
    scopes: Sequence[Mapping[str, Any]],
    language: str = "en",
    revision: int | None = None,
) -> ConsentDocument:
    """A new draft: the first revision of a new family, the next revision of an existing one, or
    (with ``revision``) another language version of that revision."""
    _require_author(actor)
    if not FAMILY.match(family) or len(family) > FAMILY_MAX:
        raise InvalidInput(
            f"A document's name has up to {FAMILY_MAX} lower-case letters, digits and hyphens, each part "
            "starting with a letter (e.g. egocrowd-worker).",
            code="consent.bad_family",
            field="family",
        )
    if not LANGUAGE_TAG.match(language):
        raise InvalidInput(
            f"{language!r} is not a language tag like en, fr or pt-BR.", code="consent.bad_language", field="language"
        )
    first = session.scalar(
        sa.select(ConsentDocument).where(ConsentDocument.family == family).order_by(ConsentDocument.id).limit(1)
    )
    if first is None:  # a new family belongs to the author's lab, or to the platform
        if revision not in (None, 1):
            raise NotFound(f"No consent document {family}.", code="consent.document_not_found")
        platform = actor is None or policy.can(actor, "consent.author_platform")
        org_id = None if platform or actor is None else actor.organization_id
        n, version = 1, version_name(family, 1)
    else:
        if actor is not None and not _may_manage(actor, first):
            raise Conflict(
                f"The name {family} is taken by another document.", code="consent.family_taken", field="family"
            )
        org_id = first.organization_id
        if revision is not None:  # another language version of an existing revision
            texts = revision_texts(session, family, revision)
            if not texts:
                raise NotFound(f"No revision {revision} of {family}.", code="consent.document_not_found")
            if any(t.language == language for t in texts):
                raise Conflict(
                    f"Revision {revision} of {family} has a {language} version.",
                    code="consent.duplicate",
                    field="language",
                )
            n, version = revision, version_name(family, revision, language)
        else:
            newest = session.scalar(
                sa.select(ConsentDocument)
                .where(ConsentDocument.family == family)
                .order_by(ConsentDocument.revision.desc(), ConsentDocument.id)
                .limit(1)
            )
            assert newest is not None  # the family exists
            if newest.status is S.draft:
                raise Conflict(
                    f"{newest.version} is still a draft: edit or publish it before starting another revision.",
                    code="consent.draft_exists",
                    version=newest.version,
                )
            n = newest.revision + 1
            version = version_name(family, n)
    return _insert(
        session,
        actor,
        version=version,
        family=family,
        revision=n,
        language=language,
        title=title,
        body=body,
        scopes=scopes,
        organization_id=org_id,
    )


def edit_draft(
    session: Session,
    actor: User | None,
    version: str,
    *,
    title: str | None = None,
    body: str | None = None,
    scopes: Sequence[Mapping[str, Any]] | None = None,
) -> ConsentDocument:
    doc = _for_writing(session, actor, version)
    if doc.status is not S.draft:
        raise Conflict(
            f"{version} is {doc.status.value}: its text is frozen. Start a new revision instead.",
            code="consent.frozen",
        )
    before = {"title": doc.title, "sha256": doc.sha256, "scopes": doc.scopes}
    if title is not None or body is not None:
        doc.sha256 = _check_text(session, title or doc.title, body or doc.body, other_than=doc.version)
        doc.title, doc.body = (title or doc.title).strip(), body or doc.body
    if scopes is not None:
        doc.scopes = clean_scopes(scopes)
    after = {"title": doc.title, "sha256": doc.sha256, "scopes": doc.scopes}
    audit.record(session, actor, "consent.draft_edited", doc, {"version": version, "before": before, "after": after})
    return doc


def _scope_terms(doc: ConsentDocument) -> list[tuple[str, bool]]:
    return sorted((s["id"], bool(s["required"])) for s in doc.scopes)


def publish(session: Session, actor: User | None, version: str) -> ConsentDocument:
    """Freeze a draft. Publishing a revision's original makes it the one every campaign of the family
    requires: workers holding slots there are told to sign again before their next upload. A
    language version is published after its original, with the same choices (labels translated)."""
    doc = _for_writing(session, actor, version)
    if doc.status is not S.draft:
        raise Conflict(f"{version} is already {doc.status.value}.", code="consent.not_draft")
    original = revision_texts(session, doc.family, doc.revision)[0]
    if original.id != doc.id:
        if original.status is not S.published:
            raise Conflict(
                f"Publish the original {original.version} before its language versions.",
                code="consent.original_unpublished",
            )
        if _scope_terms(original) != _scope_terms(doc):
            raise Conflict(
                f"A language version asks for the same choices as {original.version} (only the labels are translated).",
                code="consent.scopes_differ",
            )
    doc.status = S.published
    doc.published_at = utcnow()
    asked = _ask_to_sign_again(session, doc) if original.id == doc.id and doc.revision > 1 else 0
    audit.record(
        session,
        actor,
        "consent.document_published",
        doc,
        {"version": version, "sha256": doc.sha256, "revision": doc.revision, "asked_to_sign_again": asked},
    )
    return doc


def workers_to_ask(session: Session, family: str) -> list[int]:
    """Workers holding a slot (an active assignment) in a campaign that names ``family``."""
    versions = sa.select(ConsentDocument.version).where(ConsentDocument.family == family)
    return list(
        session.scalars(
            sa.select(Assignment.worker_id)
            .join(Campaign, Campaign.id == Assignment.campaign_id)
            .where(Assignment.status == AssignmentStatus.active, Campaign.consent_version.in_(versions))
            .distinct()
            .order_by(Assignment.worker_id)
        )
    )


def _ask_to_sign_again(session: Session, doc: ConsentDocument) -> int:
    workers = workers_to_ask(session, doc.family)
    for worker_id in workers:
        notifications.notify(
            session,
            worker_id,
            "consent.new_version",
            N_("Please read and sign the new consent: {title} (revision {revision})"),
            N_(
                "The consent for your open slots changed. Read what changed and sign the new revision before your "
                "next upload; until then uploads are paused. You may also give your slots back."
            ),
            f"/consent/{doc.version}",
            params={"title": doc.title, "revision": doc.revision},
        )
    return len(workers)


def retire(session: Session, actor: User | None, version: str) -> ConsentDocument:
    """Take a text out of use (or discard a draft). Signatures keep pointing at it; if it was the
    newest published revision, the revision before it becomes the required one again."""
    doc = _for_writing(session, actor, version)
    if doc.status is S.retired:
        raise Conflict(f"{version} is already retired.", code="consent.not_draft")
    before = doc.status
    doc.status = S.retired
    audit.record(session, actor, "consent.document_retired", doc, {"version": version, "from": before.value})
    return doc


def create_document(
    session: Session,
    *,
    version: str,
    title: str,
    body: str,
    scopes: Sequence[Mapping[str, Any]],
    actor: User | None = None,
) -> ConsentDocument:
    """Publish a text at once under an explicit version, as its own family (seeding and tests;
    documents written in the app go through :func:`create_draft` and :func:`publish`)."""
    if not version or len(version) > 40:
        raise InvalidInput("A consent document needs a version (up to 40 characters).", code="consent.bad_document")
    doc = _insert(
        session,
        actor,
        version=version,
        family=version,
        revision=1,
        language="en",
        title=title,
        body=body,
        scopes=scopes,
        organization_id=None,
    )
    return publish(session, actor, doc.version)

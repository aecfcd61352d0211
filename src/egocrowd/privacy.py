"""A person's rights over their data (GDPR articles 15, 17 and 20): a copy of everything about
them, and deleting their account.

Here, above ``campaigns``: deleting an account withdraws its consents, which releases slots.

- :func:`collect_personal_data` gathers the rows (secrets such as password and token hashes left
  out) and the clip files to include: consents with the sha256 of the text signed, clips with their
  hash and state, the releases that contain each clip and the labs licensed to use them, every
  payment to or from the person's accounts in the ledger (issue #13, "workers' view"); :func:`write_export` writes them as one ZIP, copying each
  clip from the blob store in chunks (never whole in memory). A clip's file in the export is its
  de-identified video (issue #9): raw footage may show other people (family, passers-by, screens),
  whose data is not the worker's to take away; a clip without a finished de-identified video is
  exported as its record only, and the export says so.
- :func:`delete_account` withdraws every active consent (the slots they cover are released at once),
  releases any other open slot, ends every session, revokes every token, masks the payout methods'
  account references and blanks the personal fields. Clips already sent stay, carrying their consent's withdrawal time: releases cut after it
  leave them out, as for any withdrawal. Their de-identified videos (what labs download) are
  deleted once the deletion commits: nothing new of the person leaves after it.
"""

from __future__ import annotations

import enum
import json
import shutil
import zipfile
from datetime import datetime
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import organizations
from egocrowd.accounts import service as accounts
from egocrowd.blobs import Blobs
from egocrowd.campaigns import assignments
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    AccessState,
    ApiToken,
    Assignment,
    AssignmentStatus,
    AuditEvent,
    Clip,
    ConsentRecord,
    DeidStatus,
    Derivative,
    LedgerAccount,
    LedgerEntry,
    LedgerTransaction,
    LoginSession,
    Notification,
    Organization,
    OrgRole,
    PayoutMethod,
    Release,
    ReleaseAccess,
    ReleaseClip,
    ReleaseStatus,
    Role,
    User,
)
from egocrowd.errors import Forbidden
from egocrowd.pay import payouts
from egocrowd.pay.money import Money
from egocrowd.pipeline.stages import ACCOUNT_DELETED

FORMAT_VERSION = 2  # 2: payments, and the releases and licensed labs of each clip
#: Columns never exported: secrets (hashes of passwords and tokens) are not personal data to hand out.
_SECRET = {"password_hash", "token_hash", "secret_hash"}


def _row(obj: Any, **extra: Any) -> dict[str, Any]:
    out = {c.key: getattr(obj, c.key) for c in sa.inspect(obj).mapper.column_attrs if c.key not in _SECRET}
    return {**out, **extra}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"not JSON: {type(value).__name__}")


NO_FILE = (
    "Not included: this clip has no finished de-identified video yet, and the original footage may show "
    "other people. Ask again once it is de-identified."
)


def _exported_file(session: Session, c: Clip) -> tuple[str, str] | None:
    """(name in the ZIP, blob sha256) of the clip's de-identified video, or None when it has none."""
    if c.derived_id is None or c.deid_status is not DeidStatus.clean:
        return None
    d = session.get(Derivative, c.derived_id)
    return (f"clips/{c.id}-deidentified.mp4", d.sha256) if d is not None else None


def _payments(session: Session, user: User) -> list[dict[str, Any]]:
    """Every ledger entry on the person's own accounts (earnings, in every currency), oldest first."""
    q = (
        sa.select(LedgerEntry, LedgerTransaction, LedgerAccount)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .where(LedgerAccount.user_id == user.id)
        .order_by(LedgerEntry.id)
    )
    return [
        {
            "entry_id": e.id,
            "transaction_id": t.id,
            "at": t.at,
            "kind": t.kind.value,
            "account": a.kind.value,
            "amount": Money(e.amount, a.currency).format(),
            "currency": a.currency,
            "reason": t.reason,
            "refs": t.refs,
        }
        for e, t, a in session.execute(q)
    ]


def _releases_by_clip(session: Session, clip_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """For each clip, the published releases that contain it and the labs licensed to use each."""
    out: dict[int, list[dict[str, Any]]] = {}
    if not clip_ids:
        return out
    rows = session.execute(
        sa.select(ReleaseClip.clip_id, Release, Organization.name)
        .join(Release, Release.id == ReleaseClip.release_id)
        .join(Organization, Organization.id == Release.organization_id)
        .where(ReleaseClip.clip_id.in_(clip_ids), Release.status == ReleaseStatus.published)
        .order_by(Release.published_at, Release.id)
    ).all()
    buyers: dict[int, list[str]] = {}
    release_ids = {r.id for _, r, _ in rows}
    if release_ids:
        for rid, name in session.execute(
            sa.select(ReleaseAccess.release_id, Organization.name)
            .join(Organization, Organization.id == ReleaseAccess.organization_id)
            .where(ReleaseAccess.release_id.in_(release_ids), ReleaseAccess.state == AccessState.granted)
            .order_by(Organization.name)
        ):
            buyers.setdefault(rid, []).append(name)
    for clip_id, r, lab in rows:
        out.setdefault(clip_id, []).append(
            {
                "release_id": r.id,
                "name": r.name,
                "version": r.version,
                "published_at": r.published_at,
                "root_hash": r.root_hash,
                "published_by": lab,
                "licence": (r.licence or {}).get("name"),
                "allowed_uses": (r.licence or {}).get("uses", []),
                "licensed_to": buyers.get(r.id, []),
            }
        )
    return out


def collect_personal_data(session: Session, user: User) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(everything about ``user`` as JSON-ready data, [(name in the ZIP, blob sha256)] of their own
    clips' de-identified videos). Audited as ``user.data_exported``."""

    def rows(model, *where, order=None) -> list[Any]:
        return list(session.scalars(sa.select(model).where(*where).order_by(order or model.id)))

    consents = rows(ConsentRecord, ConsentRecord.user_id == user.id)
    clips = rows(Clip, Clip.worker_id == user.id)
    per_clip = [_exported_file(session, c) for c in clips]
    files = [f for f in per_clip if f is not None]
    releases = _releases_by_clip(session, [c.id for c in clips])
    data = {
        "format_version": FORMAT_VERSION,
        "exported_at": utcnow(),
        "profile": _row(user, organization=user.organization.name if user.organization else None),
        "consents": [
            # the language of the text signed (a column, named here so it stays in the export by design)
            _row(r, document_version=r.document.version, document_title=r.document.title, language=r.language)
            for r in consents
        ],
        "assignments": [
            _row(a, campaign_title=a.campaign.title) for a in rows(Assignment, Assignment.worker_id == user.id)
        ],
        "clips": [
            _row(
                c,
                file=f[0] if f else None,
                buyer=c.campaign.buyer_name,
                releases=releases.get(c.id, []),
                **({} if f else {"file_note": NO_FILE}),
            )
            for c, f in zip(clips, per_clip, strict=True)
        ],
        "payments": _payments(session, user),
        "payout_methods": [_row(m) for m in rows(PayoutMethod, PayoutMethod.user_id == user.id)],
        "notifications": [_row(n) for n in rows(Notification, Notification.user_id == user.id)],
        "sessions": [_row(s) for s in rows(LoginSession, LoginSession.user_id == user.id)],
        "api_tokens": [_row(t) for t in rows(ApiToken, ApiToken.user_id == user.id)],
        "audit_events": [
            _row(e)
            for e in rows(
                AuditEvent,
                sa.or_(
                    AuditEvent.actor_id == user.id,
                    sa.and_(AuditEvent.entity_type == "user", AuditEvent.entity_id == str(user.id)),
                ),
            )
        ],
    }
    audit.record(
        session,
        user,
        "user.data_exported",
        user,
        {"clips": len(clips), "clip_files": len(files), "consents": len(consents)},
    )
    return data, files


def write_export(out: BinaryIO, data: dict[str, Any], files: list[tuple[str, str]], blobs: Blobs) -> None:
    """The ZIP: ``data.json``, a short README, and each clip file (stored: video is compressed already)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.json", json.dumps(data, default=_json_default, indent=2, ensure_ascii=False))
        zf.writestr(
            "README.txt",
            "Everything egocrowd holds about you: data.json (your profile, consents with the sha256 and language "
            "of the text you signed and the scopes you chose, slots, clips with their sha256, state and checks, the campaign's "
            "buyer, the dataset releases that contain each clip and the labs licensed to use them, every payment "
            "to or from your earnings, where your payouts go, notices, sessions, tokens and the audit events about you or made by you) and, under clips/, the de-identified video of each clip "
            "you uploaded: other people's faces, readable text and voices hidden, as labs receive it. The original "
            "footage is not included because it may show other people; a clip without a finished de-identified "
            "video is listed in data.json (with a file_note) but has no file here.\n",
        )
        for name, sha256 in files:
            if not blobs.exists(sha256):  # a clip whose file was already removed
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_STORED
            with blobs.open(sha256) as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)


def delete_account(session: Session, user: User, blobs: Blobs | None = None) -> None:
    """Delete ``user``'s own account (see the module's docstring for what happens). Admins, and the
    last owner of a lab, are refused (403 ``user.cannot_delete``): someone must keep running it.
    With ``blobs``, the de-identified videos of their clips are deleted after the commit."""
    if user.role is Role.admin:
        raise Forbidden(
            "Admin accounts cannot be deleted this way. Ask another admin to remove your admin role first.",
            code="user.cannot_delete",
        )
    if (
        user.role is Role.requester
        and user.org_role is OrgRole.owner
        and user.organization_id is not None
        and not organizations.has_another_owner(session, user.organization_id, user)
    ):
        raise Forbidden(
            "You are the last owner of your lab. Make another member an owner first.", code="user.cannot_delete"
        )
    for rec in session.scalars(
        sa.select(ConsentRecord).where(ConsentRecord.user_id == user.id, ConsentRecord.withdrawn_at.is_(None))
    ).all():
        assignments.withdraw_consent(session, user, rec.id)
    for a in session.scalars(
        sa.select(Assignment).where(Assignment.worker_id == user.id, Assignment.status == AssignmentStatus.active)
    ).all():
        assignments.release(session, user, a, reason="account_deleted")
    shas = _drop_derived(session, user)
    payouts.forget_methods(session, user)  # masked; a batch on its way still pays them
    accounts.blank_account(session, user)
    if blobs is not None and shas:
        # Files go only once the rows no longer point at them: a rolled-back deletion keeps both.
        sa.event.listen(session, "after_commit", lambda _s: _delete_blobs(blobs, shas), once=True)


def _drop_derived(session: Session, user: User) -> set[str]:
    """Unlink the de-identified videos of ``user``'s clips (the clip then says it has none, reason
    ``account.deleted``); returns the blobs to delete (the Derivative rows stay for the record)."""
    # a render under way too: its result is then never linked (pipeline.stages, ACCOUNT_DELETED)
    has_copy = sa.or_(Clip.derived_id.is_not(None), Clip.deid_status == DeidStatus.pending)
    clips = list(session.scalars(sa.select(Clip).where(Clip.worker_id == user.id, has_copy)))
    if not clips:
        return set()
    shas = set(session.scalars(sa.select(Derivative.sha256).where(Derivative.clip_id.in_([c.id for c in clips]))))
    for c in clips:
        c.derived_id, c.deid_status, c.deid_reason = None, DeidStatus.failed, ACCOUNT_DELETED
    session.flush()
    # Content-addressed: a render of another person's clip with the very same bytes keeps its blob.
    shas -= set(
        session.scalars(
            sa.select(Derivative.sha256).join(Clip, Clip.derived_id == Derivative.id).where(Derivative.sha256.in_(shas))
        )
    )
    audit.record(session, user, "user.derived_media_deleted", user, {"clips": [c.id for c in clips]})
    return shas


def _delete_blobs(blobs: Blobs, shas: set[str]) -> None:
    for sha in shas:
        blobs.delete(sha)

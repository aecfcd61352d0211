"""A person's rights over their data (GDPR articles 15, 17 and 20): a copy of everything about
them, and deleting their account.

Here, above ``campaigns``: deleting an account withdraws its consents, which releases slots.

- :func:`collect_personal_data` gathers the rows (secrets such as password and token hashes left
  out) and the clip files to include; :func:`write_export` writes them as one ZIP, copying each
  clip from the blob store in chunks (never whole in memory).
- :func:`delete_account` withdraws every active consent (the slots they cover are released at once),
  releases any other open slot, ends every session, revokes every token and blanks the personal
  fields. Clips already sent stay, carrying their consent's withdrawal time: releases cut after it
  leave them out, as for any withdrawal.
"""

from __future__ import annotations

import enum
import json
import shutil
import zipfile
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import organizations
from egocrowd.accounts import service as accounts
from egocrowd.blobs import BlobStore
from egocrowd.campaigns import assignments
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    ApiToken,
    Assignment,
    AssignmentStatus,
    AuditEvent,
    Clip,
    ConsentRecord,
    LoginSession,
    Notification,
    OrgRole,
    Role,
    User,
)
from egocrowd.errors import Forbidden

FORMAT_VERSION = 1
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


def collect_personal_data(session: Session, user: User) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(everything about ``user`` as JSON-ready data, [(name in the ZIP, blob sha256)] of their own
    clips' original files). Audited as ``user.data_exported``."""

    def rows(model, *where, order=None) -> list[Any]:
        return list(session.scalars(sa.select(model).where(*where).order_by(order or model.id)))

    consents = rows(ConsentRecord, ConsentRecord.user_id == user.id)
    clips = rows(Clip, Clip.worker_id == user.id)
    files = [(f"clips/{c.id}{PurePosixPath(c.original_name).suffix[:10]}", c.sha256) for c in clips]
    data = {
        "format_version": FORMAT_VERSION,
        "exported_at": utcnow(),
        "profile": _row(user, organization=user.organization.name if user.organization else None),
        "consents": [_row(r, document_version=r.document.version, document_title=r.document.title) for r in consents],
        "assignments": [
            _row(a, campaign_title=a.campaign.title) for a in rows(Assignment, Assignment.worker_id == user.id)
        ],
        "clips": [_row(c, file=name) for c, (name, _) in zip(clips, files, strict=True)],
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
    audit.record(session, user, "user.data_exported", user, {"clips": len(clips), "consents": len(consents)})
    return data, files


def write_export(out: BinaryIO, data: dict[str, Any], files: list[tuple[str, str]], blobs: BlobStore) -> None:
    """The ZIP: ``data.json``, a short README, and each clip file (stored: video is compressed already)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.json", json.dumps(data, default=_json_default, indent=2, ensure_ascii=False))
        zf.writestr(
            "README.txt",
            "Everything egocrowd holds about you: data.json (your profile, consents with the sha256 of the text "
            "you signed and the scopes you chose, slots, clips with their checks, notices, sessions, tokens and "
            "the audit events about you or made by you) and, under clips/, the files you uploaded.\n",
        )
        for name, sha256 in files:
            if not blobs.exists(sha256):  # a clip whose file was already removed
                continue
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_STORED
            with blobs.open(sha256) as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, 1024 * 1024)


def delete_account(session: Session, user: User) -> None:
    """Delete ``user``'s own account (see the module's docstring for what happens). Admins, and the
    last owner of a lab, are refused (403 ``user.cannot_delete``): someone must keep running it."""
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
    accounts.blank_account(session, user)

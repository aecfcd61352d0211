"""Who gets which bytes of a clip (issue #9).

- The **derived** (de-identified) video: the clip's worker, its campaign's lab, reviewers and admins
  (policy ``clip.view_derived``), only once it is ready: ``deid_status`` clean, or ``review`` for
  reviewers and admins (who are the ones looking). Anything else is 409 ``clip.not_deidentified``
  saying where the clip stands.
- The **raw** upload: admins only, each time with a reason (at least 10 characters). Asking for it
  (:func:`grant_raw`) writes ``clip.raw_link_issued`` and returns a short-lived signed token bound to
  the admin and the clip; the first GET with that token writes ``clip.raw_accessed`` (with the
  reason) before any byte is served, once per token, not once per range request of the player.
- A **withdrawn** clip's media: admins only until its blobs are purged, then nobody (410
  ``clip.withdrawn``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session, object_session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.db.models import AuditEvent, Clip, ClipStatus, DeidStatus, Derivative, Role, User, Withdrawal
from egocrowd.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from egocrowd.pipeline.stages import ACCOUNT_DELETED

RAW_REASON_MIN = 10
RAW_REASON_MAX = 500
RAW_TOKEN_SECONDS = 300  # a raw link lives 5 minutes
_SALT = "egocrowd-raw-media"

#: where a clip stands, in words, when there is nothing derived to show (or not to this person)
_STANDING = {
    None: "it has not been de-identified (only clips that passed the checks are)",
    DeidStatus.pending: "it is being de-identified right now; try again in a few minutes",
    DeidStatus.review: "a reviewer is checking its redaction",
    DeidStatus.failed: "de-identification failed",
}
#: a failed clip as its worker and lab read it: the reason code is for those who fix it (reviewers, admins)
_FAILED_PLAIN = "we could not finish hiding the faces in this clip yet; we are on it"
_FAILED_WORDS = {ACCOUNT_DELETED: "the worker who recorded it deleted their account, so no copy of it is shown"}


@dataclass(frozen=True)
class MediaFile:
    """A blob to serve: its hash in the blob store, its type and a download name."""

    sha256: str
    mime_type: str
    filename: str


def find_clip(session: Session, user: User, clip_id: int) -> Clip:
    """The clip if ``user`` may see its derived video (reviewers see every clip here), else 404."""
    clip = session.get(Clip, clip_id)
    if clip is None or not policy.can(user, "clip.view_derived", clip):
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    return clip


def _purged(session: Session | None, clip: Clip) -> bool:
    return session is not None and (
        session.scalar(sa.select(Withdrawal.id).where(Withdrawal.clip_id == clip.id, Withdrawal.purged_at.is_not(None)))
        is not None
    )


def derived_ready_for(user: User, clip: Clip) -> bool:
    """Whether ``user`` may watch ``clip``'s derived video now (the status rule of the module doc)."""
    if clip.derived_id is None:
        return False
    if clip.status is ClipStatus.withdrawn and (user.role is not Role.admin or _purged(object_session(clip), clip)):
        return False
    if clip.deid_status is DeidStatus.clean:
        return True
    return clip.deid_status is DeidStatus.review and user.role in (Role.admin, Role.reviewer)


def not_deidentified(user: User, clip: Clip) -> Conflict:
    """Where ``clip`` stands, for ``user``: reviewers and admins read the failure's reason code,
    the clip's worker and lab plain words."""
    status = clip.deid_status
    words = _STANDING.get(status, "it is not ready")
    if clip.status is ClipStatus.withdrawn:
        words = "it was withdrawn (its worker withdrew consent, or an admin removed it), so it is no longer shown"
    staff = policy.can(user, "clip.review_redaction")
    extra: dict[str, str | None] = {"deid_status": status.value if status else None}
    if staff:
        extra["deid_reason"] = clip.deid_reason
        if status is DeidStatus.failed and clip.deid_reason:
            words += f" ({clip.deid_reason})"
    elif status is DeidStatus.failed:
        words = _FAILED_WORDS.get(clip.deid_reason or "", _FAILED_PLAIN)
    if status is None and clip.status in (ClipStatus.qc_failed, ClipStatus.rejected, ClipStatus.error):
        # never "yet": a clip that failed the checks is never de-identified, so never shown
        words = "it did not pass the checks, and only clips that pass are de-identified (the copy others may watch)"
        return Conflict(f"Clip {clip.id} has no video to show: {words}.", code="clip.not_deidentified", **extra)
    return Conflict(f"Clip {clip.id} has no video to show yet: {words}.", code="clip.not_deidentified", **extra)


def refuse_withdrawn(session: Session, user: User, clip: Clip) -> None:
    """A withdrawn clip's media (releases.withdrawals) goes to admins only, and to nobody once its
    blobs were purged: 410 ``clip.withdrawn`` for everyone else."""
    if clip.status is not ClipStatus.withdrawn:
        return
    w = session.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == clip.id))
    purged = w is not None and w.purged_at is not None
    if purged or user.role is not Role.admin:
        raise Gone(
            f"Clip {clip.id} was withdrawn"
            + (" and its media deleted." if purged else ": its media is no longer shown."),
            code="clip.withdrawn",
            purged=purged,
        )


def derived_file(session: Session, user: User, clip_id: int, blobs) -> MediaFile:
    """The derived video of ``clip_id`` for ``user`` (or 404/409/410, see the module doc)."""
    clip = find_clip(session, user, clip_id)
    refuse_withdrawn(session, user, clip)
    if not derived_ready_for(user, clip):
        raise not_deidentified(user, clip)
    d = session.get(Derivative, clip.derived_id)
    if d is None or not blobs.exists(d.sha256):
        raise Conflict(f"Clip {clip.id}'s derived video is missing from storage.", code="clip.derived_missing")
    return MediaFile(d.sha256, d.mime_type or "video/mp4", f"clip-{clip.id}.mp4")


# --- raw media --------------------------------------------------------------------------------------
def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def clean_reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if len(text) < RAW_REASON_MIN:
        raise InvalidInput(
            f"Say why you need the original footage (at least {RAW_REASON_MIN} characters): it is written to "
            "the audit log.",
            code="clip.raw_reason_required",
            field="reason",
        )
    return text[:RAW_REASON_MAX]


def grant_raw(session: Session, admin: User, clip_id: int, reason: str | None, *, secret: str) -> str:
    """A token for :func:`raw_file` (admins only, with a reason); audited ``clip.raw_link_issued``."""
    policy.require(admin, "clip.view_raw")
    text = clean_reason(reason)
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    nonce = secrets.token_urlsafe(12)
    audit.record(session, admin, "clip.raw_link_issued", clip, {"reason": text, "token": nonce})
    # The reason stays out of the link (links end up in browser history and proxy logs): the first
    # use of the link reads it back from the event written here.
    return _serializer(secret).dumps({"c": clip.id, "u": admin.id, "n": nonce})


def _read_token(token: str, secret: str) -> dict:
    try:
        data = _serializer(secret).loads(token, max_age=RAW_TOKEN_SECONDS)
    except SignatureExpired:
        raise Forbidden(
            "This link to the original footage expired (links last 5 minutes): ask for a new one.",
            code="clip.raw_link_expired",
        ) from None
    except BadSignature:
        raise Forbidden("This link to the original footage is not valid.", code="clip.raw_link_invalid") from None
    if not isinstance(data, dict) or not {"c", "u", "n"} <= set(data):
        raise Forbidden("This link to the original footage is not valid.", code="clip.raw_link_invalid")
    return data


def raw_file(session: Session, admin_id: int, clip_id: int, token: str | None, blobs, *, secret: str) -> MediaFile:
    """The raw upload for the admin the token was issued to; the token's first use is audited as
    ``clip.raw_accessed`` in ``session``'s (write) transaction, before anything is served.
    (``admin_id``: the caller was authenticated in a read-only unit; this is the write after it.)"""
    admin = session.get(User, admin_id)
    policy.require(admin, "clip.view_raw")
    assert admin is not None
    data = _read_token(token or "", secret)
    if data["c"] != clip_id or data["u"] != admin.id:
        raise Forbidden("This link was issued for another clip or another admin.", code="clip.raw_link_invalid")
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    refuse_withdrawn(session, admin, clip)
    issued = _events(session, clip.id, "clip.raw_link_issued", data["n"])
    if not issued:  # signed by us but never recorded (a rolled-back grant): not a valid link
        raise Forbidden("This link to the original footage is not valid.", code="clip.raw_link_invalid")
    if not _events(session, clip.id, "clip.raw_accessed", data["n"]):
        audit.record(session, admin, "clip.raw_accessed", clip, {"reason": issued[0]["reason"], "token": data["n"]})
    if not blobs.exists(clip.sha256):
        raise Conflict(f"Clip {clip.id}'s original file is missing from storage.", code="clip.raw_missing")
    suffix = Path(clip.original_name).suffix.lower()
    return MediaFile(clip.sha256, _RAW_TYPES.get(suffix, "application/octet-stream"), f"clip-{clip.id}{suffix}")


_RAW_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm"}


def _events(session: Session, clip_id: int, action: str, nonce: str) -> list[dict]:
    """The payloads of ``action`` events on the clip for this link. A clip has few raw accesses:
    reading them beats a JSON path query that differs per database."""
    payloads = session.scalars(
        sa.select(AuditEvent.payload).where(
            AuditEvent.action == action,
            AuditEvent.entity_type == "clip",
            AuditEvent.entity_id == str(clip_id),
        )
    )
    return [p for p in payloads if p.get("token") == nonce]


__all__ = [
    "MediaFile",
    "RAW_TOKEN_SECONDS",
    "derived_file",
    "derived_ready_for",
    "find_clip",
    "grant_raw",
    "not_deidentified",
    "raw_file",
    "refuse_withdrawn",
]

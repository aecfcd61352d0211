"""Reviewing a clip's redaction (issue #9): the queue, the plan to draw, reviewers' corrections.

A correction (``RedactionEdit``) is applied by every later render until withdrawn:
- ``add``: a box (fractions 0–1 of the frame) over an inclusive frame range the detectors missed;
- ``false``: a track of the current render that is not private (it is left unblurred);
- ``keep``: the wearer's own face, kept visible — only when the campaign's data use keeps faces
  (``keep_face``) and the worker's consent covers it.

Corrections are accepted only while the clip is in review (``deid_status = review``), each one
audited ``clip.redaction_edited``. A re-render queues the ``deidentify`` stage again; "Mark
reviewed" turns review into clean once the latest render includes every active correction; the
first to do so is recorded on the clip and, when a platform reviewer and the campaign pays for
redaction review, paid (egocrowd.pay.redaction).
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.clips import deid
from egocrowd.clock import utcnow
from egocrowd.consent.signatures import require_cover
from egocrowd.db.models import Clip, ClipStatus, DeidStatus, Derivative, RedactionEdit, RedactionKind, User
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.pay import redaction as redaction_pay
from egocrowd.pipeline.runner import enqueue
from egocrowd.pipeline.stages import render_edit

NOTE_MAX = 500
_PLAN_KEYS = ("format", "width", "height", "frames", "tracks")


def review_queue(session: Session, user: User, *, limit: int = 200) -> list[Clip]:
    """Clips waiting for a person to look at their redaction, the longest waiting first."""
    policy.require(user, "clip.review_redaction")
    q = (
        sa.select(Clip)
        .where(Clip.deid_status == DeidStatus.review)
        .order_by(Clip.updated_at, Clip.id)
        .limit(min(max(limit, 1), 500))
    )
    return list(session.scalars(q))


def get_clip(session: Session, user: User, clip_id: int) -> Clip:
    policy.require(user, "clip.review_redaction")
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    return clip


def frame_times(d: Derivative) -> list[float]:
    """Each frame's time in seconds: the render's own (``summary.frame_times``), else spread evenly
    over the clip's duration (a render that predates them)."""
    times = (d.summary or {}).get("frame_times")
    if isinstance(times, list) and times:
        return [float(t) for t in times]
    frames = int((d.regions or {}).get("frames") or (d.summary or {}).get("frames") or 0)
    seconds = float((d.summary or {}).get("seconds") or 0)
    if frames <= 0:
        return []
    step = seconds / frames if seconds > 0 else 1 / 30
    return [round(i * step, 3) for i in range(frames)]


def _frames(d: Derivative) -> int:
    return int((d.regions or {}).get("frames") or len(frame_times(d)))


def edit_dict(e: RedactionEdit) -> dict[str, Any]:
    return {
        **render_edit(e),
        "derivative_id": e.derivative_id,
        "note": e.note,
        "created_by": e.created_by,
        "created_at": e.created_at,
        "withdrawn_at": e.withdrawn_at,
    }


def list_edits(session: Session, clip: Clip) -> list[RedactionEdit]:
    return list(
        session.scalars(sa.select(RedactionEdit).where(RedactionEdit.clip_id == clip.id).order_by(RedactionEdit.id))
    )


def plan(session: Session, user: User, clip_id: int) -> dict[str, Any]:
    """What the review page draws: the current render's tracks, frame times and every correction."""
    clip = get_clip(session, user, clip_id)
    d = session.get(Derivative, clip.derived_id) if clip.derived_id else None
    return {
        "clip_id": clip.id,
        "deid_status": clip.deid_status.value if clip.deid_status else None,
        "deid_reason": clip.deid_reason,
        "derivative_id": d.id if d else None,
        # the render's plan (what the video shows); its automatic plan and statistics stay server-side
        "plan": {k: d.regions[k] for k in _PLAN_KEYS if k in d.regions} if d and d.regions else None,
        "frame_times": frame_times(d) if d else [],
        "params": d.params if d else {},
        "summary": {k: v for k, v in (d.summary or {}).items() if k != "frame_times"} if d else {},
        "edits": [edit_dict(e) for e in list_edits(session, clip)],
        "keep_face_allowed": keep_face_allowed(session, clip),
        "up_to_date": d is not None and includes_active_edits(session, clip, d),
    }


def keep_face_allowed(session: Session, clip: Clip) -> bool:
    try:
        _check_keep(session, clip)
    except Forbidden:
        return False
    return True


def _check_keep(session: Session, clip: Clip) -> None:
    """The wearer's face may be kept only if the campaign keeps faces and the worker agreed to it."""
    if not (clip.campaign.data_use or {}).get("keep_face"):
        raise Forbidden(
            "This campaign does not keep the wearer's face: it is always blurred.",
            code="consent.missing",
            scope="face_visible",
        )
    worker = session.get(User, clip.worker_id)
    try:
        if worker is None:
            raise Forbidden("The worker's account is gone.", code="consent.missing")
        require_cover(session, worker, clip.campaign)
    except Forbidden:
        raise Forbidden(
            "The worker's consent does not cover keeping their face visible, so it stays blurred.",
            code="consent.missing",
            scope="face_visible",
        ) from None


def _in_review(session: Session, user: User, clip_id: int, *, lock: bool = True) -> tuple[Clip, Derivative]:
    policy.require(user, "clip.review_redaction")
    q = sa.select(Clip).where(Clip.id == clip_id)
    clip = session.scalar(q.with_for_update() if lock else q)
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    if clip.deid_status is not DeidStatus.review or clip.derived_id is None:
        now = "being re-rendered" if clip.deid_status is DeidStatus.pending else "not in review"
        raise Conflict(
            f"Clip {clip.id} is {now}: its redaction can be corrected only while it is in review.",
            code="redaction.not_in_review",
            deid_status=clip.deid_status.value if clip.deid_status else None,
        )
    d = session.get(Derivative, clip.derived_id)
    assert d is not None  # a foreign key
    return clip, d


def _box(box: Any) -> list[float]:
    bad = InvalidInput(
        "The box must be four numbers x0, y0, x1, y1 between 0 and 1 (fractions of the picture) with "
        "x0 < x1 and y0 < y1.",
        code="redaction.bad_box",
        field="box",
    )
    if not isinstance(box, list | tuple) or len(box) != 4:
        raise bad
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise bad from None
    if not all(math.isfinite(v) and 0 <= v <= 1 for v in (x0, y0, x1, y1)) or x1 - x0 < 0.002 or y1 - y0 < 0.002:
        raise bad
    return [round(v, 5) for v in (x0, y0, x1, y1)]


def reviewer_edit(source: str | None) -> int | None:
    """The correction a track of a stored plan came from (its source is ``reviewer:<edit id>``,
    written by media.deid.render.apply_edits), or None for a detector's track. Read here rather than
    imported: loading the media stack into the web process costs ~350 ms and OpenCV's threads."""
    kind, _, edit = (source or "").partition(":")
    return int(edit) if kind == "reviewer" and edit.isdigit() else None


def _track(plan: dict[str, Any], track_id: Any) -> dict[str, Any]:
    for t in plan.get("tracks", []):
        if t.get("id") == track_id:
            if reviewer_edit(t.get("source")) is not None:
                raise InvalidInput(
                    "This region was added by a reviewer: withdraw that correction instead.",
                    code="redaction.reviewer_track",
                    field="track_id",
                )
            return t
    raise InvalidInput(f"The current render has no track {track_id}.", code="redaction.unknown_track", field="track_id")


def add_edit(
    session: Session,
    user: User,
    clip_id: int,
    *,
    kind: str,
    box: Any = None,
    frame_start: int | None = None,
    frame_end: int | None = None,
    track_id: int | None = None,
    note: str = "",
) -> RedactionEdit:
    """Store one correction (see the module doc); audited ``clip.redaction_edited``."""
    clip, d = _in_review(session, user, clip_id)
    try:
        k = RedactionKind(kind)
    except ValueError:
        raise InvalidInput("kind must be add, false or keep.", code="redaction.bad_kind", field="kind") from None
    frames = _frames(d)
    edit = RedactionEdit(
        clip_id=clip.id, derivative_id=d.id, kind=k, note=(note or "").strip()[:NOTE_MAX], created_by=user.id
    )
    if k is RedactionKind.add:
        edit.box = _box(box)
        start, end = frame_start, frame_end
        if start is None or end is None or not (0 <= start <= end < frames):
            raise InvalidInput(
                f"The frame range must lie inside the clip: 0 ≤ start ≤ end ≤ {frames - 1}.",
                code="redaction.bad_frames",
                field="frame_start",
                frames=frames,
            )
        edit.frame_start, edit.frame_end = start, end
    else:
        t = _track(d.regions or {}, track_id)
        if k is RedactionKind.keep:
            if t.get("category") != "face":
                raise InvalidInput("Only a face can be kept.", code="redaction.keep_not_face", field="track_id")
            _check_keep(session, clip)
        seen = [int(b[0]) for b in t.get("boxes", [])] or [0]
        edit.track_id, edit.frame_start, edit.frame_end = t["id"], min(seen), max(seen)
    session.add(edit)
    audit.record(session, user, "clip.redaction_edited", clip, {"action": "add", **edit_dict(edit)})
    return edit


def withdraw_edit(session: Session, user: User, clip_id: int, edit_id: int) -> RedactionEdit:
    clip, _ = _in_review(session, user, clip_id)
    edit = session.get(RedactionEdit, edit_id)
    if edit is None or edit.clip_id != clip.id:
        raise NotFound(f"Clip {clip.id} has no correction {edit_id}.", code="redaction.edit_not_found")
    if edit.withdrawn_at is None:
        edit.withdrawn_at = utcnow()
        audit.record(session, user, "clip.redaction_edited", clip, {"action": "withdraw", **edit_dict(edit)})
    return edit


def includes_active_edits(session: Session, clip: Clip, d: Derivative) -> bool:
    """Whether render ``d`` shows the corrections as they are now: it applied exactly the active
    ones (``params.edits``, the ids the deidentify stage passed to the renderer)."""
    active = {e.id for e in list_edits(session, clip) if e.withdrawn_at is None}
    return {int(i) for i in (d.params or {}).get("edits") or []} == active


def request_deidentify(session: Session, user: User, clip_id: int, reason: str = "rerender") -> Clip:
    """Queue the ``deidentify`` stage for a clip: a re-render with the corrections, or a QC-failed
    clip a reviewer wants to see (clips.deid.request_deidentify: audited ``clip.deid_requested``).
    A person asked, so the new render comes back to the review queue; the clip shows ``pending``."""
    policy.require(user, "clip.review_redaction")
    clip = session.scalar(sa.select(Clip).where(Clip.id == clip_id).with_for_update())
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    if clip.deid_status is DeidStatus.pending:
        raise Conflict(f"Clip {clip.id} is already being de-identified.", code="clip.deid_pending")
    deid.request_deidentify(session, user, clip, (reason or "")[:200], review=True)
    clip.updated_at = utcnow()
    return clip


def mark_reviewed(session: Session, user: User, clip_id: int) -> Clip:
    """review → clean once the latest render includes every active correction."""
    clip, d = _in_review(session, user, clip_id)
    if not includes_active_edits(session, clip, d):
        raise Conflict(
            "Some corrections are not in the video yet: re-render first, then mark it reviewed.",
            code="redaction.rerender_needed",
        )
    clip.deid_status, clip.deid_reason, clip.updated_at = DeidStatus.clean, None, utcnow()
    if clip.redaction_reviewed_by is None:  # the first review is the paid one (pay.redaction)
        clip.redaction_reviewed_by, clip.redaction_reviewed_at = user.id, clip.updated_at
    audit.record(session, user, "clip.redaction_reviewed", clip, {"derivative_id": d.id})
    redaction_pay.pay_for_redaction_review(session, clip, user)
    if clip.status is ClipStatus.qc_passed:  # clean now: on to acceptance (the ``review`` stage, labels.review)
        enqueue(session, clip, "review")
    return clip


__all__ = [
    "add_edit",
    "edit_dict",
    "frame_times",
    "includes_active_edits",
    "keep_face_allowed",
    "list_edits",
    "mark_reviewed",
    "plan",
    "request_deidentify",
    "review_queue",
    "withdraw_edit",
]

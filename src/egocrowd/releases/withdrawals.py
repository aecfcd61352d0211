"""Withdrawals reach everyone (#12 part 4; docs/withdrawals.md).

A clip leaves every later release when its worker withdraws the consent that covered it, or when an
admin removes it for cause. Here, in this order:

1. :func:`record_consent_withdrawals` turns facts into :class:`Withdrawal` rows: every clip whose
   consent record (``Clip.consent_record_id``) is withdrawn gets one (idempotent: one row per clip,
   ever). :func:`remove_clip` does the same for a removal for cause. Either way the clip becomes
   ``withdrawn`` (audited ``clip.withdrawn``), its open review items are cancelled, its active
   annotation tasks released and its pending pipeline jobs stopped (a stage finishing later drops
   its result: the job is no longer leased to it).
2. :func:`send_notices` tells every buyer organization that downloaded a published release
   containing the clip: one :class:`WithdrawalNotice` per (withdrawal, release, buyer) listing the
   release files that carry the clip by path and sha256, and an in-app notice (emailed by the
   notification outbox) to each member of the buyer's lab. The doors call it right after recording;
   the housekeeping sweep (:func:`sweep`) calls it every round, which also reaches buyers who
   download such a release *later* (within a round of their download).
3. :func:`purge_due` deletes the clip's raw and derived blobs, and the blobs of the published release
   files that carry it, once ``purge_after`` has passed, keeping any blob another live clip,
   derivative, manifest or release file still needs; ``purged_at`` is set and the row stays as the
   tombstone (the hashes). Release rows and manifests never change.

Buyers read their notices (:func:`feed`) and acknowledge them (:func:`acknowledge`); admins see every
withdrawal and the time from withdrawal to notice (:func:`overview`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from egocrowd import audit, notifications
from egocrowd.accounts import policy
from egocrowd.clock import db_now, utcnow
from egocrowd.db import Database
from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    Clip,
    ClipStatus,
    ConsentRecord,
    Derivative,
    Job,
    JobStatus,
    Organization,
    Release,
    ReleaseClip,
    ReleaseDownload,
    ReleaseFile,
    ReleaseStatus,
    ReviewItem,
    ReviewState,
    Role,
    User,
    Withdrawal,
    WithdrawalNotice,
)
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_

CONSENT_WITHDRAWN = "consent_withdrawn"
REMOVED = "removed"
REASONS = (CONSENT_WITHDRAWN, REMOVED)
COMMENT_MIN, COMMENT_MAX = 10, 2000
#: a blob written this recently may belong to an upload finishing right now (clips.finish_upload
#: touches the blob before committing its clip): purge leaves it, the orphan sweep decides later
RECENT_S = 600
#: the window of the admin page's median and maximum time from withdrawal to notice
STATS_DAYS = 30


# --- recording ------------------------------------------------------------------------------------
def clip_media(session: Session, clip: Clip) -> list[str]:
    """Every blob of ``clip``: the raw upload and each derivative ever rendered from it."""
    shas = {clip.sha256, *session.scalars(sa.select(Derivative.sha256).where(Derivative.clip_id == clip.id))}
    return sorted(shas)


def _grace(grace_days: float) -> timedelta:
    return timedelta(days=grace_days)


def record_withdrawal(
    session: Session,
    clip: Clip,
    *,
    reason: str,
    withdrawn_at: datetime,
    grace_days: float,
    by: User | None = None,
    comment: str = "",
) -> tuple[Withdrawal, bool]:
    """The clip's :class:`Withdrawal` (made now, or the one it already has) and whether it is new."""
    if reason not in REASONS:
        raise InvalidInput(f"Unknown withdrawal reason {reason!r}.", code="withdrawal.bad_reason")
    existing = session.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == clip.id))
    if existing is not None:
        return existing, False
    w = Withdrawal(
        clip_id=clip.id,
        reason=reason,
        comment=comment,
        clip_sha256=clip.sha256,
        media=clip_media(session, clip),
        withdrawn_at=withdrawn_at,
        recorded_at=utcnow(),
        by=by.id if by is not None else None,
        purge_after=withdrawn_at + _grace(grace_days),
    )
    try:
        with session.begin_nested():  # another process recording the same clip right now: one row wins
            session.add(w)
            session.flush()
    except IntegrityError:
        won = session.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == clip.id))
        if won is None:
            raise
        return won, False
    before = clip.status
    clip.status, clip.updated_at = ClipStatus.withdrawn, utcnow()
    audit.record(
        session,
        by,
        "clip.withdrawn",
        clip,
        {
            "withdrawal_id": w.id,
            "reason": reason,
            "previous_status": before.value,
            "media": w.media,
            "purge_after": w.purge_after,
            **({"comment": comment} if comment else {}),
        },
    )
    _stop_work(session, clip)
    return w, True


def _stop_work(session: Session, clip: Clip) -> None:
    """What waited on the clip is moot: open review items are cancelled, active annotation tasks
    released, pending or running pipeline jobs stopped (a runner then drops its result)."""
    now = db_now(session)
    items = session.execute(
        sa.update(ReviewItem)
        .where(ReviewItem.clip_id == clip.id, ReviewItem.state == ReviewState.open)
        .values(state=ReviewState.cancelled, decision="cancel", decided_at=now)
        .returning(ReviewItem.id)
        .execution_options(synchronize_session=False)
    ).all()
    for (item_id,) in items:
        audit.record(
            session, None, "review.cancelled", item_id, {"clip_status": "withdrawn"}, entity_type="review_item"
        )
    tasks = session.execute(
        sa.update(AnnotationTask)
        .where(AnnotationTask.clip_id == clip.id, AnnotationTask.status == AnnotationTaskStatus.active)
        .values(status=AnnotationTaskStatus.released)
        .returning(AnnotationTask.id)
        .execution_options(synchronize_session=False)
    ).all()
    for (task_id,) in tasks:
        audit.record(
            session,
            None,
            "annotation.released",
            task_id,
            {"clip_id": clip.id, "why": "clip_withdrawn"},
            entity_type="annotation_task",
        )
    session.execute(
        sa.update(Job)
        .where(Job.clip_id == clip.id, Job.status.in_([JobStatus.pending, JobStatus.running]))
        .values(
            status=JobStatus.done, finished_at=now, lease_owner=None, lease_expires_at=None, last_error="clip.withdrawn"
        )
        .execution_options(synchronize_session=False)
    )


def record_consent_withdrawals(
    session: Session,
    *,
    grace_days: float,
    user_id: int | None = None,
    record_id: int | None = None,
    limit: int | None = None,
) -> list[Withdrawal]:
    """A :class:`Withdrawal` for every clip whose consent record is withdrawn and that has none yet
    (one worker's, one record's, or everyone's), with ``withdrawn_at`` the record's own time.
    Idempotent: running it again records nothing more. Returns the new rows."""
    q = (
        sa.select(Clip, ConsentRecord.withdrawn_at)
        .join(ConsentRecord, ConsentRecord.id == Clip.consent_record_id)
        .where(
            ConsentRecord.withdrawn_at.is_not(None),
            ~sa.exists().where(Withdrawal.clip_id == Clip.id),
        )
        .order_by(Clip.id)
    )
    if user_id is not None:
        q = q.where(ConsentRecord.user_id == user_id)
    if record_id is not None:
        q = q.where(ConsentRecord.id == record_id)
    if limit is not None:
        q = q.limit(limit)
    made = []
    for clip, withdrawn_at in session.execute(q).all():
        assert withdrawn_at is not None  # the WHERE clause
        w, new = record_withdrawal(
            session, clip, reason=CONSENT_WITHDRAWN, withdrawn_at=withdrawn_at, grace_days=grace_days
        )
        if new:
            made.append(w)
    return made


def after_consent_withdrawn(
    session: Session, *, grace_days: float, user_id: int | None = None, record_id: int | None = None
) -> list[WithdrawalNotice]:
    """What the doors call right after a consent withdrawal (or an account deletion), in the same
    transaction: the clips' withdrawals and their buyers' notices."""
    made = record_consent_withdrawals(session, grace_days=grace_days, user_id=user_id, record_id=record_id)
    return send_notices(session, withdrawal_ids=[w.id for w in made]) if made else []


def clean_comment(comment: str | None) -> str:
    text = " ".join((comment or "").split())
    if len(text) < COMMENT_MIN:
        raise InvalidInput(
            f"Say why this clip is removed (at least {COMMENT_MIN} characters): the worker is told, and it is "
            "kept in the audit log.",
            code="withdrawal.comment_required",
            field="comment",
        )
    return text[:COMMENT_MAX]


def remove_clip(session: Session, admin: User, clip_id: int, comment: str | None, *, grace_days: float) -> Withdrawal:
    """An admin takes a clip out of every later release for cause (``reason`` ``removed``): the
    same path as a consent withdrawal from here on. The worker is told why."""
    policy.require(admin, "withdrawal.admin")
    return remove(session, clip_id, comment, grace_days=grace_days, by=admin)


def remove(session: Session, clip_id: int, comment: str | None, *, grace_days: float, by: User | None) -> Withdrawal:
    """:func:`remove_clip` without the policy check: ``by`` None is the operator (`egocrowd withdrawals remove`)."""
    text = clean_comment(comment)
    clip = session.get(Clip, clip_id)
    if clip is None:
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    w, new = record_withdrawal(
        session, clip, reason=REMOVED, withdrawn_at=db_now(session), grace_days=grace_days, by=by, comment=text
    )
    if not new:
        raise Conflict(
            f"Clip {clip_id} is already withdrawn ({w.reason}).",
            code="withdrawal.already_withdrawn",
            withdrawal_id=w.id,
        )
    notifications.notify(
        session,
        clip.worker_id,
        "clip.removed",
        N_("Your clip {clip} was removed from the datasets"),
        N_(
            "An admin removed it for this reason: {reason}\nIt is left out of every release made from now on, "
            "and its video is deleted after a grace period."
        ),
        link=f"/clips/{clip.id}",
        params={"clip": clip.id, "reason": text},
    )
    send_notices(session, withdrawal_ids=[w.id])
    return w


# --- notices --------------------------------------------------------------------------------------
def _files_of(session: Session, release_id: int, paths: Sequence[str]) -> list[dict[str, Any]]:
    """The release files at ``paths``, by path and sha256 (as the manifest lists them)."""
    if not paths:
        return []
    shas = dict(
        session.execute(
            sa.select(ReleaseFile.path, ReleaseFile.sha256).where(
                ReleaseFile.release_id == release_id, ReleaseFile.path.in_(list(paths))
            )
        ).all()
    )
    return [{"path": p, "sha256": shas.get(p)} for p in sorted(set(paths))]


def send_notices(
    session: Session, *, withdrawal_ids: Iterable[int] | None = None, limit: int = 1000
) -> list[WithdrawalNotice]:
    """A notice for every buyer organization that downloaded a published release containing a
    withdrawn clip and has none for it yet; each buyer's members get one in-app notice per call.
    Idempotent (one notice per withdrawal, release and buyer, ever)."""
    wn = WithdrawalNotice
    q = (
        sa.select(Withdrawal.id, ReleaseClip.release_id, ReleaseDownload.organization_id, ReleaseClip.id)
        .join(ReleaseClip, ReleaseClip.clip_id == Withdrawal.clip_id)
        .join(Release, sa.and_(Release.id == ReleaseClip.release_id, Release.status == ReleaseStatus.published))
        .join(
            ReleaseDownload,
            sa.and_(ReleaseDownload.release_id == ReleaseClip.release_id, ReleaseDownload.organization_id.is_not(None)),
        )
        .where(
            ~sa.exists().where(
                wn.withdrawal_id == Withdrawal.id,
                wn.release_id == ReleaseClip.release_id,
                wn.organization_id == ReleaseDownload.organization_id,
            )
        )
        .distinct()
        .order_by(Withdrawal.id, ReleaseClip.release_id, ReleaseDownload.organization_id)
        .limit(limit)
    )
    if withdrawal_ids is not None:
        ids = list(withdrawal_ids)
        if not ids:
            return []
        q = q.where(Withdrawal.id.in_(ids))
    made: list[WithdrawalNotice] = []
    for withdrawal_id, release_id, org_id, release_clip_id in session.execute(q).all():
        paths = session.get_one(ReleaseClip, release_clip_id).files  # not in the DISTINCT: JSON has no "="
        notice = wn(
            withdrawal_id=withdrawal_id,
            release_id=release_id,
            organization_id=org_id,
            files=_files_of(session, release_id, paths or []),
            created_at=utcnow(),
        )
        try:
            with session.begin_nested():  # the door and the sweep may meet here: one notice wins
                session.add(notice)
                session.flush()
        except IntegrityError:
            continue
        audit.record(
            session,
            None,
            "withdrawal.notice_sent",
            notice,
            {
                "withdrawal_id": withdrawal_id,
                "release_id": release_id,
                "organization_id": org_id,
                "files": notice.files,
            },
        )
        made.append(notice)
    _tell_members(session, made)
    return made


def _tell_members(session: Session, made: Sequence[WithdrawalNotice]) -> None:
    by_org: dict[int, list[WithdrawalNotice]] = defaultdict(list)
    for n in made:
        by_org[n.organization_id].append(n)
    for org_id, notices in by_org.items():
        files = sum(len(n.files) for n in notices)
        members = session.scalars(
            sa.select(User.id).where(
                User.organization_id == org_id, User.is_active.is_(True), User.deleted_at.is_(None)
            )
        ).all()
        subject = (
            N_("A clip was withdrawn from a release you downloaded")
            if len(notices) == 1
            else N_("{count} withdrawals affect releases you downloaded")
        )
        body = (
            N_(
                "Delete the affected file (listed by path and sha256) from your copies, stop using it for new "
                "work, and acknowledge the notice."
            )
            if files == 1
            else N_(
                "Delete the {files} affected files (listed by path and sha256) from your copies, stop using them "
                "for new work, and acknowledge the notice."
            )
        )
        params = {"count": len(notices), "files": files}
        for uid in members:
            notifications.notify(session, uid, "withdrawal.notice", subject, body, link="/withdrawals", params=params)


def notices_after_download(session: Session, release_id: int, organization_id: int) -> list[WithdrawalNotice]:
    """A hook for the download door: a buyer who just downloaded a release holding withdrawn clips is
    told at once (the housekeeping sweep tells them within a round otherwise)."""
    ids = session.scalars(
        sa.select(Withdrawal.id)
        .join(ReleaseClip, ReleaseClip.clip_id == Withdrawal.clip_id)
        .where(ReleaseClip.release_id == release_id)
    ).all()
    made = send_notices(session, withdrawal_ids=ids) if ids else []
    return [n for n in made if n.organization_id == organization_id]


# --- buyers: the feed and acknowledging -------------------------------------------------------------
@dataclass
class NoticeView:
    """One notice as its buyer reads it."""

    notice: WithdrawalNotice
    withdrawal: Withdrawal
    release: Release
    clip_sha256: str
    media_sha256: str | None


def _visible(user: User) -> sa.ColumnElement[bool]:
    """The notices ``user`` may read: an admin every one, a lab's members their lab's."""
    policy.require(user, "withdrawal.view", SimpleNamespace(id=user.organization_id or -1))
    if user.role is Role.admin:
        return sa.true()
    return WithdrawalNotice.organization_id == user.organization_id


def _views(session: Session, rows: Sequence[tuple[WithdrawalNotice, Withdrawal, Release]]) -> list[NoticeView]:
    media = {}
    if rows:
        pairs = {(n.release_id, w.clip_id) for n, w, _ in rows}
        media = {
            (rid, cid): sha
            for rid, cid, sha in session.execute(
                sa.select(ReleaseClip.release_id, ReleaseClip.clip_id, ReleaseClip.media_sha256).where(
                    sa.tuple_(ReleaseClip.release_id, ReleaseClip.clip_id).in_(list(pairs))
                )
            )
        }
    return [NoticeView(n, w, r, w.clip_sha256, media.get((n.release_id, w.clip_id))) for n, w, r in rows]


def _joined() -> sa.Select[WithdrawalNotice, Withdrawal, Release]:
    return (
        sa.select(WithdrawalNotice, Withdrawal, Release)
        .join(Withdrawal, Withdrawal.id == WithdrawalNotice.withdrawal_id)
        .join(Release, Release.id == WithdrawalNotice.release_id)
    )


def feed(
    session: Session, user: User, *, after: int | None = None, since: datetime | None = None, limit: int = 100
) -> tuple[list[NoticeView], int | None]:
    """The caller's notices in the order they were made (newest last), after the cursor ``after`` (a
    notice id) and made at or after ``since``; returns the page and the next cursor (None: no more)."""
    q = _joined().where(_visible(user)).order_by(WithdrawalNotice.id)
    if after is not None:
        q = q.where(WithdrawalNotice.id > after)
    if since is not None:
        q = q.where(WithdrawalNotice.created_at >= since)
    rows = cast("list[tuple[WithdrawalNotice, Withdrawal, Release]]", session.execute(q.limit(limit + 1)).all())
    more = len(rows) > limit
    page = _views(session, rows[:limit])
    return page, (page[-1].notice.id if more and page else None)


def notices_for(session: Session, user: User, *, limit: int = 200) -> list[NoticeView]:
    """The buyers' page: unacknowledged first (oldest first, the ones waiting longest), then the
    acknowledged, newest first."""
    q = _joined().where(_visible(user))
    waiting = q.where(WithdrawalNotice.acknowledged_at.is_(None)).order_by(WithdrawalNotice.id).limit(limit)
    done = q.where(WithdrawalNotice.acknowledged_at.is_not(None)).order_by(WithdrawalNotice.id.desc()).limit(limit)
    rows = [*session.execute(waiting).all(), *session.execute(done).all()]
    return _views(session, cast("list[tuple[WithdrawalNotice, Withdrawal, Release]]", rows))


def get_notice(session: Session, user: User, notice_id: int) -> NoticeView:
    row = session.execute(_joined().where(_visible(user), WithdrawalNotice.id == notice_id)).first()
    if row is None:
        raise NotFound(f"No withdrawal notice {notice_id}.", code="withdrawal.notice_not_found")
    return _views(session, [cast("tuple[WithdrawalNotice, Withdrawal, Release]", tuple(row))])[0]


def acknowledge(session: Session, user: User, notice_id: int) -> NoticeView:
    """A buyer's owner or editor confirms the affected files are deleted from their copies. Once:
    acknowledging again changes nothing (the first acknowledgement stands)."""
    view = get_notice(session, user, notice_id)
    org = session.get(Organization, view.notice.organization_id)
    policy.require(user, "withdrawal.acknowledge", org)
    done = session.execute(
        sa.update(WithdrawalNotice)
        .where(WithdrawalNotice.id == notice_id, WithdrawalNotice.acknowledged_at.is_(None))
        .values(acknowledged_at=utcnow(), acknowledged_by=user.id)
        .execution_options(synchronize_session=False)
    )
    session.refresh(view.notice)
    if cast("sa.CursorResult[Any]", done).rowcount == 1:
        audit.record(
            session,
            user,
            "withdrawal.acknowledged",
            view.notice,
            {"withdrawal_id": view.notice.withdrawal_id, "release_id": view.notice.release_id},
        )
    return view


# --- purge after the grace period ---------------------------------------------------------------------
def _carried_files(session: Session, clip_id: int) -> list[tuple[int, str]]:
    """(release id, path) of the published release files that carry ``clip_id``."""
    out = []
    for release_id, paths in session.execute(
        sa.select(ReleaseClip.release_id, ReleaseClip.files)
        .join(Release, Release.id == ReleaseClip.release_id)
        .where(ReleaseClip.clip_id == clip_id, Release.status == ReleaseStatus.published)
    ):
        out += [(release_id, p) for p in paths or []]
    return out


def still_needed(session: Session, shas: Iterable[str]) -> set[str]:
    """Which of ``shas`` something live still references: a clip that is not withdrawn (its raw
    upload or a derivative of it: duplicates share blobs), a release manifest, or a release file at
    a path that carries no withdrawn clip. Such blobs are never purged."""
    shas = set(shas)
    if not shas:
        return set()
    live = Clip.status != ClipStatus.withdrawn
    needed = set(
        session.scalars(
            sa.union(
                sa.select(Clip.sha256).where(Clip.sha256.in_(shas), live),
                sa.select(Derivative.sha256)
                .join(Clip, Clip.id == Derivative.clip_id)
                .where(Derivative.sha256.in_(shas), live),
                sa.select(Release.manifest_sha256).where(Release.manifest_sha256.in_(shas)),
            )
        )
    )
    files = session.execute(
        sa.select(ReleaseFile.release_id, ReleaseFile.path, ReleaseFile.sha256).where(ReleaseFile.sha256.in_(shas))
    ).all()
    if files:
        release_ids = {r for r, _, _ in files}
        carried = {
            (rid, p)
            for rid, paths in session.execute(
                sa.select(ReleaseClip.release_id, ReleaseClip.files)
                .join(Clip, Clip.id == ReleaseClip.clip_id)
                .where(ReleaseClip.release_id.in_(release_ids), Clip.status == ClipStatus.withdrawn)
            )
            for p in paths or []
        }
        needed |= {sha for rid, path, sha in files if (rid, path) not in carried}
    return needed


def _recent(blobs, sha: str, now_s: float) -> bool:
    try:
        return now_s - blobs.mtime(sha) < RECENT_S
    except NotFound:
        return False


@dataclass
class Purged:
    withdrawal_id: int
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def purge_one(session: Session, blobs, withdrawal_id: int, *, now: datetime | None = None) -> Purged | None:
    """Delete one due withdrawal's blobs (see :func:`purge_due`); None when not due or done already."""
    now = now or db_now(session)
    w = session.scalar(sa.select(Withdrawal).where(Withdrawal.id == withdrawal_id).with_for_update())
    if w is None or w.purged_at is not None or w.purge_after > now:
        return None
    carried = _carried_files(session, w.clip_id)
    file_shas = set()
    if carried:
        by_release: dict[int, list[str]] = defaultdict(list)
        for rid, p in carried:
            by_release[rid].append(p)
        for rid, paths in by_release.items():
            file_shas |= {f["sha256"] for f in _files_of(session, rid, paths) if f["sha256"]}
    candidates = set(w.media) | file_shas
    keep = still_needed(session, candidates)
    now_s = now.timestamp()
    out = Purged(w.id)
    for sha in sorted(candidates):
        if sha in keep or _recent(blobs, sha, now_s):
            out.kept.append(sha)
            continue
        # Deleted before the commit: if the commit fails the row is still due and the next round
        # deletes nothing more (already gone) before setting purged_at.
        blobs.delete(sha)
        out.deleted.append(sha)
    w.purged_at = utcnow()
    audit.record(
        session,
        None,
        "clip.purged",
        w.clip_id,
        {"withdrawal_id": w.id, "deleted": out.deleted, "kept": out.kept, "release_files": len(file_shas)},
        entity_type="clip",
    )
    return out


def purge_due(db: Database, blobs, *, now: datetime | None = None, limit: int = 200) -> list[Purged]:
    """Housekeeping: purge every withdrawal past ``purge_after`` (one transaction each, so one bad
    row never holds up the others)."""
    with db.transaction(write=False) as s:
        at = now or db_now(s)
        due = s.scalars(
            sa.select(Withdrawal.id)
            .where(Withdrawal.purged_at.is_(None), Withdrawal.purge_after <= at)
            .order_by(Withdrawal.purge_after, Withdrawal.id)
            .limit(limit)
        ).all()
    done = []
    for wid in due:
        with db.transaction() as s:
            p = purge_one(s, blobs, wid, now=now)
        if p is not None:
            done.append(p)
    return done


def sweep(db: Database, blobs, *, grace_days: float, now: datetime | None = None) -> dict[str, int]:
    """The housekeeping step: withdrawals nobody recorded yet (consents withdrawn before this code,
    or a door that failed after its commit), notices owed (new buyers of affected releases too),
    then the purge."""
    with db.transaction() as s:
        made = record_consent_withdrawals(s, grace_days=grace_days, limit=1000)
    with db.transaction() as s:
        sent = send_notices(s)
    purged = purge_due(db, blobs, now=now)
    return {"recorded": len(made), "notices": len(sent), "purged": len(purged)}


# --- releases: what left since the previous one -------------------------------------------------------
def withdrawn_since(session: Session, previous: Release | int | None) -> list[str]:
    """The raw sha256 of the clips of ``previous`` withdrawn since (sorted): what the next release of
    the series lists under ``changes["withdrawn"]``. None: nothing before it, nothing withdrawn."""
    if previous is None:
        return []
    rid = previous if isinstance(previous, int) else previous.id
    return sorted(
        session.scalars(
            sa.select(Withdrawal.clip_sha256)
            .join(ReleaseClip, ReleaseClip.clip_id == Withdrawal.clip_id)
            .where(ReleaseClip.release_id == rid)
            .distinct()
        )
    )


# --- admins: every withdrawal, and how long buyers waited ---------------------------------------------
@dataclass
class NoticeTiming:
    notice: WithdrawalNotice
    organization: str
    release: str
    #: from when the notice was owed (the withdrawal, or the buyer's first download if later) to it
    delay: timedelta


@dataclass
class WithdrawalRow:
    withdrawal: Withdrawal
    clip: Clip
    by: str | None
    notices: list[NoticeTiming]

    @property
    def acknowledged(self) -> int:
        return sum(1 for n in self.notices if n.notice.acknowledged_at is not None)


@dataclass
class Overview:
    rows: list[WithdrawalRow]
    total: int
    #: the last STATS_DAYS days: notices sent, median and max time from withdrawal to notice
    recent_notices: int
    median_delay: timedelta | None
    max_delay: timedelta | None
    purge_waiting: int


def overview(session: Session, admin: User, *, limit: int = 100) -> Overview:
    """Every withdrawal (newest first), its notices and the time each took; the figures of the last
    :data:`STATS_DAYS` days."""
    policy.require(admin, "withdrawal.admin")
    return operator_overview(session, limit=limit)


def operator_overview(session: Session, *, limit: int = 100) -> Overview:
    """:func:`overview` for the command line (no caller to check)."""
    ws = session.execute(
        sa.select(Withdrawal, Clip)
        .join(Clip, Clip.id == Withdrawal.clip_id)
        .order_by(Withdrawal.id.desc())
        .limit(limit)
    ).all()
    total = session.scalar(sa.select(sa.func.count()).select_from(Withdrawal)) or 0
    waiting = (
        session.scalar(sa.select(sa.func.count()).select_from(Withdrawal).where(Withdrawal.purged_at.is_(None))) or 0
    )
    by_names = dict(
        session.execute(
            sa.select(User.id, User.display_name).where(User.id.in_({w.by for w, _ in ws if w.by is not None}))
        ).all()
    )
    timings = _timings(session, [w.id for w, _ in ws])
    rows = [WithdrawalRow(w, c, by_names.get(w.by) if w.by is not None else None, timings.get(w.id, [])) for w, c in ws]
    since = db_now(session) - timedelta(days=STATS_DAYS)
    recent = [t.delay for t in _timings(session, None, since=since).get(-1, [])]
    return Overview(
        rows=rows,
        total=total,
        recent_notices=len(recent),
        median_delay=_median(recent),
        max_delay=max(recent) if recent else None,
        purge_waiting=waiting,
    )


def _median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    return timedelta(seconds=statistics.median(v.total_seconds() for v in values))


def _timings(
    session: Session, withdrawal_ids: list[int] | None, *, since: datetime | None = None
) -> dict[int, list[NoticeTiming]]:
    """Notices with their delay, per withdrawal id (or all under -1 when ``withdrawal_ids`` is None)."""
    first_download = (
        sa.select(
            ReleaseDownload.release_id, ReleaseDownload.organization_id, sa.func.min(ReleaseDownload.at).label("first")
        )
        .group_by(ReleaseDownload.release_id, ReleaseDownload.organization_id)
        .subquery()
    )
    q = (
        sa.select(WithdrawalNotice, Withdrawal.withdrawn_at, first_download.c.first, Organization.name, Release)
        .join(Withdrawal, Withdrawal.id == WithdrawalNotice.withdrawal_id)
        .join(Organization, Organization.id == WithdrawalNotice.organization_id)
        .join(Release, Release.id == WithdrawalNotice.release_id)
        .outerjoin(
            first_download,
            sa.and_(
                first_download.c.release_id == WithdrawalNotice.release_id,
                first_download.c.organization_id == WithdrawalNotice.organization_id,
            ),
        )
        .order_by(WithdrawalNotice.id)
    )
    if withdrawal_ids is not None:
        if not withdrawal_ids:
            return {}
        q = q.where(WithdrawalNotice.withdrawal_id.in_(withdrawal_ids))
    if since is not None:
        q = q.where(WithdrawalNotice.created_at >= since)
    out: dict[int, list[NoticeTiming]] = defaultdict(list)
    for notice, withdrawn_at, first, org_name, release in session.execute(q):
        owed = max(withdrawn_at, first) if first is not None else withdrawn_at
        key = notice.withdrawal_id if withdrawal_ids is not None else -1
        out[key].append(
            NoticeTiming(
                notice, org_name, f"{release.name} v{release.version}", max(notice.created_at - owed, timedelta())
            )
        )
    return out


def get_withdrawal(session: Session, user: User, clip_id: int) -> Withdrawal:
    """A clip's withdrawal, for admins."""
    policy.require(user, "withdrawal.admin")
    w = session.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == clip_id))
    if w is None:
        raise NotFound(f"Clip {clip_id} is not withdrawn.", code="withdrawal.not_found")
    return w


__all__ = [
    "CONSENT_WITHDRAWN",
    "REMOVED",
    "NoticeView",
    "Overview",
    "acknowledge",
    "after_consent_withdrawn",
    "clip_media",
    "feed",
    "get_notice",
    "notices_after_download",
    "notices_for",
    "overview",
    "purge_due",
    "purge_one",
    "record_consent_withdrawals",
    "record_withdrawal",
    "remove_clip",
    "send_notices",
    "still_needed",
    "sweep",
    "withdrawn_since",
]

"""JSON API: Withdrawals (#12): the withdrawal feed buyers read and acknowledge, removals for cause (egocrowd.releases.withdrawals)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from egocrowd.inputs import InputModel
from egocrowd.releases import withdrawals
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id, Limit, QueryId

router = APIRouter(prefix="/api/v1", tags=["withdrawals"])


def honour_withdrawals(
    request: Request, session: Session, *, user_id: int | None = None, record_id: int | None = None
) -> None:
    """The doors that withdraw consent (the consent API and page, account deletion) call this in the
    same transaction: the clips it covered are withdrawn and their buyers told."""
    grace = request.app.state.settings.withdrawal_grace_days
    withdrawals.after_consent_withdrawn(session, grace_days=grace, user_id=user_id, record_id=record_id)


class FileOut(BaseModel):
    path: str
    sha256: str | None


class ReleaseRef(BaseModel):
    id: int
    name: str
    version: int
    title: str


class NoticeOut(BaseModel):
    id: int = Field(description="Stable; the feed's order and cursor")
    withdrawal_id: int
    reason: str = Field(description="consent_withdrawn (the worker withdrew) or removed (an admin, for cause)")
    withdrawn_at: datetime
    clip_sha256: str = Field(description="The raw upload's sha256 (its tombstone)")
    media_sha256: str | None = Field(description="The de-identified video the release carried")
    release: ReleaseRef
    organization_id: int
    files: list[FileOut] = Field(description="The release files that carry the clip: delete them from your copies")
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: int | None


class FeedOut(BaseModel):
    items: list[NoticeOut]
    next_cursor: int | None = Field(description="Pass as ?cursor= for the next page; null: you have them all")


def notice_out(v: withdrawals.NoticeView) -> NoticeOut:
    n, w, r = v.notice, v.withdrawal, v.release
    return NoticeOut(
        id=n.id,
        withdrawal_id=w.id,
        reason=w.reason,
        withdrawn_at=w.withdrawn_at,
        clip_sha256=v.clip_sha256,
        media_sha256=v.media_sha256,
        release=ReleaseRef(id=r.id, name=r.name, version=r.version, title=r.title),
        organization_id=n.organization_id,
        files=[FileOut(**f) for f in n.files],
        created_at=n.created_at,
        acknowledged_at=n.acknowledged_at,
        acknowledged_by=n.acknowledged_by,
    )


@router.get("/withdrawals/feed", response_model=FeedOut)
def feed(
    request: Request,
    cursor: QueryId = None,
    since: datetime | None = Query(None, description="Only notices made at or after this moment (ISO 8601)"),
    limit: Limit = 100,
):
    """Your lab's withdrawal notices, oldest first (newest last): poll with the last ``next_cursor``
    you got, or with ``since``. Admins read every lab's."""
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with unit(request) as ctx:
        page, nxt = withdrawals.feed(ctx.session, ctx.require_user(), after=cursor, since=since, limit=limit)
        return FeedOut(items=[notice_out(v) for v in page], next_cursor=nxt)


@router.post("/withdrawals/notices/{notice_id}/acknowledge", response_model=NoticeOut)
def acknowledge(request: Request, notice_id: Id):
    """Say the affected files are deleted from your copies (a lab's owners and editors). Again: no change."""
    with unit(request) as ctx:
        return notice_out(withdrawals.acknowledge(ctx.session, ctx.require_user(), notice_id))


class RemovalIn(InputModel):
    comment: str = Field(min_length=1, max_length=2000, description="Why (at least 10 characters); the worker reads it")


class WithdrawalOut(BaseModel):
    id: int
    clip_id: int
    reason: str
    comment: str
    clip_sha256: str
    media: list[str]
    withdrawn_at: datetime
    recorded_at: datetime
    by: int | None
    purge_after: datetime
    purged_at: datetime | None

    model_config = {"from_attributes": True}


class TimingOut(BaseModel):
    notice_id: int
    organization: str
    release: str
    created_at: datetime
    acknowledged_at: datetime | None
    seconds_to_notice: float


class WithdrawalRowOut(WithdrawalOut):
    notices: list[TimingOut]


class OverviewOut(BaseModel):
    total: int
    awaiting_purge: int
    days: int = Field(description="The window of the figures below")
    notices_in_window: int
    median_seconds_to_notice: float | None
    max_seconds_to_notice: float | None
    items: list[WithdrawalRowOut]


@router.post("/clips/{clip_id}/withdrawal", status_code=201, response_model=WithdrawalOut)
def remove_clip(request: Request, clip_id: Id, body: RemovalIn):
    """Remove a clip for cause (admins): out of every later release, buyers told, media deleted after
    the grace period. 409 ``withdrawal.already_withdrawn`` when it is already out."""
    with unit(request) as ctx:
        w = withdrawals.remove_clip(
            ctx.session,
            ctx.require_user(),
            clip_id,
            body.comment,
            grace_days=request.app.state.settings.withdrawal_grace_days,
        )
        return WithdrawalOut.model_validate(w)


@router.get("/withdrawals", response_model=OverviewOut)
def overview(request: Request, limit: Limit = 100):
    """Every withdrawal, newest first, with its notices and the time each took (admins)."""
    with unit(request) as ctx:
        o = withdrawals.overview(ctx.session, ctx.require_user(), limit=limit)
        return OverviewOut(
            total=o.total,
            awaiting_purge=o.purge_waiting,
            days=withdrawals.STATS_DAYS,
            notices_in_window=o.recent_notices,
            median_seconds_to_notice=o.median_delay.total_seconds() if o.median_delay is not None else None,
            max_seconds_to_notice=o.max_delay.total_seconds() if o.max_delay is not None else None,
            items=[
                WithdrawalRowOut(
                    **WithdrawalOut.model_validate(r.withdrawal).model_dump(),
                    notices=[
                        TimingOut(
                            notice_id=t.notice.id,
                            organization=t.organization,
                            release=t.release,
                            created_at=t.notice.created_at,
                            acknowledged_at=t.notice.acknowledged_at,
                            seconds_to_notice=t.delay.total_seconds(),
                        )
                        for t in r.notices
                    ],
                )
                for r in o.rows
            ],
        )

"""JSON API: the review queue, decisions and appeals (#10; labels.review, docs/review.md)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field

from egocrowd.db.models import ReviewKind
from egocrowd.i18n import _
from egocrowd.inputs import InputModel
from egocrowd.labels import review
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id, Limit, Offset, QueryId
from egocrowd.web.schemas import Page, ReviewItemOut, page_of

router = APIRouter(prefix="/api/v1", tags=["reviews"])


class DecisionIn(InputModel):
    decision: Literal["accept", "reject", "uphold", "overturn"] = Field(
        description="acceptance: accept | reject; appeal: uphold | overturn"
    )
    reason: str | None = Field(None, max_length=40, description="reject: a code from GET /review/reasons")
    comment: str = Field("", max_length=review.COMMENT_MAX)


class AppealIn(InputModel):
    comment: str = Field(max_length=review.COMMENT_MAX, description="Why the verdict is wrong (10 characters or more)")


@router.get("/review/items", response_model=Page[ReviewItemOut])
def review_queue(
    request: Request,
    kind: ReviewKind | None = None,
    campaign_id: QueryId = None,
    limit: Limit = 50,
    offset: Offset = 0,
):
    """Open items the caller may decide, the oldest first."""
    with unit(request) as ctx:
        rows = review.queue(
            ctx.session, ctx.require_user(), kind=kind, campaign_id=campaign_id, limit=limit, offset=offset
        )
        return page_of(ReviewItemOut, rows)


@router.get("/review/reasons")
def reject_reasons() -> dict[str, str]:
    """The reasons a clip may be rejected for: code → the words its worker reads."""
    return {code: _(words) for code, words in review.REJECT_REASONS.items()}  # in the request's language


@router.get("/review/items/{item_id}", response_model=ReviewItemOut)
def get_review_item(request: Request, item_id: Id):
    with unit(request) as ctx:
        return ReviewItemOut.model_validate(review.get_item(ctx.session, ctx.require_user(), item_id))


@router.post("/review/items/{item_id}/decision", response_model=ReviewItemOut)
def decide_review_item(request: Request, item_id: Id, body: DecisionIn):
    """Decide an item once (409 ``review.already_decided`` for the second of two deciders)."""
    with unit(request) as ctx:
        item = review.decide_item(
            ctx.session, ctx.require_user(), item_id, body.decision, reason=body.reason, comment=body.comment
        )
        return ReviewItemOut.model_validate(item)


@router.post("/clips/{clip_id}/appeal", status_code=201, response_model=ReviewItemOut)
def appeal_clip(request: Request, clip_id: Id, body: AppealIn):
    """The clip's worker disputes a failed check or a rejection, once per clip."""
    with unit(request) as ctx:
        return ReviewItemOut.model_validate(review.appeal(ctx.session, ctx.require_user(), clip_id, body.comment))

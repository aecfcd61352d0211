"""JSON API: campaign budgets, deposits and a worker's earnings (#11; egocrowd.pay.budgets, docs/pay.md). Amounts are
strings with the currency's digits ("150.00"), never JSON numbers: money is exact."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from egocrowd.inputs import InputModel
from egocrowd.pay import budgets, earnings, reversals
from egocrowd.pay.money import Money
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id

router = APIRouter(prefix="/api/v1", tags=["pay"])


class BudgetOut(BaseModel):
    campaign_id: int
    currency: str
    cost_per_clip: str = Field(description="the worker's pay plus the platform's fee, per accepted clip")
    deposited: str
    spent: str
    left: str = Field(description="deposited − spent: what the budget holds now")
    to_come: str = Field(description="target clips not yet accepted × cost per clip")
    owed: str = Field(description="pay for accepted clips and field sessions the budget could not cover yet")
    committed: str = Field(description="spent + owed + to come")
    short: str = Field(description="what must still be deposited to cover the target (0 when covered)")
    accepted_clips: int
    paid_clips: int
    owed_clips: int
    owed_sessions: int = Field(0, description="accepted field sessions the budget could not pay yet (in owed)")
    cost_per_session: str | None = Field(
        None, description="the most one field session can cost: its capped hours' pay and fee (None: unpaid)"
    )


def budget_out(campaign_id: int, b: budgets.Budget) -> BudgetOut:
    return BudgetOut(
        campaign_id=campaign_id,
        currency=b.currency,
        cost_per_clip=b.cost_per_clip.format(),
        deposited=b.deposited.format(),
        spent=b.spent.format(),
        left=b.left.format(),
        to_come=b.to_come.format(),
        owed=b.owed.format(),
        committed=b.committed.format(),
        short=b.short.format(),
        accepted_clips=b.accepted_clips,
        paid_clips=b.paid_clips,
        owed_clips=b.owed_clips,
        owed_sessions=b.owed_sessions,
        cost_per_session=b.cost_per_session.format() if b.cost_per_session is not None else None,
    )


class DepositIn(InputModel):
    amount: str = Field(max_length=30, description='exact text, e.g. "150.00"')
    currency: str = Field(min_length=3, max_length=3, description="the campaign's currency (ISO 4217)")
    reason: str = Field(min_length=1, max_length=500, description="e.g. the lab's wire reference")
    idempotency_key: str = Field(
        min_length=1, max_length=100, description="one key per deposit: sending it again posts nothing more"
    )


class DepositOut(BaseModel):
    transaction_id: int
    budget: BudgetOut


@router.get("/campaigns/{campaign_id}/budget", response_model=BudgetOut)
def get_budget(request: Request, campaign_id: Id):
    """The campaign's money: deposited, spent, owed, committed to its target, short (its lab and admins)."""
    with unit(request) as ctx:
        c, b = budgets.visible_budget(ctx.session, ctx.require_user(), campaign_id)
        return budget_out(c.id, b)


@router.post("/campaigns/{campaign_id}/deposits", status_code=201, response_model=DepositOut)
def post_deposit(request: Request, campaign_id: Id, body: DepositIn):
    """An admin records money the lab sent (audited ``ledger.posted``); owed pay is settled from it."""
    with unit(request) as ctx:
        txn, b = budgets.deposit_to(
            ctx.session,
            ctx.require_user(),
            campaign_id,
            Money.parse(body.amount, body.currency),
            reason=body.reason,
            idempotency_key=body.idempotency_key,
        )
        return DepositOut(transaction_id=txn.id, budget=budget_out(campaign_id, b))


class EarningLineOut(BaseModel):
    clip_id: int
    campaign_id: int
    campaign_title: str
    buyer_name: str
    data_use: dict[str, bool] = Field(description="what the buyer may do with the clip (the campaign's data use)")
    state: str = Field(description="pending | approved | owed | reversed")
    amount: str
    currency: str
    hourly_rate: str = Field(description="the campaign's pay per hour at its expected minutes per clip")
    expected_minutes: float
    worked_seconds: int | None = Field(description="this clip's working time: claim to submit, less idle")
    effective_hourly_rate: str | None = Field(description="its pay and top-ups per hour of its own working time")
    sent_at: datetime
    paid_at: datetime | None
    reversed_at: datetime | None
    reversal_reason: str | None


class AmountOut(BaseModel):
    amount: str
    currency: str


class WeekOut(BaseModel):
    start: date = Field(description="the Monday (UTC) the week begins")
    earned: list[AmountOut] = Field(description="net postings to your balance that week, per currency")
    pending: list[AmountOut] = Field(description="clips sent that week still waiting for a decision")


class TopUpLineOut(BaseModel):
    clip_id: int
    campaign_id: int
    amount: str = Field(description="paid (approved), or taken back (reversed)")
    currency: str
    paid_at: datetime
    state: str = Field("approved", description="approved | reversed (taken back with the clip's pay)")
    reversed_at: datetime | None = None
    reversal_reason: str | None = None


class AnswerLineOut(BaseModel):
    task_id: int
    clip_id: int
    campaign_id: int
    state: str = Field(description="approved | owed | withheld (sent faster than the clip plays) | reversed")
    amount: str
    currency: str
    worked_seconds: int | None
    effective_hourly_rate: str | None


class ReviewLineOut(BaseModel):
    review_item_id: int
    clip_id: int
    campaign_id: int
    kind: str = Field(description="acceptance | appeal | spans")
    state: str = Field(description="approved | owed | reversed")
    amount: str
    currency: str
    decided_at: datetime


class SessionLineOut(BaseModel):
    field_session_id: int
    campaign_id: int
    duration_s: float | None = Field(description="the session's length as its log states it")
    state: str = Field(description="approved | owed | reversed")
    amount: str
    currency: str
    sent_at: datetime


class RedactionLineOut(BaseModel):
    clip_id: int
    campaign_id: int
    state: str = Field(description="approved | owed | reversed")
    amount: str
    currency: str
    reviewed_at: datetime


class EarningsOut(BaseModel):
    balances: list[AmountOut]
    totals: dict[str, list[AmountOut]] = Field(description="state → amount per currency, over the lines")
    weeks: list[WeekOut]
    lines: list[EarningLineOut]
    top_ups: list[TopUpLineOut] = Field(description="top-ups paid on your clips, newest first")
    answers: list[AnswerLineOut] = Field(description="your annotation answers on campaigns that pay for them")
    reviews: list[ReviewLineOut] = Field(
        default_factory=list, description="a platform reviewer's decisions on campaigns that pay for review"
    )
    sessions: list[SessionLineOut] = Field(
        default_factory=list, description="your accepted field sessions on evaluations that pay for them"
    )
    redactions: list[RedactionLineOut] = Field(
        default_factory=list, description="a platform reviewer's redaction reviews on campaigns that pay for them"
    )


def _amounts(ms: list[Money]) -> list[AmountOut]:
    return [AmountOut(amount=m.format(), currency=m.currency) for m in ms]


@router.get("/me/earnings", response_model=EarningsOut)
def my_earnings(request: Request, limit: int = Query(earnings.MAX_LINES, ge=1, le=earnings.MAX_LINES)):
    """The caller's earnings: balance per currency, weeks (newest first), clips (newest first)."""
    with unit(request) as ctx:
        e = earnings.earnings(ctx.session, ctx.require_user(), limit=limit)
        return EarningsOut(
            balances=_amounts(e.balances),
            totals={state: _amounts(ms) for state, ms in e.totals.items()},
            weeks=[WeekOut(start=w.start, earned=_amounts(w.earned), pending=_amounts(w.pending)) for w in e.weeks],
            lines=[
                EarningLineOut(
                    clip_id=x.clip_id,
                    campaign_id=x.campaign_id,
                    campaign_title=x.campaign_title,
                    buyer_name=x.buyer_name,
                    data_use={k: bool(v) for k, v in x.data_use.items()},
                    state=x.state,
                    amount=x.amount.format(),
                    currency=x.amount.currency,
                    hourly_rate=x.hourly.format(),
                    expected_minutes=x.expected_minutes,
                    worked_seconds=x.worked_seconds,
                    effective_hourly_rate=x.effective.format() if x.effective else None,
                    sent_at=x.sent_at,
                    paid_at=x.paid_at,
                    reversed_at=x.reversed_at,
                    reversal_reason=x.reversal_reason,
                )
                for x in e.lines
            ],
            top_ups=[
                TopUpLineOut(
                    clip_id=t.clip_id,
                    campaign_id=t.campaign_id,
                    amount=t.amount.format(),
                    currency=t.amount.currency,
                    paid_at=t.paid_at,
                    state=t.state,
                    reversed_at=t.reversed_at,
                    reversal_reason=t.reversal_reason,
                )
                for t in e.top_ups
            ],
            answers=[
                AnswerLineOut(
                    task_id=a.task_id,
                    clip_id=a.clip_id,
                    campaign_id=a.campaign_id,
                    state=a.state,
                    amount=a.amount.format(),
                    currency=a.amount.currency,
                    worked_seconds=a.worked_seconds,
                    effective_hourly_rate=a.effective.format() if a.effective else None,
                )
                for a in e.answers
            ],
            reviews=[
                ReviewLineOut(
                    review_item_id=r.item_id,
                    clip_id=r.clip_id,
                    campaign_id=r.campaign_id,
                    kind=r.kind,
                    state=r.state,
                    amount=r.amount.format(),
                    currency=r.amount.currency,
                    decided_at=r.decided_at,
                )
                for r in e.reviews
            ],
            sessions=[
                SessionLineOut(
                    field_session_id=x.field_session_id,
                    campaign_id=x.campaign_id,
                    duration_s=x.duration_s,
                    state=x.state,
                    amount=x.amount.format(),
                    currency=x.amount.currency,
                    sent_at=x.sent_at,
                )
                for x in e.sessions
            ],
            redactions=[
                RedactionLineOut(
                    clip_id=x.clip_id,
                    campaign_id=x.campaign_id,
                    state=x.state,
                    amount=x.amount.format(),
                    currency=x.amount.currency,
                    reviewed_at=x.reviewed_at,
                )
                for x in e.redactions
            ],
        )


class ReversalIn(InputModel):
    reason: str = Field(max_length=500, description="why, in words the worker reads (10 characters or more)")
    allow_negative: bool = Field(False, description="let the worker's balance go below zero (paid out already)")


class ReversalOut(BaseModel):
    transaction_id: int
    reverses_transaction_id: int
    reason: str


@router.post("/clips/{clip_id}/pay-reversal", status_code=201, response_model=ReversalOut)
def reverse_clip_pay(request: Request, clip_id: Id, body: ReversalIn):
    """An admin takes back a clip's pay (fraud found after approval); asking again returns the first."""
    with unit(request) as ctx:
        t = reversals.reverse_clip_pay(
            ctx.session, ctx.require_user(), clip_id, body.reason, allow_negative=body.allow_negative
        )
        assert t.reverses_id is not None  # a reversal always names what it reverses
        return ReversalOut(transaction_id=t.id, reverses_transaction_id=t.reverses_id, reason=t.reason)

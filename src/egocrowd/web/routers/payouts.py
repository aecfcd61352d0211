"""JSON API: payout methods, payout batches and appeals of reversed pay (#11; egocrowd.pay.payouts,
egocrowd.pay.appeals, docs/pay.md). Amounts are strings with the currency's digits, never JSON numbers."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from egocrowd.db.models import PayAppeal, PayoutBatch, PayoutBatchStatus, PayoutMethod
from egocrowd.inputs import InputModel
from egocrowd.pay import appeals, payouts
from egocrowd.pay.money import Money
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id

router = APIRouter(prefix="/api/v1", tags=["payouts"])


# ---------------------------------------------------------------- methods


class PayoutMethodIn(InputModel):
    provider: str = Field(min_length=1, max_length=40, description='a registered provider: "paypal", "wise", "mpesa"')
    account_ref: str = Field(
        min_length=1,
        max_length=254,
        description="PayPal: the account's email; Wise: an email or a saved recipient id; M-Pesa: +254… (E.164)",
    )
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217, e.g. USD, KES")
    default: bool = Field(False, description="make it the default for its currency (the first one always is)")


class PayoutMethodOut(BaseModel):
    id: int
    provider: str
    account_ref: str
    currency: str
    default: bool
    created_at: datetime


def method_out(m: PayoutMethod) -> PayoutMethodOut:
    return PayoutMethodOut(
        id=m.id,
        provider=m.provider,
        account_ref=m.account_ref,
        currency=m.currency,
        default=m.is_default,
        created_at=m.created_at,
    )


@router.get("/me/payout-methods", response_model=list[PayoutMethodOut])
def my_methods(request: Request):
    """The caller's payout methods (workers)."""
    with unit(request) as ctx:
        return [method_out(m) for m in payouts.list_methods(ctx.session, ctx.require_user())]


@router.post("/me/payout-methods", status_code=201, response_model=PayoutMethodOut)
def add_method(request: Request, body: PayoutMethodIn):
    """Add a payout method; the provider checks the account reference (``payout.bad_account``)."""
    with unit(request) as ctx:
        m = payouts.add_method(
            ctx.session,
            ctx.require_user(),
            provider=body.provider,
            account_ref=body.account_ref,
            currency=body.currency,
            make_default=body.default,
        )
        return method_out(m)


@router.post("/me/payout-methods/{method_id}/default", response_model=PayoutMethodOut)
def make_default(request: Request, method_id: Id):
    """Make this method the default for its currency."""
    with unit(request) as ctx:
        return method_out(payouts.make_default(ctx.session, ctx.require_user(), method_id))


@router.delete("/me/payout-methods/{method_id}", status_code=204)
def remove_method(request: Request, method_id: Id):
    """Stop using a method (payouts already in a batch still go to it)."""
    with unit(request) as ctx:
        payouts.remove_method(ctx.session, ctx.require_user(), method_id)
    return Response(status_code=204)


class MyPayoutOut(BaseModel):
    id: int
    batch_id: int
    amount: str
    currency: str
    provider: str
    account: str = Field(description="the payout method's reference, mostly hidden")
    state: str = Field(description="in transit | sent | cancelled")
    created_at: datetime
    sent_at: datetime | None
    reference: str | None = Field(description="the provider's reference, once sent")


@router.get("/me/payouts", response_model=list[MyPayoutOut])
def my_payouts(request: Request, limit: int = Query(200, ge=1, le=1000)):
    """The caller's payouts, newest first."""
    with unit(request) as ctx:
        return [
            MyPayoutOut(
                id=p.payout_id,
                batch_id=p.batch_id,
                amount=p.amount.format(),
                currency=p.amount.currency,
                provider=p.provider,
                account=p.account,
                state=p.state,
                created_at=p.created_at,
                sent_at=p.sent_at,
                reference=p.reference,
            )
            for p in payouts.my_payouts(ctx.session, ctx.require_user(), limit=limit)
        ]


# ---------------------------------------------------------------- batches (admins)


class PayoutBatchIn(InputModel):
    provider: str = Field(min_length=1, max_length=40)
    currency: str = Field(min_length=3, max_length=3)
    minimum: str | None = Field(
        None, max_length=30, description='least balance paid, exact text ("5.00"); default: the setting'
    )


class PayoutLineOut(BaseModel):
    id: int
    user_id: int
    worker: str
    provider: str
    account: str
    amount: str
    transaction_id: int | None
    sent_transaction_id: int | None
    reference: str | None


class PayoutBatchOut(BaseModel):
    id: int
    provider: str
    currency: str
    status: str = Field(description="open | exported | sent | cancelled")
    minimum: str
    payouts: int
    total: str
    created_at: datetime
    exported_at: datetime | None
    export_sha256: str | None
    sent_at: datetime | None
    provider_reference: str | None
    lines: list[PayoutLineOut] | None = Field(None, description="each payout (one batch only)")


def batch_out(b: PayoutBatch, n: int, total: Money, lines: list[payouts.BatchLine] | None = None) -> PayoutBatchOut:
    return PayoutBatchOut(
        id=b.id,
        provider=b.provider,
        currency=b.currency,
        status=b.status.value,
        minimum=Money(b.minimum_minor, b.currency).format(),
        payouts=n,
        total=total.format(),
        created_at=b.created_at,
        exported_at=b.exported_at,
        export_sha256=b.export_sha256,
        sent_at=b.sent_at,
        provider_reference=b.provider_reference,
        lines=None
        if lines is None
        else [
            PayoutLineOut(
                id=x.payout.id,
                user_id=x.payout.user_id,
                worker=x.worker_name,
                provider=x.provider,
                account=x.account,
                amount=Money(x.payout.amount, x.payout.currency).format(),
                transaction_id=x.payout.transaction_id,
                sent_transaction_id=x.payout.sent_transaction_id,
                reference=x.payout.provider_reference,
            )
            for x in lines
        ],
    )


def _one(ctx, batch_id: int) -> PayoutBatchOut:
    b, lines = payouts.get_batch(ctx.session, ctx.require_user(), batch_id)
    return batch_out(b, len(lines), Money(sum(x.payout.amount for x in lines), b.currency), lines)


@router.get("/payout-batches", response_model=list[PayoutBatchOut])
def list_batches(
    request: Request,
    status: PayoutBatchStatus | None = None,
    limit: int = Query(100, ge=1, le=1000),
):
    """Payout batches, newest first (admins)."""
    with unit(request) as ctx:
        return [
            batch_out(x.batch, x.payouts, x.total)
            for x in payouts.list_batches(ctx.session, ctx.require_user(), status=status, limit=limit)
        ]


@router.post("/payout-batches", status_code=201, response_model=PayoutBatchOut)
def create_batch(request: Request, body: PayoutBatchIn):
    """Make a batch: every worker due a payout through this provider in this currency (admins)."""
    with unit(request) as ctx:
        cur = body.currency.strip().upper()
        b = payouts.create_batch(
            ctx.session,
            ctx.require_user(),
            provider=body.provider,
            currency=cur,
            minimum=Money.parse(body.minimum, cur) if body.minimum is not None else None,
            default_minimum_minor=request.app.state.settings.payout_minimum_minor,
        )
        return _one(ctx, b.id)


@router.get("/payout-batches/{batch_id}", response_model=PayoutBatchOut)
def get_batch(request: Request, batch_id: Id):
    """One batch with its payouts (admins)."""
    with unit(request) as ctx:
        return _one(ctx, batch_id)


@router.post("/payout-batches/{batch_id}/export", response_model=PayoutBatchOut)
def export_batch(request: Request, batch_id: Id):
    """Write the provider's file for an open batch and keep it; then GET …/file downloads it."""
    with unit(request) as ctx:
        payouts.export_batch(ctx.session, ctx.require_user(), batch_id, request.app.state.blobs)
        return _one(ctx, batch_id)


@router.get("/payout-batches/{batch_id}/file")
def batch_file(request: Request, batch_id: Id):
    """The exported file, the same bytes every time (admins)."""
    with unit(request) as ctx:
        f = payouts.export_file(ctx.session, ctx.require_user(), batch_id, request.app.state.blobs)
    return Response(
        f.data,
        media_type=f.media_type,
        headers={"Content-Disposition": f'attachment; filename="{f.filename}"', "Cache-Control": "private, no-store"},
    )


class BatchSentIn(InputModel):
    reference: str = Field(min_length=1, max_length=200, description="the provider's reference for the batch")


@router.post("/payout-batches/{batch_id}/sent", response_model=PayoutBatchOut)
def mark_sent(request: Request, batch_id: Id, body: BatchSentIn):
    """Record that the provider took the exported batch: every payout is paid out."""
    with unit(request) as ctx:
        payouts.mark_sent(ctx.session, ctx.require_user(), batch_id, body.reference)
        return _one(ctx, batch_id)


@router.post("/payout-batches/{batch_id}/send", response_model=PayoutBatchOut)
def send_batch(request: Request, batch_id: Id):
    """Pay the batch through its provider's API (providers that have one)."""
    with unit(request) as ctx:
        payouts.send_batch(ctx.session, ctx.require_user(), batch_id)
        return _one(ctx, batch_id)


class BatchCancelIn(InputModel):
    reason: str = Field("", max_length=500)


@router.post("/payout-batches/{batch_id}/cancel", response_model=PayoutBatchOut)
def cancel_batch(request: Request, batch_id: Id, body: BatchCancelIn):
    """Give up a batch before it is sent: the money goes back to each worker's balance."""
    with unit(request) as ctx:
        payouts.cancel_batch(ctx.session, ctx.require_user(), batch_id, body.reason)
        return _one(ctx, batch_id)


# ---------------------------------------------------------------- appeals of reversed pay


class PayAppealIn(InputModel):
    comment: str = Field(max_length=2000, description="why the pay should stand (10 characters or more)")


class PayAppealOut(BaseModel):
    id: int
    clip_id: int
    reversal_id: int
    comment: str
    state: str = Field(description="open | upheld | overturned")
    created_at: datetime
    decided_at: datetime | None
    decision_comment: str
    repay_transaction_id: int | None = Field(description="the posting that paid again (overturned)")


def appeal_out(a: PayAppeal) -> PayAppealOut:
    return PayAppealOut(
        id=a.id,
        clip_id=a.clip_id,
        reversal_id=a.reversal_id,
        comment=a.comment,
        state=a.state,
        created_at=a.created_at,
        decided_at=a.decided_at,
        decision_comment=a.decision_comment,
        repay_transaction_id=a.repay_transaction_id,
    )


@router.post("/clips/{clip_id}/pay-appeal", status_code=201, response_model=PayAppealOut)
def appeal(request: Request, clip_id: Id, body: PayAppealIn):
    """The clip's worker appeals the reversal of its pay, once."""
    with unit(request) as ctx:
        return appeal_out(appeals.appeal(ctx.session, ctx.require_user(), clip_id, body.comment))


@router.get("/pay-appeals/{appeal_id}", response_model=PayAppealOut)
def get_appeal(request: Request, appeal_id: Id):
    """An appeal (its worker, admins)."""
    with unit(request) as ctx:
        return appeal_out(appeals.get_appeal(ctx.session, ctx.require_user(), appeal_id))


class PayAppealDecisionIn(InputModel):
    decision: str = Field(max_length=20, description="uphold | overturn")
    comment: str = Field("", max_length=2000, description="the worker reads it (required to uphold)")


@router.post("/pay-appeals/{appeal_id}/decision", response_model=PayAppealOut)
def decide(request: Request, appeal_id: Id, body: PayAppealDecisionIn):
    """An admin upholds (nothing moves) or overturns (the pay comes back) an appeal, once."""
    with unit(request) as ctx:
        return appeal_out(appeals.decide(ctx.session, ctx.require_user(), appeal_id, body.decision, body.comment))


class ReversalRowOut(BaseModel):
    reversal_id: int
    clip_id: int
    worker_id: int
    worker: str
    amount: str
    currency: str
    reason: str
    reversed_at: datetime
    allow_negative: bool
    appeal: PayAppealOut | None


@router.get("/pay-reversals", response_model=list[ReversalRowOut])
def reversals(
    request: Request,
    appeals_only: str | None = Query(None, alias="appeal", pattern="^(open|appealed)$"),
    limit: int = Query(200, ge=1, le=1000),
):
    """Reversed clip payments with their appeals, newest first (admins); ``appeal=open`` only those
    waiting for a decision."""
    with unit(request) as ctx:
        return [
            ReversalRowOut(
                reversal_id=r.reversal_id,
                clip_id=r.clip_id,
                worker_id=r.worker_id,
                worker=r.worker_name,
                amount=r.amount.format(),
                currency=r.amount.currency,
                reason=r.reason,
                reversed_at=r.reversed_at,
                allow_negative=r.allow_negative,
                appeal=appeal_out(r.appeal) if r.appeal else None,
            )
            for r in appeals.list_reversals(ctx.session, ctx.require_user(), state=appeals_only, limit=limit)
        ]

"""JSON API: Pay floors, measured hourly rates, top-ups and exchange rates (#11; egocrowd.pay.rates, docs/pay.md).
Amounts are strings with the currency's digits ("8.00"), rates decimal strings: money is exact."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from egocrowd.db.models import PayFloor, TopUp
from egocrowd.inputs import InputModel
from egocrowd.pay import rates
from egocrowd.pay.money import Money
from egocrowd.web.auth import unit
from egocrowd.web.routers.api import Id

router = APIRouter(prefix="/api/v1", tags=["rates"])

Country = Annotated[str, Path(pattern=r"^([A-Za-z]{2}|\*)$", description="ISO 3166 alpha-2, or * for everywhere else")]


class FloorIn(InputModel):
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217")
    hourly: str = Field(max_length=30, description='the least an hour may pay, exact text: "8.00"')
    source: str = Field(min_length=1, max_length=500, description="where the figure comes from")


class FloorOut(BaseModel):
    country: str
    currency: str
    hourly: str
    source: str
    updated_at: datetime


def floor_out(f: PayFloor) -> FloorOut:
    return FloorOut(
        country=f.country,
        currency=f.currency,
        hourly=Money(f.hourly_minor, f.currency).format(),
        source=f.source,
        updated_at=f.updated_at,
    )


class RateIn(InputModel):
    base: str = Field(min_length=3, max_length=3)
    quote: str = Field(min_length=3, max_length=3)
    rate: str = Field(max_length=40, description="1 base = rate quote, a decimal string: 129.50")
    source: str = Field(min_length=1, max_length=300, description="where the rate comes from, and its date")


class RateOut(BaseModel):
    base: str
    quote: str
    rate: str
    source: str
    set_at: datetime


class MeasuredOut(BaseModel):
    kind: str = Field(description="capture | annotation")
    tasks: int = Field(description="accepted tasks with a measured working time")
    median_minutes: str | None
    pay: str
    hourly_rate: str | None = Field(description="pay / median hours, rounded down (none without a sample)")


class TopUpOut(BaseModel):
    id: int
    campaign_id: int
    state: str = Field(description="proposed | accepted | declined | paid")
    currency: str
    median_minutes: str
    hourly_rate: str = Field(description="the measured rate that was under the floor")
    floor: str
    per_task: str
    tasks: int
    total: str
    created_at: datetime
    decided_at: datetime | None
    paid_at: datetime | None


def top_up_out(t: TopUp) -> TopUpOut:
    m = lambda minor: Money(minor, t.currency).format()  # noqa: E731
    return TopUpOut(
        id=t.id,
        campaign_id=t.campaign_id,
        state=t.state.value,
        currency=t.currency,
        median_minutes=f"{t.median_seconds / 60:.1f}",
        hourly_rate=m(t.hourly_minor),
        floor=m(t.floor_minor),
        per_task=m(t.per_task_minor),
        tasks=t.tasks,
        total=m(t.total_minor),
        created_at=t.created_at,
        decided_at=t.decided_at,
        paid_at=t.paid_at,
    )


class PayRatesOut(BaseModel):
    campaign_id: int
    currency: str
    expected_hourly_rate: str = Field(description="pay for the expected minutes, per hour")
    floor: str | None = Field(description="the highest floor among the campaign's countries, converted")
    floors: dict[str, str] = Field(description="country → its floor in the campaign's currency")
    missing_exchange_rate: str | None = Field(description='"GBP→USD" when a floor cannot be converted yet')
    measured: list[MeasuredOut]
    top_ups: list[TopUpOut]


@router.get("/pay/floors", response_model=list[FloorOut])
def list_floors(request: Request):
    """The pay floor table (admins)."""
    with unit(request) as ctx:
        return [floor_out(f) for f in rates.floors_as(ctx.session, ctx.require_user())]


@router.put("/pay/floors/{country}", response_model=FloorOut)
def put_floor(request: Request, country: Country, body: FloorIn):
    """Set a country's floor (admins; audited ``pay.floor_set``)."""
    with unit(request) as ctx:
        money = Money.parse(body.hourly, body.currency.upper())
        return floor_out(rates.set_floor(ctx.session, ctx.require_user(), country, money, body.source))


@router.get("/pay/exchange-rates", response_model=list[RateOut])
def list_rates(request: Request):
    """The exchange rates in use, the newest per pair (admins)."""
    with unit(request) as ctx:
        return [
            RateOut(base=r.base, quote=r.quote, rate=str(r.rate), source=r.source, set_at=r.set_at)
            for r in rates.rates_as(ctx.session, ctx.require_user())
        ]


@router.post("/pay/exchange-rates", status_code=201, response_model=RateOut)
def post_rate(request: Request, body: RateIn):
    """Set 1 base = rate quote (admins; audited ``pay.rate_set``); the newest per pair is used."""
    with unit(request) as ctx:
        r = rates.set_rate(ctx.session, ctx.require_user(), body.base, body.quote, body.rate, body.source)
        return RateOut(base=r.base, quote=r.quote, rate=r.rate, source=r.source, set_at=r.set_at)


@router.get("/campaigns/{campaign_id}/pay-rates", response_model=PayRatesOut)
def campaign_rates(request: Request, campaign_id: Id):
    """The campaign's promised and measured hourly rates, its floors and top-ups (its lab and admins)."""
    with unit(request) as ctx:
        r = rates.visible_report(ctx.session, ctx.require_user(), campaign_id)
        return PayRatesOut(
            campaign_id=r.campaign.id,
            currency=r.campaign.currency,
            expected_hourly_rate=r.expected.format(),
            floor=r.floor.format() if r.floor else None,
            floors={c: f.format() for c, f in r.floors.items()},
            missing_exchange_rate=r.missing_rate,
            measured=[
                MeasuredOut(
                    kind=m.kind,
                    tasks=m.tasks,
                    median_minutes=str(m.median_minutes) if m.median_minutes is not None else None,
                    pay=m.pay.format(),
                    hourly_rate=m.rate.format() if m.rate else None,
                )
                for m in r.measured
            ],
            top_ups=[top_up_out(t) for t in r.top_ups],
        )


@router.post("/campaigns/{campaign_id}/top-ups/{top_up_id}/accept", response_model=TopUpOut)
def accept_top_up(request: Request, campaign_id: Id, top_up_id: Id):
    """The lab agrees: the top-up is paid to everyone already paid on the campaign, once."""
    with unit(request) as ctx:
        return top_up_out(rates.decide_by(ctx.session, ctx.require_user(), campaign_id, top_up_id, accept=True))


@router.post("/campaigns/{campaign_id}/top-ups/{top_up_id}/decline", response_model=TopUpOut)
def decline_top_up(request: Request, campaign_id: Id, top_up_id: Id):
    """The lab refuses (recorded; not proposed again for as much)."""
    with unit(request) as ctx:
        return top_up_out(rates.decide_by(ctx.session, ctx.require_user(), campaign_id, top_up_id, accept=False))

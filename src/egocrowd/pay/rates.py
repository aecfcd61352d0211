"""Fair pay (issue #11, docs/pay.md "Fair pay"): working time, effective hourly rates on the median,
pay floors per country, exchange rates, and top-ups when a campaign's measured rate is under its floor.

Rounding always favours the worker: a *rate* is rounded down (a campaign earning 7.995/h does not
reach an 8.00 floor), a *floor* converted to another currency and a *top-up* are rounded up. All
arithmetic is on integers and ``Decimal``; no float touches an amount.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from fractions import Fraction

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from egocrowd import audit, notifications
from egocrowd.accounts import policy
from egocrowd.clock import db_now
from egocrowd.db.models import (
    Assignment,
    Campaign,
    CampaignStatus,
    Clip,
    ClipStatus,
    ExchangeRate,
    LedgerAccount,
    LedgerAccountKind,
    LedgerEntry,
    LedgerTransaction,
    PayFloor,
    TopUp,
    TopUpState,
    User,
)
from egocrowd.errors import Conflict, InvalidInput, NotFound
from egocrowd.i18n import N_
from egocrowd.pay import answers, ledger
from egocrowd.pay.money import Money, minor_digits

#: the least number of accepted tasks whose median is trusted enough to propose a top-up
MIN_SAMPLE = 5
#: the longest idle time a client may report, in seconds (a week: anything longer is nonsense)
MAX_IDLE_SECONDS = 7 * 24 * 3600
#: the country key of the floor that applies wherever no country has its own row
ANYWHERE = "*"


# ---------------------------------------------------------------- pure: time and rates


def clamp_idle(idle_seconds: int | None, claimed_at: datetime, submitted_at: datetime) -> int:
    """The idle time a client reported, kept within [0, claim → submit] (a client cannot make its
    working time negative, nor longer than the slot was held)."""
    span = max(int((submitted_at - claimed_at).total_seconds()), 0)
    return min(max(int(idle_seconds or 0), 0), span)


def working_seconds(claimed_at: datetime, submitted_at: datetime, idle_seconds: int | None) -> int:
    """Working time of one task: submitted − claimed − idle, in whole seconds, never below zero."""
    span = max(int((submitted_at - claimed_at).total_seconds()), 0)
    return span - clamp_idle(idle_seconds, claimed_at, submitted_at)


def parse_idle(text: str | int | None) -> int | None:
    """A client's ``idle_seconds`` (upload metadata, an answer's field): a whole number of seconds
    from 0 to a week, or ``upload.bad_idle``; absent is None (nothing was measured)."""
    if text is None or text == "":
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InvalidInput(
            f"idle_seconds must be a whole number of seconds, not {str(text)[:40]!r}.", code="pay.bad_idle"
        ) from None
    if not 0 <= value <= MAX_IDLE_SECONDS:
        raise InvalidInput(f"idle_seconds must be between 0 and {MAX_IDLE_SECONDS}.", code="pay.bad_idle")
    return value


def median(values: Sequence[int]) -> Fraction:
    """The median of whole numbers, exact (the mean of the two middle ones when the count is even)."""
    if not values:
        raise ValueError("median of nothing")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return Fraction(ordered[mid])
    return Fraction(ordered[mid - 1] + ordered[mid], 2)


def _to_minor(value: Fraction, rounding: str) -> int:
    """An exact fraction of minor units to a whole number: down (ROUND_FLOOR) or up (ROUND_CEILING)."""
    n, d = value.numerator, value.denominator
    return -((-n) // d) if rounding == ROUND_CEILING else n // d


def hourly(pay: Money, seconds: Fraction | int) -> Money:
    """What ``pay`` for ``seconds`` of work comes to per hour, rounded down to the minor unit (never
    overstating what the work pays). ``seconds`` of zero or less is ``pay.no_working_time``."""
    seconds = Fraction(seconds)
    if seconds <= 0:
        raise InvalidInput("No working time was measured.", code="pay.no_working_time")
    return Money(_to_minor(Fraction(pay.minor) * 3600 / seconds, ROUND_FLOOR), pay.currency)


def expected_hourly(pay: Money, expected_minutes: float) -> Money:
    """The rate a campaign promises: its pay for its expected minutes per task, rounded down. The
    minutes are a decimal the lab typed: read through ``str`` so 2.5 is exactly 2.5."""
    return hourly(pay, Fraction(Decimal(str(expected_minutes))) * 60)


def top_up_per_task(floor: Money, median_seconds: Fraction | int, pay: Money) -> Money:
    """What each task must get on top of ``pay`` for its median working time to earn ``floor`` an
    hour: floor × median hours − pay, rounded up; zero when the pay already reaches it."""
    ledger.check_currency(floor.currency, pay.currency)
    owed = _to_minor(Fraction(floor.minor) * Fraction(median_seconds) / 3600, ROUND_CEILING)
    return Money(max(owed - pay.minor, 0), pay.currency)


# ---------------------------------------------------------------- exchange rates


def parse_rate(text: str) -> Decimal:
    """An exchange rate as typed: a positive decimal with at most 12 digits after the point."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise InvalidInput(f"{str(text)[:40]!r} is not a rate (write it like 1550.25).", code="pay.bad_rate") from None
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -12 or value >= Decimal(10) ** 12:  # type: ignore[operator]
        raise InvalidInput("A rate is a positive number below 10¹² with at most 12 decimals.", code="pay.bad_rate")
    return value


@dataclass(frozen=True)
class Rate:
    base: str
    quote: str
    rate: Decimal  # 1 base = rate quote
    source: str
    set_at: datetime


def set_rate(session: Session, actor: User, base: str, quote: str, rate: str, source: str) -> ExchangeRate:
    """An admin records 1 ``base`` = ``rate`` ``quote`` (a new row; the newest per pair is used)."""
    policy.require(actor, "pay.rates")
    base, quote = base.upper(), quote.upper()
    minor_digits(base), minor_digits(quote)  # both known currencies
    if base == quote:
        raise InvalidInput("A rate converts between two different currencies.", code="pay.bad_rate")
    value = parse_rate(rate)
    row = ExchangeRate(base=base, quote=quote, rate=str(value), source=source.strip(), set_by=actor.id)
    session.add(row)
    session.flush()
    audit.record(
        session, actor, "pay.rate_set", row, {"base": base, "quote": quote, "rate": str(value), "source": row.source}
    )
    return row


def current_rates(session: Session) -> list[Rate]:
    """The rate in use for each pair (the newest row), sorted by pair."""
    newest: dict[tuple[str, str], ExchangeRate] = {}
    for row in session.scalars(sa.select(ExchangeRate).order_by(ExchangeRate.set_at, ExchangeRate.id)):
        newest[(row.base, row.quote)] = row
    return [Rate(r.base, r.quote, Decimal(r.rate), r.source, r.set_at) for _, r in sorted(newest.items())]


def _newest_row(session: Session, base: str, quote: str) -> ExchangeRate | None:
    """The newest row for the pair in either direction."""
    return session.scalars(
        sa.select(ExchangeRate)
        .where(
            sa.or_(
                sa.and_(ExchangeRate.base == base, ExchangeRate.quote == quote),
                sa.and_(ExchangeRate.base == quote, ExchangeRate.quote == base),
            )
        )
        .order_by(ExchangeRate.set_at.desc(), ExchangeRate.id.desc())
        .limit(1)
    ).first()


def exact_rate(session: Session, base: str, quote: str) -> tuple[Fraction, ExchangeRate] | None:
    """1 ``base`` in ``quote``, exactly: the newest rate set for the pair, or the inverse of the
    newest set the other way round (whichever is newer); None when neither was ever set."""
    row = _newest_row(session, base, quote)
    if row is None:
        return None
    value = Fraction(Decimal(row.rate))
    return (value if row.base == base else 1 / value), row


def convert_exact(money: Money, rate: Fraction | Decimal, currency: str, *, rounding: str = ROUND_FLOOR) -> Money:
    """``money`` × ``rate`` in ``currency``'s minor units, exact until the one final rounding."""
    shift = Fraction(10) ** (minor_digits(currency) - minor_digits(money.currency))
    return Money(_to_minor(Fraction(money.minor) * Fraction(rate) * shift, rounding), currency)


def convert(session: Session, money: Money, currency: str, *, rounding: str = ROUND_FLOOR) -> Money:
    """``money`` in ``currency`` at the rate in use (``pay.no_exchange_rate`` when none is set)."""
    if money.currency == currency:
        return money
    found = exact_rate(session, money.currency, currency)
    if found is None:
        raise Conflict(
            f"No exchange rate between {money.currency} and {currency} is set; an admin sets one on the pay page.",
            code="pay.no_exchange_rate",
            base=money.currency,
            quote=currency,
        )
    return convert_exact(money, found[0], currency, rounding=rounding)


# ---------------------------------------------------------------- pay floors


def list_floors(session: Session) -> list[PayFloor]:
    return list(session.scalars(sa.select(PayFloor).order_by(PayFloor.country)))


def _country(code: str) -> str:
    code = code.strip().upper()
    if code != ANYWHERE and not (len(code) == 2 and code.isalpha() and code.isascii()):
        raise InvalidInput(
            f"{code[:10]!r} is not a country: an ISO 3166 alpha-2 code such as KE, or * for everywhere else.",
            code="pay.bad_country",
        )
    return code


def set_floor(session: Session, actor: User, country: str, hourly_pay: Money, source: str) -> PayFloor:
    """An admin sets the least an hour may pay in ``country`` (``*``: everywhere without its own row)."""
    policy.require(actor, "pay.floors")
    country = _country(country)
    source = source.strip()
    if not source:
        raise InvalidInput(
            "Say where the figure comes from (a law, Prolific's minimum...).", code="pay.source_required"
        )
    if hourly_pay.minor <= 0:
        raise InvalidInput("A floor is a positive amount per hour.", code="money.bad_amount")
    row = session.scalar(sa.select(PayFloor).where(PayFloor.country == country).with_for_update())
    before = None if row is None else {"currency": row.currency, "hourly": str(Money(row.hourly_minor, row.currency))}
    if row is None:
        row = PayFloor(country=country, currency=hourly_pay.currency, hourly_minor=hourly_pay.minor, source=source)
        session.add(row)
    row.currency, row.hourly_minor, row.source = hourly_pay.currency, hourly_pay.minor, source
    row.updated_by, row.updated_at = actor.id, db_now(session)
    session.flush()
    audit.record(
        session,
        actor,
        "pay.floor_set",
        row,
        {"country": country, "before": before, "after": str(hourly_pay), "source": source},
    )
    return row


@dataclass(frozen=True)
class FloorCheck:
    """A campaign's rate against the floors of its countries, in the campaign's currency."""

    rate: Money
    floor: Money | None  # the highest floor among the campaign's countries, converted (None: no floor)
    countries: list[str]  # the countries whose floor the rate is below
    floors: dict[str, Money]  # country → its floor in the campaign's currency

    @property
    def below(self) -> bool:
        return bool(self.countries)


def floors_for(session: Session, campaign: Campaign) -> dict[str, Money]:
    """Each of the campaign's countries (``*`` when it allows all) → the floor that applies there,
    converted to the campaign's currency (rounded up). ``pay.no_exchange_rate`` when a floor's
    currency has no rate to the campaign's."""
    rows = {f.country: f for f in list_floors(session)}
    countries = sorted({str(c).upper() for c in (campaign.allowed_countries or [])}) or [ANYWHERE]
    out: dict[str, Money] = {}
    for country in countries:
        row = rows.get(country) or rows.get(ANYWHERE)
        if row is None:
            continue
        out[country] = convert(
            session, Money(row.hourly_minor, row.currency), campaign.currency, rounding=ROUND_CEILING
        )
    return out


def check_floor(session: Session, campaign: Campaign, rate: Money) -> FloorCheck:
    floors = floors_for(session, campaign)
    below = sorted(c for c, f in floors.items() if rate < f)
    top = max(floors.values(), key=lambda m: m.minor) if floors else None
    return FloorCheck(rate, top, below, floors)


def require_above_floor(
    session: Session,
    campaign: Campaign,
    *,
    pay_cents: int | None = None,
    expected_minutes: float | None = None,
    doing: str,
) -> FloorCheck:
    """Refuse (``campaign.below_pay_floor``) a campaign whose expected rate (pay for its expected
    minutes) is below the floor of any country it allows; ``doing`` says what was refused."""
    pay = Money(campaign.pay_cents if pay_cents is None else pay_cents, campaign.currency)
    minutes = campaign.expected_minutes if expected_minutes is None else expected_minutes
    check = check_floor(session, campaign, expected_hourly(pay, minutes))
    if check.below:
        worst = max((check.floors[c] for c in check.countries), key=lambda m: m.minor)
        raise Conflict(
            f"{pay} for {minutes:g} minutes is {check.rate} an hour, below the pay floor of {worst} an hour "
            f"in {', '.join(check.countries)}. Raise the pay or the expected minutes to {doing}.",
            code="campaign.below_pay_floor",
            countries=check.countries,
            rate=check.rate.format(),
            floor=worst.format(),
            currency=campaign.currency,
        )
    return check


# ---------------------------------------------------------------- measured rates


@dataclass(frozen=True)
class Measured:
    """A campaign's effective hourly rate on the median working time of its accepted tasks."""

    kind: str  # "capture" | "annotation"
    tasks: int  # accepted tasks with a measured working time
    median_seconds: Fraction | None
    pay: Money  # pay per task
    rate: Money | None  # pay / median hours (None without a sample)
    expected: Money | None  # the promised rate (capture: pay for expected minutes)

    @property
    def median_minutes(self) -> Decimal | None:
        if self.median_seconds is None:
            return None
        return (Decimal(self.median_seconds.numerator) / Decimal(self.median_seconds.denominator) / 60).quantize(
            Decimal("0.1")
        )


def clip_working_times(session: Session, campaign_id: int) -> list[int]:
    """Working seconds of the campaign's accepted clips (assignment claim → submit, less idle)."""
    rows = session.execute(
        sa.select(Assignment.claimed_at, Assignment.submitted_at, Assignment.idle_seconds)
        .join(Clip, Clip.assignment_id == Assignment.id)
        .where(
            Clip.campaign_id == campaign_id, Clip.status == ClipStatus.accepted, Assignment.submitted_at.is_not(None)
        )
    ).all()
    return [working_seconds(c, s, i) for c, s, i in rows if s is not None]


def annotation_working_times(session: Session, campaign_id: int) -> list[int]:
    """Working seconds of the campaign's paid annotation answers (see pay.answers)."""

    return [
        working_seconds(t.claimed_at, sent, t.idle_seconds)
        for t in answers.payable_tasks(session, campaign_id)
        if (sent := t.submitted_at) is not None
    ]


def measure(session: Session, campaign: Campaign) -> list[Measured]:
    """The campaign's measured rates: capture, and annotation when it pays for annotation."""
    out = []
    pay = Money(campaign.pay_cents, campaign.currency)
    times = [t for t in clip_working_times(session, campaign.id) if t > 0]
    med = median(times) if times else None
    out.append(
        Measured(
            "capture",
            len(times),
            med,
            pay,
            hourly(pay, med) if med else None,
            expected_hourly(pay, campaign.expected_minutes),
        )
    )
    apay = int((campaign.annotation or {}).get("pay_cents") or 0)
    if apay > 0:
        atimes = [t for t in annotation_working_times(session, campaign.id) if t > 0]
        amed = median(atimes) if atimes else None
        money = Money(apay, campaign.currency)
        out.append(Measured("annotation", len(atimes), amed, money, hourly(money, amed) if amed else None, None))
    return out


# ---------------------------------------------------------------- top-ups


def top_up_key(top_up_id: int, clip_id: int) -> str:
    return f"topup:{top_up_id}:clip:{clip_id}"


def top_up_payments(session: Session, clip_id: int) -> list[LedgerTransaction]:
    """Every top-up posted for the clip (one per top-up that reached it), oldest first: reversing
    the clip's pay takes them back too, and an appeal granted against that brings them back."""
    return list(
        session.scalars(
            sa.select(LedgerTransaction)
            .where(
                LedgerTransaction.kind == ledger.TransactionKind.top_up,
                LedgerTransaction.idempotency_key.like(f"topup:%:clip:{int(clip_id)}"),
            )
            .order_by(LedgerTransaction.id)
        )
    )


def _paid_clips(session: Session, campaign_id: int, *, paid_by: datetime | None = None) -> list[Clip]:
    """The campaign's clips whose pay stands (posted, not reversed), oldest first; ``paid_by``: only
    those paid at or before that moment."""
    payment, reversal = aliased(LedgerTransaction), aliased(LedgerTransaction)
    q = (
        sa.select(Clip)
        .join(payment, payment.idempotency_key == ledger.clip_payment_key.sql(Clip.id))
        .outerjoin(reversal, reversal.reverses_id == payment.id)
        .where(Clip.campaign_id == campaign_id, reversal.id.is_(None))
        .order_by(Clip.id)
    )
    if paid_by is not None:
        q = q.where(payment.at <= paid_by)
    return list(session.scalars(q))


def topped_up(session: Session, campaign_id: int) -> dict[int, int]:
    """clip id → what earlier top-ups already paid on it (minor units, net of reversals)."""
    out: dict[int, int] = {}
    reversal = aliased(LedgerTransaction)
    rows = session.execute(
        sa.select(LedgerTransaction.refs, LedgerTransaction.id)
        .outerjoin(reversal, reversal.reverses_id == LedgerTransaction.id)
        .where(
            LedgerTransaction.kind == ledger.TransactionKind.top_up,
            LedgerTransaction.idempotency_key.like("topup:%"),
            reversal.id.is_(None),
        )
    ).all()
    for refs, _ in rows:
        if refs.get("campaign_id") == campaign_id:
            out[int(refs["clip_id"])] = out.get(int(refs["clip_id"]), 0) + int(refs["amount_minor"])
    return out


def list_top_ups(session: Session, campaign_id: int) -> list[TopUp]:
    return list(session.scalars(sa.select(TopUp).where(TopUp.campaign_id == campaign_id).order_by(TopUp.id.desc())))


def propose(session: Session, campaign: Campaign, *, min_sample: int = MIN_SAMPLE) -> TopUp | None:
    """Measure the campaign and, when its median rate is under its floor (with at least
    ``min_sample`` accepted clips), propose a top-up to the lab; accept it at once when the
    campaign's ``pay_policy.auto_top_up`` says so. Nothing while a proposal is waiting, nor when the
    lab already declined one at least as large. Returns the new top-up, or None."""
    capture = measure(session, campaign)[0]
    if capture.tasks < min_sample or capture.median_seconds is None or capture.rate is None:
        return None
    try:
        check = check_floor(session, campaign, capture.rate)
    except Conflict:  # no exchange rate to the floor's currency: nothing to compare with yet
        return None
    if not check.below or check.floor is None:
        return None
    floor = max((check.floors[c] for c in check.countries), key=lambda m: m.minor)
    per_task = top_up_per_task(floor, capture.median_seconds, capture.pay)
    if per_task.minor <= 0:
        return None
    earlier = list_top_ups(session, campaign.id)
    if any(t.state in (TopUpState.proposed, TopUpState.accepted) for t in earlier):
        return None
    if any(t.state is TopUpState.declined and t.per_task_minor >= per_task.minor for t in earlier):
        return None
    already = topped_up(session, campaign.id)
    paid = _paid_clips(session, campaign.id)
    tasks = [c for c in paid if already.get(c.id, 0) < per_task.minor]
    if not tasks:
        return None
    total = sum(per_task.minor - already.get(c.id, 0) for c in tasks)
    t = TopUp(
        campaign_id=campaign.id,
        state=TopUpState.proposed,
        currency=campaign.currency,
        median_seconds=int(_to_minor(capture.median_seconds, ROUND_FLOOR)),
        hourly_minor=capture.rate.minor,
        floor_minor=floor.minor,
        per_task_minor=per_task.minor,
        tasks=len(tasks),
        total_minor=total,
        created_at=db_now(session),
    )
    session.add(t)
    session.flush()
    audit.record(
        session,
        None,
        "pay.top_up_proposed",
        t,
        {
            "campaign_id": campaign.id,
            "median_seconds": t.median_seconds,
            "rate": str(capture.rate),
            "floor": str(floor),
            "per_task": str(per_task),
            "tasks": t.tasks,
        },
    )
    if (campaign.pay_policy or {}).get("auto_top_up"):
        decide(session, None, t, accept=True)
    return t


def propose_all(session: Session) -> int:
    """Housekeeping: propose top-ups for every live or closed campaign that needs one. Returns how many."""
    n = 0
    for campaign in session.scalars(
        sa.select(Campaign).where(
            Campaign.status.in_((CampaignStatus.open, CampaignStatus.paused, CampaignStatus.closed))
        )
    ):
        if propose(session, campaign) is not None:
            n += 1
    return n


def get_top_up(session: Session, user: User, campaign_id: int, top_up_id: int, *, for_update: bool = False) -> TopUp:
    c = session.get(Campaign, campaign_id)
    if c is None or not policy.can(user, "org.view", c.organization):
        raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
    q = sa.select(TopUp).where(TopUp.id == top_up_id, TopUp.campaign_id == campaign_id)
    t = session.scalar(q.with_for_update() if for_update else q)
    if t is None:
        raise NotFound(f"No top-up {top_up_id} on campaign {campaign_id}.", code="pay.top_up_not_found")
    return t


def decide_by(session: Session, user: User, campaign_id: int, top_up_id: int, *, accept: bool) -> TopUp:
    """The lab (``pay.top_up``: its owners and editors, admins) accepts or declines a proposal."""
    t = get_top_up(session, user, campaign_id, top_up_id, for_update=True)
    policy.require(user, "pay.top_up", session.get(Campaign, campaign_id))
    return decide(session, user, t, accept=accept)


def decide(session: Session, actor: User | None, t: TopUp, *, accept: bool) -> TopUp:
    """Accept (then pay) or decline a proposed top-up. Deciding the same way again returns it as it
    is (a double click); the other way is ``pay.top_up_decided``."""
    wanted = TopUpState.accepted if accept else TopUpState.declined
    # the row is locked (SELECT ... FOR UPDATE) and read again: of two deciders the second sees the
    # first one's decision (the pay package never UPDATEs by statement: tests/pay/test_ledger.py)
    session.refresh(t, with_for_update=True)
    if t.state is not TopUpState.proposed:
        if t.state is wanted or (accept and t.state is TopUpState.paid):
            return t
        raise Conflict(f"This top-up was already {t.state.value}.", code="pay.top_up_decided", state=t.state.value)
    t.state, t.decided_by, t.decided_at = wanted, actor.id if actor else None, db_now(session)
    session.flush()
    audit.record(
        session, actor, f"pay.top_up_{wanted.value}", t, {"campaign_id": t.campaign_id, "automatic": actor is None}
    )
    if accept:
        pay_top_up(session, t, actor)
    return t


def pay_top_up(session: Session, t: TopUp, actor: User | None) -> int:
    """Pay an accepted top-up to each clip's worker, once per (top-up, clip) (the ledger key). When
    the budget runs short the rest is owed (audited ``pay.top_up_owed``) and paid with the next
    deposit (``budgets.record_deposit``); the top-up becomes ``paid`` when every clip got it.
    Returns how many payments were posted or found already posted."""
    campaign = session.get(Campaign, t.campaign_id)
    assert campaign is not None
    already = topped_up(session, campaign.id)
    done = 0
    workers: set[int] = set()
    # the clips the proposal counted: paid when it was made (later ones wait for the next measurement)
    for clip in _paid_clips(session, campaign.id, paid_by=t.created_at):
        key = top_up_key(t.id, clip.id)
        posted = session.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key))
        if posted is not None:
            done += 1
            continue
        amount = Money(t.per_task_minor - already.get(clip.id, 0), t.currency)
        if amount.minor <= 0:
            continue
        worker = session.get(User, clip.worker_id)
        assert worker is not None
        try:
            ledger.pay_from_budget(
                session,
                ledger.TransactionKind.top_up,
                campaign,
                worker,
                amount,
                fee_bps=ledger.DEFAULT_FEE_BPS,
                idempotency_key=key,
                reason=f"Top-up {t.id} for clip {clip.id} of campaign {campaign.id}: the median hour paid under the floor",
                actor=actor,
                refs={
                    "top_up_id": t.id,
                    "clip_id": clip.id,
                    "campaign_id": campaign.id,
                    "amount_minor": amount.minor,
                },
            )
        except ledger.InsufficientFunds as short:
            audit.record(
                session,
                actor,
                "pay.top_up_owed",
                t,
                {
                    "campaign_id": campaign.id,
                    "needed": short.extra.get("needed"),
                    "balance": short.extra.get("balance"),
                },
            )
            return done
        done += 1
        workers.add(worker.id)
    for worker_id in sorted(workers):
        notifications.notify(
            session,
            worker_id,
            "pay.top_up",
            N_("A top-up for your work on {title}"),
            N_(
                "Work on this campaign took longer than expected, so it paid less than {floor} an hour. "
                "Each of your clips there gets {extra} more (see your earnings)."
            ),
            params={
                "title": campaign.title,
                "floor": Money(t.floor_minor, t.currency),
                "extra": Money(t.per_task_minor, t.currency),
            },
        )
    if t.state is TopUpState.accepted:
        t.state, t.paid_at = TopUpState.paid, db_now(session)
        audit.record(session, actor, "pay.top_up_paid", t, {"campaign_id": campaign.id, "payments": done})
    return done


def settle_top_ups(session: Session, campaign: Campaign, actor: User | None) -> int:
    """Pay accepted top-ups still owed (after a deposit). Returns how many payments were posted."""
    n = 0
    for t in session.scalars(
        sa.select(TopUp).where(TopUp.campaign_id == campaign.id, TopUp.state == TopUpState.accepted).order_by(TopUp.id)
    ):
        n += pay_top_up(session, t, actor)
    return n


def worker_top_ups(
    session: Session, worker: User
) -> list[tuple[LedgerTransaction, Money, Campaign, LedgerTransaction | None]]:
    """The top-up payments a worker received, newest first: the transaction, what it put into their
    balance, its campaign, and its reversal when it was taken back (pay.reversals) and not given
    back on appeal (the reversal reversed), else None."""
    undo, standing = ledger.standing_reversal(LedgerTransaction.id)
    rows = session.execute(
        sa.select(LedgerTransaction, LedgerEntry.amount, LedgerAccount.currency, Campaign, undo)
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .join(LedgerAccount, LedgerAccount.id == LedgerEntry.account_id)
        .join(Clip, Clip.id == sa.cast(LedgerTransaction.refs["clip_id"].as_string(), sa.Integer))
        .join(Campaign, Campaign.id == Clip.campaign_id)
        .outerjoin(undo, standing)
        .where(
            LedgerTransaction.kind == ledger.TransactionKind.top_up,
            LedgerAccount.kind == LedgerAccountKind.worker_earnings,
            LedgerAccount.user_id == worker.id,
        )
        .order_by(LedgerTransaction.id.desc())
    ).all()
    return [(txn, Money(int(amount), cur), campaign, reversal) for txn, amount, cur, campaign, reversal in rows]


def floors_as(session: Session, user: User | None) -> list[PayFloor]:
    """The floor table, for admins (``pay.floors``)."""
    policy.require(user, "pay.floors")
    return list_floors(session)


def rates_as(session: Session, user: User | None) -> list[Rate]:
    """The exchange rates in use, for admins (``pay.rates``)."""
    policy.require(user, "pay.rates")
    return current_rates(session)


@dataclass(frozen=True)
class Report:
    """What the campaign page and ``GET /campaigns/{id}/pay-rates`` show: the promised rate, the
    floors of its countries, the measured rates and the top-ups."""

    campaign: Campaign
    expected: Money
    floors: dict[str, Money]  # country → floor in the campaign's currency ({} when not convertible)
    missing_rate: str | None  # "GBP→USD" when a floor's currency has no exchange rate
    measured: list[Measured]
    top_ups: list[TopUp]

    @property
    def floor(self) -> Money | None:
        return max(self.floors.values(), key=lambda m: m.minor) if self.floors else None

    @property
    def topped_up_rate(self) -> Money | None:
        """The measured capture rate with the largest paid top-up added to the pay (None without one)."""
        paid = [t.per_task_minor for t in self.top_ups if t.state is TopUpState.paid]
        capture = self.measured[0]
        if not paid or capture.median_seconds is None:
            return None
        return hourly(Money(capture.pay.minor + max(paid), capture.pay.currency), capture.median_seconds)


def report(session: Session, campaign: Campaign) -> Report:
    expected = expected_hourly(Money(campaign.pay_cents, campaign.currency), campaign.expected_minutes)
    try:
        floors, missing = floors_for(session, campaign), None
    except Conflict as e:
        floors, missing = {}, f"{e.extra.get('base')}→{e.extra.get('quote')}"
    return Report(campaign, expected, floors, missing, measure(session, campaign), list_top_ups(session, campaign.id))


def visible_report(session: Session, user: User | None, campaign_id: int) -> Report:
    """A campaign's rates and top-ups, for its lab's team and admins (``campaign.not_found`` for
    anyone else)."""
    c = session.get(Campaign, campaign_id)
    if c is None or not policy.can(user, "org.view", c.organization):
        raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
    return report(session, c)


__all__ = [
    "ANYWHERE",
    "top_up_payments",
    "MIN_SAMPLE",
    "FloorCheck",
    "Measured",
    "Rate",
    "check_floor",
    "clamp_idle",
    "convert",
    "convert_exact",
    "current_rates",
    "decide",
    "decide_by",
    "expected_hourly",
    "floors_for",
    "hourly",
    "list_floors",
    "list_top_ups",
    "measure",
    "median",
    "parse_idle",
    "parse_rate",
    "pay_top_up",
    "propose",
    "propose_all",
    "exact_rate",
    "require_above_floor",
    "set_floor",
    "set_rate",
    "settle_top_ups",
    "top_up_per_task",
    "visible_report",
    "report",
    "Report",
    "floors_as",
    "rates_as",
    "worker_top_ups",
    "working_seconds",
]

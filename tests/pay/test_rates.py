"""Working time, hourly rates on the median, exchange rates and pay floors (egocrowd.pay.rates):
pure functions under Hypothesis, then floors and rates in the database on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egocrowd import audit
from egocrowd.db.models import CampaignStatus
from egocrowd.errors import Conflict, Forbidden, InvalidInput
from egocrowd.pay import rates
from egocrowd.pay.money import Money

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def usd(text: str) -> Money:
    return Money.parse(text, "USD")


# ---------------------------------------------------------------- pure


@pytest.mark.fast
@given(
    span=st.integers(min_value=0, max_value=10**6),
    idle=st.one_of(st.none(), st.integers(min_value=-(10**6), max_value=10**7)),
)
def test_working_time_is_the_span_less_idle_kept_within_the_span(span, idle):
    submitted = T0 + timedelta(seconds=span)
    work = rates.working_seconds(T0, submitted, idle)
    assert 0 <= work <= span
    kept = rates.clamp_idle(idle, T0, submitted)
    assert work + kept == span
    if idle is not None and 0 <= idle <= span:
        assert work == span - idle


@pytest.mark.fast
def test_working_time_examples():
    assert rates.working_seconds(T0, T0 + timedelta(minutes=10), 120) == 480
    assert rates.working_seconds(T0, T0 + timedelta(minutes=10), None) == 600
    assert rates.working_seconds(T0, T0 + timedelta(minutes=10), 10_000) == 0  # a client cannot go below zero
    assert rates.working_seconds(T0, T0 - timedelta(minutes=1), 0) == 0  # clocks never make it negative


@pytest.mark.fast
@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=50))
def test_the_median_splits_the_values_in_half(values):
    m = rates.median(values)
    assert sum(v < m for v in values) <= len(values) // 2
    assert sum(v > m for v in values) <= len(values) // 2
    assert min(values) <= m <= max(values)


@pytest.mark.fast
def test_median_examples():
    assert rates.median([5, 1, 3]) == 3
    assert rates.median([4, 1, 3, 2]) == Fraction(5, 2)  # exact, not 2.5 as a float
    with pytest.raises(ValueError):
        rates.median([])


@pytest.mark.fast
def test_hourly_rate_is_rounded_down_and_the_top_up_up():
    assert rates.hourly(usd("1.50"), 600) == usd("9.00")  # 1.50 for 10 minutes
    assert rates.hourly(usd("1.00"), 7 * 60) == usd("8.57")  # 8.571428...: never overstated
    assert rates.expected_hourly(usd("1.00"), 7.5) == usd("8.00")
    assert rates.expected_hourly(usd("0.10"), 0.7) == usd("8.57")  # 0.7 read as the decimal typed
    # the floor for a median of 13 min 20 s is 1.7777... → 1.78: 0.28 on top of 1.50
    assert rates.top_up_per_task(usd("8.00"), 800, usd("1.50")) == usd("0.28")
    assert rates.top_up_per_task(usd("8.00"), 600, usd("1.50")) == usd("0.00")
    with pytest.raises(InvalidInput) as none:
        rates.hourly(usd("1.50"), 0)
    assert none.value.code == "pay.no_working_time"


@pytest.mark.fast
@given(
    pay=st.integers(min_value=1, max_value=10**6),
    floor=st.integers(min_value=1, max_value=10**5),
    seconds=st.integers(min_value=1, max_value=10**5),
)
def test_a_top_up_brings_the_median_rate_to_the_floor_and_no_further_than_a_cent(pay, floor, seconds):
    p, f = Money(pay, "USD"), Money(floor, "USD")
    extra = rates.top_up_per_task(f, seconds, p)
    assert extra.minor >= 0
    topped = Fraction(pay + extra.minor) * 3600 / seconds
    if extra.minor > 0:
        assert topped >= floor  # the median hour reaches the floor...
        assert Fraction(pay + extra.minor - 1) * 3600 / seconds < floor  # ...and one cent less would not
    else:
        assert Fraction(pay) * 3600 / seconds >= floor


@pytest.mark.fast
@given(
    minor=st.integers(min_value=-(10**9), max_value=10**9),
    rate=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**6), places=6),
)
def test_conversion_is_exact_until_its_one_rounding(minor, rate):
    m = Money(minor, "USD")
    down = rates.convert_exact(m, rate, "KES")
    up = rates.convert_exact(m, rate, "KES", rounding=ROUND_CEILING)
    exact = Fraction(minor) * Fraction(rate)  # USD and KES both have 2 digits
    assert down.minor <= exact <= up.minor and up.minor - down.minor <= 1
    assert (up.minor == down.minor) == (exact.denominator == 1)


@pytest.mark.fast
def test_conversion_follows_each_currencys_digits():
    assert rates.convert_exact(Money(150, "USD"), Decimal("150.25"), "JPY") == Money(225, "JPY")  # 225.375 → 225
    assert rates.convert_exact(Money(1000, "JPY"), Decimal("0.0067"), "USD") == Money(670, "USD")
    assert rates.convert_exact(Money(100, "USD"), Decimal("0.307"), "KWD") == Money(307, "KWD")


@pytest.mark.fast
@pytest.mark.parametrize(
    "text,ok", [("1550.25", True), ("0.0067", True), ("0", False), ("-1", False), ("abc", False), ("1e400", False)]
)
def test_rates_are_positive_decimals(text, ok):
    if ok:
        assert rates.parse_rate(text) == Decimal(text)
    else:
        with pytest.raises(InvalidInput) as bad:
            rates.parse_rate(text)
        assert bad.value.code == "pay.bad_rate"


@pytest.mark.fast
@pytest.mark.parametrize("text,want", [(None, None), ("", None), ("0", 0), (" 42 ", 42)])
def test_idle_seconds_from_a_client(text, want):
    assert rates.parse_idle(text) == want


@pytest.mark.fast
@pytest.mark.parametrize("text", ["-1", "1.5", "lots", str(rates.MAX_IDLE_SECONDS + 1)])
def test_bad_idle_seconds_are_refused(text):
    with pytest.raises(InvalidInput) as bad:
        rates.parse_idle(text)
    assert bad.value.code == "pay.bad_idle"


# ---------------------------------------------------------------- database


def test_the_default_floor_is_prolifics_minimum(db):
    with db.transaction() as s:
        floors = rates.list_floors(s)
        assert [(f.country, f.currency, f.hourly_minor) for f in floors] == [("*", "USD", 800)]


def test_admins_set_floors_with_a_source_and_every_change_is_audited(books, db):
    with db.transaction() as s:
        admin = books.admin(s)
        row = rates.set_floor(s, admin, "ke", Money.parse("300.00", "KES"), "Kenya's minimum wage order, 2024")
        assert (row.country, row.currency, row.hourly_minor) == ("KE", "KES", 30000)
        rates.set_floor(s, admin, "KE", Money.parse("350.00", "KES"), "revised")
        events = audit.find(s, action="pay.floor_set", entity_id=row.id)
        assert [e.payload["after"] for e in events] == ["300.00 KES", "350.00 KES"]
        assert events[0].payload["before"] is None
        assert events[1].payload["before"] == {"currency": "KES", "hourly": "300.00 KES"}
        assert events[1].payload["source"] == "revised"
        for bad, code in (("KEN", "pay.bad_country"), ("1A", "pay.bad_country")):
            with pytest.raises(InvalidInput) as e:
                rates.set_floor(s, admin, bad, usd("1.00"), "x")
            assert e.value.code == code
        with pytest.raises(InvalidInput) as e:
            rates.set_floor(s, admin, "NG", usd("1.00"), "  ")
        assert e.value.code == "pay.source_required"
        with pytest.raises(Forbidden):
            rates.set_floor(s, books.reviewer(s), "NG", usd("1.00"), "x")
        assert [f.country for f in rates.list_floors(s)] == ["*", "KE"]


def test_the_newest_rate_is_used_either_way_round(books, db):
    with db.transaction() as s:
        admin = books.admin(s)
        with pytest.raises(Conflict) as none:
            rates.convert(s, usd("1.00"), "KES")
        assert none.value.code == "pay.no_exchange_rate"
        rates.set_rate(s, admin, "USD", "KES", "129.50", "central bank, 2026-01-05")
        assert rates.convert(s, usd("1.00"), "KES") == Money.parse("129.50", "KES")
        # the other way: 1 KES = 1/129.5 USD, exactly (then rounded once)
        assert rates.convert(s, Money.parse("259.00", "KES"), "USD") == usd("2.00")
        with pytest.raises(InvalidInput):
            rates.set_rate(s, admin, "USD", "USD", "1", "x")
        with pytest.raises(InvalidInput) as unknown:
            rates.set_rate(s, admin, "USD", "XXQ", "1", "x")
        assert unknown.value.code == "money.unknown_currency"
        assert [(r.base, r.quote, r.rate) for r in rates.current_rates(s)] == [("USD", "KES", Decimal("129.50"))]
        assert audit.find(s, action="pay.rate_set")


def _openable(books, s, *, pay_cents=150, minutes=3.0, currency="USD", countries=()):
    c = books.new_campaign(s, currency=currency, pay_cents=pay_cents)
    c.expected_minutes = minutes
    c.allowed_countries = list(countries)
    s.flush()
    return c


def test_the_floor_check_names_the_countries_the_rate_and_the_floor(books, db):
    with db.transaction() as s:
        admin = books.admin(s)
        ok = _openable(books, s, pay_cents=150, minutes=10)  # 9.00/h against 8.00
        assert not rates.require_above_floor(s, ok, doing="open it").below
        low = _openable(books, s, pay_cents=100, minutes=10)  # 6.00/h
        with pytest.raises(Conflict) as e:
            rates.require_above_floor(s, low, doing="open it")
        assert e.value.code == "campaign.below_pay_floor"
        assert e.value.extra["countries"] == ["*"] and e.value.extra["rate"] == "6.00"
        assert e.value.extra["floor"] == "8.00"
        # a country with a higher floor of its own, in another currency
        rates.set_floor(s, admin, "GB", Money.parse("12.21", "GBP"), "UK national living wage 2025")
        gb = _openable(books, s, pay_cents=1300, minutes=60, countries=["GB", "KE"])
        with pytest.raises(Conflict) as e:
            rates.require_above_floor(s, gb, doing="open it")
        assert e.value.code == "pay.no_exchange_rate"
        rates.set_rate(s, admin, "GBP", "USD", "1.25", "test")
        with pytest.raises(Conflict) as e:  # 12.21 GBP = 15.2625 → 15.27 USD (a floor rounds up)
            rates.require_above_floor(s, gb, doing="open it")
        assert e.value.extra["countries"] == ["GB"] and e.value.extra["floor"] == "15.27"
        assert not rates.require_above_floor(s, gb, pay_cents=1527, doing="open it").below


def test_opening_is_refused_below_the_floor(client, db):
    from tests.platform.helpers import API, assert_problem, create_campaign, make_user, publish_consent, set_status

    publish_consent(db)
    lab = make_user(db, "requester", org="Lab Floors")
    cid = create_campaign(client, lab, pay_cents=50, expected_minutes=10)["id"]  # 3.00 an hour
    body = assert_problem(set_status(client, lab, cid, "open"), 409, "campaign.below_pay_floor")
    assert body["countries"] == ["*"] and body["rate"] == "3.00" and body["floor"] == "8.00"
    assert "below the pay floor of 8.00 USD" in body["detail"]
    assert client.patch(f"{API}/campaigns/{cid}", json={"pay_cents": 150}, headers=lab.headers).status_code == 200
    assert set_status(client, lab, cid, "open").status_code == 200
    with db.transaction() as s:
        from egocrowd.db.models import Campaign

        assert s.get(Campaign, cid).status is CampaignStatus.open

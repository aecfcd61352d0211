"""Exact money: minor units per ISO 4217, parsing without floats, no silent rounding."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egocrowd.errors import InvalidInput
from egocrowd.pay.money import MINOR_DIGITS, Money, fee_for, minor_digits


def test_minor_digits_follow_iso_4217():
    assert (minor_digits("JPY"), minor_digits("USD"), minor_digits("KWD"), minor_digits("KES")) == (0, 2, 3, 2)
    assert minor_digits("NGN") == minor_digits("INR") == minor_digits("BRL") == 2
    with pytest.raises(InvalidInput) as e:
        minor_digits("XYZ")
    assert e.value.code == "money.unknown_currency"


@pytest.mark.parametrize(
    ("text", "currency", "minor", "shown"),
    [
        ("1.50", "USD", 150, "1.50"),
        ("1.5", "USD", 150, "1.50"),
        ("0.01", "USD", 1, "0.01"),
        ("1500", "JPY", 1500, "1500"),
        ("1.234", "KWD", 1234, "1.234"),
        ("-0.05", "EUR", -5, "-0.05"),
        ("1.500", "USD", 150, "1.50"),  # trailing zeros are not finer than a cent
    ],
)
def test_parse_and_format_round_trip(text, currency, minor, shown):
    m = Money.parse(text, currency)
    assert m == Money(minor, currency)
    assert m.format() == shown
    assert Money.parse(m.format(), currency) == m


@pytest.mark.parametrize(("text", "currency"), [("0.005", "USD"), ("1.5", "JPY"), ("0.0001", "KWD")])
def test_amounts_finer_than_the_minor_unit_are_refused_in_words(text, currency):
    with pytest.raises(InvalidInput) as e:
        Money.parse(text, currency)
    assert e.value.code == "money.sub_minor"
    assert "smallest amount" in e.value.message


@pytest.mark.parametrize("bad", ["", "1,50", "1e3", "abc", "NaN", "Infinity", "1.", ".5", 1.5])
def test_malformed_amounts_and_floats_are_refused(bad):
    with pytest.raises(InvalidInput) as e:
        Money.parse(bad, "USD")
    assert e.value.code == "money.bad_amount"


def test_money_is_whole_minor_units():
    for bad in (1.5, Decimal("1"), True):
        with pytest.raises(InvalidInput):
            Money(bad, "USD")  # type: ignore[arg-type]


def test_currencies_never_mix():
    with pytest.raises(InvalidInput) as e:
        Money(1, "USD") + Money(1, "EUR")
    assert e.value.code == "ledger.currency_mismatch"
    assert Money(100, "USD") - Money(1, "USD") == Money(99, "USD")


def test_fee_rounds_half_up_to_the_minor_unit():
    assert fee_for(Money(150, "USD"), 1000) == Money(15, "USD")
    assert fee_for(Money(155, "USD"), 1000) == Money(16, "USD")  # 15.5 cents
    assert fee_for(Money(154, "USD"), 1000) == Money(15, "USD")
    assert fee_for(Money(150, "USD"), 0) == Money(0, "USD")


@given(st.sampled_from(sorted(MINOR_DIGITS)), st.integers(-(10**15), 10**15))
def test_every_amount_formats_and_parses_back_exactly(currency, minor):
    m = Money(minor, currency)
    assert Money.parse(m.format(), currency) == m
    assert m.amount == Decimal(minor).scaleb(-minor_digits(currency))

"""Amounts in a worker's local currency (issue #11, docs/pay.md "Local currency"): the currency of
their country (Babel's territory currencies), at the admin-set exchange rate, formatted the way
their country writes money (Babel's ``format_currency``). For reference only: the ledger pays in the
campaign's currency, so every local figure is marked approximate and carries its rate's date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction

from babel import Locale, UnknownLocaleError
from babel.languages import get_official_languages
from babel.numbers import format_currency, get_territory_currencies
from sqlalchemy.orm import Session

from egocrowd import i18n
from egocrowd.db.models import User
from egocrowd.i18n import tr
from egocrowd.pay import rates
from egocrowd.pay.money import MINOR_DIGITS, Money


def territory_currency(country: str | None) -> str | None:
    """The currency people use in ``country`` today (ISO 4217), when egocrowd knows it."""
    if not country:
        return None
    try:
        found = get_territory_currencies(country.upper(), start_date=date.today(), tender=True)
    except Exception:  # an unknown territory: Babel raises on some, returns [] on others
        return None
    return next((c for c in found if c in MINOR_DIGITS), None)


def territory_locale(country: str | None) -> str:
    """How money is written in ``country``: its first official language there (``sw_KE``), else
    English."""
    if country:
        for lang in get_official_languages(country.upper(), de_facto=True):
            name = f"{lang}_{country.upper()}"
            try:
                Locale.parse(name)
                return name
            except (UnknownLocaleError, ValueError):
                continue
    return "en"


def show(money: Money, locale: str) -> str:
    """``money`` written the way ``locale`` (the worker's country) writes it (Babel): "Ksh 1,234.50",
    "R$ 12,00" — their own money as they see it every day, symbol included."""
    return i18n.formatted(format_currency(money.amount, money.currency, locale=locale))


def exact_number(value: Decimal | str) -> str:
    """A decimal (an exchange rate) in the viewer's language with every digit it has, none added
    or rounded away: "129.5", "129,5", "0.0077"."""
    exact = Decimal(value).normalize()
    places = max(0, -int(exact.as_tuple().exponent))
    return i18n.number(exact, digits=places)


@dataclass(frozen=True)
class Local:
    """A worker's local currency and the rates into it from the currencies they were paid in."""

    currency: str
    locale: str
    rates: dict[str, tuple[Fraction, datetime, str]]  # from currency → (exact rate, set at, source)

    def convert(self, money: Money) -> Money | None:
        """``money`` in the local currency, rounded down; None when no rate is set for it."""
        if money.currency == self.currency:
            return money
        found = self.rates.get(money.currency)
        if found is None:
            return None
        return rates.convert_exact(money, found[0], self.currency, rounding=ROUND_FLOOR)

    def approx(self, money: Money) -> str | None:
        """The local figure as text ("≈ Ksh 194.25"), or None (same currency, or no rate)."""
        if money.currency == self.currency:
            return None
        converted = self.convert(money)
        return None if converted is None else "≈\u00a0" + show(converted, self.locale)  # kept on one line

    def rate_words(self, currency: str) -> str | None:
        """ "1 USD = 129.5 KES (central bank, set Nov 30, 2026)", for the page's footnote, in the
        viewer's language (the rate's digits exact, as many as it has)."""
        found = self.rates.get(currency)
        if found is None or currency == self.currency:
            return None
        value, at, source = found
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        values = {"currency": currency, "rate": exact_number(exact), "local": self.currency, "day": i18n.day(at)}
        if source:  # the source is what the admin wrote: shown as written
            return tr("1 {currency} = {rate} {local} ({source}, set {day})", source=source, **values)
        return tr("1 {currency} = {rate} {local} (set {day})", **values)


def for_worker(session: Session, user: User, currencies: set[str]) -> Local | None:
    """The worker's local view, or None when their country is unknown or its currency not ours."""
    currency = territory_currency(user.country)
    if currency is None:
        return None
    found: dict[str, tuple[Fraction, datetime, str]] = {}
    for cur in sorted(currencies - {currency}):
        exact = rates.exact_rate(session, cur, currency)
        if exact is not None:
            value, row = exact
            found[cur] = (value, row.set_at, row.source)
    return Local(currency, territory_locale(user.country), found)


__all__ = ["Local", "exact_number", "for_worker", "show", "territory_currency", "territory_locale"]

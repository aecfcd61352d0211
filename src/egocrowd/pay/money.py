"""Exact money: an integer count of a currency's minor units (cents, fils, yen), never a float.

The number of minor digits per currency is ISO 4217's (JPY 0, USD 2, KWD 3). It is a small table kept
here, not a dependency: the list changes a few times a decade (ISO's maintenance agency publishes
the amendments, https://www.six-group.com/en/products-services/financial-information/data-standards.html).
When Babel arrives for the i18n work, its ``get_currency_precision`` can check this table in a test;
note that Babel follows CLDR, which differs from ISO for a few currencies' *cash* digits only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from egocrowd.errors import InvalidInput

# ISO 4217 currencies whose minor unit is not 2 digits.
_DIGITS_EXCEPTIONS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
# Active ISO 4217 codes with 2 minor digits (funds, metals and testing codes such as XAU, XTS left out).
_TWO_DIGITS = [
    "AED",
    "AFN",
    "ALL",
    "AMD",
    "ANG",
    "AOA",
    "ARS",
    "AUD",
    "AWG",
    "AZN",
    "BAM",
    "BBD",
    "BDT",
    "BGN",
    "BMD",
    "BND",
    "BOB",
    "BRL",
    "BSD",
    "BTN",
    "BWP",
    "BYN",
    "BZD",
    "CAD",
    "CDF",
    "CHF",
    "CNY",
    "COP",
    "CRC",
    "CUP",
    "CVE",
    "CZK",
    "DKK",
    "DOP",
    "DZD",
    "EGP",
    "ERN",
    "ETB",
    "EUR",
    "FJD",
    "FKP",
    "GBP",
    "GEL",
    "GHS",
    "GIP",
    "GMD",
    "GTQ",
    "GYD",
    "HKD",
    "HNL",
    "HTG",
    "HUF",
    "IDR",
    "ILS",
    "INR",
    "IRR",
    "JMD",
    "KES",
    "KGS",
    "KHR",
    "KPW",
    "KYD",
    "KZT",
    "LAK",
    "LBP",
    "LKR",
    "LRD",
    "LSL",
    "MAD",
    "MDL",
    "MGA",
    "MKD",
    "MMK",
    "MNT",
    "MOP",
    "MRU",
    "MUR",
    "MVR",
    "MWK",
    "MXN",
    "MYR",
    "MZN",
    "NAD",
    "NGN",
    "NIO",
    "NOK",
    "NPR",
    "NZD",
    "PAB",
    "PEN",
    "PGK",
    "PHP",
    "PKR",
    "PLN",
    "QAR",
    "RON",
    "RSD",
    "RUB",
    "SAR",
    "SBD",
    "SCR",
    "SDG",
    "SEK",
    "SGD",
    "SHP",
    "SLE",
    "SOS",
    "SRD",
    "SSP",
    "STN",
    "SVC",
    "SYP",
    "SZL",
    "THB",
    "TJS",
    "TMT",
    "TOP",
    "TRY",
    "TTD",
    "TWD",
    "TZS",
    "UAH",
    "USD",
    "UYU",
    "UZS",
    "VES",
    "WST",
    "XCD",
    "XCG",
    "YER",
    "ZAR",
    "ZMW",
    "ZWG",
]
MINOR_DIGITS: dict[str, int] = {**dict.fromkeys(_TWO_DIGITS, 2), **_DIGITS_EXCEPTIONS}

_AMOUNT = re.compile(r"-?\d+(\.\d+)?")


def minor_digits(currency: str) -> int:
    """How many digits follow the decimal point in ``currency`` (ISO 4217)."""
    try:
        return MINOR_DIGITS[currency]
    except KeyError:
        raise InvalidInput(
            f"{currency!r} is not a currency we know (use an ISO 4217 code such as USD, EUR or KES).",
            code="money.unknown_currency",
        ) from None


@dataclass(frozen=True, order=False)
class Money:
    """``minor`` units of ``currency``: Money(150, "USD") is 1.50 USD."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor) is not int:  # bool, float and Decimal all refused: exact integers only
            raise InvalidInput("Money is counted in whole minor units (an integer).", code="money.bad_amount")
        if self.currency not in MINOR_DIGITS:  # the check in line: statements make thousands of these
            minor_digits(self.currency)  # raises

    @classmethod
    def parse(cls, text: str | Decimal, currency: str) -> Money:
        """``"1.50"`` USD is 150 cents, exactly. A string or a Decimal, never a float; an amount finer
        than the currency's smallest unit ("0.005" USD, "1.5" JPY) is refused, not rounded."""
        digits = minor_digits(currency)
        if isinstance(text, str):
            if not _AMOUNT.fullmatch(text.strip()):
                raise InvalidInput(f"{text!r} is not an amount of money (write it like 1.50).", code="money.bad_amount")
            value = Decimal(text.strip())
        elif isinstance(text, Decimal) and text.is_finite():
            value = text
        else:
            raise InvalidInput("Amounts are given as text or Decimal, never as a float.", code="money.bad_amount")
        try:
            minor = value.scaleb(digits)
            exact = minor.to_integral_value()
        except InvalidOperation:
            raise InvalidInput(f"{text!r} is not an amount of money.", code="money.bad_amount") from None
        if minor != exact:
            unit = Decimal(1).scaleb(-digits)
            raise InvalidInput(
                f"{text} {currency} is finer than a {currency} can be paid: the smallest amount is {unit} {currency}.",
                code="money.sub_minor",
            )
        return cls(int(exact), currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @property
    def amount(self) -> Decimal:
        """The value in major units, exact (150 USD cents → Decimal("1.50"))."""
        return Decimal(self.minor).scaleb(-minor_digits(self.currency))

    def format(self) -> str:
        """The amount as plain text with the currency's digits: ``"1.50"``, ``"-0.050"``, ``"1500"``."""
        return f"{self.amount:.{minor_digits(self.currency)}f}"

    def shown(self) -> str:
        """The amount as the viewer's language writes money, for pages and notices: "USD\xa01.50",
        "1,50\xa0USD" (egocrowd.i18n, exact). ``str()`` stays "1.50 USD": the API's and the ledger's
        own texts, which are not translated."""
        from egocrowd import i18n  # pay is below the web layer; i18n imports nothing of ours

        return i18n.money(self.amount, self.currency, minor_digits(self.currency))

    def __str__(self) -> str:
        return f"{self.format()} {self.currency}"

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        check_currency(self.currency, other.currency)

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor


def check_currency(expected: str, got: str) -> None:
    """Refuse mixing currencies (a USD amount into a EUR account, EUR plus KES)."""
    if expected != got:
        raise InvalidInput(f"A {got} amount cannot meet a {expected} one.", code="ledger.currency_mismatch")


def fee_for(pay: Money, fee_bps: int) -> Money:
    """The platform fee on ``pay``: ``fee_bps`` basis points (1000 = 10 %), rounded half up to the
    currency's minor unit (integer arithmetic, so exact)."""
    if fee_bps < 0:
        raise InvalidInput("A fee cannot be negative.", code="money.bad_amount")
    return Money((pay.minor * fee_bps + 5000) // 10000, pay.currency)


__all__ = ["MINOR_DIGITS", "Money", "check_currency", "fee_for", "minor_digits"]

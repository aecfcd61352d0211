"""Payout providers: where a worker's money goes (issue #11, part 5; docs/pay.md "Payout batches").

A provider is a plugin of :data:`PAYOUT_PROVIDERS` (registry kind ``payout.provider``): a class with

- ``validate_account(ref) -> str``: the account reference a worker typed, checked and normalized (or
  ``payout.bad_account``);
- ``currencies``: the currencies it pays in (None: any ISO 4217 currency);
- ``step(currency)``: the smallest amount it can send, in minor units (M-Pesa pays whole shillings);
- ``export(batch, lines) -> ExportFile``: the provider's bulk-payout file for one batch;
- optionally ``send(batch, lines) -> SendResult``: pay through the provider's API instead of a file.

The built-ins write files an admin uploads to the provider (PayPal Payouts, Wise batch payments,
M-Pesa B2C). A provider with a real API registers a class that also has ``send``; it is the one true
edge that tests fake (inside ``registry.scratch()``). Providers see plain rows (:class:`PayoutLine`),
never the database: the batch's service (``pay.payouts``) decides what is paid, a provider only says
how to ask for it.

Files are CSV written by the standard library's ``csv`` module (RFC 4180 quoting, CRLF line ends).
Every byte is decided by the batch's rows (no clock, no random), so exporting the same batch again
gives the same bytes. A cell a spreadsheet could run as a formula (=, +, -, @ first) never comes
from a person's free text: account references are validated, and names are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from email_validator import EmailNotValidError, validate_email

from egocrowd.errors import InvalidInput
from egocrowd.pay.money import Money
from egocrowd.registry import Registry


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """The batch a file is written for."""

    id: int
    provider: str
    currency: str


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """One worker's payout as a provider sees it."""

    payout_id: int
    user_id: int
    name: str  # the worker's display name (Wise asks for a recipient name)
    account_ref: str  # as validate_account normalized it
    amount: Money


@dataclass(frozen=True, slots=True)
class ExportFile:
    data: bytes
    media_type: str
    filename: str


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a provider's API answered: its reference for the whole batch, and per payout if it has one."""

    reference: str
    payout_references: dict[int, str] = field(default_factory=dict)


class PayoutProvider(Protocol):
    title: ClassVar[str]
    currencies: ClassVar[frozenset[str] | None]

    def validate_account(self, ref: str) -> str: ...

    def step(self, currency: str) -> int: ...

    def export(self, batch: BatchInfo, lines: Sequence[PayoutLine]) -> ExportFile: ...


PAYOUT_PROVIDERS: Registry[type[Any]] = Registry("payout.provider")


def get_provider(name: str) -> Any:
    """An instance of the provider registered as ``name`` (``payout.unknown_provider`` otherwise)."""
    return PAYOUT_PROVIDERS.get(name).obj()


def can_send(provider: Any) -> bool:
    """Whether the provider pays through an API (``send``) rather than a file only."""
    return callable(getattr(provider, "send", None))


# ---------------------------------------------------------------- helpers


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, code="payout.bad_account", field="account_ref")


def clean_email(ref: str) -> str:
    """An email address, normalized (lower case, IDNA), or ``payout.bad_account``."""
    text = (ref or "").strip()
    if not text or len(text) > 254 or text[0] in "=+-@":
        raise _bad("Enter the email address of your account.")
    try:
        return validate_email(text, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise _bad("Enter the email address of your account.") from None


# ITU-T E.164: a "+", a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"\+[1-9]\d{7,14}")


def clean_phone(ref: str) -> str:
    """A phone number in E.164 form ("+254712345678"); spaces, dashes, dots and brackets dropped."""
    text = re.sub(r"[\s\-.()]", "", ref or "")
    if not _E164.fullmatch(text):
        raise _bad("Enter the phone number with its country code, like +254712345678.")
    return text


def _csv(rows: Sequence[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _text_cell(value: str) -> str:
    """Free text a spreadsheet must not run as a formula (a display name such as "=HYPERLINK(...)")."""
    value = value.replace("\r", " ").replace("\n", " ")
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _note(batch: BatchInfo) -> str:
    return f"egocrowd payout batch {batch.id}"  # no comma: the cell needs no quoting


# ---------------------------------------------------------------- built-in providers


@PAYOUT_PROVIDERS.register("paypal", version=1, description="PayPal Payouts: a bulk CSV for the Payouts web upload")
class PayPal:
    """PayPal Payouts bulk file. Format from PayPal's "Send payouts using the web UI"
    (https://docs.paypal.ai/send/use-web-ui, also developer.paypal.com/docs/payouts/standard/payouts-web/):
    no header row; one payout per row: recipient identifier (the PayPal account's email), payment
    amount (a point as decimal mark), currency (ISO 4217, one currency per file), customer ID
    (optional, at most 30 characters, no spaces: ours is ``egc-<payout id>``), note to recipient
    (optional, at most 400 characters), recipient wallet (``PAYPAL``). At most 5,000 rows a file."""

    title = "PayPal"
    # PayPal's list of currencies it pays out in (developer.paypal.com "Currency codes").
    currencies: ClassVar[frozenset[str] | None] = frozenset(
        [
            "AUD",
            "BRL",
            "CAD",
            "CNY",
            "CZK",
            "DKK",
            "EUR",
            "HKD",
            "HUF",
            "ILS",
            "JPY",
            "MYR",
            "MXN",
            "TWD",
            "NZD",
            "NOK",
            "PHP",
            "PLN",
            "GBP",
            "SGD",
            "SEK",
            "CHF",
            "THB",
            "USD",
        ]
    )
    max_rows = 5000

    def validate_account(self, ref: str) -> str:
        return clean_email(ref)

    def step(self, currency: str) -> int:
        # PayPal takes no decimals for HUF and TWD although ISO 4217 gives them two digits
        return 100 if currency in ("HUF", "TWD") else 1

    def export(self, batch: BatchInfo, lines: Sequence[PayoutLine]) -> ExportFile:
        rows = [
            [
                line.account_ref,
                line.amount.format(),
                line.amount.currency,
                f"egc-{line.payout_id}",
                _note(batch),
                "PAYPAL",
            ]
            for line in lines
        ]
        return ExportFile(_csv(rows), "text/csv", f"egocrowd-batch-{batch.id}-paypal.csv")


@PAYOUT_PROVIDERS.register(
    "wise", version=1, description="Wise batch payments: a batch CSV (by email or saved recipient)"
)
class Wise:
    """Wise batch payment file. Columns from Wise's help "How do I fill in my batch template?"
    (https://wise.com/help/articles/2663302): a header row; ``name``, ``recipientEmail`` (the "send
    by email" template: Wise asks the recipient for their bank details) or ``recipientId`` (the
    "send to saved recipients" template: a recipient already saved in the payer's Wise account),
    ``paymentReference``, ``receiverType`` (``PRIVATE``: a person), ``amountCurrency``
    (``target``: the worker receives exactly the amount, the fees are the payer's), ``amount``,
    ``sourceCurrency``, ``targetCurrency``. At most 1,000 transfers a file."""

    title = "Wise"
    currencies = None  # Wise sends to some 40 currencies and the list moves; Wise itself refuses others
    max_rows = 1000
    header = [
        "name",
        "recipientEmail",
        "recipientId",
        "paymentReference",
        "receiverType",
        "amountCurrency",
        "amount",
        "sourceCurrency",
        "targetCurrency",
    ]

    def validate_account(self, ref: str) -> str:
        text = (ref or "").strip()
        if text.isdigit():  # a saved recipient's id in the payer's Wise account
            if len(text) > 12:
                raise _bad("A Wise recipient id has at most 12 digits.")
            return text
        return clean_email(text)

    def step(self, currency: str) -> int:
        return 1

    def export(self, batch: BatchInfo, lines: Sequence[PayoutLine]) -> ExportFile:
        rows: list[list[str]] = [list(self.header)]
        for line in lines:
            by_id = line.account_ref.isdigit()
            rows.append(
                [
                    _text_cell(line.name),
                    "" if by_id else line.account_ref,
                    line.account_ref if by_id else "",
                    f"egocrowd {batch.id}-{line.payout_id}",
                    "PRIVATE",
                    "target",
                    line.amount.format(),
                    line.amount.currency,
                    line.amount.currency,
                ]
            )
        return ExportFile(_csv(rows), "text/csv", f"egocrowd-batch-{batch.id}-wise.csv")


@PAYOUT_PROVIDERS.register(
    "mpesa", version=1, description="M-Pesa B2C bulk payments (Kenya): a CSV of phone and amount"
)
class MPesa:
    """M-Pesa B2C bulk payment file (Safaricom, Kenya). The columns follow the B2C payment request
    of Safaricom's Daraja API, which the bulk tools take row by row (its fields are documented e.g.
    in the M-Pesa client docs, B2CPaymentRequest: ``PartyB`` the customer's number with its country
    code and no plus sign, ``Amount`` in whole shillings, ``Remarks``): a header row, then
    ``PartyB``, ``Amount``, ``OriginatorConversationID`` (ours: ``egc-<batch>-<payout>``, unique
    per payment, so a retried upload is recognized), ``Remarks``. M-Pesa pays whole shillings only:
    a batch pays the whole shillings of each balance and leaves the cents for the next one."""

    title = "M-Pesa"
    currencies: ClassVar[frozenset[str] | None] = frozenset({"KES"})

    def validate_account(self, ref: str) -> str:
        phone = clean_phone(ref)
        if not phone.startswith("+254") or len(phone) != 13:
            raise _bad("M-Pesa pays Kenyan numbers: +254 and nine digits, like +254712345678.")
        return phone

    def step(self, currency: str) -> int:
        return 100  # whole shillings

    def export(self, batch: BatchInfo, lines: Sequence[PayoutLine]) -> ExportFile:
        rows = [["PartyB", "Amount", "OriginatorConversationID", "Remarks"]]
        for line in lines:
            whole = line.amount.minor // 100
            rows.append([line.account_ref.lstrip("+"), str(whole), f"egc-{batch.id}-{line.payout_id}", _note(batch)])
        return ExportFile(_csv(rows), "text/csv", f"egocrowd-batch-{batch.id}-mpesa.csv")


__all__ = [
    "PAYOUT_PROVIDERS",
    "BatchInfo",
    "ExportFile",
    "MPesa",
    "PayPal",
    "PayoutLine",
    "PayoutProvider",
    "SendResult",
    "Wise",
    "can_send",
    "clean_email",
    "clean_phone",
    "get_provider",
]

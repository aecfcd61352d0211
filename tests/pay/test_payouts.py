"""Payout methods and batches (egocrowd.pay.payouts), on SQLite and PostgreSQL: who a batch pays,
the money's three places (earnings, in transit, paid out), files that come back byte for byte,
cancelling, and the refusals (bad accounts, currencies, minimums, a batch moved twice)."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.blobs import BlobStore
from egocrowd.db.models import ClipStatus, LedgerTransaction, Notification, PayoutBatchStatus, PayoutMethod
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.pay import ledger, payouts
from egocrowd.pay.money import Money
from egocrowd.pay.providers import PayPal, get_provider
from tests.pay.conftest import Books


@pytest.fixture
def blobs(tmp_path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def earn(books: Books, s, worker, clips: int, *, currency: str = "USD", pay_cents: int = 150):
    """``worker`` is paid for ``clips`` accepted clips of a fresh, funded campaign."""
    c = books.new_campaign(s, currency=currency, pay_cents=pay_cents)
    ledger.deposit(
        s, c, Money(pay_cents * clips, currency), books.admin(s), idempotency_key=f"dep:{c.id}", reason="wire"
    )
    for _ in range(clips):
        clip = books.clip(s, c, worker)
        clip.status = ClipStatus.accepted
        ledger.pay_for_clip(s, clip, books.reviewer(s))
    return c


def balances(s, worker, currency="USD") -> tuple[int, int, int]:
    """(earnings, in transit, paid out) of the worker, in minor units, from the entries."""
    return (
        ledger.balance(s, ledger.worker_account(s, worker, currency)).minor,
        ledger.balance(s, payouts.transit_account(s, worker, currency)).minor,
        ledger.balance(s, payouts.paid_out_account(s, worker, currency)).minor,
    )


# ---------------------------------------------------------------- methods


@pytest.mark.parametrize(
    ("provider", "ref", "currency", "stored"),
    [
        ("paypal", "  Amina@Example.COM ", "USD", "amina@example.com"),
        ("wise", "amina@example.com", "EUR", "amina@example.com"),
        ("wise", "48123377", "GBP", "48123377"),
        ("mpesa", "+254 712-345 678", "KES", "+254712345678"),
    ],
)
def test_a_worker_adds_a_method_each_provider_checks_its_reference(books, db, provider, ref, currency, stored):
    with db.transaction() as s:
        w = books.user(s)
        m = payouts.add_method(s, w, provider=provider, account_ref=ref, currency=currency.lower())
        assert (m.provider, m.account_ref, m.currency, m.is_default) == (provider, stored, currency, True)
        event = audit.find(s, action="payout_method.added", entity_type="payout_method", entity_id=m.id)[0]
        assert stored not in str(event.payload) and event.payload["account"] == payouts.mask(stored)


@pytest.mark.parametrize(
    ("provider", "ref", "currency", "code"),
    [
        ("paypal", "not an email", "USD", "payout.bad_account"),
        ("paypal", "=cmd@example.com", "USD", "payout.bad_account"),
        ("wise", "1234567890123", "EUR", "payout.bad_account"),
        ("mpesa", "0712345678", "KES", "payout.bad_account"),  # no country code
        ("mpesa", "+447700900123", "KES", "payout.bad_account"),  # not Kenyan
        ("mpesa", "+254712345678", "USD", "payout.currency_unsupported"),
        ("paypal", "a@example.com", "KES", "payout.currency_unsupported"),
        ("paypal", "a@example.com", "XYZ", "money.unknown_currency"),
        ("venmo", "a@example.com", "USD", "payout.unknown_provider"),
    ],
)
def test_bad_methods_are_refused_with_a_code(books, db, provider, ref, currency, code):
    with db.transaction() as s:
        w = books.user(s)
        with pytest.raises(InvalidInput) as e:
            payouts.add_method(s, w, provider=provider, account_ref=ref, currency=currency)
        assert e.value.code == code


def test_one_default_per_currency_removal_keeps_the_row(books, db):
    with db.transaction() as s:
        w, other = books.user(s), books.user(s)
        a = payouts.add_method(s, w, provider="paypal", account_ref="a@example.com", currency="USD")
        b = payouts.add_method(s, w, provider="wise", account_ref="b@example.com", currency="USD")
        k = payouts.add_method(s, w, provider="mpesa", account_ref="+254712345678", currency="KES")
        assert (a.is_default, b.is_default, k.is_default) == (True, False, True)
        with pytest.raises(Conflict) as dup:
            payouts.add_method(s, w, provider="paypal", account_ref="A@example.com", currency="USD")
        assert dup.value.code == "payout.method_exists"
        payouts.make_default(s, w, b.id)
        s.refresh(a)
        assert (a.is_default, b.is_default) == (False, True)
        with pytest.raises(NotFound):
            payouts.make_default(s, other, b.id)  # not theirs: as if it did not exist
        with pytest.raises(Forbidden):
            payouts.add_method(s, books.admin(s), provider="paypal", account_ref="x@example.com", currency="USD")
        payouts.remove_method(s, w, b.id)
        s.refresh(a)
        assert a.is_default  # the other USD method took over
        assert [m.id for m in payouts.list_methods(s, w)] == [k.id, a.id]
        assert s.get(PayoutMethod, b.id).removed_at is not None
        with pytest.raises(NotFound):
            payouts.remove_method(s, w, b.id)


# ---------------------------------------------------------------- batches


def test_a_batch_lifecycle_moves_money_through_three_accounts(books, db, blobs):
    with db.transaction() as s:
        admin = books.admin(s)
        rich, poor, elsewhere, nomethod = (books.user(s) for _ in range(4))
        for w, n in ((rich, 4), (poor, 2), (elsewhere, 5), (nomethod, 5)):
            earn(books, s, w, n)  # 6.00, 3.00, 7.50, 7.50 USD
        payouts.add_method(s, rich, provider="paypal", account_ref="rich@example.com", currency="USD")
        payouts.add_method(s, poor, provider="paypal", account_ref="poor@example.com", currency="USD")
        payouts.add_method(s, elsewhere, provider="wise", account_ref="else@example.com", currency="USD")
        batch = payouts.create_batch(s, admin, provider="paypal", currency="USD", default_minimum_minor=500)
        assert batch.status is PayoutBatchStatus.open and batch.minimum_minor == 500
        _, lines = payouts.get_batch(s, admin, batch.id)
        assert [(x.payout.user_id, x.payout.amount) for x in lines] == [(rich.id, 600)]  # poor is under 5.00
        assert balances(s, rich) == (0, 600, 0)
        assert balances(s, poor) == (300, 0, 0)

        with pytest.raises(Conflict) as early:
            payouts.mark_sent(s, admin, batch.id, "PP-1")  # not exported yet
        assert early.value.code == "payout.batch_conflict"
        payouts.export_batch(s, admin, batch.id, blobs)
        assert batch.status is PayoutBatchStatus.exported and batch.export_sha256
        first = payouts.export_file(s, admin, batch.id, blobs)
        again = payouts.export_file(s, admin, batch.id, blobs)
        assert first.data == again.data and first.filename.endswith(".csv")
        rows = list(csv.reader(io.StringIO(first.data.decode())))
        assert rows == [
            [
                "rich@example.com",
                "6.00",
                "USD",
                f"egc-{lines[0].payout.id}",
                f"egocrowd payout batch {batch.id}",
                "PAYPAL",
            ]
        ]
        with pytest.raises(Conflict) as twice:
            payouts.export_batch(s, admin, batch.id, blobs)
        assert twice.value.code == "payout.batch_conflict"

        with pytest.raises(InvalidInput) as noref:
            payouts.mark_sent(s, admin, batch.id, "   ")
        assert noref.value.code == "payout.reference_required"
        payouts.mark_sent(s, admin, batch.id, "PP-BATCH-77")
        assert (batch.status, batch.provider_reference, batch.sent_by) == (
            PayoutBatchStatus.sent,
            "PP-BATCH-77",
            admin.id,
        )
        assert balances(s, rich) == (0, 0, 600)
        with pytest.raises(Conflict):
            payouts.cancel_batch(s, admin, batch.id)  # sent money does not come back by cancelling
        notes = list(
            s.scalars(
                sa.select(Notification).where(Notification.user_id == rich.id, Notification.kind == "payout.sent")
            )
        )
        assert len(notes) == 1 and "USD\xa06.00 is on its way" in notes[0].subject  # the worker's way of writing money
        mine = payouts.my_payouts(s, rich)
        assert [(p.state, p.amount, p.reference) for p in mine] == [("sent", Money(600, "USD"), "PP-BATCH-77")]
        assert payouts.payout_totals(s, rich) == {"in_transit": {}, "paid_out": {"USD": Money(600, "USD")}}
        assert [e.action for e in audit.events_for(s, "payout_batch", batch.id)] == [
            "payout_batch.created",
            "payout_batch.exported",
            "payout_batch.sent",
        ]
        assert ledger.verify(s) == []


def test_the_minimum_can_be_set_per_batch_and_nobody_to_pay_is_refused(books, db):
    with db.transaction() as s:
        admin = books.admin(s)
        w = books.user(s)
        earn(books, s, w, 2)
        payouts.add_method(s, w, provider="paypal", account_ref="w@example.com", currency="USD")
        with pytest.raises(Conflict) as nobody:
            payouts.create_batch(s, admin, provider="paypal", currency="USD", default_minimum_minor=500)
        assert nobody.value.code == "payout.nothing_to_pay"
        with pytest.raises(InvalidInput) as mismatch:
            payouts.create_batch(s, admin, provider="paypal", currency="USD", minimum=Money(100, "EUR"))
        assert mismatch.value.code == "ledger.currency_mismatch"
        with pytest.raises(InvalidInput) as unsupported:
            payouts.create_batch(s, admin, provider="mpesa", currency="USD")
        assert unsupported.value.code == "payout.currency_unsupported"
        with pytest.raises(Forbidden):
            payouts.create_batch(s, books.reviewer(s), provider="paypal", currency="USD")
        b = payouts.create_batch(s, admin, provider="paypal", currency="USD", minimum=Money(100, "USD"))
        assert [p.amount for p in payouts.batch_payouts(s, b.id)] == [300]
        # already in an unfinished batch: the next one does not take them, even with new earnings
        earn(books, s, w, 4)
        with pytest.raises(Conflict):
            payouts.create_batch(s, admin, provider="paypal", currency="USD", minimum=Money(100, "USD"))


def test_cancel_puts_every_payout_back_and_the_worker_can_be_paid_again(books, db, blobs):
    with db.transaction() as s:
        admin = books.admin(s)
        a, b = books.user(s), books.user(s)
        earn(books, s, a, 4)
        earn(books, s, b, 5)
        for w in (a, b):
            payouts.add_method(s, w, provider="wise", account_ref=f"{w.id}@example.com", currency="USD")
        batch = payouts.create_batch(s, admin, provider="wise", currency="USD", default_minimum_minor=500)
        payouts.export_batch(s, admin, batch.id, blobs)
        header = payouts.export_file(s, admin, batch.id, blobs).data.decode().splitlines()[0]
        assert header.startswith("name,recipientEmail,recipientId,paymentReference")
        payouts.cancel_batch(s, admin, batch.id, "the wire to Wise bounced")
        assert batch.status is PayoutBatchStatus.cancelled
        assert balances(s, a) == (600, 0, 0) and balances(s, b) == (750, 0, 0)
        with pytest.raises(Conflict) as late:
            payouts.cancel_batch(s, admin, batch.id)
        assert late.value.code == "payout.batch_conflict"
        assert [p.state for p in payouts.my_payouts(s, a)] == ["cancelled"]
        second = payouts.create_batch(s, admin, provider="wise", currency="USD", default_minimum_minor=500)
        assert sorted(p.amount for p in payouts.batch_payouts(s, second.id)) == [600, 750]
        assert ledger.verify(s) == []


def test_mpesa_pays_whole_shillings_and_leaves_the_cents(books, db, blobs):
    with db.transaction() as s:
        admin = books.admin(s)
        w = books.user(s)
        earn(books, s, w, 3, currency="KES", pay_cents=12_345)  # 370.35 KES
        payouts.add_method(s, w, provider="mpesa", account_ref="+254712345678", currency="KES")
        batch = payouts.create_batch(s, admin, provider="mpesa", currency="KES", default_minimum_minor=0)
        payouts.export_batch(s, admin, batch.id, blobs)
        rows = list(csv.reader(io.StringIO(payouts.export_file(s, admin, batch.id, blobs).data.decode())))
        pid = payouts.batch_payouts(s, batch.id)[0].id
        assert rows == [
            ["PartyB", "Amount", "OriginatorConversationID", "Remarks"],
            ["254712345678", "370", f"egc-{batch.id}-{pid}", f"egocrowd payout batch {batch.id}"],
        ]
        assert balances(s, w, "KES") == (35, 37_000, 0)


def test_the_file_is_the_same_bytes_for_the_same_batch(books, db, blobs):
    """Exporting is deterministic: the file depends only on the batch's rows (no clock, no random)."""
    with db.transaction() as s:
        admin = books.admin(s)
        w = books.user(s)
        w.display_name = "=HYPERLINK(evil)"
        earn(books, s, w, 5)
        payouts.add_method(s, w, provider="wise", account_ref="991234", currency="USD")
        batch = payouts.create_batch(s, admin, provider="wise", currency="USD", default_minimum_minor=0)
        impl = get_provider("wise")
        one = impl.export(payouts._info(batch), payouts.lines_for(s, batch)).data
        two = impl.export(payouts._info(batch), payouts.lines_for(s, batch)).data
        assert one == two
        row = list(csv.reader(io.StringIO(one.decode())))[1]
        assert row[0] == "'=HYPERLINK(evil)" and row[1:3] == ["", "991234"]  # a saved recipient id


def test_a_provider_with_an_api_sends_once(books, db, blobs):
    """A real provider's API is the one edge faked here: a provider registered for this test only."""
    from egocrowd.pay.providers import PAYOUT_PROVIDERS, SendResult
    from egocrowd.registry import scratch

    calls = []

    with scratch():

        @PAYOUT_PROVIDERS.register("fakepay", version=1)
        class FakePay(PayPal):
            title = "FakePay"

            def send(self, batch, lines):
                calls.append((batch.id, [(x.payout_id, x.amount) for x in lines]))
                return SendResult("FP-1", {x.payout_id: f"FP-1-{x.payout_id}" for x in lines})

        with db.transaction() as s:
            admin = books.admin(s)
            w = books.user(s)
            earn(books, s, w, 4)
            payouts.add_method(s, w, provider="fakepay", account_ref="w@example.com", currency="USD")
            with pytest.raises(Conflict) as nope:
                other = books.user(s)
                earn(books, s, other, 4)
                payouts.add_method(s, other, provider="paypal", account_ref="o@example.com", currency="USD")
                pb = payouts.create_batch(s, admin, provider="paypal", currency="USD")
                payouts.send_batch(s, admin, pb.id)
            assert nope.value.code == "payout.cannot_send"
            batch = payouts.create_batch(s, admin, provider="fakepay", currency="USD")
            payouts.send_batch(s, admin, batch.id)
            with pytest.raises(Conflict):
                payouts.send_batch(s, admin, batch.id)
            assert len(calls) == 1 and batch.provider_reference == "FP-1"
            p = payouts.batch_payouts(s, batch.id)[0]
            assert p.provider_reference == f"FP-1-{p.id}"
            assert balances(s, w) == (0, 0, 600)


def test_a_failing_api_leaves_the_batch_as_it_was(books, db):
    from egocrowd.pay.providers import PAYOUT_PROVIDERS
    from egocrowd.registry import scratch

    with scratch():

        @PAYOUT_PROVIDERS.register("downpay", version=1)
        class DownPay(PayPal):
            title = "DownPay"

            def send(self, batch, lines):
                raise Conflict("The provider is down.", code="payout.provider_failed")

        with db.transaction() as s:
            admin = books.admin(s)
            w = books.user(s)
            earn(books, s, w, 4)
            payouts.add_method(s, w, provider="downpay", account_ref="w@example.com", currency="USD")
            batch_id = payouts.create_batch(s, admin, provider="downpay", currency="USD").id
        with pytest.raises(Conflict), db.transaction() as s:
            payouts.send_batch(s, books.admin(s), batch_id)
        with db.transaction() as s:
            batch, _ = payouts.get_batch(s, books.admin(s), batch_id)
            assert batch.status is PayoutBatchStatus.open
            assert balances(s, s.get(type(books.admin(s)), w.id)) == (0, 600, 0)


def test_a_replayed_posting_changes_nothing(books, db, blobs):
    """A crash after posting but before the status is marked: the retry's keys post nothing more."""
    with db.transaction() as s:
        admin = books.admin(s)
        w = books.user(s)
        earn(books, s, w, 4)
        payouts.add_method(s, w, provider="paypal", account_ref="w@example.com", currency="USD")
        batch = payouts.create_batch(s, admin, provider="paypal", currency="USD", default_minimum_minor=0)
        payouts.export_batch(s, admin, batch.id, blobs)
        payouts.mark_sent(s, admin, batch.id, "PP-9")
        p = payouts.batch_payouts(s, batch.id)[0]
        n = s.scalar(sa.select(sa.func.count()).select_from(LedgerTransaction))
        # the settling step run again, as a retried worker would: same keys, same transactions
        payouts._settle(s, admin, batch, {})
        assert s.scalar(sa.select(sa.func.count()).select_from(LedgerTransaction)) == n
        assert payouts.batch_payouts(s, batch.id)[0].sent_transaction_id == p.sent_transaction_id
        assert balances(s, w) == (0, 0, 600)


def test_the_command_line_runs_a_batch(books, db, db_url, tmp_path):
    from click.testing import CliRunner

    from egocrowd.cli import main

    with db.transaction() as s:
        w = books.user(s)
        earn(books, s, w, 4)
        payouts.add_method(s, w, provider="paypal", account_ref="w@example.com", currency="USD")
    env = {"EGOCROWD_DATABASE_URL": db_url, "EGOCROWD_DATA_DIR": str(tmp_path / "cli")}
    run = CliRunner()
    for args in (["pay", "--help"], ["pay", "batch", "--help"], ["pay", "batch", "create", "--help"]):
        assert run.invoke(main, args, env=env).exit_code == 0
    bad = run.invoke(main, ["pay", "batch", "create", "--provider", "mpesa", "--currency", "USD"], env=env)
    assert bad.exit_code == 1 and "[payout.currency_unsupported]" in bad.output
    made = run.invoke(main, ["pay", "batch", "create", "--provider", "paypal", "--currency", "usd"], env=env)
    assert made.exit_code == 0, made.output
    bid = int(made.output.split()[1].rstrip(":"))
    assert "1 payout(s), 6.00 USD" in made.output
    out = tmp_path / "paypal.csv"
    assert run.invoke(main, ["pay", "batch", "export", str(bid), "--out", str(out)], env=env).exit_code == 0
    first = out.read_bytes()
    assert run.invoke(main, ["pay", "batch", "export", str(bid), "--out", str(out)], env=env).exit_code == 0
    assert out.read_bytes() == first and first.startswith(b"w@example.com,6.00,USD,")
    sent = run.invoke(main, ["pay", "batch", "sent", str(bid), "--reference", "PP-CLI"], env=env)
    assert sent.exit_code == 0 and "sent" in sent.output and "PP-CLI" in sent.output
    late = run.invoke(main, ["pay", "batch", "cancel", str(bid)], env=env)
    assert late.exit_code == 1 and "[payout.batch_conflict]" in late.output
    listed = run.invoke(main, ["pay", "batch", "list", "--status", "sent"], env=env)
    assert listed.exit_code == 0 and "PP-CLI" in listed.output
    with db.transaction() as s:
        assert balances(s, s.get(type(w), w.id)) == (0, 0, 600)


def test_a_payout_is_not_earning_less_on_the_earnings_page(books, db, blobs):
    from egocrowd.pay import earnings

    with db.transaction() as s:
        w = books.user(s)
        earn(books, s, w, 4)
        payouts.add_method(s, w, provider="paypal", account_ref="w@example.com", currency="USD")
        batch = payouts.create_batch(s, books.admin(s), provider="paypal", currency="USD", default_minimum_minor=0)
        payouts.export_batch(s, books.admin(s), batch.id, blobs)
        payouts.mark_sent(s, books.admin(s), batch.id, "PP-1")
        e = earnings.earnings(s, w)
        assert [wk.earned for wk in e.weeks] == [[Money(600, "USD")]]  # the week's pay, not 0.00
        assert e.balances == [Money(0, "USD")]  # and nothing left to pay out


def test_a_batch_holds_no_more_rows_than_the_provider_takes(books, db):
    from egocrowd.pay.providers import PAYOUT_PROVIDERS
    from egocrowd.registry import scratch

    with scratch():

        @PAYOUT_PROVIDERS.register("tinypay", version=1)
        class TinyPay(PayPal):
            title = "TinyPay"
            max_rows = 2

        with db.transaction() as s:
            admin = books.admin(s)
            ws = [books.user(s) for _ in range(3)]
            for w in ws:
                earn(books, s, w, 1)
                payouts.add_method(s, w, provider="tinypay", account_ref=f"{w.id}@example.com", currency="USD")
            first = payouts.create_batch(s, admin, provider="tinypay", currency="USD", default_minimum_minor=0)
            second = payouts.create_batch(s, admin, provider="tinypay", currency="USD", default_minimum_minor=0)
            assert [p.user_id for p in payouts.batch_payouts(s, first.id)] == [ws[0].id, ws[1].id]
            assert [p.user_id for p in payouts.batch_payouts(s, second.id)] == [ws[2].id]


def test_the_orphan_sweep_keeps_payout_files(books, db, blobs):
    from datetime import timedelta

    from egocrowd.clips import sweep_orphan_blobs

    with db.transaction() as s:
        w = books.user(s)
        earn(books, s, w, 4)
        payouts.add_method(s, w, provider="paypal", account_ref="w@example.com", currency="USD")
        batch = payouts.create_batch(s, books.admin(s), provider="paypal", currency="USD", default_minimum_minor=0)
        sha = payouts.export_batch(s, books.admin(s), batch.id, blobs).export_sha256
    stray = blobs.put_bytes(b"nobody's file").sha256
    removed = sweep_orphan_blobs(db, blobs, grace=timedelta(0))
    assert stray in removed and sha not in removed and blobs.exists(sha)


def test_a_deleted_account_s_references_are_forgotten_unless_a_payout_still_needs_them(books, db):
    with db.transaction() as s:
        w = books.user(s)
        earn(books, s, w, 4)
        paying = payouts.add_method(s, w, provider="paypal", account_ref="w@example.com", currency="USD")
        other = payouts.add_method(s, w, provider="mpesa", account_ref="+254712345678", currency="KES")
        batch = payouts.create_batch(s, books.admin(s), provider="paypal", currency="USD", default_minimum_minor=0)
        assert payouts.forget_methods(s, w) == 1
        assert (other.account_ref, other.removed_at is not None) == ("+254******678", True)
        assert paying.account_ref == "w@example.com"  # the open batch still pays it
        payouts.cancel_batch(s, books.admin(s), batch.id)
        assert payouts.forget_methods(s, w) == 1 and paying.account_ref == "w***@example.com"
        assert payouts.forget_methods(s, w) == 0

"""The ledger's rules, one by one, on SQLite and PostgreSQL: balanced postings, idempotency, no
negative balance without an admin, reversals, statements, audit, append-only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa

from egocrowd import audit
from egocrowd.db.models import LedgerEntry, LedgerTransaction, Role
from egocrowd.errors import EgocrowdError
from egocrowd.pay import ledger
from egocrowd.pay.ledger import AccountKind, Leg
from egocrowd.pay.money import Money

USD = "USD"


def usd(text: str) -> Money:
    return Money.parse(text, USD)


def _funded(books, s, amount: str = "10.00", **kw):
    c = books.new_campaign(s, **kw)
    ledger.deposit(
        s, c, Money.parse(amount, c.currency), books.admin(s), idempotency_key=f"dep:{c.id}", reason="wire 1"
    )
    return c


def _code(excinfo) -> str:
    assert isinstance(excinfo.value, EgocrowdError)
    return excinfo.value.code


def test_a_clip_is_paid_once_from_the_budget_with_the_fee_on_top(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        w = books.user(s)
        clip = books.clip(s, c, w)
        t1 = ledger.pay_for_clip(s, clip, books.reviewer(s), fee_bps=1000)
        t2 = ledger.pay_for_clip(s, clip, books.admin(s), fee_bps=1000)  # a double approval
        assert t1.id == t2.id
        assert t1.idempotency_key == f"clip:{clip.id}:accepted"
        assert ledger.balance(s, ledger.worker_account(s, w, USD)) == usd("1.50")
        assert ledger.balance(s, ledger.campaign_account(s, c)) == usd("8.35")  # 10.00 - 1.50 - 0.15
        assert ledger.balance(s, ledger.fees_account(s, USD)) == usd("0.15")
        assert sum(e.amount for e in t1.entries) == 0
        assert ledger.verify(s) == []
        events = audit.events_for(s, "ledger_transaction", t1.id)
        assert [e.action for e in events] == ["ledger.posted"]  # the replay posted nothing
        assert events[0].actor_id == books.reviewer_id


def test_an_unbalanced_posting_is_refused_and_leaves_nothing(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        w = ledger.worker_account(s, books.user(s), USD)
        b = ledger.campaign_account(s, c)
        with pytest.raises(EgocrowdError) as e:
            ledger.post(
                s, "bonus", [Leg(b, usd("-1.00")), Leg(w, usd("0.99"))], idempotency_key="k", reason="r", actor=None
            )
        assert _code(e) == "ledger.unbalanced"
        assert e.value.extra["left_over"] == {"USD": "-0.01"}
        with pytest.raises(EgocrowdError) as e:
            ledger.post(s, "bonus", [Leg(b, usd("-1.00"))], idempotency_key="k", reason="r", actor=None)
        assert _code(e) == "ledger.unbalanced"
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerTransaction)
                .where(LedgerTransaction.idempotency_key == "k")
            )
            == 0
        )


def test_a_currency_mismatch_is_an_error(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        kes = ledger.worker_account(s, books.user(s), "KES")
        with pytest.raises(EgocrowdError) as e:
            ledger.post(
                s,
                "bonus",
                [Leg(ledger.campaign_account(s, c), usd("-1.00")), Leg(kes, usd("1.00"))],
                idempotency_key="x",
                reason="r",
                actor=None,
            )
        assert _code(e) == "ledger.currency_mismatch"
        with pytest.raises(EgocrowdError) as e:
            ledger.deposit(s, c, Money(100, "EUR"), books.admin(s), idempotency_key="d", reason="r")
        assert _code(e) == "ledger.currency_mismatch"
        with pytest.raises(EgocrowdError) as e:
            ledger.account(s, AccountKind.campaign_budget, "EUR", campaign=c)
        assert _code(e) == "ledger.currency_mismatch"


def test_a_reused_key_with_other_content_is_a_conflict(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        b, w = ledger.campaign_account(s, c), ledger.worker_account(s, books.user(s), USD)
        first = ledger.post(
            s,
            "bonus",
            [Leg(b, usd("-1.00")), Leg(w, usd("1.00"))],
            idempotency_key="bonus:1",
            reason="great work",
            actor=None,
        )
        again = ledger.post(
            s,
            "bonus",
            [(w, usd("1.00")), (b, usd("-1.00"))],
            idempotency_key="bonus:1",
            reason="great work!",
            actor=None,
        )
        assert again.id == first.id  # same money moved: a retry, whatever the wording
        with pytest.raises(EgocrowdError) as e:
            ledger.post(
                s,
                "bonus",
                [Leg(b, usd("-2.00")), Leg(w, usd("2.00"))],
                idempotency_key="bonus:1",
                reason="r",
                actor=None,
            )
        assert _code(e) == "ledger.idempotency_conflict"
        assert e.value.extra["transaction_id"] == first.id


def test_no_overspending_without_an_admin_decision(books, db):
    with db.transaction() as s:
        c = _funded(books, s, "2.00")
        w = books.user(s)
        wa = ledger.worker_account(s, w, USD)
        ledger.pay_for_clip(s, books.clip(s, c, w), None)
        with pytest.raises(EgocrowdError) as e:  # 0.50 left, a clip costs 1.50
            ledger.pay_for_clip(s, books.clip(s, c, w), None)
        assert _code(e) == "ledger.insufficient_funds"
        assert e.value.status == 409
        paid = ledger.account(s, AccountKind.paid_out, USD)
        with pytest.raises(EgocrowdError) as e:
            ledger.post(
                s,
                "payout",
                [Leg(wa, usd("-1.51")), Leg(paid, usd("1.51"))],
                idempotency_key="po",
                reason="r",
                actor=None,
            )
        assert _code(e) == "ledger.insufficient_funds"
        assert e.value.extra == {"account_id": wa.id, "balance": "1.50", "needed": "1.51"}
        for who in (None, books.reviewer(s)):
            with pytest.raises(EgocrowdError) as e:
                ledger.post(
                    s,
                    "payout",
                    [Leg(wa, usd("-2")), Leg(paid, usd("2"))],
                    idempotency_key="po",
                    reason="r",
                    actor=who,
                    allow_negative=True,
                )
            assert _code(e) == "ledger.override_forbidden"
        t = ledger.post(
            s,
            "payout",
            [Leg(wa, usd("-2")), Leg(paid, usd("2"))],
            idempotency_key="po",
            reason="advance agreed by support #12",
            actor=books.admin(s),
            allow_negative=True,
        )
        assert t.allow_negative and t.actor_id == books.admin_id
        assert ledger.balance(s, wa) == usd("-0.50")
        (event,) = audit.events_for(s, "ledger_transaction", t.id)
        assert event.payload["allowed_negative"] == [wa.id]
        assert event.payload["reason"] == "advance agreed by support #12"
        assert ledger.verify(s) == []


def test_a_reversal_restores_every_balance_and_happens_once(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        w = books.user(s)
        t = ledger.pay_for_clip(s, books.clip(s, c, w), books.reviewer(s), fee_bps=500)
        accounts = [ledger.campaign_account(s, c), ledger.worker_account(s, w, USD), ledger.fees_account(s, USD)]
        before = ledger.balances(s, accounts)
        with pytest.raises(EgocrowdError) as e:
            ledger.reverse(s, t.id, "  ", books.admin(s))
        assert _code(e) == "ledger.reason_required"
        r1 = ledger.reverse(s, t.id, "fraud found: the clip is a re-upload", books.admin(s))
        r2 = ledger.reverse(s, t.id, "fraud, again", books.admin(s))
        assert r1.id == r2.id and r1.reverses_id == t.id and r1.kind.value == "reversal"
        after = ledger.balances(s, accounts)
        assert after[accounts[1].id] == usd("0")
        assert after[accounts[0].id] == usd("10.00")
        assert before != after
        with pytest.raises(EgocrowdError) as e:
            ledger.reverse(s, 10**6, "r", books.admin(s))
        assert _code(e) == "ledger.transaction_not_found"


def test_reversing_pay_already_paid_out_needs_an_admin(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        w = books.user(s)
        wa = ledger.worker_account(s, w, USD)
        t = ledger.pay_for_clip(s, books.clip(s, c, w), None)
        ledger.post(
            s,
            "payout",
            [Leg(wa, usd("-1.50")), Leg(ledger.account(s, "paid_out", USD, user=w), usd("1.50"))],
            idempotency_key="po1",
            reason="payout",
            actor=None,
        )
        with pytest.raises(EgocrowdError) as e:
            ledger.reverse(s, t.id, "fraud", books.admin(s))
        assert _code(e) == "ledger.insufficient_funds"
        ledger.reverse(s, t.id, "fraud; recover from the next earnings", books.admin(s), allow_negative=True)
        assert ledger.balance(s, wa) == usd("-1.50")


def test_statement_pages_with_a_running_balance(books, db):
    with db.transaction() as s:
        c = _funded(books, s, "100.00")
        w = books.user(s)
        for _ in range(5):
            ledger.pay_for_clip(s, books.clip(s, c, w), None, fee_bps=1000)
    with db.transaction(write=False) as s:
        c = s.get(type(c), c.id)
        pages, after = [], 0
        while True:
            page = ledger.campaign_statement(s, c, after=after, limit=2)
            pages.append(page)
            if page.next_after is None:
                break
            after = page.next_after
        lines = [line for p in pages for line in p.lines]
        assert [len(p.lines) for p in pages] == [2, 2, 2]
        assert [str(line.balance) for line in lines] == [
            "100.00 USD",
            "98.35 USD",
            "96.70 USD",
            "95.05 USD",
            "93.40 USD",
            "91.75 USD",
        ]
        assert pages[1].opening == usd("98.35")
        assert [line.kind.value for line in lines] == ["deposit"] + ["clip_accepted"] * 5
        assert lines[-1].balance == ledger.balance(s, ledger.campaign_account(s, c))
        # a time window: nothing before the first posting
        first_at = lines[0].at
        assert ledger.campaign_statement(s, c, until=first_at).lines == []
        assert len(ledger.campaign_statement(s, c, since=first_at).lines) == 6
        # the campaign's statement finds its budget in the page's query: the same as the account's
        budget = ledger.campaign_account(s, c)
        for after in (0, lines[2].entry_id, lines[-1].entry_id):
            assert ledger.campaign_statement(s, c, after=after, limit=2) == ledger.statement(
                s, budget, after=after, limit=2
            )
        assert ledger.campaign_statement(s, c, after=lines[-1].entry_id).account_id == budget.id  # no line


def test_a_campaign_with_no_budget_yet_has_an_empty_statement(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        page = ledger.campaign_statement(s, c)
        assert page.lines == [] and page.opening == usd("0.00") and page.next_after is None
        assert page.account_id == ledger.campaign_account(s, c).id


def test_balances_by_kind_include_empty_accounts(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        w1, w2 = books.user(s), books.user(s)
        a1, a2 = ledger.worker_account(s, w1, USD), ledger.worker_account(s, w2, USD)
        ledger.pay_for_clip(s, books.clip(s, c, w1), None)
        got = ledger.balances(s, kind="worker_earnings")
        assert got[a1.id] == usd("1.50") and got[a2.id] == usd("0")
        everything = ledger.balances(s)
        assert sum(m.minor for m in everything.values()) == 0  # double entry: the books sum to zero


def test_account_owners_are_checked(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        w = books.user(s)
        for kind, owner in (
            ("worker_earnings", {"campaign": c}),
            ("campaign_budget", {"user": w}),
            ("platform_fees", {"user": w}),
            ("lab_funding", {}),
        ):
            with pytest.raises(EgocrowdError) as e:
                ledger.account(s, kind, USD, **owner)
            assert _code(e) == "ledger.bad_owner"
        assert ledger.account(s, "worker_earnings", USD, user=w).id == ledger.worker_account(s, w, USD).id


def test_deposits_are_admin_only(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        with pytest.raises(EgocrowdError) as e:
            ledger.deposit(s, c, usd("5"), books.reviewer(s), idempotency_key="d", reason="r")
        assert _code(e) == "auth.forbidden"


def test_a_crash_before_marking_leaves_nothing_and_the_retry_posts_once(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        w = books.user(s)
        clip_id = books.clip(s, c, w).id

    class Crash(Exception):
        pass

    with pytest.raises(Crash), db.transaction() as s:
        ledger.pay_for_clip(s, s.get(type(books.clip(s, c, w)), clip_id), None)
        raise Crash  # the process dies before the clip is marked paid: the whole transaction is gone
    with db.transaction() as s:
        assert (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(LedgerTransaction)
                .where(LedgerTransaction.idempotency_key == f"clip:{clip_id}:accepted")
            )
            == 0
        )
    ids = set()
    for _ in range(2):  # the retry, and a retry of the retry
        with db.transaction() as s:
            from egocrowd.db.models import Clip

            ids.add(ledger.pay_for_clip(s, s.get(Clip, clip_id), None).id)
    assert len(ids) == 1
    with db.transaction() as s:
        assert ledger.balance(s, ledger.worker_account(s, s.get(type(books.user(s)), w.id), USD)) == usd("1.50")
        assert ledger.verify(s) == []


def test_entries_and_transactions_refuse_update_and_delete_in_the_database(books, db):
    with db.transaction() as s:
        c = _funded(books, s)
        ledger.pay_for_clip(s, books.clip(s, c, books.user(s)), None)
    for stmt in (
        "UPDATE ledger_entries SET amount = amount + 1",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_transactions SET reason = 'edited'",
        "DELETE FROM ledger_transactions",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(sa.text(stmt))
    if db.is_sqlite:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT OR REPLACE INTO ledger_entries (id, transaction_id, account_id, amount) SELECT id, transaction_id, account_id, 5 FROM ledger_entries LIMIT 1"
                )
            )
    else:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE ledger_entries"))


def test_the_service_has_no_update_or_delete_path_for_entries_or_transactions():
    """Read the pay package's source: nothing updates or deletes a ledger entry or transaction
    (of the ledger's tables, only an account's balance cache is updated; other pay tables, such as a
    payout batch's status, change by their own conditional UPDATEs)."""
    src = Path(ledger.__file__).parent
    for path in src.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                args = " ".join(ast.unparse(a) for a in node.args)
                if name in {"update", "delete"}:
                    assert "LedgerEntry" not in args and "LedgerTransaction" not in args, (
                        f"{path.name}:{node.lineno}: {ast.unparse(node)}"
                    )
                    assert name == "update" or "LedgerAccount" not in args, f"{path.name}:{node.lineno}"
                assert name not in {"bulk_update_mappings", "merge"}, f"{path.name}:{node.lineno}"
    text = "\n".join(p.read_text() for p in src.glob("*.py"))
    assert ".delete(" not in text
    for table in ("ledger_entries", "ledger_transactions"):
        assert f"update {table}" not in text.lower() and f"delete from {table}" not in text.lower()


def test_admin_role_is_what_the_override_checks(books, db):
    with db.transaction() as s:
        u = books.user(s, Role.admin)
        c = books.new_campaign(s)
        b = ledger.campaign_account(s, c)
        f = ledger.funding_account(s, s.get(type(c.organization), c.organization_id), USD)
        t = ledger.post(
            s,
            "adjustment",
            [Leg(b, usd("-1")), Leg(f, usd("1"))],
            idempotency_key="adj",
            reason="refund an error",
            actor=u,
            allow_negative=True,
        )
        assert ledger.balance(s, b) == usd("-1")
        assert s.get(LedgerEntry, t.entries[0].id) is not None


def test_the_worked_example_of_docs_pay_md(books, db):
    with db.transaction() as s:
        c = books.new_campaign(s)
        admin, reviewer, amina = books.admin(s), books.reviewer(s), books.user(s)
        ledger.deposit(s, c, Money.parse("100.00", USD), admin, idempotency_key="dep:7:1", reason="wire 2026-11-30")
        ledger.pay_for_clip(s, books.clip(s, c, amina), reviewer, fee_bps=1000)
        clip32 = books.clip(s, c, amina)
        t = ledger.pay_for_clip(s, clip32, reviewer, fee_bps=1000)
        assert ledger.pay_for_clip(s, clip32, reviewer, fee_bps=1000).id == t.id
        ledger.reverse(s, t.id, "the clip is a re-upload", admin)
        org = s.get(type(c.organization), c.organization_id)
        got = [
            ledger.balance(s, a).format()
            for a in (
                ledger.funding_account(s, org, USD),
                ledger.campaign_account(s, c),
                ledger.worker_account(s, amina, USD),
                ledger.fees_account(s, USD),
            )
        ]
        assert got == ["-100.00", "98.35", "1.50", "0.15"]


def test_a_time_window_still_counts_entries_between_its_lines(books, db):
    """A transaction that started earlier but committed later sits between two lines by entry id and
    outside the window by time: the balance after each line still counts it."""
    from datetime import timedelta

    from egocrowd.clock import utcnow

    with db.transaction() as s:
        c = _funded(books, s, "10.00")
        w = books.user(s)
        budget, earn = ledger.campaign_account(s, c), ledger.worker_account(s, w, USD)
        ledger.pay_for_clip(s, books.clip(s, c, w), None)
        # written as such a late commit's rows would be: its time an hour before everything else
        late = LedgerTransaction(
            kind="bonus",
            idempotency_key="late",
            content_sha256="-",
            reason="late",
            at=utcnow() - timedelta(hours=1),
            refs={},
        )
        s.add(late)
        s.flush()
        s.add_all(
            [
                LedgerEntry(transaction_id=late.id, account_id=budget.id, amount=-150),
                LedgerEntry(transaction_id=late.id, account_id=earn.id, amount=150),
            ]
        )
        s.flush()
        ledger.pay_for_clip(s, books.clip(s, c, w), None)
    with db.transaction(write=False) as s:
        budget = s.get(type(budget), budget.id)
        whole = ledger.statement(s, budget)
        assert [str(x.balance) for x in whole.lines] == ["10.00 USD", "8.50 USD", "7.00 USD", "5.50 USD"]
        window = ledger.statement(s, budget, since=whole.lines[0].at)
        assert [x.transaction_id for x in window.lines] == [whole.lines[i].transaction_id for i in (0, 1, 3)]
        assert [str(x.balance) for x in window.lines] == ["10.00 USD", "8.50 USD", "5.50 USD"]
        assert window.lines[-1].balance == ledger.balance(s, budget)


def test_a_long_statement_pages_alike_at_every_size(books, db):
    """Pages bigger and smaller than the rows a page fetches at a time (ledger._CHUNK), and ones
    ending on that boundary: the same lines, each balance the sum of the entries up to it, each
    page's opening the previous page's last balance, and the refs as posted (odd JSON included)."""
    n = 2 * ledger._CHUNK + 7
    odd = [
        {},
        {"note": 'a "quoted" ], [comma, },{ and \\ backslash'},
        {"ünïcødé": "✓ — ok", "nested": {"list": [1, [2, {"x": None}]], "t": True}, "f": 1.5},
        {"clip_id": 7, "campaign_id": 3},
    ]
    with db.transaction() as s:
        c = _funded(books, s, "100000.00")
        budget = ledger.campaign_account(s, c)
        w = ledger.worker_account(s, books.user(s), USD)
        for i in range(n):
            cents = 1 + (i * 37) % 500
            ledger.post(
                s,
                "bonus",
                [Leg(budget, Money(-cents, USD)), Leg(w, Money(cents, USD))],
                idempotency_key=f"long:{i}",
                reason=f"bonus {i}",
                actor=None,
                refs=odd[i % len(odd)],
            )
    with db.transaction(write=False) as s:
        budget = s.get(type(budget), budget.id)
        entries = s.execute(
            sa.select(LedgerEntry.id, LedgerEntry.amount, LedgerTransaction.refs, LedgerTransaction.reason)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.account_id == budget.id)
            .order_by(LedgerEntry.id)
        ).all()
        assert len(entries) == n + 1  # the deposit and the bonuses
        running, expected = 0, []
        for entry_id, amount, refs, reason in entries:
            running += amount
            expected.append((entry_id, Money(amount, USD), Money(running, USD), refs, reason))
        whole = ledger.statement(s, budget, limit=10_000)
        assert whole.next_after is None and whole.opening == usd("0")
        assert [(x.entry_id, x.amount, x.balance, x.refs, x.reason) for x in whole.lines] == expected
        assert [x.refs for x in whole.lines[1:5]] == odd
        for limit in (7, ledger._CHUNK - 1, ledger._CHUNK, ledger._CHUNK + 1, n, n + 1):
            pages, after = [], 0
            while True:
                page = ledger.statement(s, budget, after=after, limit=limit)
                pages.append(page)
                if page.next_after is None:
                    break
                assert page.next_after == page.lines[-1].entry_id
                after = page.next_after
            assert [len(p.lines) for p in pages[:-1]] == [limit] * (len(pages) - 1), limit
            assert len(pages) == -(-(n + 1) // limit), limit
            assert [x for p in pages for x in p.lines] == whole.lines, limit
            assert [p.opening for p in pages[1:]] == [p.lines[-1].balance for p in pages[:-1]], limit
        past_the_end = ledger.statement(s, budget, after=whole.lines[-1].entry_id)
        assert past_the_end.lines == [] and past_the_end.next_after is None
        assert past_the_end.opening == whole.lines[-1].balance == ledger.balance(s, budget)
        halfway = ledger.statement(s, budget, after=whole.lines[n // 2].entry_id, limit=3)
        assert halfway.opening == whole.lines[n // 2].balance and halfway.lines == whole.lines[n // 2 + 1 : n // 2 + 4]

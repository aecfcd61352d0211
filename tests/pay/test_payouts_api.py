"""Payouts through the doors (API and pages), both backends: a worker's methods, an admin's batch from
creation to "sent" with its file downloaded twice byte for byte, refusals as problem documents, two
admins racing on one batch (threads, two sessions), and appeals of reversed pay."""

from __future__ import annotations

import re
import threading

import pytest

from egocrowd.db.models import ClipStatus, PayoutBatchStatus, User
from egocrowd.pay import ledger, payouts
from egocrowd.pay.money import Money
from tests.pay.conftest import Books
from tests.platform.helpers import API, assert_problem, make_user
from tests.platform.test_access import page_login


def earn(db, worker_id: int, admin_id: int, clips: int, *, currency: str = "USD") -> list[int]:
    """The worker is paid 1.50 for each of ``clips`` accepted clips of a fresh, funded campaign."""
    books = Books(db, admin_id, admin_id)
    with db.transaction() as s:
        c = books.new_campaign(s, currency=currency)
        ledger.deposit(s, c, Money(150 * clips, currency), books.admin(s), idempotency_key=f"d{c.id}", reason="wire")
        ids = []
        for _ in range(clips):
            clip = books.clip(s, c, s.get(User, worker_id))
            clip.status = ClipStatus.accepted
            ledger.pay_for_clip(s, clip, None)
            ids.append(clip.id)
        return ids


@pytest.fixture
def people(db):
    return {"admin": make_user(db, "admin"), "worker": make_user(db, "worker"), "reviewer": make_user(db, "reviewer")}


def _method(client, who, provider="paypal", ref="w@example.com", currency="USD", **extra):
    body = {"provider": provider, "account_ref": ref, "currency": currency, **extra}
    return client.post(f"{API}/me/payout-methods", json=body, headers=who.headers)


def test_a_worker_manages_methods_through_the_api(client, people):
    w, admin = people["worker"], people["admin"]
    first = _method(client, w)
    assert first.status_code == 201, first.text
    assert first.json()["default"] is True and first.json()["account_ref"] == "w@example.com"
    second = _method(client, w, provider="wise", ref="55512345")
    assert second.status_code == 201 and second.json()["default"] is False
    assert_problem(_method(client, w, provider="mpesa", ref="0712 345678", currency="KES"), 422, "payout.bad_account")
    assert_problem(_method(client, w, provider="mpesa", ref="+254712345678"), 422, "payout.currency_unsupported")
    assert_problem(_method(client, w, provider="nope"), 422, "payout.unknown_provider")
    assert_problem(_method(client, admin), 403, "auth.forbidden")
    mid = second.json()["id"]
    r = client.post(f"{API}/me/payout-methods/{mid}/default", headers=w.headers)
    assert r.status_code == 200 and r.json()["default"] is True
    listed = client.get(f"{API}/me/payout-methods", headers=w.headers).json()
    assert [(m["provider"], m["default"]) for m in listed] == [("wise", True), ("paypal", False)]
    assert client.delete(f"{API}/me/payout-methods/{mid}", headers=w.headers).status_code == 204
    assert_problem(client.delete(f"{API}/me/payout-methods/{mid}", headers=w.headers), 404, "payout.method_not_found")
    assert [m["default"] for m in client.get(f"{API}/me/payout-methods", headers=w.headers).json()] == [True]


def test_an_admin_runs_a_batch_from_creation_to_sent(client, db, people):
    w, admin = people["worker"], people["admin"]
    earn(db, w.id, admin.id, 4)
    assert _method(client, w).status_code == 201
    create = {"provider": "paypal", "currency": "usd"}
    assert_problem(client.post(f"{API}/payout-batches", json=create, headers=w.headers), 403, "auth.forbidden")
    assert_problem(
        client.post(f"{API}/payout-batches", json={**create, "minimum": "100.00"}, headers=admin.headers),
        409,
        "payout.nothing_to_pay",
    )
    r = client.post(f"{API}/payout-batches", json=create, headers=admin.headers)  # the setting: 5.00
    assert r.status_code == 201, r.text
    batch = r.json()
    assert (batch["status"], batch["payouts"], batch["total"], batch["minimum"]) == ("open", 1, "6.00", "5.00")
    assert batch["lines"][0]["account"] == payouts.mask("w@example.com")
    bid = batch["id"]
    assert_problem(client.get(f"{API}/payout-batches/{bid}/file", headers=admin.headers), 409, "payout.not_exported")
    r = client.post(f"{API}/payout-batches/{bid}/export", headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "exported"
    one = client.get(f"{API}/payout-batches/{bid}/file", headers=admin.headers)
    two = client.get(f"{API}/payout-batches/{bid}/file", headers=admin.headers)
    assert one.status_code == 200 and one.content == two.content
    assert one.headers["content-type"].startswith("text/csv")
    assert f"egocrowd-batch-{bid}-paypal.csv" in one.headers["content-disposition"]
    assert one.content.startswith(b"w@example.com,6.00,USD,egc-")
    assert_problem(client.get(f"{API}/payout-batches/{bid}/file", headers=w.headers), 403, "auth.forbidden")
    assert_problem(
        client.post(f"{API}/payout-batches/{bid}/export", headers=admin.headers), 409, "payout.batch_conflict"
    )
    assert_problem(
        client.post(f"{API}/payout-batches/{bid}/sent", json={"reference": ""}, headers=admin.headers),
        422,
        "validation.failed",
    )
    r = client.post(f"{API}/payout-batches/{bid}/sent", json={"reference": "PP-42"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["status"] == "sent" and r.json()["provider_reference"] == "PP-42"
    assert_problem(
        client.post(f"{API}/payout-batches/{bid}/cancel", json={}, headers=admin.headers), 409, "payout.batch_conflict"
    )
    mine = client.get(f"{API}/me/payouts", headers=w.headers).json()
    assert [(p["amount"], p["state"], p["reference"]) for p in mine] == [("6.00", "sent", "PP-42")]
    listed = client.get(f"{API}/payout-batches?status=sent", headers=admin.headers).json()
    assert [b["id"] for b in listed] == [bid]
    assert_problem(client.get(f"{API}/payout-batches/999999", headers=admin.headers), 404, "payout.batch_not_found")


@pytest.mark.parametrize("action", ["export", "cancel", "sent"])
def test_two_admins_acting_on_one_batch_one_wins(db, people, tmp_path, action, db_url):
    """Two sessions in two threads: the conditional UPDATE lets exactly one through (on PostgreSQL the
    second waits for the first to commit, then finds the status moved); the books stay sound."""
    from egocrowd.blobs import BlobStore
    from egocrowd.db import Database

    w, admin = people["worker"], people["admin"]
    other = make_user(db, "admin")
    earn(db, w.id, admin.id, 4)
    blobs = BlobStore(tmp_path / "blobs")
    with db.transaction() as s:
        payouts.add_method(s, s.get(User, w.id), provider="paypal", account_ref="w@example.com", currency="USD")
        bid = payouts.create_batch(s, s.get(User, admin.id), provider="paypal", currency="USD").id
        if action == "sent":
            payouts.export_batch(s, s.get(User, admin.id), bid, blobs)
    barrier = threading.Barrier(2)
    results: list[str] = []
    dbs = [Database(db_url), Database(db_url)]

    def act(i: int, who: int) -> None:
        try:
            barrier.wait(timeout=10)  # outside: SQLite's BEGIN IMMEDIATE would make the second wait here
            with dbs[i].transaction() as s:
                actor = s.get(User, who)
                if action == "export":
                    payouts.export_batch(s, actor, bid, blobs)
                elif action == "cancel":
                    payouts.cancel_batch(s, actor, bid)
                else:
                    payouts.mark_sent(s, actor, bid, f"REF-{who}")
            results.append("ok")
        except Exception as e:  # noqa: BLE001 - the loser's error is what we check
            results.append(getattr(e, "code", repr(e)))

    threads = [threading.Thread(target=act, args=(0, admin.id)), threading.Thread(target=act, args=(1, other.id))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for d in dbs:
        d.dispose()
    assert sorted(results) == ["ok", "payout.batch_conflict"], results
    with db.transaction() as s:
        assert ledger.verify(s) == []
        batch, _ = payouts.get_batch(s, None, bid)
        want = {
            "export": PayoutBatchStatus.exported,
            "cancel": PayoutBatchStatus.cancelled,
            "sent": PayoutBatchStatus.sent,
        }
        assert batch.status is want[action]
        worker = s.get(User, w.id)
        held = [
            ledger.balance(s, acct).minor
            for acct in (
                ledger.worker_account(s, worker, "USD"),
                payouts.transit_account(s, worker, "USD"),
                payouts.paid_out_account(s, worker, "USD"),
            )
        ]
        assert sum(held) == 600 and held.count(600) == 1  # all of it in exactly one place


def test_appeals_of_reversed_pay_through_the_api(client, db, people):
    w, admin, rev = people["worker"], people["admin"], people["reviewer"]
    other_admin = make_user(db, "admin")
    clip_a, clip_b, clip_c = earn(db, w.id, admin.id, 3)
    why = "The clip repeats one sent last week."
    for cid in (clip_a, clip_b):
        r = client.post(f"{API}/clips/{cid}/pay-reversal", json={"reason": why}, headers=admin.headers)
        assert r.status_code == 201, r.text
    appeal = {"comment": "It is a different shirt, look at the sleeves."}
    assert_problem(
        client.post(f"{API}/clips/{clip_c}/pay-appeal", json=appeal, headers=w.headers), 409, "pay.not_reversed"
    )
    assert_problem(
        client.post(f"{API}/clips/{clip_a}/pay-appeal", json=appeal, headers=rev.headers), 404, "clip.not_found"
    )
    assert_problem(
        client.post(f"{API}/clips/{clip_a}/pay-appeal", json={"comment": "no"}, headers=w.headers),
        422,
        "pay_appeal.comment_required",
    )
    a = client.post(f"{API}/clips/{clip_a}/pay-appeal", json=appeal, headers=w.headers)
    assert a.status_code == 201 and a.json()["state"] == "open"
    assert_problem(
        client.post(f"{API}/clips/{clip_a}/pay-appeal", json=appeal, headers=w.headers), 409, "pay_appeal.already_made"
    )
    b = client.post(f"{API}/clips/{clip_b}/pay-appeal", json=appeal, headers=w.headers).json()
    waiting = client.get(f"{API}/pay-reversals?appeal=open", headers=admin.headers).json()
    assert sorted(x["clip_id"] for x in waiting) == [clip_a, clip_b] and waiting[0]["amount"] == "1.50"
    assert_problem(client.get(f"{API}/pay-reversals", headers=w.headers), 403, "auth.forbidden")

    aid = a.json()["id"]
    decide = f"{API}/pay-appeals/{aid}/decision"
    assert_problem(
        client.post(decide, json={"decision": "uphold"}, headers=other_admin.headers),
        422,
        "pay_appeal.comment_required",
    )
    assert_problem(
        client.post(decide, json={"decision": "maybe"}, headers=other_admin.headers), 422, "pay_appeal.bad_decision"
    )
    assert_problem(client.post(decide, json={"decision": "overturn"}, headers=rev.headers), 403, "auth.forbidden")
    r = client.post(decide, json={"decision": "overturn", "comment": "Agreed."}, headers=other_admin.headers)
    assert r.status_code == 200 and r.json()["state"] == "overturned" and r.json()["repay_transaction_id"]
    assert_problem(
        client.post(decide, json={"decision": "uphold", "comment": "x"}, headers=admin.headers),
        409,
        "pay_appeal.already_decided",
    )
    r = client.post(
        f"{API}/pay-appeals/{b['id']}/decision",
        json={"decision": "uphold", "comment": "Same shirt."},
        headers=admin.headers,
    )
    assert r.json()["state"] == "upheld" and r.json()["repay_transaction_id"] is None
    assert client.get(f"{API}/pay-appeals/{aid}", headers=w.headers).json()["state"] == "overturned"
    assert_problem(client.get(f"{API}/pay-appeals/{aid}", headers=rev.headers), 404, "pay_appeal.not_found")
    with db.transaction() as s:
        worker = s.get(User, w.id)
        assert ledger.balance(s, ledger.worker_account(s, worker, "USD")) == Money(300, "USD")  # c, and a again
        assert ledger.verify(s) == []


def _form(client, path: str, data: dict, token: str):
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def test_the_pages_a_worker_and_an_admin_use(client, db, people):
    w, admin = people["worker"], people["admin"]
    earn(db, w.id, admin.id, 4)
    token = page_login(client, w)
    r = _form(
        client, "/earnings/payouts/methods", {"provider": "paypal", "account_ref": "bad", "currency": "USD"}, token
    )
    assert r.status_code == 422 and 'data-code="payout.bad_account"' in r.text
    r = _form(
        client,
        "/earnings/payouts/methods",
        {"provider": "paypal", "account_ref": "w@example.com", "currency": "usd"},
        token,
    )
    assert r.status_code == 303 and r.headers["location"] == "/earnings/payouts?m=method_added"
    page = client.get("/earnings/payouts")
    assert page.status_code == 200 and "w@example.com" in page.text and "default for USD" in page.text
    assert 'href="/earnings/payouts"' in client.get("/earnings").text

    client.cookies.clear()
    token = page_login(client, admin)
    r = _form(client, "/admin/payouts", {"provider": "paypal", "currency": "USD", "minimum": "50.00"}, token)
    assert r.status_code == 409 and 'data-code="payout.nothing_to_pay"' in r.text
    r = _form(client, "/admin/payouts", {"provider": "paypal", "currency": "USD", "minimum": ""}, token)
    assert r.status_code == 303, r.text
    bid = int(re.search(r"/admin/payouts/(\d+)", r.headers["location"]).group(1))
    assert "USD\xa06.00" in client.get(f"/admin/payouts/{bid}").text
    assert _form(client, f"/admin/payouts/{bid}/export", {}, token).status_code == 303
    f = client.get(f"/admin/payouts/{bid}/file")
    assert f.status_code == 200 and f.content.startswith(b"w@example.com,6.00,USD")
    r = _form(client, f"/admin/payouts/{bid}/cancel", {}, token)
    assert r.status_code == 200 and "Cancel payout batch" in r.text  # asks first
    assert _form(client, f"/admin/payouts/{bid}/sent", {"reference": "PP-7"}, token).status_code == 303
    assert 'data-status="sent"' in client.get(f"/admin/payouts/{bid}").text
    assert _form(client, "/admin/payouts/reversals", {"clip_id": "x", "reason": "short"}, token).status_code == 422
    assert client.get("/admin/payouts/reversals").status_code == 200

"""Robot evaluations in blind A/B battles (issue #19): the lab sets one up under a campaign, workers
claim battles and judge them, each verdict is paid once, gold battles measure evaluators, the next
pair is the informative one, and the live ranking is egocrowd.bench's with a sequential test."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd import evaluations
from egocrowd.bench.ranking import Battle as RankedBattle
from egocrowd.bench.ranking import rank_battles
from egocrowd.db.models import Battle, BattleStatus, Campaign, LedgerTransaction, User
from egocrowd.pay import ledger
from egocrowd.worker import housekeeping
from tests.platform.helpers import API, assert_problem, make_user, open_campaign, publish_consent


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab A")


@pytest.fixture
def campaign(client, db, lab):
    return open_campaign(client, lab, db=db)


def _setup(client, lab, cid, *, names=("alpha", "beta", "gamma"), **settings) -> dict[str, int]:
    body = {"tasks": [{"task": "clear the table", "prompt": "Ask it to clear the table"}], "environments": ["kitchen"]}
    r = client.post(f"{API}/campaigns/{cid}/evaluation", json={**body, **settings}, headers=lab.headers)
    assert r.status_code == 201, r.text
    ids = {}
    for name in names:
        r = client.post(
            f"{API}/campaigns/{cid}/evaluation/policies",
            json={"name": name, "kind": "http", "endpoint": f"http://robots.test/{name}"},
            headers=lab.headers,
        )
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    return ids


def _verdict(winner: str, **over) -> dict:
    return {"verdict": winner, "reason": "it put every cup away", "instruction": "clear the table", **over}


def test_a_battle_from_claim_to_a_paid_verdict(client, db, lab, campaign):
    cid = campaign["id"]
    _setup(client, lab, cid, pay_cents=25)
    worker = make_user(db, "worker")
    r = client.post(f"{API}/campaigns/{cid}/battles", headers=worker.headers)
    assert r.status_code == 201, r.text
    battle = r.json()
    # the evaluator sees A and B, the task and the lab's prompt, never which policy is which
    assert battle["task"] == "clear the table" and battle["prompt"] == "Ask it to clear the table"
    assert "alpha" not in r.text and "robots.test" not in r.text
    assert_problem(client.post(f"{API}/campaigns/{cid}/battles", headers=worker.headers), 409, "evaluation.worker_cap")
    # somebody else's battle does not exist for you
    other = make_user(db, "worker")
    assert_problem(client.get(f"{API}/battles/{battle['id']}", headers=other.headers), 404, "battle.not_found")
    r = client.post(
        f"{API}/battles/{battle['id']}/verdict",
        json=_verdict("a", person="grandmother", environment="kitchen"),
        headers=worker.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "judged" and r.json()["verdict"] == "a"
    # once only
    r = client.post(f"{API}/battles/{battle['id']}/verdict", json=_verdict("b"), headers=worker.headers)
    assert_problem(r, 409, "battle.not_active")
    with db.transaction() as s:
        [txn] = s.scalars(
            sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == f"battle:{battle['id']}:judged")
        )
        assert txn.kind is ledger.TransactionKind.evaluation_work
        earned = ledger.balance(s, ledger.worker_account(s, s.get_one(User, worker.id), "USD"))
        assert earned.minor == 25
    # an environment the lab did not list is refused
    b2 = client.post(f"{API}/campaigns/{cid}/battles", headers=worker.headers).json()
    r = client.post(
        f"{API}/battles/{b2['id']}/verdict", json=_verdict("tie", environment="garage"), headers=worker.headers
    )
    assert_problem(r, 422, "battle.unknown_environment")


def test_only_workers_judge_and_only_managers_set_up(client, db, lab, campaign):
    cid = campaign["id"]
    worker = make_user(db, "worker")
    r = client.post(f"{API}/campaigns/{cid}/evaluation", json={}, headers=worker.headers)
    assert r.status_code in (403, 404), r.text
    _setup(client, lab, cid)
    assert_problem(client.post(f"{API}/campaigns/{cid}/battles", headers=lab.headers), 403, "auth.forbidden")
    assert_problem(
        client.post(f"{API}/campaigns/{cid}/evaluation", json={}, headers=lab.headers), 409, "evaluation.exists"
    )
    r = client.post(
        f"{API}/campaigns/{cid}/evaluation/policies", json={"name": "alpha", "kind": "physical"}, headers=lab.headers
    )
    assert_problem(r, 409, "evaluation.policy_exists")
    r = client.post(
        f"{API}/campaigns/{cid}/evaluation/policies", json={"name": "delta", "kind": "http"}, headers=lab.headers
    )
    assert r.status_code == 422, r.text  # an http policy needs its endpoint
    assert client.get(f"{API}/campaigns/{cid}/evaluation/results", headers=worker.headers).status_code in (403, 404)


def test_an_expired_lease_frees_the_evaluator_and_refuses_a_late_verdict(client, db, lab, campaign, settings):
    cid = campaign["id"]
    _setup(client, lab, cid)
    worker = make_user(db, "worker")
    battle = client.post(f"{API}/campaigns/{cid}/battles", headers=worker.headers).json()
    with db.transaction() as s:
        s.get_one(Battle, battle["id"]).lease_expires_at -= timedelta(hours=1)
    r = client.post(f"{API}/battles/{battle['id']}/verdict", json=_verdict("a"), headers=worker.headers)
    assert_problem(r, 410, "battle.lease_expired")
    from egocrowd.blobs import BlobStore
    from egocrowd.uploads import UploadStore

    out = housekeeping(db, BlobStore(settings.blobs_path), UploadStore(settings.uploads_path), settings)
    assert out["battle_leases_expired"] == 1
    with db.transaction() as s:
        assert s.get_one(Battle, battle["id"]).status is BattleStatus.expired
    assert client.post(f"{API}/campaigns/{cid}/battles", headers=worker.headers).status_code == 201


def _judge_all(db, cid: int, workers: list, truth, *, n: int, seed: int = 1) -> None:
    """``n`` battles claimed and judged through the service, the better policy by ``truth(a, b)``."""
    rng = random.Random(seed)
    for i in range(n):
        w = workers[i % len(workers)]
        with db.transaction() as s:
            user = s.get_one(User, w.id)
            b = evaluations.claim(s, user, cid, rng=rng)
            verdict = truth(b.policy_a_id, b.policy_b_id, b.is_gold)
            evaluations.judge(s, user, b.id, evaluations.VerdictIn(**_verdict(verdict, person=f"p{i % 2}")))


def test_the_ranking_is_benchs_and_settles_once_each_adjacent_pair_is_decided(client, db, lab, campaign):
    cid = campaign["id"]
    ids = _setup(client, lab, cid, names=("strong", "middle", "weak"), gold_rate=0.0)
    skill = {ids["strong"]: 3, ids["middle"]: 2, ids["weak"]: 1}
    workers = [make_user(db, "worker") for _ in range(3)]
    _judge_all(db, cid, workers, lambda a, b, _: "a" if skill[a] > skill[b] else "b", n=90)
    r = client.get(f"{API}/campaigns/{cid}/evaluation/results?rounds=200", headers=lab.headers)
    assert r.status_code == 200, r.text
    res = r.json()
    assert [row["policy"] for row in res["ranking"]["ranking"]] == ["strong", "middle", "weak"]
    assert [row["rank"] for row in res["ranking"]["ranking"]] == [1, 2, 3]
    assert res["settled"] is True and all(a["decision"] == "A" for a in res["adjacent"])
    assert res["judged"] == 90 and res["agreement"] == 1.0
    assert set(res["by_person"]) == {"p0", "p1"} and res["by_person"]["p0"]["strong"] == 1.0
    # the same numbers as egocrowd.bench on the same battles
    with db.transaction() as s:
        names = {v: k for k, v in ids.items()}
        rows = s.scalars(
            sa.select(Battle).where(Battle.status == BattleStatus.judged).order_by(Battle.judged_at, Battle.id)
        )
        direct = rank_battles(
            [RankedBattle(names[b.policy_a_id], names[b.policy_b_id], b.verdict) for b in rows], rounds=200, seed=0
        )
    assert res["ranking"]["ranking"] == direct["ranking"]


def test_an_unsettled_ranking_says_so(client, db, lab, campaign):
    cid = campaign["id"]
    _setup(client, lab, cid, names=("one", "two"), gold_rate=0.0)
    coin = random.Random(5)
    _judge_all(db, cid, [make_user(db, "worker")], lambda a, b, _: coin.choice(["a", "b", "tie"]), n=12)
    res = client.get(f"{API}/campaigns/{cid}/evaluation/results?rounds=100", headers=lab.headers).json()
    assert res["settled"] is False and res["adjacent"][0]["decision"] == "continue"


def test_gold_battles_are_mixed_in_and_measure_each_evaluator(client, db, lab, campaign):
    cid = campaign["id"]
    ids = _setup(client, lab, cid, names=("good", "bad", "other"), gold_rate=0.5)
    r = client.put(
        f"{API}/campaigns/{cid}/evaluation/gold",
        json={"pairs": [{"better": ids["good"], "worse": ids["bad"]}]},
        headers=lab.headers,
    )
    assert r.status_code == 200, r.text
    r = client.put(
        f"{API}/campaigns/{cid}/evaluation/gold",
        json={"pairs": [{"better": ids["good"], "worse": ids["good"]}]},
        headers=lab.headers,
    )
    assert_problem(r, 422, "evaluation.bad_gold_pair")
    careful, careless = make_user(db, "worker"), make_user(db, "worker")

    def truth(a, b, gold, *, wrong_on_gold=False):
        better = "a" if a == ids["good"] or b == ids["bad"] else "b"
        if gold and wrong_on_gold:
            return {"a": "b", "b": "a"}[better]
        return better

    _judge_all(db, cid, [careful], truth, n=30, seed=2)
    _judge_all(db, cid, [careless], lambda a, b, g: truth(a, b, g, wrong_on_gold=True), n=30, seed=3)
    with db.transaction() as s:
        gold = Counter(s.scalars(sa.select(Battle.evaluator_id).where(Battle.is_gold.is_(True))))
    assert 5 <= gold[careful.id] <= 25 and 5 <= gold[careless.id] <= 25  # about half, never marked
    res = client.get(f"{API}/campaigns/{cid}/evaluation/results?rounds=0", headers=lab.headers).json()
    accuracy = {e["evaluator_id"]: e["gold_accuracy"] for e in res["evaluators"]}
    assert accuracy[careful.id] == 1.0 and accuracy[careless.id] == 0.0
    assert res["gold_judged"] == sum(gold.values()) and res["judged"] == 60 - sum(gold.values())


def test_the_next_pair_is_the_informative_one():
    """One policy beats both others every time; the two others are even. New battles go mostly to
    the even pair, and almost never to a pair whose order is plain and well measured."""
    judged = [(1, 2, "a", 40), (1, 3, "a", 40), (2, 3, "a", 5), (2, 3, "b", 5)]
    rng = random.Random(7)
    drawn = Counter(evaluations.informative_pair([1, 2, 3], judged, rng) for _ in range(2000))
    assert drawn[(2, 3)] > 0.9 * 2000
    # with nothing judged, every pair is as likely
    first = Counter(evaluations.informative_pair([1, 2, 3], [], rng) for _ in range(3000))
    assert all(900 < first[p] < 1100 for p in [(1, 2), (1, 3), (2, 3)])


def test_a_short_budget_owes_the_verdict_and_a_deposit_pays_it(client, db, lab):
    from egocrowd.pay import budgets
    from egocrowd.pay.money import Money

    cid = open_campaign(client, lab, db=db)["id"]
    _setup(client, lab, cid, pay_cents=100_000)  # more than the budget holds
    worker = make_user(db, "worker")
    b = client.post(f"{API}/campaigns/{cid}/battles", headers=worker.headers).json()
    assert (
        client.post(f"{API}/battles/{b['id']}/verdict", json=_verdict("a"), headers=worker.headers).status_code == 200
    )
    key = f"battle:{b['id']}:judged"
    admin = make_user(db, "admin")
    with db.transaction() as s:
        assert s.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key)) is None
        budgets.record_deposit(
            s,
            s.get_one(Campaign, cid),
            Money(200_000, "USD"),
            s.get_one(User, admin.id),
            reason="top up",
            idempotency_key="d-eval",
        )
    with db.transaction() as s:
        assert s.scalar(sa.select(LedgerTransaction).where(LedgerTransaction.idempotency_key == key)) is not None

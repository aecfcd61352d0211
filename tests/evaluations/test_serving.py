"""Serving a battle's blind slots (issue #19): a simulated slot plays the lab's real HTTP endpoint in
egocrowd.bench's simulator with the evaluator's instruction, bounded by steps and wall clock, and
keeps what the robot did without its name; an endpoint that is down is said plainly; a physical
robot's slot is run by the lab's operator through a per-battle code only the lab resolves."""

from __future__ import annotations

import random

import pytest

from egocrowd import evaluations
from egocrowd.db.models import Battle, EvalPolicy, User
from egocrowd.errors import Conflict, Forbidden, InvalidInput, NotFound
from egocrowd.evaluations import serving
from tests.evaluations.robots import Fetcher, Idler, Slow, served
from tests.platform.helpers import API, assert_problem, claim, make_user, open_campaign, publish_consent, sign

ASK = "Please bring me the milk"


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab A")


def _evaluation(client, db, lab, policies: list[tuple[str, str, str | None]]) -> int:
    cid = open_campaign(client, lab, db=db)["id"]
    body = {"tasks": [{"task": "fetch", "prompt": "Ask for something from the hallway"}]}
    assert client.post(f"{API}/campaigns/{cid}/evaluation", json=body, headers=lab.headers).status_code == 201
    for name, kind, endpoint in policies:
        r = client.post(
            f"{API}/campaigns/{cid}/evaluation/policies",
            json={"name": name, "kind": kind, "endpoint": endpoint},
            headers=lab.headers,
        )
        assert r.status_code == 201, r.text
    return cid


def _claim(db, cid: int, worker) -> int:
    with db.transaction() as s:
        return evaluations.claim(s, s.get_one(User, worker.id), cid, rng=random.Random(0)).id


def _run(db, worker, battle_id: int, slot: str, instruction: str = ASK, **bounds) -> dict:
    with db.transaction() as s:
        plan = serving.plan_run(s, s.get_one(User, worker.id), battle_id, slot, instruction)
    rollout = serving.play(plan, **({"steps": 40, "seconds": 30.0} | bounds))
    with db.transaction() as s:
        serving.record_run(s, s.get_one(User, worker.id), battle_id, slot, plan.instruction, rollout)
    return rollout


def test_both_slots_play_the_real_endpoints_blind_with_one_instruction(client, db, lab):
    with served(Fetcher(), Idler()) as (fetcher, idler):
        cid = _evaluation(client, db, lab, [("fetcher-v2", "http", fetcher), ("idler-v1", "http", idler)])
        worker = make_user(db, "worker")
        bid = _claim(db, cid, worker)
        with pytest.raises(Conflict) as exc:
            _run(db, worker, bid, "b")
        assert exc.value.code == "battle.slot_order"
        a = _run(db, worker, bid, "a", steps=12)
        # the second run keeps the first instruction whatever is typed
        b = _run(db, worker, bid, "b", "something else entirely", steps=12)
        with pytest.raises(Conflict) as exc:
            _run(db, worker, bid, "a")
        assert exc.value.code == "battle.slot_done"
    with db.transaction() as s:
        battle = s.get_one(Battle, bid)
        first = "a" if s.get_one(EvalPolicy, battle.policy_a_id).name == "fetcher-v2" else "b"
        kept = battle.rollouts
    assert kept is not None and kept["instruction"] == ASK and kept["a"] == a and kept["b"] == b
    fetched, idled = (a, b) if first == "a" else (b, a)
    # the fetcher went where the milk was and picked it up; the idler waited, each for 12 steps
    assert [r["action"] for r in fetched["steps"][:2]] == ["navigate bag", "pick milk"]
    assert fetched["outcome"]["holding"] == "milk" and fetched["outcome"]["failed"] == 0
    assert {r["action"] for r in idled["steps"]} == {"wait"} and idled["outcome"]["holding"] is None
    assert fetched["outcome"]["steps"] == idled["outcome"]["steps"] == 12
    assert fetched["outcome"]["stopped"] == "step_cap" and fetched["outcome"]["sim_seconds"] == 60
    # blind: neither the lab's names nor the endpoints nor the served names are kept for the page
    text = str(kept)
    for leak in ("fetcher", "idler", "127.0.0.1"):
        assert leak not in text


def test_a_battle_played_here_is_judged_after_both_runs_on_their_instruction(client, db, lab):
    """The verdict API checks what the page shows: with runs recorded, both robots must have run,
    and the verdict keeps the instruction they heard (not another one typed with it)."""
    with served(Fetcher(), Idler()) as (fetcher, idler):
        cid = _evaluation(client, db, lab, [("fetcher-v2", "http", fetcher), ("idler-v1", "http", idler)])
        worker = make_user(db, "worker")
        bid = _claim(db, cid, worker)
        _run(db, worker, bid, "a", steps=4)
        verdict = {"verdict": "a", "reason": "A fetched the milk", "instruction": "Sing a song"}
        r = client.post(f"{API}/battles/{bid}/verdict", json=verdict, headers=worker.headers)
        assert assert_problem(r, 409, "battle.slot_missing")["slot"] == "b"
        _run(db, worker, bid, "b", steps=4)
        r = client.post(f"{API}/battles/{bid}/verdict", json=verdict, headers=worker.headers)
        assert r.status_code == 200, r.text
    with db.transaction() as s:
        battle = s.get_one(Battle, bid)
        assert (battle.verdict, battle.instruction) == ("a", ASK)


def test_a_slow_endpoint_is_stopped_and_a_dead_one_is_said_plainly(client, db, lab):
    with served(Slow(), Idler()) as (slow, idler):
        cid = _evaluation(client, db, lab, [("slow", "http", slow), ("dead", "http", "http://127.0.0.1:9")])
        worker = make_user(db, "worker")
        bid = _claim(db, cid, worker)
        with db.transaction() as s:
            battle = s.get_one(Battle, bid)
            slow_slot = "a" if s.get_one(EvalPolicy, battle.policy_a_id).name == "slow" else "b"
        with db.transaction() as s:
            plans = {slot: serving.plan_run(s, s.get_one(User, worker.id), bid, slot, ASK) for slot in ("a",)}
        plan_slow = serving.Plan(bid, slow_slot, "http", slow, ASK, seed=bid)
        out = serving.play(plan_slow, steps=40, seconds=1.0)
        assert out["outcome"]["stopped"] == "time_limit" and 1 <= out["outcome"]["steps"] < 10
        dead = serving.Plan(bid, "b" if slow_slot == "a" else "a", "http", "http://127.0.0.1:9", ASK, seed=bid)
        with pytest.raises(serving.RobotUnreachable) as exc:
            serving.play(dead, steps=5, seconds=2.0)
        assert exc.value.code == "battle.robot_unreachable" and exc.value.status == 502
        assert "127.0.0.1" not in str(exc.value) and "did not answer" in str(exc.value)
        assert plans["a"].instruction == ASK
    # a battle whose robot is down can still be given back
    with db.transaction() as s:
        assert evaluations.release(s, s.get_one(User, worker.id), bid).status.value == "released"


def test_an_instruction_is_required(client, db, lab):
    with served(Idler(), Idler()) as (one, two):
        cid = _evaluation(client, db, lab, [("one", "http", one), ("two", "http", two)])
        worker = make_user(db, "worker")
        bid = _claim(db, cid, worker)
        with db.transaction() as s, pytest.raises(InvalidInput) as exc:
            serving.plan_run(s, s.get_one(User, worker.id), bid, "a", "   ")
        assert exc.value.code == "battle.no_instruction"


def test_a_physical_robot_is_loaded_by_the_lab_operator_through_the_battles_code(client, db, lab):
    with served(Idler()) as (idler,):
        cid = _evaluation(client, db, lab, [("arm-v3", "physical", None), ("sim", "http", idler)])
        worker = make_user(db, "worker")
        bid = _claim(db, cid, worker)
        with db.transaction() as s:
            battle = s.get_one(Battle, bid)
            code, kinds = battle.operator_code, serving.slot_kinds(s, battle)
            arm = "a" if s.get_one(EvalPolicy, battle.policy_a_id).name == "arm-v3" else "b"
        assert code and len(code) == 6 and kinds[arm] == "physical" and set(kinds.values()) == {"physical", "sim"}
        # the lab's operator reads the slot's policy; the evaluator (or anyone else) cannot
        with db.transaction() as s:
            b, slot, policy = serving.resolve_code(s, s.get_one(User, lab.id), cid, f" {code.lower()}-{arm} ")
            assert (b.id, slot, policy.name) == (bid, arm, "arm-v3")
            with pytest.raises(NotFound) as exc:
                serving.resolve_code(s, s.get_one(User, lab.id), cid, "ZZZZZZ-A")
            assert exc.value.code == "battle.unknown_code"
            with pytest.raises((Forbidden, NotFound)):
                serving.resolve_code(s, s.get_one(User, worker.id), cid, f"{code}-{arm.upper()}")
        if arm == "b":
            _run(db, worker, bid, "a")
        with db.transaction() as s:
            serving.mark_physical(s, s.get_one(User, worker.id), bid, arm, ASK)
            with pytest.raises(Conflict) as exc:
                serving.mark_physical(s, s.get_one(User, worker.id), bid, "b" if arm == "a" else "a", ASK)
            assert exc.value.code == ("battle.simulated_slot" if arm == "a" else "battle.slot_done")
        with db.transaction() as s:
            assert s.get_one(Battle, bid).rollouts[arm] == {"kind": "physical"}


def test_an_evaluation_only_campaign_has_no_recording_slots(client, db, lab):
    """``target_clips`` 0: the campaign only evaluates robots; a recording claim says so."""
    cid = open_campaign(client, lab, db=db, target_clips=0)["id"]
    body = {"tasks": [{"task": "fetch"}]}
    assert client.post(f"{API}/campaigns/{cid}/evaluation", json=body, headers=lab.headers).status_code == 201
    for name in ("one", "two"):
        client.post(
            f"{API}/campaigns/{cid}/evaluation/policies",
            json={"name": name, "kind": "physical"},
            headers=lab.headers,
        )
    worker = make_user(db, "worker")
    sign(client, worker)
    assert_problem(claim(client, worker, cid), 409, "campaign.evaluation_only")
    r = client.post(f"{API}/campaigns/{cid}/battles", headers=worker.headers)
    assert r.status_code == 201, r.text
    # and the campaign page offers battles, not slots
    page = client.get(f"/campaigns/{cid}", headers=worker.headers).text
    assert 'id="battle-open-' in page and 'id="claim"' not in page and "left</dd>" not in page
    # and the worker's work page lists the battle held
    work = client.get("/assignments", headers=worker.headers).text
    assert f'href="/battles/{r.json()["id"]}"' in work and "Nothing here yet" not in work


def test_recent_results_are_reused_per_input_and_each_caller_gets_a_copy():
    """The lab's page polls the ranking: the same battles are not bootstrapped again, a new verdict
    (another key) is, and a caller changing its copy changes nobody else's."""
    calls = []

    def compute(n):
        calls.append(n)
        return {"ranking": [n]}

    recent = evaluations.Recent(size=2)
    first = recent.get("k1", lambda: compute(1))
    first["ranking"].append("mine")
    assert recent.get("k1", lambda: compute(99)) == {"ranking": [1]} and calls == [1]
    recent.get("k2", lambda: compute(2))
    recent.get("k3", lambda: compute(3))  # k1 is the oldest of three: dropped
    assert recent.get("k1", lambda: compute(4)) == {"ranking": [4]} and calls == [1, 2, 3, 4]

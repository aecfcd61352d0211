"""Robot battles in a real Chromium (issue #19): a worker on a 360 px phone claims a battle from the
campaign page, types one instruction, runs robot A and robot B (played in the simulator against
real HTTP policy servers), reads what each did without learning which is which, and sends a
verdict; a physical robot's slot shows the operator code the lab resolves, and a robot whose
endpoint is down is said plainly and the battle given back; the lab's campaign page shows the live
ranking, refreshes it without a reload, and manages policies and gold pairs."""

from __future__ import annotations

import random
import re

import pytest

from egocrowd import evaluations
from egocrowd.db.models import Battle, User
from egocrowd.web.pages import battles as battle_pages
from tests.evaluations.robots import Fetcher, Idler, served
from tests.platform.helpers import API
from tests.support.browser import SMALL_PHONE, log_in, look, sqlite_db_url, until

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the pages are the same on both backends


def _evaluation(world, policies, **settings) -> int:
    cid = world.open_campaign(title="Robot fetch")["id"]
    body = {
        "tasks": [{"task": "fetch", "prompt": "Ask it to bring you something from the hallway"}],
        "environments": ["kitchen", "hallway"],
        "pay_cents": 40,
        **settings,
    }
    r = world.client.post(f"{API}/campaigns/{cid}/evaluation", json=body, headers=world.lab.headers)
    assert r.status_code == 201, r.text
    for name, kind, endpoint in policies:
        r = world.client.post(
            f"{API}/campaigns/{cid}/evaluation/policies",
            json={"name": name, "kind": kind, "endpoint": endpoint},
            headers=world.lab.headers,
        )
        assert r.status_code == 201, r.text
    return cid


def test_a_worker_runs_both_robots_blind_and_sends_a_verdict_on_a_phone(live, world, db, chromium):
    with served(Fetcher(), Idler()) as (fetcher, idler):
        cid = _evaluation(world, [("fetcher-v2", "http", fetcher), ("idler-v1", "http", idler)])
        page = log_in(chromium(), live.base, world.worker.email, SMALL_PHONE)
        page.goto(f"/campaigns/{cid}")
        look(page, "battle-campaign")
        with page.expect_navigation():
            page.click("#battle-claim")
        assert re.search(r"/battles/\d+", page.url)
        assert "Ask it to bring you something" in page.locator("#battle-prompt").inner_text()
        assert re.search(r"\d+ min \d+ s left", page.locator("#lease").inner_text())  # counting down
        assert page.locator("#run-b").count() == 0  # A first
        look(page, "battle-start")
        page.fill("#instruction", "Please bring me the milk")
        with page.expect_navigation():
            page.click("#run-a")
        assert page.locator("#slot-a").get_attribute("data-ran") == "1"
        with page.expect_navigation():
            page.click("#run-b")
        assert page.locator("#slot-b").get_attribute("data-ran") == "1"
        steps = {s: page.locator(f"#slot-{s} .rollout li").all_text_contents() for s in ("a", "b")}
        assert all(len(v) == 40 for v in steps.values())  # the step cap
        assert any("pick milk" in t for v in steps.values() for t in v), steps
        content = page.content()
        for leak in ("fetcher", "idler", fetcher.split("//")[1]):
            assert leak not in content  # blind
        look(page, "battle-both-ran")
        battle_id = int(page.url.split("/battles/")[1].split("?")[0].split("#")[0])
        fetcher_slot = "a" if "pick milk" in " ".join(steps["a"]) else "b"
        # a verdict needs its reason (the browser says so before sending)
        page.check(f"input[name=verdict][value={fetcher_slot}]")
        page.click("#send-verdict")
        assert page.evaluate("document.querySelector('#reason').validity.valueMissing")
        page.fill("#reason", "It went to the bag and picked up the milk; the other one never moved.")
        page.select_option("#environment", "hallway")
        with page.expect_navigation():
            page.click("#send-verdict")
        assert page.locator(".flash").count() == 1
        assert page.locator("#verdict").inner_text().startswith("You said: " + fetcher_slot.upper())
        look(page, "battle-judged")
    with db.transaction() as s:
        battle = s.get_one(Battle, battle_id)
        assert battle.status.value == "judged" and battle.verdict == fetcher_slot
        assert battle.instruction == "Please bring me the milk" and battle.environment == "hallway"


def test_a_physical_robot_shows_the_operator_code_and_a_dead_endpoint_is_said_plainly(live, world, db, chromium):
    cid = _evaluation(world, [("arm-v3", "physical", None), ("gone", "http", "http://127.0.0.1:9")])
    page = log_in(chromium(), live.base, world.worker.email, SMALL_PHONE)
    page.goto(f"/campaigns/{cid}")
    with page.expect_navigation():
        page.click("#battle-claim")
    # the coin put the physical robot on side A (set here, so the walk is the same every run)
    battle_id = int(page.url.split("/battles/")[1].split("?")[0])
    with db.transaction() as s:
        battle = s.get_one(Battle, battle_id)
        names = {
            p.name: p.id
            for p in evaluations.policies(s, evaluations.of_campaign(s, s.get_one(User, world.lab.id), cid))
        }
        battle.policy_a_id, battle.policy_b_id = names["arm-v3"], names["gone"]
    page.reload()
    assert [page.locator(f"#slot-{s}").get_attribute("data-kind") for s in ("a", "b")] == ["physical", "sim"]
    page.fill("#instruction", "Bring me the keys")
    code = page.locator("#code-a").inner_text()
    assert re.fullmatch(r"[A-Z2-9]{6}-A", code)
    look(page, "battle-operator-code")
    with page.expect_navigation():
        page.click("#run-a")
    assert page.locator("#slot-a").get_attribute("data-ran") == "1"
    assert page.locator("#battle-instruction").inner_text() == "“Bring me the keys”"
    with page.expect_navigation():
        page.click("#run-b")
    alert = page.locator(".error[role=alert]")
    assert alert.get_attribute("data-code") == "battle.robot_unreachable"
    assert "did not answer" in alert.inner_text() and "127.0.0.1" not in page.content()
    look(page, "battle-robot-down")
    with page.expect_navigation():
        page.click("#release")
    assert f"/campaigns/{cid}" in page.url and page.locator(".flash").inner_text() == "Battle given back."
    # the lab's operator resolves the code the evaluator read out
    lab = log_in(chromium(), live.base, world.lab.email, SMALL_PHONE)
    lab.goto(f"/campaigns/{cid}/evaluation/operator?code={code.lower()}")
    assert "arm-v3" in lab.locator(".code").inner_text()
    look(lab, "battle-operator")
    lab.goto(f"/campaigns/{cid}/evaluation/operator?code=ZZZZZZ-A")
    assert lab.locator(".error").get_attribute("data-code") == "battle.unknown_code"


def _judge(db, cid: int, workers, better: dict[str, float], n: int, seed: int) -> None:
    """``n`` verdicts where the policy with the higher score wins."""
    rng = random.Random(seed)
    for i in range(n):
        with db.transaction() as s:
            user = s.get_one(User, workers[i % len(workers)].id)
            b = evaluations.claim(s, user, cid, rng=rng)
            names = {p.id: p.name for p in evaluations.policies(s, evaluations.of_campaign(s, user, cid))}
            a, bb = better[names[b.policy_a_id]], better[names[b.policy_b_id]]
            verdict = "a" if a > bb else "b"
            evaluations.judge(
                s,
                user,
                b.id,
                evaluations.VerdictIn(
                    verdict=verdict,
                    reason="one did it",
                    instruction="fetch",
                    person=["mum", "kid"][i % 2],
                    environment="kitchen",
                ),
            )


def test_the_lab_reads_the_live_ranking_and_manages_policies_and_gold(live, world, db, chromium, monkeypatch):
    monkeypatch.setattr(battle_pages, "POLL_SECONDS", 1)
    cid = _evaluation(
        world,
        [("alpha", "http", "http://robots.test/a"), ("beta", "http", "http://robots.test/b")],
        max_open=5,
        gold_rate=0.0,
    )
    workers = [world.signed_worker() for _ in range(3)]
    _judge(db, cid, workers, {"alpha": 2, "beta": 1}, n=6, seed=1)
    page = log_in(chromium(), live.base, world.lab.email, SMALL_PHONE)
    page.goto(f"/campaigns/{cid}")
    assert page.locator("#eval-ranking tbody tr").count() == 2
    assert page.locator("#eval-ranking tbody tr").first.inner_text().split()[1] == "alpha"
    assert page.locator(".eval-chart svg").count() == 1
    assert page.locator("#eval-adjacent li").count() == 1
    assert page.locator("#eval-by-person tr").count() == 2
    assert "6 verdicts" in page.locator("#eval-state").inner_text()
    look(page, "battle-lab-ranking")
    # more verdicts arrive: the page shows them without a reload
    _judge(db, cid, workers, {"alpha": 2, "beta": 1}, n=4, seed=2)
    until(page, "document.querySelector('#eval-state').textContent.includes('10 verdicts')")
    # a third policy, and a gold pair, from the page's forms
    page.click("#eval-policies summary")
    page.fill("#policy-name", "gamma")
    page.select_option("#policy-kind", "physical")
    with page.expect_navigation():
        page.click("#policy-add")
    assert page.locator(".flash").inner_text() == "Policy added."
    page.click("#eval-policies summary")
    page.fill("#policy-name", "delta")
    page.fill("#policy-endpoint", "ftp://nope")
    with page.expect_navigation():
        page.click("#policy-add")
    assert page.locator(".error[role=alert]").count() == 1  # refused, said on the page
    page.click("#eval-policies summary")
    page.select_option("#gold-better", label="alpha")
    page.select_option("#gold-worse", label="gamma")
    with page.expect_navigation():
        page.click("#gold-save")
    assert page.locator(".flash").inner_text() == "Gold pairs saved."
    with db.transaction() as s:
        ev = evaluations.of_campaign(s, s.get_one(User, world.lab.id), cid, manage=True)
        names = {p.id: p.name for p in evaluations.policies(s, ev)}
        assert [(names[g["better"]], names[g["worse"]]) for g in ev.gold] == [("alpha", "gamma")]

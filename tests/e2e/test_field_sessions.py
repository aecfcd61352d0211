"""A long session logged on a phone in a real Chromium (#19): the worker starts a session, loses the
network, taps instructions, subtasks, a misunderstanding, a recovery and an intervention, reloads the
page without network (the service worker keeps it, localStorage what was tapped), ends the session,
sees it waiting, and when the network comes back the log uploads with tus and the server accepts it
through the bench readers. The lab's campaign page shows the scores."""

from __future__ import annotations

import pytest

from tests.platform.helpers import API
from tests.support.browser import SMALL_PHONE, log_in, look, sqlite_db_url, until

pytestmark = pytest.mark.browser
db_url = sqlite_db_url  # SQLite only: the rooms' own tests run both backends


def _evaluation(client, world) -> int:
    cid = world.open_campaign(title="Robots at home")["id"]
    lab = world.lab
    body = {"tasks": [{"task": "clear the table"}, {"task": "load the dishwasher"}], "environments": ["kitchen"]}
    assert client.post(f"{API}/campaigns/{cid}/evaluation", json=body, headers=lab.headers).status_code == 201
    for name in ("tidybot", "helper-2"):
        r = client.post(
            f"{API}/campaigns/{cid}/evaluation/policies", json={"name": name, "kind": "physical"}, headers=lab.headers
        )
        assert r.status_code == 201, r.text
    return cid


def _tap(page, act: str) -> None:
    page.click(f"#fs-live [data-act={act}]")


def test_a_session_logged_offline_survives_a_reload_and_uploads_when_online(live, client, world, chromium):
    cid = _evaluation(client, world)
    page = log_in(chromium(), live.base, world.worker.email, SMALL_PHONE)
    page.goto(f"/campaigns/{cid}")
    with page.expect_navigation():
        page.click("#log-session")
    # the service worker has kept the page before the network goes
    until(page, "navigator.serviceWorker.controller !== null")
    page.wait_for_timeout(300)
    look(page, "field-session-setup")
    page.select_option("#fs-robot", "tidybot")
    page.click("#fs-start")
    page.context.set_offline(True)
    page.click("#fs-speakers button:nth-child(2)")  # P2 speaks
    page.select_option("#fs-task", "clear the table")
    _tap(page, "instruction")
    _tap(page, "success")
    page.fill("#fs-text", "now the cups please")
    _tap(page, "instruction")
    _tap(page, "misinterpretation")
    _tap(page, "recovery")
    _tap(page, "intervention")
    look(page, "field-session-live")
    page.reload()  # no network: the service worker answers, localStorage keeps every tap
    assert page.get_attribute("#field-session", "data-events") == "8"
    assert not page.is_hidden("#fs-live")
    _tap(page, "intervention")  # the robot is back in control
    _tap(page, "failure")
    page.click("#fs-end")
    until(page, "document.getElementById('field-session').dataset.waiting === '1'")
    assert "1 session waiting to upload" in page.inner_text("#fs-queue")
    page.reload()
    assert "1 session waiting to upload" in page.inner_text("#fs-queue")
    look(page, "field-session-waiting")
    page.context.set_offline(False)
    page.evaluate("() => window.dispatchEvent(new Event('online'))")  # as a phone does when it finds a network
    until(page, "document.getElementById('field-session').dataset.waiting === '0'", timeout=30)
    [row] = client.get(f"{API}/campaigns/{cid}/sessions", headers=world.lab.headers).json()
    assert row["status"] == "accepted" and row["people"] == ["P1", "P2"], row
    # 2 instructions, their 2 starts and 2 ends, a misunderstanding, its recovery, an intervention, the end
    assert row["events"] == 10
    lab = log_in(chromium(), live.base, world.lab.email, SMALL_PHONE)
    lab.goto(f"/campaigns/{cid}")
    text = lab.inner_text("#field-sessions")
    assert "1 session scored" in text and "Interventions" in text
    assert lab.locator("#field-sessions dl[data-policy=tidybot]").count() == 1
    look(lab, "field-session-campaign")


def test_a_refused_log_is_kept_on_the_phone_with_its_line(live, client, world, chromium):
    cid = _evaluation(client, world)
    page = log_in(chromium(), live.base, world.worker.email, SMALL_PHONE)
    page.goto(f"/campaigns/{cid}/session/")
    # a log from another evaluation's robot (an old page): the server refuses it, naming the line
    page.select_option("#fs-robot", "tidybot")
    page.evaluate("() => { document.querySelector('#fs-robot option').value = 'gone-robot'; }")
    page.click("#fs-start")
    page.click("#fs-end")
    until(page, "document.querySelector('#fs-refused li') !== null", timeout=30)
    assert "session.jsonl:1:" in page.inner_text("#fs-refused")
    look(page, "field-session-refused")


def test_turning_the_phone_clock_back_mid_session_keeps_the_order(live, client, world, chromium):
    import json

    cid = _evaluation(client, world)
    page = log_in(chromium(), live.base, world.worker.email, SMALL_PHONE)
    page.clock.install()
    page.goto(f"/campaigns/{cid}/session/")
    page.context.set_offline(True)  # keep the log on the phone to read it
    page.click("#fs-start")
    page.select_option("#fs-task", "clear the table")
    page.clock.run_for(5_000)
    _tap(page, "instruction")
    page.clock.set_system_time(page.evaluate("Date.now()") - 3_600_000)  # the clock goes back an hour
    page.clock.run_for(2_000)
    _tap(page, "success")
    page.click("#fs-end")
    stored = page.evaluate(f"() => JSON.parse(localStorage.getItem('egocrowd.field-session.v1.{cid}'))")
    lines = [json.loads(x) for x in stored["queue"][0]["log"].splitlines()]
    ts = [x["t"] for x in lines[1:]]
    assert ts == sorted(ts) and 6.5 <= ts[-1] <= 9, ts  # seconds of the monotonic clock, not the wall's
    assert lines[2]["wall"] > lines[-1]["wall"]  # the wall clock itself did go back

"""A campaign's robot evaluation on the lab's campaign form (issue #19): the section's fields come
from EvaluationIn, ticking it makes the evaluation, a mistake sits next to its field with the input
kept, editing changes it (also while the campaign is live), and 0 clips wanted makes a campaign
that only evaluates robots."""

from __future__ import annotations

import pytest

from egocrowd import evaluations
from egocrowd.db.models import User
from tests.platform.helpers import fund, make_user, publish_consent
from tests.platform.test_access import page_login
from tests.platform.test_campaigns import _form

EVAL = {
    "eval_on": "on",
    "eval_tasks": "clear the table | Ask it to clear the table\nfetch",
    "eval_environments": "kitchen, garage",
    "eval_pay": "0.35",
    "eval_gold_rate": "0.2",
    "eval_lease_minutes": "20",
    "eval_max_open": "2",
    "eval_alpha": "0.01",
}


@pytest.fixture
def lab(db):
    publish_consent(db)
    return make_user(db, "requester", org="Lab E")


def test_the_campaign_form_makes_and_changes_the_evaluation(client, db, lab):
    token = page_login(client, lab)
    page = client.get("/campaigns/new").text
    assert 'id="sec-evaluation"' in page and 'name="eval_pay"' in page and 'value="0.1"' in page  # the default rate
    bad = client.post("/campaigns/new", data={**_form(), **EVAL, "eval_gold_rate": "0.9", "csrf_token": token})
    assert bad.status_code == 422 and 'id="eval_gold_rate-error"' in bad.text
    assert "clear the table | Ask it to clear the table" in bad.text  # what was typed is kept
    r = client.post(
        "/campaigns/new", data={**_form(target_clips="0"), **EVAL, "csrf_token": token}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    cid = int(r.headers["location"].split("/")[2].split("?")[0])
    with db.transaction() as s:
        ev = evaluations.of_campaign(s, s.get_one(User, lab.id), cid, manage=True)
        assert ev.tasks == [
            {"task": "clear the table", "prompt": "Ask it to clear the table"},
            {"task": "fetch", "prompt": ""},
        ]
        assert (ev.environments, ev.pay_cents, ev.gold_rate, ev.lease_minutes, ev.max_open, ev.alpha) == (
            ["kitchen", "garage"], 35, 0.2, 20, 2, 0.01,
        )  # fmt: skip
    # live, the evaluation's settings still change from the same form
    fund(db, cid)
    assert (
        client.post(f"/api/v1/campaigns/{cid}/status", json={"status": "open"}, headers=lab.headers).status_code == 200
    )
    form = client.get(f"/campaigns/{cid}/edit").text
    assert 'name="eval_on" checked' in form or 'id="eval_on" name="eval_on" checked' in form
    r = client.post(
        f"/campaigns/{cid}/edit",
        data={**_form(target_clips="0"), **EVAL, "eval_pay": "0.50", "csrf_token": token},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with db.transaction() as s:
        assert evaluations.of_campaign(s, s.get_one(User, lab.id), cid, manage=True).pay_cents == 50

"""Training (#15): from practice to an unlocked campaign over HTTP, the claim refusals, levels,
the attempts window, and the pages (docs/training.md)."""

from __future__ import annotations

import os
import re
import tempfile

from egocrowd.campaigns import levels as rule
from egocrowd.db.models import Assignment, AssignmentStatus, Campaign, Qualification, TrainingAttempt
from egocrowd.training.service import score_spans
from tests.labels.annotating import accepted_clip, annotation_campaign, span
from tests.platform.helpers import API, assert_problem, make_user

GOLD = [span(0, 1000), span(1000, 2500, "close", "lid")]


def _qualification(world, app, client, tmp_path, *, slug="annotate", **over):
    """A lab's qualification with one practice and two test items on its own gold clips."""
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world)
    clips = [accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id, derived=True) for _ in range(3)]
    for c in clips:
        r = client.put(f"{API}/clips/{c}/gold", json={"spans": GOLD}, headers=staff.headers)
        assert r.status_code == 200, r.text
    body = {
        "slug": slug,
        "title": "Label kitchen actions",
        "kind": "annotate",
        "pass_mark": 75,
        "test_items": 2,
        "max_attempts": 2,
        "cooldown_hours": 24,
        "items": [
            {"kind": "annotate", "use": "practice", "clip_id": clips[0]},
            {"kind": "annotate", "use": "test", "clip_id": clips[1]},
            {"kind": "annotate", "use": "test", "clip_id": clips[2]},
        ],
        **over,
    }
    assert_problem(
        client.post(f"{API}/training/qualifications", json=body, headers=world.worker.headers), 403, "auth.forbidden"
    )
    r = client.post(f"{API}/training/qualifications", json=body, headers=world.lab.headers)
    assert r.status_code == 201, r.text
    assert_problem(
        client.post(f"{API}/training/qualifications", json=body, headers=world.lab.headers), 409, "training.slug_taken"
    )
    return r.json()


def test_score_spans_is_right_over_all_compared():
    assert score_spans(GOLD, GOLD)["score"] == 1.0
    assert score_spans([span(0, 1000)], GOLD)["score"] == 0.5  # one right, one missed
    assert score_spans([span(0, 1000, "close", "lid")], GOLD)["score"] == 0.0
    assert score_spans([], [])["score"] == 1.0
    assert score_spans([span(0, 1000)], [])["score"] == 0.0  # marked where nothing happens


def test_level_rule():
    assert rule.level_for(0, None) == 1
    assert rule.level_for(5, 0.6) == 2
    assert rule.level_for(200, 0.7) == 2  # much work, not good enough for 3
    assert rule.level_for(19, 0.99) == 2
    assert rule.level_for(150, 0.92) == 5
    assert rule.next_threshold(5) is None and rule.next_threshold(1).done == 5


def test_practice_then_test_unlocks_the_campaign(world, app, client, tmp_path):
    q = _qualification(world, app, client, tmp_path, slug="kitchen-labels")
    w = world.worker
    # a campaign that asks for it (and a level nobody has yet, on another)
    gated = world.open_campaign(title="Better paid")["id"]
    with world.db.transaction() as s:
        s.get_one(Campaign, gated).required_qualification = q["slug"]
    r = client.post(f"{API}/campaigns/{gated}/claim", headers=w.headers)
    problem = assert_problem(r, 403, "training.qualification_required")
    assert problem["qualification"] == "kitchen-labels" and problem["practise"] == "/training/q/kitchen-labels"

    detail = client.get(f"{API}/training/qualifications/{q['slug']}", headers=w.headers).json()
    assert detail["tests_left"] == 2 and not detail["held"]
    item = detail["practice"][0]["id"]
    r = client.post(f"{API}/training/items/{item}/practice", json={"spans": [span(0, 1000)]}, headers=w.headers)
    assert r.status_code == 201, r.text
    got = r.json()["result"]["items"][0]
    assert got["score"] == 0.5 and got["right"] == GOLD and r.json()["score"] == 50.0
    # the practice clip is shown; a test clip is not, before the test
    assert client.get(f"/training/items/{item}/video", headers=w.headers).status_code == 200

    t = client.post(f"{API}/training/qualifications/{q['slug']}/tests", headers=w.headers).json()
    assert len(t["questions"]) == 2 and t["finished_at"] is None
    # starting again gives the same open test, not a new draw
    assert client.post(f"{API}/training/qualifications/{q['slug']}/tests", headers=w.headers).json()["id"] == t["id"]
    half = [{"item_id": i, "spans": [span(0, 1000)]} for i in t["items"]]
    r = client.post(f"{API}/training/tests/{t['id']}", json={"answers": half}, headers=w.headers)
    assert r.json()["score"] == 50.0 and r.json()["passed"] is False
    assert_problem(
        client.post(f"{API}/training/tests/{t['id']}", json={"answers": half}, headers=w.headers),
        409,
        "training.attempt_finished",
    )
    assert_problem(
        client.post(f"{API}/campaigns/{gated}/claim", headers=w.headers), 403, "training.qualification_required"
    )

    t2 = client.post(f"{API}/training/qualifications/{q['slug']}/tests", headers=w.headers).json()
    right = [{"item_id": i, "spans": GOLD} for i in t2["items"]]
    r = client.post(f"{API}/training/tests/{t2['id']}", json={"answers": right}, headers=w.headers)
    assert r.json()["passed"] is True and r.json()["score"] == 100.0
    with world.db.transaction() as s:
        grant = s.query(Qualification).filter_by(user_id=w.id, skill="kitchen-labels").one()
        assert grant.granted_by is None  # earned
    me = client.get(f"{API}/training/me", headers=w.headers).json()
    assert {"skill": "kitchen-labels", "earned": True}.items() <= me["qualifications"][0].items()
    assert [lv["kind"] for lv in me["levels"]] == ["record", "annotate", "review"]
    r = client.post(f"{API}/campaigns/{gated}/claim", headers=w.headers)
    assert r.status_code == 201, r.text
    assert_problem(
        client.post(f"{API}/training/qualifications/{q['slug']}/tests", headers=w.headers),
        409,
        "training.already_qualified",
    )


def test_attempts_are_limited_in_the_window(world, app, client, tmp_path):
    q = _qualification(world, app, client, tmp_path, slug="two-tries")
    w = world.worker
    for _ in range(2):
        t = client.post(f"{API}/training/qualifications/{q['slug']}/tests", headers=w.headers).json()
        client.post(f"{API}/training/tests/{t['id']}", json={"answers": []}, headers=w.headers)
    r = client.post(f"{API}/training/qualifications/{q['slug']}/tests", headers=w.headers)
    assert_problem(r, 429, "training.attempts_exhausted")
    assert client.get(f"{API}/training/qualifications/{q['slug']}", headers=w.headers).json()["tests_left"] == 0
    # the window moves on: a day later, tests open again
    with world.db.transaction() as s:
        for a in s.query(TrainingAttempt).filter_by(user_id=w.id):
            a.started_at = a.started_at.replace(year=a.started_at.year - 1)
    assert client.post(f"{API}/training/qualifications/{q['slug']}/tests", headers=w.headers).status_code == 201


def test_minimum_level_refuses_then_opens(world, client):
    w = world.worker
    cid = world.open_campaign(title="Level 2 only")["id"]
    with world.db.transaction() as s:
        s.get_one(Campaign, cid).min_level = 2
    problem = assert_problem(
        client.post(f"{API}/campaigns/{cid}/claim", headers=w.headers), 403, "training.level_required"
    )
    assert problem["level"] == 1 and problem["required"] == 2
    other = world.open_campaign(title="Anyone")["id"]
    with world.db.transaction() as s:  # five accepted clips: level 2 (the rule in campaigns.levels)
        for _ in range(5):
            s.add(
                Assignment(
                    campaign_id=other,
                    worker_id=w.id,
                    status=AssignmentStatus.accepted,
                    lease_expires_at=s.get_one(Campaign, other).created_at,
                )
            )
    me = client.get(f"{API}/training/me", headers=w.headers).json()
    assert me["levels"][0] == {**me["levels"][0], "kind": "record", "level": 2, "done": 5, "accuracy": 1.0}
    assert client.post(f"{API}/campaigns/{cid}/claim", headers=w.headers).status_code == 201


def test_pages_practice_and_test_without_script(world, app, client, tmp_path):
    from tests.platform.test_access import page_login

    _qualification(world, app, client, tmp_path, slug="page-labels")
    csrf = page_login(client, world.worker)
    home = client.get("/training")
    assert home.status_code == 200 and "/training/q/page-labels" in home.text and "Level 1 of 5" in home.text
    page = client.get("/training/q/page-labels")
    item = int(re.search(r'href="/training/practice/(\d+)"', page.text).group(1))
    form = client.get(f"/training/practice/{item}")
    assert 'name="start_s"' in form.text and f"/training/items/{item}/video" in form.text
    r = client.post(
        f"/training/practice/{item}",
        data={
            "csrf_token": csrf,
            "start_s": ["0", ""],
            "end_s": ["1", ""],
            "verb": ["open", "open"],
            "noun": ["jar", "jar"],
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    result = client.get(r.headers["location"]).text
    assert "You missed “close lid”." in result and "Right: “open jar”." in result
    # a span outside the clip: the page again, what was typed kept
    r = client.post(
        f"/training/practice/{item}",
        data={"csrf_token": csrf, "start_s": "0", "end_s": "9", "verb": "open", "noun": "jar"},
    )
    assert r.status_code == 422 and 'data-code="annotation.span_outside_clip"' in r.text and 'value="9"' in r.text
    r = client.post("/training/q/page-labels/test", data={"csrf_token": csrf}, follow_redirects=False)
    test = client.get(r.headers["location"])
    ids = re.findall(r'data-item="(\d+)"', test.text)
    data: dict = {"csrf_token": csrf}
    for i in ids:
        data |= {
            f"start_s_{i}": ["0", "1"],
            f"end_s_{i}": ["1", "2.5"],
            f"verb_{i}": ["open", "close"],
            f"noun_{i}": ["jar", "lid"],
        }
    r = client.post(r.headers["location"], data=data, follow_redirects=True)
    assert 'id="tr-score"' in r.text and "Passed: 100 points" in r.text
    assert client.get("/training/q/page-labels").text.count('id="tr-held"') == 1
    # the lab's authoring form
    assert client.get("/training/new").status_code == 403


def test_campaign_requirements_through_the_api_and_the_page(world, app, client, tmp_path):
    from tests.platform.test_access import page_login

    _qualification(world, app, client, tmp_path, slug="kitchen-rec")
    from tests.platform.helpers import campaign_body

    bad = client.post(
        f"{API}/campaigns", json=campaign_body(required_qualification="no-such"), headers=world.lab.headers
    )
    assert_problem(bad, 422, "campaign.unknown_qualification")
    assert_problem(
        client.post(f"{API}/campaigns", json=campaign_body(min_level=6), headers=world.lab.headers),
        422,
        "validation.failed",
    )
    c = world.open_campaign(required_qualification="kitchen-rec", min_level=2)
    assert c["required_qualification"] == "kitchen-rec" and c["min_level"] == 2
    page_login(client, world.worker)
    page = client.get(f"/campaigns/{c['id']}")
    assert 'id="training-needs" data-ok="0"' in page.text
    assert 'href="/training/q/kitchen-rec"' in page.text and "(yours: 1)" in page.text


def test_recording_practice_explains_each_check_on_the_workers_own_file(world, client, qc_media, tmp_path):
    from tests.platform.test_access import page_login

    body = {
        "slug": "record-kitchen",
        "title": "Record a kitchen",
        "kind": "record",
        "items": [{"kind": "record", "use": "practice", "prompt": "Open a jar."}, {"kind": "record", "use": "test"}],
    }
    assert client.post(f"{API}/training/qualifications", json=body, headers=world.lab.headers).status_code == 201
    csrf = page_login(client, world.worker)
    page = client.get("/training/q/record-kitchen").text
    item = int(re.search(r'href="/training/practice/(\d+)"', page).group(1))
    form = client.get(f"/training/practice/{item}").text
    assert 'type="file"' in form and 'enctype="multipart/form-data"' in form and "Open a jar." in form
    tmp_before = set(os.listdir(tempfile.gettempdir()))
    with open(qc_media["dark"], "rb") as f:
        r = client.post(
            f"/training/practice/{item}",
            data={"csrf_token": csrf},
            files={"recording": ("dark.mp4", f, "video/mp4")},
            follow_redirects=False,
        )
    assert r.status_code == 303, r.text
    result = client.get(r.headers["location"]).text
    assert "Your recording did not pass the checks." in result
    assert re.search(r'data-level="fail"><strong>[^<]*: failed</strong>', result)
    assert 'data-level="pass"' in result  # the checks it passed are explained too
    with world.db.transaction() as s:
        a = s.query(TrainingAttempt).one()
        assert a.score == 0.0 and a.result["items"][0]["status"] == "qc_failed"
        assert "too_dark" in [c["name"] for c in a.result["items"][0]["checks"] if c["status"] == "fail"]
    leftovers = {n for n in os.listdir(tempfile.gettempdir()) if n.startswith("egocrowd-practice-")}
    assert not (leftovers - tmp_before)  # the practice file is deleted once judged
    # a file that is not a video fails like a check, in plain words
    r = client.post(
        f"/training/practice/{item}",
        data={"csrf_token": csrf},
        files={"recording": ("notes.mp4", b"not a video at all", "video/mp4")},
        follow_redirects=False,
    )
    assert "We could not read this file as a video." in client.get(r.headers["location"]).text
    # no file: the form again, with the problem
    r = client.post(f"/training/practice/{item}", data={"csrf_token": csrf})
    assert r.status_code == 422 and 'data-code="training.recording_missing"' in r.text

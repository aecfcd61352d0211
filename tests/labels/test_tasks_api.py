"""The annotation API: problem documents on every refusal, no word of gold in a task, gold and
qualifications through HTTP."""

from __future__ import annotations

import re

from egocrowd.db.models import AnnotationTask
from tests.labels.annotating import accepted_clip, annotation_campaign, annotator, span
from tests.platform.helpers import API, assert_problem, make_user


def test_claim_get_submit_release_over_http(world, app, client, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, per_clip=2)
    clip = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    a = annotator(world.db, staff)
    assert_problem(
        client.post(f"{API}/annotation-tasks/claim", headers=make_user(world.db, "worker").headers),
        403,
        "annotation.not_qualified",
    )
    r = client.post(f"{API}/annotation-tasks/claim", json={"campaign_id": cid}, headers=a.headers)
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["clip_id"] == clip and task["duration_ms"] == 3000 and task["taxonomy"]["verbs"]
    assert "gold" not in r.text and "round" not in task
    assert client.get(f"{API}/annotation-tasks/{task['id']}", headers=a.headers).json()["status"] == "active"
    assert_problem(
        client.get(f"{API}/annotation-tasks/{task['id']}", headers=world.worker.headers), 404, "annotation.not_found"
    )
    # the annotator sees the clip's de-identified video
    assert client.get(f"{API}/clips/{clip}", headers=a.headers).status_code == 200
    url = f"{API}/annotation-tasks/{task['id']}/submit"
    assert_problem(
        client.post(url, json={"spans": [span(0, 4000)]}, headers=a.headers), 422, "annotation.span_outside_clip"
    )
    assert_problem(
        client.post(url, json={"spans": [span(0, 400, "jump")]}, headers=a.headers), 422, "annotation.unknown_label"
    )
    assert_problem(client.post(url, json={"spans": []}, headers=a.headers), 422, "annotation.empty_answer")
    r = client.post(url, json={"spans": [span(0, 1000)]}, headers=a.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted" and r.json()["spans"] == [span(0, 1000)]
    assert_problem(
        client.post(url, json={"spans": [span(0, 1000)]}, headers=a.headers), 409, "annotation.already_submitted"
    )
    b = annotator(world.db, staff)
    t2 = client.post(f"{API}/annotation-tasks/claim", headers=b.headers).json()
    r = client.post(f"{API}/annotation-tasks/{t2['id']}/release", headers=b.headers)
    assert r.json()["status"] == "released"
    assert_problem(
        client.post(f"{API}/annotation-tasks/{t2['id']}/release", headers=b.headers), 409, "annotation.not_active"
    )
    assert [t["id"] for t in client.get(f"{API}/annotation-tasks", headers=b.headers).json()] == [t2["id"]]


def test_gold_and_qualifications_over_http(world, app, client, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, gold_rate=0.5)
    clip = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    w = make_user(world.db, "worker")
    r = client.post(f"{API}/qualifications", json={"user_id": w.id}, headers=staff.headers)
    assert r.status_code == 201, r.text
    q = r.json()
    assert_problem(
        client.post(f"{API}/qualifications", json={"user_id": w.id}, headers=w.headers), 403, "auth.forbidden"
    )
    assert_problem(
        client.post(f"{API}/qualifications", json={"user_id": staff.id}, headers=staff.headers),
        422,
        "qualification.not_a_worker",
    )
    assert [x["id"] for x in client.get(f"{API}/users/{w.id}/qualifications", headers=w.headers).json()] == [q["id"]]
    gold = {"spans": [span(0, 1000), span(1000, 2500, "close", "lid")]}
    assert_problem(client.put(f"{API}/clips/{clip}/gold", json=gold, headers=w.headers), 403, "auth.forbidden")
    r = client.put(f"{API}/clips/{clip}/gold", json=gold, headers=staff.headers)
    assert r.status_code == 200, r.text
    assert client.get(f"{API}/clips/{clip}/gold", headers=staff.headers).json()["spans"] == gold["spans"]
    r = client.post(f"{API}/qualifications/{q['id']}/revoke", headers=staff.headers)
    assert r.json()["revoked_at"]
    assert_problem(client.post(f"{API}/annotation-tasks/claim", headers=w.headers), 403, "annotation.not_qualified")


def test_a_gold_task_reads_like_any_other(world, app, client, tmp_path, db):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, gold_rate=0.5, per_clip=1)
    gold = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    for _ in range(30):
        accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    client.put(f"{API}/clips/{gold}/gold", json={"spans": [span(0, 1000)]}, headers=staff.headers)
    bodies = {}
    for _ in range(30):  # at gold_rate 0.5, a gold task comes within 30 claims but for 1 in 2**30
        a = annotator(world.db, staff)
        r = client.post(f"{API}/annotation-tasks/claim", headers=a.headers)
        assert r.status_code == 201, r.text
        bodies[r.json()["clip_id"]] = r.json()
        if gold in bodies:
            break
    assert gold in bodies and len(bodies) >= 1
    with db.transaction() as s:
        assert s.get_one(AnnotationTask, bodies[gold]["id"]).is_gold
    other = next(b for c, b in bodies.items() if c != gold) if len(bodies) > 1 else None
    if other is not None:
        assert set(bodies[gold]) == set(other)  # the same fields, none of them says "gold"
    assert "gold" not in str(bodies[gold])


def test_staff_page_grants_and_revokes(world, client, db):
    from tests.platform.test_access import page_login

    staff = make_user(db, "reviewer")
    w = make_user(db, "worker")
    csrf = page_login(client, staff)
    page = client.get("/annotate/annotators")
    assert page.status_code == 200 and "Let a worker annotate" in page.text
    r = client.post("/annotate/annotators", data={"csrf_token": csrf, "email": "nobody@example.org"})
    assert r.status_code == 404 and "user.not_found" in r.text
    r = client.post("/annotate/annotators", data={"csrf_token": csrf, "email": w.email.upper(), "campaign_id": "x1"})
    assert r.status_code == 422 and "qualification.bad_campaign" in r.text
    r = client.post("/annotate/annotators", data={"csrf_token": csrf, "email": w.email.upper()}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/annotate/annotators")
    assert w.email in page.text
    qid = re.search(r'data-qualification="(\d+)"', page.text).group(1)
    r = client.post(f"/annotate/annotators/{qid}/revoke", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert w.email not in client.get("/annotate/annotators").text


def test_span_fix_over_http_is_decided_once(world, app, client, db, tmp_path):
    from egocrowd.db.models import Clip, LabelStatus, ReviewKind
    from egocrowd.labels import review

    staff = make_user(db, "reviewer")
    cid = annotation_campaign(world)
    clip = accepted_clip(db, app.state.blobs, tmp_path, cid, world.worker.id)
    with db.transaction() as s:
        c = s.get_one(Clip, clip)
        c.label_status, c.agreement = LabelStatus.review, {"alpha": 0.1, "round": 1}
        item = review.open_item(s, c, ReviewKind.spans, audience="platform").id
    url = f"{API}/review/items/{item}/spans"
    assert_problem(
        client.put(url, json={"spans": [span(0, 1000)]}, headers=world.worker.headers), 404, "review.not_found"
    )
    assert_problem(
        client.put(url, json={"spans": [span(0, 9000)]}, headers=staff.headers), 422, "annotation.span_outside_clip"
    )
    r = client.put(url, json={"spans": [span(0, 1000)]}, headers=staff.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"clip_id": clip, "kind": "review", "spans": [span(0, 1000)]}
    assert_problem(
        client.put(url, json={"spans": [span(0, 1000)]}, headers=staff.headers), 409, "review.already_decided"
    )

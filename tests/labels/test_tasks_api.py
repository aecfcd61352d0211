"""The annotation API: problem documents on every refusal, no word of gold in a task, gold and
qualifications through HTTP."""

from __future__ import annotations

from egocrowd.db.models import AnnotationTask
from tests.labels.annotating import accepted_clip, annotation_campaign, annotator, span
from tests.platform.helpers import API, assert_problem, make_user


def test_claim_get_submit_release_over_http(world, app, client, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, per_clip=2)
    clip = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    a = annotator(world.db, staff)
    assert_problem(client.post(f"{API}/annotation-tasks/claim", headers=make_user(world.db, "worker").headers), 403, "annotation.not_qualified")
    r = client.post(f"{API}/annotation-tasks/claim", json={"campaign_id": cid}, headers=a.headers)
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["clip_id"] == clip and task["duration_ms"] == 3000 and task["taxonomy"]["verbs"]
    assert "gold" not in r.text and "round" not in task
    assert client.get(f"{API}/annotation-tasks/{task['id']}", headers=a.headers).json()["status"] == "active"
    assert_problem(client.get(f"{API}/annotation-tasks/{task['id']}", headers=world.worker.headers), 404, "annotation.not_found")
    # the annotator sees the clip's de-identified video
    assert client.get(f"{API}/clips/{clip}", headers=a.headers).status_code == 200
    url = f"{API}/annotation-tasks/{task['id']}/submit"
    assert_problem(client.post(url, json={"spans": [span(0, 4000)]}, headers=a.headers), 422, "annotation.span_outside_clip")
    assert_problem(client.post(url, json={"spans": [span(0, 400, "jump")]}, headers=a.headers), 422, "annotation.unknown_label")
    assert_problem(client.post(url, json={"spans": []}, headers=a.headers), 422, "annotation.empty_answer")
    r = client.post(url, json={"spans": [span(0, 1000)]}, headers=a.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted" and r.json()["spans"] == [span(0, 1000)]
    assert_problem(client.post(url, json={"spans": [span(0, 1000)]}, headers=a.headers), 409, "annotation.already_submitted")
    b = annotator(world.db, staff)
    t2 = client.post(f"{API}/annotation-tasks/claim", headers=b.headers).json()
    r = client.post(f"{API}/annotation-tasks/{t2['id']}/release", headers=b.headers)
    assert r.json()["status"] == "released"
    assert_problem(client.post(f"{API}/annotation-tasks/{t2['id']}/release", headers=b.headers), 409, "annotation.not_active")
    assert [t["id"] for t in client.get(f"{API}/annotation-tasks", headers=b.headers).json()] == [t2["id"]]


def test_gold_and_qualifications_over_http(world, app, client, tmp_path):
    staff = make_user(world.db, "reviewer")
    cid = annotation_campaign(world, gold_rate=0.5)
    clip = accepted_clip(world.db, app.state.blobs, tmp_path, cid, world.worker.id)
    w = make_user(world.db, "worker")
    r = client.post(f"{API}/qualifications", json={"user_id": w.id}, headers=staff.headers)
    assert r.status_code == 201, r.text
    q = r.json()
    assert_problem(client.post(f"{API}/qualifications", json={"user_id": w.id}, headers=w.headers), 403, "auth.forbidden")
    assert_problem(client.post(f"{API}/qualifications", json={"user_id": staff.id}, headers=staff.headers), 422, "qualification.not_a_worker")
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

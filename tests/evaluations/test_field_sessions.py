"""Long sessions logged on the phone (issue #19): a bench log uploaded with tus is read by the same
readers as ``egocrowd bench score``, stored, and scored exactly as the command line scores it; a bad
log is refused with its line number and kept."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from egocrowd.clips import sweep_orphan_blobs
from egocrowd.db.models import AuditEvent, FieldSession
from tests.platform.helpers import API, assert_problem, make_user, open_campaign, publish_consent, sign


def _meta(**kv) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in kv.items())


def upload(client, actor, cid: int, data: bytes):
    return client.post(
        f"{API}/uploads",
        content=data,
        headers={
            "Tus-Resumable": "1.0.0",
            "Content-Type": "application/offset+octet-stream",
            **actor.headers,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": _meta(kind="field_session", campaign=cid, filename="session.jsonl"),
        },
    )


def session_log(session_id: str, policy: str, *, fail_at: int | None = None, people=("P1", "P2")) -> bytes:
    """One long session as the phone page writes it: instructions by household members, subtasks in a
    chain, a misinterpretation and its recovery, an intervention."""
    lines = [
        {
            "type": "session",
            "session_id": session_id,
            "policy": policy,
            "environment": "kitchen",
            "source": "real",
            "people": [{"id": p} for p in people],
            "started_at": "2026-12-01T05:00:00+00:00",
            "protocol": "egocrowd.field",
        }
    ]
    t = 0.0
    for i in range(1, 7):
        person = people[i % len(people)]
        t += 10
        lines.append({"type": "instruction", "t": t, "id": f"i{i}", "person": person, "text": f"task {i}"})
        lines.append(
            {
                "type": "subtask_start",
                "t": t + 1,
                "subtask": f"task{i}",
                "chain": "c1",
                "index": i,
                "instruction": f"i{i}",
                "person": person,
            }
        )
        if i == 3:
            lines.append(
                {"type": "misinterpretation", "t": t + 2, "id": "m1", "instruction": f"i{i}", "person": person}
            )
            lines.append({"type": "recovery", "t": t + 5, "misinterpretation": "m1"})
        if i == 4:
            lines.append({"type": "intervention", "t": t + 3, "reason": "stuck", "person": person, "duration": 4.0})
        outcome = "failure" if fail_at == i else "success"
        lines.append(
            {
                "type": "subtask_end",
                "t": t + 8,
                "subtask": f"task{i}",
                "chain": "c1",
                "index": i,
                "instruction": f"i{i}",
                "person": person,
                "outcome": outcome,
            }
        )
    lines.append({"type": "session_end", "t": t + 20, "reason": "completed"})
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


@pytest.fixture
def world(client, db):
    publish_consent(db)
    lab = make_user(db, "requester", org="Lab A")
    cid = open_campaign(client, lab, db=db)["id"]
    body = {"tasks": [{"task": "clear the table"}], "environments": ["kitchen"]}
    assert client.post(f"{API}/campaigns/{cid}/evaluation", json=body, headers=lab.headers).status_code == 201
    for name in ("alpha", "beta"):
        r = client.post(
            f"{API}/campaigns/{cid}/evaluation/policies", json={"name": name, "kind": "physical"}, headers=lab.headers
        )
        assert r.status_code == 201, r.text
    worker = make_user(db, "worker")
    sign(client, worker)
    return {"lab": lab, "cid": cid, "worker": worker}


def test_a_session_log_lands_validated_and_scored_as_the_command_line_scores_it(client, db, world, tmp_path):
    cid, worker, lab = world["cid"], world["worker"], world["lab"]
    logs = [
        session_log("s-a1", "alpha"),
        session_log("s-b1", "beta", fail_at=2),
        session_log("s-a2", "alpha", fail_at=5),
        session_log("s-b2", "beta", fail_at=1),
    ]
    for data in logs:
        r = upload(client, worker, cid, data)
        assert r.status_code == 201, r.text
        assert r.headers["Egocrowd-Field-Session-Id"]
    rows = client.get(f"{API}/campaigns/{cid}/sessions", headers=lab.headers).json()
    assert [r["status"] for r in rows] == ["accepted"] * 4 and rows[0]["people"] == ["P1", "P2"]
    assert {r["session_id"] for r in rows} == {"s-a1", "s-b1", "s-a2", "s-b2"}
    # the worker sees their own; another worker sees none
    assert len(client.get(f"{API}/campaigns/{cid}/sessions", headers=worker.headers).json()) == 4
    other = make_user(db, "worker")
    assert client.get(f"{API}/campaigns/{cid}/sessions", headers=other.headers).json() == []
    got = client.get(f"{API}/campaigns/{cid}/sessions/scores?rounds=200", headers=lab.headers).json()

    for i, data in enumerate(logs):
        (tmp_path / f"{i}.jsonl").write_bytes(data)
    out = tmp_path / "cli.json"
    files = [str(tmp_path / f"{i}.jsonl") for i in range(len(logs))]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "egocrowd.cli",
            "bench",
            "score",
            *files,
            "--rounds",
            "200",
            "--format",
            "json",
            "-o",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    want = json.loads(out.read_text())
    assert got["policies"] == want["policies"]
    assert got["comparisons"] == want["comparisons"] and got["ranking"] == want["ranking"]
    alpha = got["policies"]["alpha"]
    assert alpha  # horizon, interventions, recovery and per-person metrics are there
    with db.transaction() as s:
        n = s.scalar(
            sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.action == "field_session.accepted")
        )
        assert n == 4


def test_a_bad_log_is_refused_with_its_line_and_kept(client, db, world):
    cid, worker, lab = world["cid"], world["worker"], world["lab"]
    lines = session_log("s-bad", "alpha").decode().splitlines(keepends=True)
    lines[4] = json.dumps({"type": "subtask_end", "t": 12, "subtask": "x", "outcome": "maybe"}) + "\n"
    r = upload(client, worker, cid, "".join(lines).encode())
    problem = assert_problem(r, 422, "field_session.bad_log")
    assert "session.jsonl:5:" in problem["detail"], problem
    [row] = client.get(f"{API}/campaigns/{cid}/sessions", headers=lab.headers).json()
    assert row["status"] == "rejected" and row["error_line"] == 5 and row["session_id"] == "s-bad"
    with db.transaction() as s:
        kept = s.scalar(sa.select(FieldSession))
        with client.app.state.blobs.open(kept.blob_sha256) as fh:
            assert fh.read() == "".join(lines).encode()
    assert client.get(f"{API}/campaigns/{cid}/sessions/scores", headers=lab.headers).json() is None
    # the worker who sent it and admins read the bytes as received; the lab reads the scores
    assert client.get(f"{API}/campaigns/{cid}/sessions/{row['id']}/log", headers=worker.headers).content == (
        "".join(lines).encode()
    )
    admin = make_user(db, "admin")
    assert client.get(f"{API}/campaigns/{cid}/sessions/{row['id']}/log", headers=admin.headers).status_code == 200
    r = client.get(f"{API}/campaigns/{cid}/sessions/{row['id']}/log", headers=lab.headers)
    assert_problem(r, 404, "field_session.not_found")
    # the orphan sweep leaves a kept log alone, however old
    blobs = client.app.state.blobs
    assert sweep_orphan_blobs(db, blobs, grace=timedelta(0), now=time.time() + 86_400) == []
    assert blobs.exists(kept.blob_sha256)
    # a policy the evaluation does not have is refused too, naming the header's line
    r = upload(client, worker, cid, session_log("s-x", "gamma"))
    assert "session.jsonl:1:" in assert_problem(r, 422, "field_session.bad_log")["detail"]


def test_only_workers_with_consent_upload_logs(client, db, world):
    cid = world["cid"]
    assert_problem(upload(client, world["lab"], cid, session_log("s", "alpha")), 403, "auth.forbidden")
    unsigned = make_user(db, "worker")
    r = upload(client, unsigned, cid, session_log("s", "alpha"))
    assert r.status_code in (403, 409), r.text
    for bad in ("x", str(2**70)):  # not a number, nobody's id
        r = client.post(
            f"{API}/uploads",
            content=b"{}",
            headers={
                "Tus-Resumable": "1.0.0",
                "Content-Type": "application/offset+octet-stream",
                **world["worker"].headers,
                "Upload-Length": "2",
                "Upload-Metadata": _meta(kind="field_session", campaign=bad),
            },
        )
        assert_problem(r, 422, "upload.bad_metadata")
    assert client.get(f"{API}/campaigns/{cid}/sessions/scores", headers=world["worker"].headers).status_code in (
        403,
        404,
    )

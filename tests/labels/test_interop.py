"""Spans in and out (both backends): JSONL, CSV and Label Studio round trips give the same spans
back; bad imports (unknown clip hash, unknown label, a span outside its clip, malformed JSON or CSV,
a wrong frame rate) are refused with their own codes, naming the lines, and import nothing; who may
export, import and import gold; the command line."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from egocrowd.cli import main
from egocrowd.db.models import AuditEvent, Clip, Span, SpanKind
from egocrowd.labels import interop
from tests.labels.audit_world import FPS, labelled_campaign
from tests.platform.helpers import API, assert_problem, make_user


@pytest.fixture
def st(world):
    return labelled_campaign(world, clips=12, gold=3, seed=11)


def _spans(db, campaign_id: int, kind: SpanKind) -> list[tuple]:
    with db.transaction() as s:
        return sorted(
            (sp.clip_sha256, sp.start_ms, sp.end_ms, sp.verb, sp.noun)
            for sp in interop.current_spans(s, campaign_id, [kind])
        )


def _import(client, actor, cid, body: str, fmt: str, kind: str = "review"):
    return client.post(
        f"{API}/campaigns/{cid}/labels/import?format={fmt}&kind={kind}",
        content=body.encode(),
        headers={**actor.headers, "Content-Type": "text/plain"},
    )


def test_jsonl_and_csv_exports_carry_every_current_span(st, world, client, db):
    h = world.lab.headers
    r = client.get(f"{API}/campaigns/{st.campaign_id}/labels.jsonl", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in r.headers["content-disposition"]
    rows = [json.loads(line) for line in r.text.splitlines()]
    with db.transaction() as s:
        total = s.scalar(
            sa.select(sa.func.count())
            .select_from(Span)
            .join(Clip, Clip.id == Span.clip_id)
            .where(Clip.campaign_id == st.campaign_id, Span.superseded_at.is_(None))
        )
    assert len(rows) == total
    assert set(rows[0]) == set(interop.FIELDS)
    kinds = {r["kind"] for r in rows}
    assert kinds == {"answer", "consensus", "gold"}
    assert all(r["annotator"] == "consensus" and 0 <= r["confidence"] <= 1 for r in rows if r["kind"] == "consensus")
    assert all(isinstance(r["annotator"], int) for r in rows if r["kind"] == "answer")
    assert all(round(r["start_s"], 3) == r["start_s"] and r["end_s"] > r["start_s"] for r in rows)
    c = client.get(f"{API}/campaigns/{st.campaign_id}/labels.csv", headers=h)
    assert c.status_code == 200 and c.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(c.text)))
    assert len(table) == len(rows) and list(table[0]) == list(interop.FIELDS)
    assert [(t["clip_sha256"], float(t["start_s"]), t["verb"]) for t in table] == [
        (r["clip_sha256"], r["start_s"], r["verb"]) for r in rows
    ]
    only_gold = client.get(f"{API}/campaigns/{st.campaign_id}/labels.jsonl?kinds=gold", headers=h).text.splitlines()
    assert only_gold and all(json.loads(line)["kind"] == "gold" for line in only_gold)
    assert_problem(
        client.get(f"{API}/campaigns/{st.campaign_id}/labels.jsonl?kinds=bogus", headers=h), 422, "labels.bad_kind"
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_plain_round_trip(st, world, client, db, fmt):
    """Gold out, back in as a reviewer's spans: the same spans, to the millisecond."""
    h = world.lab.headers
    text = client.get(f"{API}/campaigns/{st.campaign_id}/labels.{fmt}?kinds=gold", headers=h).text
    r = _import(client, world.lab, st.campaign_id, text, fmt)
    assert r.status_code == 200, r.text
    gold = _spans(db, st.campaign_id, SpanKind.gold)
    assert r.json()["spans"] == len(gold) and r.json()["kind"] == "review"
    assert _spans(db, st.campaign_id, SpanKind.review) == gold
    # again: the earlier import is superseded, not doubled
    r = _import(client, world.lab, st.campaign_id, text, fmt)
    assert r.json()["superseded"] == len(gold)
    assert _spans(db, st.campaign_id, SpanKind.review) == gold
    with db.transaction() as s:
        events = s.scalars(sa.select(AuditEvent).where(AuditEvent.action == "labels.imported")).all()
        assert [e.payload["spans"] for e in events] == [len(gold), len(gold)]
        assert all(e.actor_id == world.lab.id for e in events)


def test_label_studio_round_trip(st, world, client, db):
    h = world.lab.headers
    r = client.get(f"{API}/campaigns/{st.campaign_id}/labels/label-studio", headers=h)
    assert r.status_code == 200, r.text
    tasks = r.json()
    assert len(tasks) == len(st.clip_of)
    t = tasks[0]
    assert t["data"]["fps"] == FPS and t["data"]["video"].endswith(f"/api/v1/clips/{t['id']}/video")
    results = [x for a in t["annotations"] for x in a["result"]]
    assert results and all(x["type"] == "timelinelabels" and x["from_name"] == "labels" for x in results)
    for x in results:
        (rng,) = x["value"]["ranges"]
        assert isinstance(rng["start"], int) and 1 <= rng["start"] <= rng["end"]
        assert len(x["value"]["timelinelabels"]) == 1 and " " in x["value"]["timelinelabels"][0]
    with_consensus = [t for t in tasks if t["predictions"]]
    assert with_consensus and all(0 <= p["score"] <= 1 for t in with_consensus for p in t["predictions"])
    assert all(x["score"] <= 1 for t in with_consensus for x in t["predictions"][0]["result"])
    # the reference spans only (ground truth), back in as gold: frames come back to the same frames
    gold_only = [
        {**t, "annotations": [a for a in t["annotations"] if a["ground_truth"]], "predictions": []}
        for t in tasks
        if any(a["ground_truth"] for a in t["annotations"])
    ]
    before = _spans(db, st.campaign_id, SpanKind.gold)
    r = _import(client, st.reviewer, st.campaign_id, json.dumps(gold_only), "label-studio", kind="gold")
    assert r.status_code == 200, r.text
    after = _spans(db, st.campaign_id, SpanKind.gold)
    assert len(after) == len(before) == r.json()["spans"]
    half_frame = 1000 / FPS / 2
    for (sha_a, s_a, e_a, v_a, n_a), (sha_b, s_b, e_b, v_b, n_b) in zip(before, after, strict=True):
        assert (sha_a, v_a, n_a) == (sha_b, v_b, n_b)
        assert abs(s_a - s_b) <= half_frame and abs(e_a - e_b) <= half_frame
    again = client.get(f"{API}/campaigns/{st.campaign_id}/labels/label-studio", headers=h).json()

    def gold_ranges(ts):
        return sorted(
            (t["id"], x["value"]["ranges"][0]["start"], x["value"]["ranges"][0]["end"], x["value"]["timelinelabels"][0])
            for t in ts
            for a in t["annotations"]
            if a["ground_truth"]
            for x in a["result"]
        )

    assert gold_ranges(again) == gold_ranges(tasks)  # exact in frames


def test_label_studio_config_lists_the_taxonomy(st, world, client):
    r = client.get(f"{API}/campaigns/{st.campaign_id}/labels/label-studio/config", headers=world.lab.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    import xml.etree.ElementTree as ET

    root = ET.fromstring(r.text)
    video, timeline = root.find("Video"), root.find("TimelineLabels")
    assert video.get("frameRate") == "$fps" and video.get("value") == "$video"
    assert timeline.get("toName") == video.get("name")
    labels = {x.get("value") for x in timeline.findall("Label")}
    assert {" ".join(x) for x in [("open", "door"), ("press", "button")]} <= labels
    assert len(labels) == len(st.crowd.labels)


def _line(st, clip_sim=1, **over) -> dict:
    clip_id = st.clip_of[clip_sim]
    row = {"clip_sha256": None, "clip_id": clip_id, "start_s": 1.0, "end_s": 2.5, "verb": "open", "noun": "door"}
    row.update(over)
    return row


def _sha(db, clip_id: int) -> str:
    with db.transaction() as s:
        return s.get(Clip, clip_id).sha256


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ({"clip_sha256": "ab" * 32, "clip_id": None}, "labels.import_unknown_clip"),
        ({"verb": "juggle"}, "labels.import_unknown_label"),
        ({"noun": "piano"}, "labels.import_unknown_label"),
        ({"start_s": 1.0, "end_s": 99999}, "labels.import_out_of_range"),
        ({"start_s": -1}, "labels.import_out_of_range"),
        ({"start_s": 3, "end_s": 2}, "labels.import_out_of_range"),
        ({"start_s": "soon"}, "labels.import_malformed"),
        ({"verb": None}, "labels.import_malformed"),
    ],
)
def test_a_bad_line_imports_nothing(st, world, client, db, bad, code):
    good = [json.dumps(_line(st, clip_sim=k)) for k in (1, 2, 3)]
    body = "\n".join([*good[:2], json.dumps(_line(st, clip_sim=4, **bad)), good[2]]) + "\n"
    r = _import(client, world.lab, st.campaign_id, body, "jsonl")
    problem = assert_problem(r, 422, code)
    assert problem["errors"][0]["line"] == 3 and problem["errors"][0]["code"] == code
    assert "nothing was imported" in problem["detail"]
    assert _spans(db, st.campaign_id, SpanKind.review) == []


def test_malformed_files_are_refused(st, world, client, db):
    cid = st.campaign_id
    p = assert_problem(
        _import(client, world.lab, cid, '{"clip_id": 1,\nnot json\n', "jsonl"), 422, "labels.import_malformed"
    )
    assert p["error_count"] == 2
    assert_problem(_import(client, world.lab, cid, "[1, 2]\n", "jsonl"), 422, "labels.import_malformed")
    assert_problem(_import(client, world.lab, cid, "a,b\n1,2\n", "csv"), 422, "labels.import_malformed")
    assert_problem(_import(client, world.lab, cid, "{not json", "label-studio"), 422, "labels.import_malformed")
    assert_problem(_import(client, world.lab, cid, '"tasks"', "label-studio"), 422, "labels.import_malformed")
    assert_problem(_import(client, world.lab, cid, "\n\n", "jsonl"), 422, "labels.import_empty")
    r = client.post(
        f"{API}/campaigns/{cid}/labels/import?format=jsonl",
        content=b"\xff\xfe\x00bad",
        headers={**world.lab.headers, "Content-Type": "text/plain"},
    )
    assert_problem(r, 422, "labels.import_malformed")
    assert_problem(
        client.post(f"{API}/campaigns/{cid}/labels/import?format=xml", content=b"x", headers=world.lab.headers),
        422,
        "validation.failed",
    )
    assert _spans(db, cid, SpanKind.review) == []


def _ls_task(st, db, *, fps=FPS, label="open door", start=10, end=40, sha=None, clip_sim=1) -> dict:
    clip_id = st.clip_of[clip_sim]
    return {
        "data": {"video": "x.mp4", "fps": fps, "clip_sha256": sha or _sha(db, clip_id)},
        "annotations": [
            {
                "result": [
                    {
                        "from_name": "labels",
                        "to_name": "video",
                        "type": "timelinelabels",
                        "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [label]},
                    }
                ]
            }
        ],
    }


def test_label_studio_refusals(st, world, client, db):
    cid = st.campaign_id
    good = _ls_task(st, db)

    def refused(task, code):
        body = json.dumps([good, task])
        problem = assert_problem(_import(client, world.lab, cid, body, "label-studio"), 422, code)
        assert problem["errors"][0]["line"] == 2  # the task's place in the list
        assert _spans(db, cid, SpanKind.review) == []

    refused(_ls_task(st, db, fps=30), "labels.import_fps")
    refused(_ls_task(st, db, fps=0), "labels.import_fps")
    refused(_ls_task(st, db, label="juggle door"), "labels.import_unknown_label")
    refused(_ls_task(st, db, label="open"), "labels.import_unknown_label")
    refused(_ls_task(st, db, sha="cd" * 32), "labels.import_unknown_clip")
    refused(_ls_task(st, db, start=10, end=10**6), "labels.import_out_of_range")
    refused(_ls_task(st, db, start=0, end=5), "labels.import_malformed")
    refused({"annotations": []}, "labels.import_malformed")
    r = _import(client, world.lab, cid, json.dumps([good]), "label-studio")
    assert r.status_code == 200 and r.json()["spans"] == 1
    (span,) = _spans(db, cid, SpanKind.review)
    assert span[1:] == (round(9 * 1000 / FPS), round(40 * 1000 / FPS), "open", "door")


def test_a_clip_of_another_campaign_is_unknown(st, world, client, db):
    other = labelled_campaign(world, clips=2, gold=0, seed=12)
    row = _line(other)
    problem = assert_problem(
        _import(client, world.lab, st.campaign_id, json.dumps(row), "jsonl"), 422, "labels.import_unknown_clip"
    )
    assert problem["errors"][0]["line"] == 1
    mismatch = _line(st, clip_sha256=_sha(db, st.clip_of[2]))  # the id of one clip, the hash of another
    assert_problem(
        _import(client, world.lab, st.campaign_id, json.dumps(mismatch), "jsonl"), 422, "labels.import_unknown_clip"
    )


def test_who_may_export_and_import(st, world, client, db):
    cid = st.campaign_id
    viewer = make_user(db, "requester", org="Lab A", org_role="viewer")
    other = make_user(db, "requester", org="Lab B")
    body = json.dumps(_line(st))
    assert client.get(f"{API}/campaigns/{cid}/labels.csv", headers=viewer.headers).status_code == 200
    assert client.get(f"{API}/campaigns/{cid}/labels.csv", headers=st.reviewer.headers).status_code == 200
    assert_problem(
        client.get(f"{API}/campaigns/{cid}/labels.csv", headers=st.annotators[1].headers), 403, "auth.forbidden"
    )
    assert_problem(client.get(f"{API}/campaigns/{cid}/labels.jsonl", headers=other.headers), 404, "campaign.not_found")
    assert_problem(client.get(f"{API}/campaigns/{cid}/labels.jsonl"), 401, "auth.required")
    assert_problem(_import(client, viewer, cid, body, "jsonl"), 403, "auth.forbidden")
    assert_problem(_import(client, world.lab, cid, body, "jsonl", kind="gold"), 403, "auth.forbidden")
    r = _import(client, st.reviewer, cid, body, "jsonl", kind="gold")
    assert r.status_code == 200, r.text
    with db.transaction() as s:
        assert s.get(Clip, st.clip_of[1]).is_gold


def test_cli_export_and_import(st, world, db, tmp_path):
    env = {"EGOCROWD_DATA_DIR": str(tmp_path / "data"), "EGOCROWD_CONFIG": None, "EGOCROWD_DATABASE_URL": db.url}
    out = tmp_path / "gold.jsonl"
    args = ["labels", "export", "--campaign", str(st.campaign_id), "--kind", "gold", "-o", str(out)]
    r = CliRunner().invoke(main, args, env=env)
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(
        main, ["labels", "import", str(out), "--campaign", str(st.campaign_id), "--format", "jsonl"], env=env
    )
    assert r.exit_code == 0, r.output
    assert _spans(db, st.campaign_id, SpanKind.review) == _spans(db, st.campaign_id, SpanKind.gold)
    for fmt, check in [
        ("csv", "clip_sha256,clip_id"),
        ("label-studio", '"timelinelabels"'),
        ("label-studio-config", "<TimelineLabels"),
    ]:
        r = CliRunner().invoke(main, ["labels", "export", "--campaign", str(st.campaign_id), "--format", fmt], env=env)
        assert r.exit_code == 0 and check in r.output, r.output[:300]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(out.read_text() + json.dumps(_line(st, verb="juggle")) + "\n")
    r = CliRunner().invoke(
        main,
        ["labels", "import", str(bad), "--campaign", str(st.campaign_id), "--format", "jsonl", "--as", "gold"],
        env=env,
    )
    assert r.exit_code == 1 and "labels.import_unknown_label" in r.output and "juggle" in r.output

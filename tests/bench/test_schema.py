from __future__ import annotations

import gzip
import json
import warnings

import pytest

from egocrowd.bench import schema as S
from egocrowd.bench.score import score_logs
from egocrowd.errors import InvalidInput


def test_round_trip_every_event_type(hand_log, hand_events):
    objs = list(S.read_log(hand_log))
    expected = [x for sess, events in hand_events for x in (sess, *events)]
    assert objs == expected
    assert {type(o).type for o in objs} >= set(S.EVENT_TYPES) - {"event"}


def test_header_defaults_and_format_version(hand_log):
    first = json.loads(hand_log.read_text().splitlines()[0])
    assert first["type"] == "session" and first["format_version"] == S.SCHEMA_VERSION
    assert first["pair_key"] == "proto:1"
    assert first["people"][0] == {"id": "alice", "role": "parent", "priority": 0}


def test_writer_flushes_every_event_and_a_truncated_tail_is_ignored(tmp_path):
    p = tmp_path / "live.jsonl"
    with S.LogWriter(p, S.Session(session_id="a", policy="P", environment="e")) as w:
        w.write(S.SubtaskEnd(t=1, subtask="x", outcome="success"))
        # read while the writer is still open: the event is already on disk
        assert len(list(S.read_log(p))) == 2
    with open(p, "a") as fh:
        fh.write('{"type":"subtask_end","t":2,"subt')  # a crash mid-line
    with pytest.warns(UserWarning, match="truncated"):
        assert len(list(S.read_log(p))) == 2


def test_a_bad_line_in_the_middle_is_an_error(tmp_path):
    p = tmp_path / "bad.jsonl"
    S.write_log(
        p, S.Session(session_id="a", policy="P", environment="e"), [S.SubtaskEnd(t=1, subtask="x", outcome="success")]
    )
    text = p.read_text().splitlines()
    p.write_text("\n".join([text[0], "{not json", text[1]]) + "\n")
    with pytest.raises(InvalidInput) as exc:
        list(S.read_log(p))
    assert exc.value.code == "bench.bad_log"


def test_newer_format_is_refused(tmp_path):
    p = tmp_path / "new.jsonl"
    p.write_text(
        json.dumps({"type": "session", "session_id": "a", "policy": "P", "environment": "e", "format_version": 99})
        + "\n"
    )
    with pytest.raises(InvalidInput) as exc:
        list(S.read_log(p))
    assert exc.value.code == "bench.unsupported_version"


def test_unknown_types_strict_and_lenient_and_unknown_fields_kept(tmp_path):
    p = tmp_path / "x.jsonl"
    lines = [
        {"type": "session", "session_id": "a", "policy": "P", "environment": "e", "lab_note": "v2 arm"},
        {"type": "gaze", "t": 1.0},
        {"type": "safety", "t": 2.0, "kind": "contact", "force_n": 40},
    ]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(InvalidInput, match="unknown event type"):
        list(S.read_log(p))
    sess, ev = list(S.read_log(p, strict=False))
    assert sess.extra == {"lab_note": "v2 arm"} and ev.extra == {"force_n": 40}
    assert ev.to_dict()["force_n"] == 40  # survives a rewrite


def test_log_must_start_with_a_header(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps({"type": "safety", "t": 1, "kind": "contact"}) + "\n")
    with pytest.raises(InvalidInput, match="header"):
        list(S.read_log(p))


@pytest.mark.parametrize(
    "make",
    [
        lambda: S.SubtaskEnd(t=1, subtask="x", outcome="partial"),
        lambda: S.SubtaskEnd(t=1, subtask="x", outcome="meh"),
        lambda: S.SubtaskEnd(t=1, subtask="x", outcome="partial", progress=1.5),
        lambda: S.SubtaskEnd(t=-1, subtask="x", outcome="success"),
        lambda: S.SubtaskEnd(t=float("nan"), subtask="x", outcome="success"),
        lambda: S.Safety(t=1, kind="explosion"),
        lambda: S.Conflict(t=1, id="k", resolution="shrugged"),
        lambda: S.EnvChange(t=1, kind="earthquake"),
        lambda: S.Intervention(t=1, reason="x", duration=-3),
        lambda: S.ChainStart(t=0, chain="c", length=0),
        lambda: S.Misinterpretation(t=0, id="m", source="guessed"),
        lambda: S.Session(session_id="", policy="P", environment="e"),
        lambda: S.Session(session_id="a", policy="P", environment="e", source="dream"),
    ],
)
def test_validation(make):
    with pytest.raises(InvalidInput) as exc:
        make()
    assert exc.value.code == "bench.bad_log"


def test_defaults_filled_in():
    assert S.SubtaskEnd(t=0, subtask="x", outcome="success").progress == 1.0
    assert S.SubtaskEnd(t=0, subtask="x", outcome="failure").progress == 0.0
    assert S.Conflict(t=0, id="k", resolution="resolved_wrongly", expected="resolved_wrongly").correct is False
    assert S.Conflict(t=0, id="k", resolution="refused", expected="refused").correct is True
    assert S.Conflict(t=0, id="k", resolution="refused").correct is None


def test_iter_sessions_groups_a_multi_session_file(hand_log):
    got = [(s.session_id, len(list(ev))) for s, ev in S.iter_sessions(hand_log)]
    assert got == [("s1", 26), ("s2", 11)]
    # an unconsumed events iterator is drained, not mixed into the next session
    assert [s.session_id for s, _ in S.iter_sessions(hand_log)] == ["s1", "s2"]


def test_gzip_and_parquet_round_trip(hand_log, tmp_path):
    gz = tmp_path / "hand.jsonl.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(hand_log.read_bytes())
    pq_path = tmp_path / "hand.parquet"
    assert S.to_parquet([hand_log], pq_path, batch_rows=7) == 2 + 26 + 11
    ref = list(S.read_log(hand_log))
    assert list(S.read_log(gz)) == ref
    assert list(S.read_log(pq_path)) == ref
    import pyarrow.parquet as pq

    table = pq.read_table(pq_path)
    assert table.schema.metadata[b"format_version"] == str(S.SCHEMA_VERSION).encode()
    rows = table.to_pylist()
    assert {r["session_id"] for r in rows} == {"s1", "s2"}
    assert sum(1 for r in rows if r["type"] == "subtask_end" and r["outcome"] == "success") == 6


def test_parquet_row_without_payload_is_a_bad_log(hand_log, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq_path = tmp_path / "hand.parquet"
    S.to_parquet([hand_log], pq_path)
    table = pq.read_table(pq_path)
    payload = table.column("payload").to_pylist()
    table = table.set_column(
        table.schema.get_field_index("payload"), "payload", pa.array([None, *payload[1:]], pa.string())
    )
    pq.write_table(table, pq_path)  # keeps the schema's metadata: it still claims our format
    with pytest.raises(InvalidInput) as err:
        list(S.read_log(pq_path))
    assert err.value.code == "bench.bad_log"


def test_progress_callback_counts_every_byte(hand_log):
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(S.read_log(hand_log, on_progress=seen.append))
    assert sum(seen) == hand_log.stat().st_size


def test_writer_refuses_non_events_and_closed_use(tmp_path):
    w = S.LogWriter(tmp_path / "a.jsonl", S.Session(session_id="a", policy="P", environment="e"))
    with pytest.raises(InvalidInput):
        w.write(S.SessionEnd(t=1))
    with w, pytest.raises(InvalidInput):
        w.write({"type": "safety"})  # type: ignore[arg-type]


# ------------------------------------------------------------- malformed numbers in a log


@pytest.mark.parametrize("day", ["abc", float("inf"), True, [1]])
def test_bad_deployment_day_is_a_log_error(tmp_path, day):
    # before: "abc" crashed scoring with a bare ValueError in build_corpus; Infinity (valid for
    # Python's json) silently broke the deployment-day drift
    p = tmp_path / "x.jsonl"
    head = {"type": "session", "session_id": "s", "policy": "p", "environment": "e", "deployment_day": day}
    p.write_text(
        json.dumps(head)
        + "\n"
        + json.dumps({"type": "subtask_end", "t": 1, "subtask": "x", "outcome": "success"})
        + "\n"
    )
    with pytest.raises(InvalidInput) as exc:
        score_logs([p])
    assert exc.value.code == "bench.bad_log"


def test_integer_deployment_day_still_reads():
    assert S.Session(session_id="s", policy="p", environment="e", deployment_day=3).deployment_day == 3

"""Malformed bench inputs: every one is refused with our error, its code and the line at fault;
none crashes, hangs or is accepted silently; `validate` and `score` give the same verdict.

The corpus is built here, small: each case is a file (name, bytes), the code it must raise and
the line it must name (None: the file as a whole).
"""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from egocrowd.bench import columnar, digest
from egocrowd.bench import schema as S
from egocrowd.bench.cli import bench
from egocrowd.bench.digest import digest_log, digest_session
from egocrowd.bench.importers import read_pairwise_csv, read_trials
from egocrowd.bench.limits import MAX_CHAIN_LENGTH, MAX_LINE_BYTES
from egocrowd.errors import InvalidInput

HEAD = {"type": "session", "session_id": "s1", "policy": "P", "environment": "kitchen"}
END = {"type": "subtask_end", "t": 1, "subtask": "a", "outcome": "success"}
CHAIN = {"type": "chain_start", "t": 0, "chain": "c", "length": 5}
STEP = {**END, "chain": "c", "index": 1}


def jsonl(*rows: Any) -> bytes:
    """Lines of a log: dicts become JSON, str and bytes are written as they are."""
    out = b""
    for r in rows:
        line = r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode()
        out += line + b"\n"
    return out


def log(*events: Any) -> bytes:
    """A good header, an event, the given lines (line 3 onwards), and a good event after them."""
    return jsonl(HEAD, END, *events, END)


def with_event(**fields: Any) -> bytes:
    return log({**END, **fields})


@dataclass
class Case:
    name: str
    file: str
    data: bytes
    code: str
    line: int | None


TRIALS = "policy,task,success,duration,progress,session,day\n"
PAIRS = "a,b,winner\nx,y,a\n"
DEEP = '{"type":"instruction","t":1,"id":"i","text":' + "[" * 100_000 + "]" * 100_000 + "}"

LOGS = [
    # text and JSON
    Case("non-utf8 event", "a.jsonl", log(b'{"type":"instruction","t":1,"id":"\xff\xfe"}'), "bench.bad_log", 3),
    Case("non-utf8 header", "a.jsonl", jsonl(b'{"type":"session","session_id":"\xe9","policy":"P"}', END), "bench.bad_log", 1),
    Case("garbage line", "a.jsonl", log("hello world"), "bench.bad_log", 3),
    Case("garbage last line", "a.jsonl", jsonl(HEAD, END, "hello world"), "bench.bad_log", 3),
    Case("binary garbage", "a.jsonl", log(bytes(range(256)).replace(b"\n", b"")), "bench.bad_log", 3),
    Case("array line", "a.jsonl", log("[1, 2]"), "bench.bad_log", 3),
    Case("number line", "a.jsonl", log("42"), "bench.bad_log", 3),
    Case("no header", "a.jsonl", jsonl(END, HEAD), "bench.bad_log", 1),
    Case("unknown type", "a.jsonl", log({"type": "teleport", "t": 1}), "bench.bad_log", 3),
    Case("nested too deep", "a.jsonl", log(DEEP), "bench.bad_log", 3),
    Case("newer format", "a.jsonl", jsonl({**HEAD, "format_version": 99}), "bench.unsupported_version", 1),
    # wrong types
    Case("t a string", "a.jsonl", with_event(t="abc"), "bench.bad_log", 3),
    Case("t null", "a.jsonl", with_event(t=None), "bench.bad_log", 3),
    Case("t NaN", "a.jsonl", log('{"type":"safety","t":NaN,"kind":"contact"}'), "bench.bad_log", 3),
    Case("t Infinity", "a.jsonl", log('{"type":"safety","t":Infinity,"kind":"contact"}'), "bench.bad_log", 3),
    Case("t overflows", "a.jsonl", log('{"type":"safety","t":1e400,"kind":"contact"}'), "bench.bad_log", 3),
    Case("index 2.5", "a.jsonl", log(CHAIN, {**STEP, "index": 2.5}), "bench.bad_log", 4),
    Case("index a string", "a.jsonl", log(CHAIN, {**STEP, "index": "2"}), "bench.bad_log", 4),
    Case("length a string", "a.jsonl", log({**CHAIN, "length": "5"}), "bench.bad_log", 3),
    Case("subtask a number", "a.jsonl", with_event(subtask=5), "bench.bad_log", 3),
    Case("detected a string", "a.jsonl", log({"type": "conflict", "t": 1, "id": "k", "detected": "yes"}), "bench.bad_log", 3),
    Case("instructions a string", "a.jsonl", log({"type": "conflict", "t": 1, "id": "k", "instructions": "i1"}), "bench.bad_log", 3),
    Case("steps a float", "a.jsonl", with_event(steps=2.5), "bench.bad_log", 3),
    Case("header seed 1.5", "a.jsonl", jsonl({**HEAD, "seed": 1.5}, END), "bench.bad_log", 1),
    Case("header people", "a.jsonl", jsonl({**HEAD, "people": ["al"]}, END), "bench.bad_log", 1),
    Case("header no policy", "a.jsonl", jsonl({k: v for k, v in HEAD.items() if k != "policy"}, END), "bench.bad_log", 1),
    # impossible values
    Case("t negative", "a.jsonl", with_event(t=-1), "bench.bad_log", 3),
    Case("progress 1.5", "a.jsonl", with_event(outcome="partial", progress=1.5), "bench.bad_log", 3),
    Case("progress NaN", "a.jsonl", log('{"type":"subtask_end","t":1,"subtask":"a","outcome":"partial","progress":NaN}'), "bench.bad_log", 3),
    Case("partial without progress", "a.jsonl", with_event(outcome="partial"), "bench.bad_log", 3),
    Case("unknown outcome", "a.jsonl", with_event(outcome="won"), "bench.bad_log", 3),
    Case("negative intervention", "a.jsonl", log({"type": "intervention", "t": 1, "reason": "x", "duration": -3}), "bench.bad_log", 3),
    Case("NaN intervention", "a.jsonl", log('{"type":"intervention","t":1,"reason":"x","duration":NaN}'), "bench.bad_log", 3),
    Case("index 0", "a.jsonl", log(CHAIN, {**STEP, "index": 0}), "bench.bad_log", 4),
    Case("index beyond declared length", "a.jsonl", log(CHAIN, STEP, {**STEP, "index": 6}), "bench.bad_log", 5),
    Case("start index beyond declared length", "a.jsonl", log(CHAIN, {"type": "subtask_start", "t": 1, "subtask": "a", "chain": "c", "index": 7}), "bench.bad_log", 4),
    # absurd sizes (each once hung, or grew memory without bound)
    Case("index 10^9", "a.jsonl", log({**STEP, "index": 10**9}), "bench.bad_log", 3),
    Case("length 10^9", "a.jsonl", log({**CHAIN, "length": 10**9}), "bench.bad_log", 3),
    Case("t 10^12", "a.jsonl", with_event(t=1e12), "bench.bad_log", 3),
    Case("long line", "a.jsonl", log({"type": "instruction", "t": 1, "id": "i", "text": "x" * MAX_LINE_BYTES}), "bench.bad_log", 3),
    Case("no newline at all", "a.jsonl", b"{" * (3 * MAX_LINE_BYTES), "bench.bad_log", 1),
    # compressed and columnar files
    Case("gzip cut short", "a.jsonl.gz", gzip.compress(log() * 200)[:-40], "bench.bad_log", None),
    Case("not gzip", "a.jsonl.gz", log(), "bench.bad_log", None),
    Case("not parquet", "a.parquet", log(), "bench.bad_log", None),
]

CSVS = [
    Case("csv non-utf8", "t.csv", (TRIALS + "p,x,1\n").encode() + b"p,\xff\xfe,1\n", "bench.bad_csv", 3),
    Case("csv ragged row", "t.csv", (TRIALS + "p,x,1,1,1,s,0,extra,more\n").encode(), "bench.bad_csv", 2),
    Case("csv garbage under header", "t.csv", TRIALS.encode() + b"\x00\x01\x02garbage\x00\n", "bench.bad_csv", 2),
    Case("csv binary", "t.csv", TRIALS.encode() + bytes(range(256)), "bench.bad_csv", 2),
    Case("csv quote never closed", "t.csv", (TRIALS + 'p,x,1\n"p,x,1\n' + "p,x,1\n" * 3).encode(), "bench.bad_csv", 6),
    Case("csv success maybe", "t.csv", (TRIALS + "p,x,maybe\n").encode(), "bench.bad_csv", 2),
    Case("csv duration abc", "t.csv", (TRIALS + "p,x,1\np,x,1,abc\n").encode(), "bench.bad_csv", 3),
    Case("csv duration negative", "t.csv", (TRIALS + "p,x,1,-1\n").encode(), "bench.bad_csv", 2),
    Case("csv duration nan", "t.csv", (TRIALS + "p,x,1,nan\n").encode(), "bench.bad_csv", 2),
    Case("csv duration inf", "t.csv", (TRIALS + "p,x,1,inf\n").encode(), "bench.bad_csv", 2),
    Case("csv duration 10^12", "t.csv", (TRIALS + "p,x,1,1e12\n").encode(), "bench.bad_csv", 2),
    Case("csv progress 1.5", "t.csv", (TRIALS + "p,x,0,1,1.5\n").encode(), "bench.bad_csv", 2),
    Case("csv day abc", "t.csv", (TRIALS + "p,x,0,1,0,s,abc\n").encode(), "bench.bad_csv", 2),
    Case("csv empty policy", "t.csv", (TRIALS + ",x,1\n").encode(), "bench.bad_csv", 2),
    Case("csv empty task", "t.csv", (TRIALS + "p,,1\n").encode(), "bench.bad_csv", 2),
    Case("csv missing column", "t.csv", b"policy,task\np,x\n", "bench.bad_csv", 1),
    Case("csv column twice", "t.csv", b"policy,task,success,duration,duration_s\np,x,1,1,1\n", "bench.bad_csv", 1),
    Case("csv empty", "t.csv", b"", "bench.bad_csv", None),
    Case("csv header only", "t.csv", TRIALS.encode(), "bench.bad_csv", None),
    Case("csv line numbers after a quoted newline", "t.csv", (TRIALS + 'p,"x\ny",1\np,x,2\n').encode(), "bench.bad_csv", 4),
    Case("csv two pairs in a session", "t.csv", b"policy,task,success,session,pair\np,x,1,s,k1\np,x,1,s,k2\n", "bench.bad_csv", 3),
    Case("csv long row", "t.csv", (TRIALS + "p," + "x" * (MAX_LINE_BYTES + 10) + ",1\n").encode(), "bench.bad_csv", 2),
    Case("csv gzip cut short", "t.csv.gz", gzip.compress((TRIALS + "p,x,1\n" * 2000).encode())[:-40], "bench.bad_csv", None),
]

PAIRWISE = [
    Case("winner tiebreak_a", "p.csv", (PAIRS + "x,y,tiebreak_a\n").encode(), "bench.bad_csv", 3),
    Case("winner missing", "p.csv", (PAIRS + "x,y\n").encode(), "bench.bad_csv", 3),
    Case("winner unknown name", "p.csv", (PAIRS + "x,y,z\n").encode(), "bench.bad_csv", 3),
    Case("same policy twice", "p.csv", (PAIRS + "x,x,a\n").encode(), "bench.bad_csv", 3),
    Case("empty policy", "p.csv", (PAIRS + ",y,a\n").encode(), "bench.bad_csv", 3),
    Case("pairwise ragged", "p.csv", (PAIRS + "x,y,a,1\n").encode(), "bench.bad_csv", 3),
    Case("pairwise non-utf8", "p.csv", PAIRS.encode() + b"x,\xc3(,a\n", "bench.bad_csv", 3),
    Case("pairwise no battles", "p.csv", b"a,b,winner\n", "bench.bad_csv", None),
]

# odd but valid: accepted by every reader and by both commands
GOOD_LOGS = [
    ("truncated last line", "a.jsonl", jsonl(HEAD, END) + b'{"type":"subtask_end","t":2,"subt'),
    ("whole-number index as a float", "a.jsonl", log(CHAIN, {**STEP, "index": 2.0})),
    ("last declaration wins", "a.jsonl", log(CHAIN, {**STEP, "index": 6}, {**CHAIN, "length": 6})),
    ("max chain index", "a.jsonl", log({**STEP, "index": MAX_CHAIN_LENGTH})),
    ("csv bom, short rows, trailing commas", "t.csv", ("\ufeff" + TRIALS + "p,x,1\np,y,0,2,,,,\n").encode("utf-8")),
]


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def line_by_line(path: Path) -> list[Any]:
    return [digest_session(s, e) for s, e in S.iter_sessions(path)]


def error(fn: Any, *args: Any) -> InvalidInput:
    try:
        fn(*args)
    except InvalidInput as exc:
        return exc
    raise AssertionError("accepted silently")


@pytest.mark.parametrize("case", LOGS, ids=lambda c: c.name)
def test_bad_logs_name_the_code_and_line(tmp_path, case, recwarn):
    p = write(tmp_path, case.file, case.data)
    exc = error(lambda: list(digest_log(p)))
    assert (exc.code, exc.extra.get("line")) == (case.code, case.line), exc.message
    assert exc.message.startswith(f"{p}:") or exc.code == "bench.unsupported_version"
    assert "\n" not in exc.message and len(exc.message) < 300
    # the columnar fast path and the line-by-line reader refuse it alike
    assert str(error(lambda: line_by_line(p))) == str(exc)


@pytest.mark.parametrize(
    "case", [c for c in LOGS if c.file == "a.jsonl" and c.name != "no header"], ids=lambda c: c.name
)
def test_the_columnar_reader_refuses_alike_inside_a_large_file(tmp_path, case, monkeypatch):
    """The same bad line after many good sessions: the columnar reader reads blocks before it."""
    good = jsonl(*[{**HEAD, "session_id": f"g{i}"} if j == 0 else {**END, "t": j} for i in range(50) for j in range(4)])
    p = write(tmp_path, case.file, good + case.data)
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 1000)
    exc = error(lambda: list(digest_log(p)))
    assert exc.code == case.code and exc.extra["line"] == (case.line + 200 if case.line else None)
    assert str(error(lambda: line_by_line(p))) == str(exc)


@pytest.mark.parametrize("case", CSVS, ids=lambda c: c.name)
def test_bad_trial_csvs_name_the_code_and_line(tmp_path, case):
    p = write(tmp_path, case.file, case.data)
    exc = error(read_trials, [p])
    assert (exc.code, exc.extra.get("line")) == (case.code, case.line), exc.message
    assert exc.message.startswith(f"{p}")


@pytest.mark.parametrize("case", PAIRWISE, ids=lambda c: c.name)
def test_bad_pairwise_csvs_name_the_code_and_line(tmp_path, case):
    p = write(tmp_path, case.file, case.data)
    exc = error(read_pairwise_csv, p)
    assert (exc.code, exc.extra.get("line")) == (case.code, case.line), exc.message


def test_caps_on_events_per_session_and_policies(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "MAX_EVENTS_PER_SESSION", 3)
    monkeypatch.setattr(columnar, "MAX_EVENTS_PER_SESSION", 3)
    p = write(tmp_path, "a.jsonl", jsonl(HEAD, END, END, END, END, HEAD, END))
    exc = error(lambda: list(digest_log(p)))
    assert exc.extra["line"] == 5 and "more than 3 events" in exc.message
    monkeypatch.setattr(digest, "MAX_POLICIES", 2)
    q = write(tmp_path, "b.jsonl", jsonl(*[{**HEAD, "policy": f"p{i}"} for i in range(3)]))
    out = CliRunner().invoke(bench, ["validate", str(q)])
    assert out.exit_code == 1 and "3 distinct policies" in out.output and "[bench.too_large]" in out.output


def test_a_file_without_newlines_is_refused_in_bounded_memory(tmp_path):
    p = write(tmp_path, "big.jsonl", b'{"type":"session","x":"' + b"a" * (48 << 20))
    tracemalloc.start()
    try:
        exc = error(lambda: list(digest_log(p)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.extra["line"] == 1 and "longer than" in exc.message
    assert peak < 24 << 20  # the file is 48 MB: read in bounded pieces, never whole


# ----------------------------------------------------------------------- validate == score (CLI)

_VERDICT = re.compile(r"(?:Error: |: )(.*) \[(bench\.[a-z_]+)\]\s*$", re.S)


def verdicts(tmp_path: Path, name: str, data: bytes, *, pairwise: bool) -> tuple[Any, Any]:
    p = write(tmp_path, name, data)
    good = write(tmp_path, "good.jsonl", log())
    runner = CliRunner()
    if pairwise:
        v = runner.invoke(bench, ["validate", str(good), "--pairwise", str(p)])
        s = runner.invoke(bench, ["score", str(good), "--pairwise", str(p), "--rounds", "20", "--format", "json"])
    else:
        v = runner.invoke(bench, ["validate", str(p)])
        s = runner.invoke(bench, ["score", str(p), "--rounds", "20", "--format", "json"])
    for r in (v, s):
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exc_info
        assert "Traceback" not in r.output
    def verdict(r: Any) -> Any:
        if r.exit_code == 0:
            return "ok"
        m = _VERDICT.search(r.output.strip().splitlines()[-1])
        assert m, r.output
        return (r.exit_code, m.group(1).removeprefix(f"{p}: "), m.group(2))

    return verdict(v), verdict(s)


@pytest.mark.parametrize("case", LOGS + CSVS + PAIRWISE, ids=lambda c: c.name)
def test_validate_refuses_exactly_what_score_refuses(tmp_path, case):
    got_validate, got_score = verdicts(tmp_path, case.file, case.data, pairwise=case in PAIRWISE)
    assert got_validate == got_score
    assert got_validate != "ok" and got_validate[2] == case.code


@pytest.mark.filterwarnings("ignore:.*ignoring truncated last line")
@pytest.mark.parametrize("name,file,data", GOOD_LOGS, ids=[g[0] for g in GOOD_LOGS])
def test_validate_and_score_accept_odd_but_valid_files(tmp_path, name, file, data):
    assert verdicts(tmp_path, file, data, pairwise=False) == ("ok", "ok")

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
    data: bytes
    line: int | None  # the line the error must name (None: the file as a whole)
    file: str
    code: str


def Log(name: str, data: bytes, line: int | None, file: str = "a.jsonl", code: str = "bench.bad_log") -> Case:
    return Case(name, data, line, file, code)


def Csv(name: str, data: bytes, line: int | None, file: str = "t.csv") -> Case:
    return Case(name, data, line, file, "bench.bad_csv")


def Pair(name: str, data: bytes, line: int | None) -> Case:
    return Case(name, data, line, "p.csv", "bench.bad_csv")


TRIALS = "policy,task,success,duration,progress,session,day\n"
PAIRS = "a,b,winner\nx,y,a\n"
DEEP = '{"type":"instruction","t":1,"id":"i","text":' + "[" * 100_000 + "]" * 100_000 + "}"

LOGS = [
    # text and JSON
    Log("non-utf8 event", log(b'{"type":"instruction","t":1,"id":"\xff\xfe"}'), 3),
    Log("non-utf8 header", jsonl(b'{"type":"session","session_id":"\xe9","policy":"P"}', END), 1),
    Log("garbage line", log("hello world"), 3),
    Log("garbage last line", jsonl(HEAD, END, "hello world"), 3),
    Log("binary garbage", log(bytes(range(256)).replace(b"\n", b"")), 3),
    Log("array line", log("[1, 2]"), 3),
    Log("number line", log("42"), 3),
    Log("no header", jsonl(END, HEAD), 1),
    Log("unknown type", log({"type": "teleport", "t": 1}), 3),
    Log("nested too deep", log(DEEP), 3),
    Log("newer format", jsonl({**HEAD, "format_version": 99}), 1, code="bench.unsupported_version"),
    # wrong types
    Log("t a string", with_event(t="abc"), 3),
    Log("t null", with_event(t=None), 3),
    Log("t NaN", log('{"type":"safety","t":NaN,"kind":"contact"}'), 3),
    Log("t Infinity", log('{"type":"safety","t":Infinity,"kind":"contact"}'), 3),
    Log("t overflows", log('{"type":"safety","t":1e400,"kind":"contact"}'), 3),
    Log("index 2.5", log(CHAIN, {**STEP, "index": 2.5}), 4),
    Log("index a string", log(CHAIN, {**STEP, "index": "2"}), 4),
    Log("length a string", log({**CHAIN, "length": "5"}), 3),
    Log("subtask a number", with_event(subtask=5), 3),
    Log("detected a string", log({"type": "conflict", "t": 1, "id": "k", "detected": "yes"}), 3),
    Log("instructions a string", log({"type": "conflict", "t": 1, "id": "k", "instructions": "i1"}), 3),
    Log("steps a float", with_event(steps=2.5), 3),
    Log("header seed 1.5", jsonl({**HEAD, "seed": 1.5}, END), 1),
    Log("header people", jsonl({**HEAD, "people": ["al"]}, END), 1),
    Log("header no policy", jsonl({k: v for k, v in HEAD.items() if k != "policy"}, END), 1),
    # impossible values
    Log("t negative", with_event(t=-1), 3),
    Log("progress 1.5", with_event(outcome="partial", progress=1.5), 3),
    Log("progress NaN", log('{"type":"subtask_end","t":1,"subtask":"a","outcome":"partial","progress":NaN}'), 3),
    Log("partial without progress", with_event(outcome="partial"), 3),
    Log("unknown outcome", with_event(outcome="won"), 3),
    Log("negative intervention", log({"type": "intervention", "t": 1, "reason": "x", "duration": -3}), 3),
    Log("NaN intervention", log('{"type":"intervention","t":1,"reason":"x","duration":NaN}'), 3),
    Log("index 0", log(CHAIN, {**STEP, "index": 0}), 4),
    Log("index beyond declared length", log(CHAIN, STEP, {**STEP, "index": 6}), 5),
    Log(
        "start index beyond declared length",
        log(CHAIN, {"type": "subtask_start", "t": 1, "subtask": "a", "chain": "c", "index": 7}),
        4,
    ),
    # absurd sizes (each once hung, or grew memory without bound)
    Log("index 10^9", log({**STEP, "index": 10**9}), 3),
    Log("length 10^9", log({**CHAIN, "length": 10**9}), 3),
    Log("t 10^12", with_event(t=1e12), 3),
    Log("long line", log({"type": "instruction", "t": 1, "id": "i", "text": "x" * MAX_LINE_BYTES}), 3),
    Log("no newline at all", b"{" * (3 * MAX_LINE_BYTES), 1),
    # compressed and columnar files
    Log("gzip cut short", gzip.compress(log() * 200)[:-40], None, file="a.jsonl.gz"),
    Log("not gzip", log(), None, file="a.jsonl.gz"),
    Log("not parquet", log(), None, file="a.parquet"),
]

CSVS = [
    Csv("csv non-utf8", (TRIALS + "p,x,1\n").encode() + b"p,\xff\xfe,1\n", 3),
    Csv("csv ragged row", (TRIALS + "p,x,1,1,1,s,0,extra,more\n").encode(), 2),
    Csv("csv garbage under header", TRIALS.encode() + b"\x00\x01\x02garbage\x00\n", 2),
    Csv("csv binary", TRIALS.encode() + bytes(range(256)), 2),
    Csv("csv quote never closed", (TRIALS + 'p,x,1\n"p,x,1\n' + "p,x,1\n" * 3).encode(), 6),
    Csv("csv success maybe", (TRIALS + "p,x,maybe\n").encode(), 2),
    Csv("csv duration abc", (TRIALS + "p,x,1\np,x,1,abc\n").encode(), 3),
    Csv("csv duration negative", (TRIALS + "p,x,1,-1\n").encode(), 2),
    Csv("csv duration nan", (TRIALS + "p,x,1,nan\n").encode(), 2),
    Csv("csv duration inf", (TRIALS + "p,x,1,inf\n").encode(), 2),
    Csv("csv duration 10^12", (TRIALS + "p,x,1,1e12\n").encode(), 2),
    Csv("csv progress 1.5", (TRIALS + "p,x,0,1,1.5\n").encode(), 2),
    Csv("csv day abc", (TRIALS + "p,x,0,1,0,s,abc\n").encode(), 2),
    Csv("csv empty policy", (TRIALS + ",x,1\n").encode(), 2),
    Csv("csv empty task", (TRIALS + "p,,1\n").encode(), 2),
    Csv("csv missing column", b"policy,task\np,x\n", 1),
    Csv("csv column twice", b"policy,task,success,duration,duration_s\np,x,1,1,1\n", 1),
    Csv("csv empty", b"", None),
    Csv("csv header only", TRIALS.encode(), None),
    Csv("csv line numbers after a quoted newline", (TRIALS + 'p,"x\ny",1\np,x,2\n').encode(), 4),
    Csv("csv two pairs in a session", b"policy,task,success,session,pair\np,x,1,s,k1\np,x,1,s,k2\n", 3),
    Csv("csv long row", (TRIALS + "p," + "x" * (MAX_LINE_BYTES + 10) + ",1\n").encode(), 2),
    Csv("csv gzip cut short", gzip.compress((TRIALS + "p,x,1\n" * 2000).encode())[:-40], None, file="t.csv.gz"),
]

PAIRWISE = [
    Pair("winner tiebreak_a", (PAIRS + "x,y,tiebreak_a\n").encode(), 3),
    Pair("winner missing", (PAIRS + "x,y\n").encode(), 3),
    Pair("winner unknown name", (PAIRS + "x,y,z\n").encode(), 3),
    Pair("same policy twice", (PAIRS + "x,x,a\n").encode(), 3),
    Pair("empty policy", (PAIRS + ",y,a\n").encode(), 3),
    Pair("pairwise ragged", (PAIRS + "x,y,a,1\n").encode(), 3),
    Pair("pairwise non-utf8", PAIRS.encode() + b"x,\xc3(,a\n", 3),
    Pair("pairwise no battles", b"a,b,winner\n", None),
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

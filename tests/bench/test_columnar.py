"""The columnar JSONL reader gives exactly the digests of the line-by-line reader, on clean logs
(read in columns) and on odd ones (handed over to the line-by-line reader), block size aside."""

from __future__ import annotations

import gc
import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from egocrowd.bench import columnar
from egocrowd.bench import schema as S
from egocrowd.bench.digest import SessionDigest, SessionTable, digest_log, digest_session
from egocrowd.bench.synthetic import SynthPolicy, write_synthetic
from egocrowd.errors import InvalidInput


def line_by_line(path: Path, strict: bool = True) -> list[SessionDigest]:
    return [digest_session(s, e) for s, e in S.iter_sessions(path, strict=strict)]


def assert_same(a: list[SessionDigest], b: list[SessionDigest]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for f in x.__dataclass_fields__:
            u, v = getattr(x, f), getattr(y, f)
            if isinstance(u, np.ndarray):
                assert isinstance(v, np.ndarray) and u.dtype == v.dtype and np.array_equal(u, v), (x.session_id, f)
            else:
                # a whole number of days may come back as a float: every use takes it as a float
                assert u == v and (type(u) is type(v) or f == "deployment_day"), (x.session_id, f, u, v)


def write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


HEAD = {"type": "session", "session_id": "s1", "policy": "P", "environment": "kitchen"}


def odd_rows() -> list[Any]:
    """Everything whose meaning depends on order or defaults, still read in columns."""
    return [
        {**HEAD, "protocol": "proto", "seed": 3, "deployment_day": 2, "people": [{"id": "al", "role": "parent"}]},
        {"type": "chain_start", "t": 0, "chain": "c1", "length": 2},
        {"type": "instruction", "t": 0, "id": "i1", "person": "al"},
        {"type": "instruction", "t": 1, "id": "i2", "person": ""},
        {
            "type": "subtask_end",
            "t": 5,
            "subtask": "a",
            "outcome": "success",
            "instruction": "i1",
            "chain": "c1",
            "index": 1,
        },
        {"type": "instruction", "t": 6, "id": "i1", "person": "bo"},  # same id, a new person from here on
        {"type": "subtask_end", "t": 7, "subtask": "b", "outcome": "partial", "progress": 0.5, "instruction": "i1"},
        {"type": "subtask_end", "t": 8, "subtask": "c", "outcome": "failure", "instruction": "i2", "person": ""},
        {"type": "subtask_end", "t": 9, "subtask": "d", "outcome": "success", "chain": "c1", "index": 3},
        {"type": "subtask_end", "t": 9.5, "subtask": "d", "outcome": "failure", "chain": "c1", "index": 1},
        {"type": "chain_start", "t": 10, "chain": "c1", "length": 5},  # the last declaration wins
        {"type": "subtask_start", "t": 10, "subtask": "e", "chain": "c2"},
        {"type": "misinterpretation", "t": 11, "id": "m1", "source": "injected"},
        {"type": "misinterpretation", "t": 12, "id": "m2"},
        {"type": "misinterpretation", "t": 12.5, "id": "m1"},  # re-opened: keeps its place in line
        {"type": "recovery", "t": 20},  # the oldest open one
        {"type": "recovery", "t": 21, "misinterpretation": "nope"},
        {"type": "intervention", "t": 22, "reason": "stuck"},
        {"type": "intervention", "t": 23, "reason": "stuck", "duration": 2.5, "person": "al"},
        {
            "type": "conflict",
            "t": 24,
            "id": "k1",
            "instructions": ["i1", "i2"],
            "detected": True,
            "resolution": "followed_priority",
            "expected": "followed_priority",
        },
        {
            "type": "conflict",
            "t": 25,
            "id": "k2",
            "instructions": ["i2", "i9"],
            "resolution": "asked_clarification",
            "correct": False,
        },
        {"type": "conflict", "t": 26, "id": "k3"},
        {"type": "clarification", "t": 27},
        {"type": "clarification", "t": 28, "needed": False},
        {"type": "safety", "t": 29, "kind": "near_miss"},
        {"type": "env_change", "t": 30, "kind": "lighting", "whatever": {"x": [1, 2]}},
        {"type": "session_end", "t": 31, "reason": "aborted"},
        {"type": "safety", "t": 40, "kind": "contact"},  # after the end: still counted, t still the duration
        {**HEAD, "session_id": "s2", "pair_key": "k", "site": "lab", "source": "real"},  # no events at all
        {**HEAD, "session_id": "s3", "people": []},
        {"type": "misinterpretation", "t": 3, "id": "m1", "source": "observed"},  # censored, no session_end
        {
            "type": "subtask_end",
            "t": 4,
            "subtask": "x",
            "outcome": "success",
            "person": "zed",
            "chain": "c9",
            "index": 2,
        },
    ]


def test_synthetic_logs_in_small_and_large_blocks(tmp_path, monkeypatch):
    p = tmp_path / "s.jsonl"
    write_synthetic(p, [SynthPolicy("a", 0.8), SynthPolicy("b", 0.6)], 30, seed=4)
    want = line_by_line(p)
    for block in (1 << 20, 5000, 300):  # 300 bytes: every session straddles several blocks
        monkeypatch.setattr(columnar, "BLOCK_BYTES", block)
        assert_same(list(digest_log(p)), want)


def test_taking_sessions_from_a_table_keeps_their_items_and_refuses_rows_out_of_order(tmp_path):
    p = tmp_path / "s.jsonl"
    write_synthetic(p, [SynthPolicy("a", 0.8), SynthPolicy("b", 0.6)], 4, seed=2)
    table = SessionTable.concat(list(columnar.tables_jsonl(p)))
    want = line_by_line(p)
    assert_same(list(table.take(np.array([1, 4, 6]))), [want[1], want[4], want[6]])
    for rows in ([4, 1], [3, 3]):
        with pytest.raises(ValueError, match="ascending"):
            table.take(np.array(rows))


def test_reading_wakes_the_cycle_collector_less_and_puts_its_threshold_back(tmp_path):
    from egocrowd.bench import digest
    from egocrowd.bench.score import read_sessions

    p = tmp_path / "s.jsonl"
    write_synthetic(p, [SynthPolicy("a", 0.8)], 3, seed=1)
    before = gc.get_threshold()
    seen = []
    with digest.fewer_collections():
        seen.append(gc.get_threshold()[0])
        with digest.fewer_collections():  # nested (or another thread's): the outer one restores
            pass
        seen.append(gc.get_threshold()[0])
        assert len(read_sessions([p])) == 3
        seen.append(gc.get_threshold()[0])
    assert seen == [digest.READING_COLLECT_EVERY] * 3 and gc.get_threshold() == before
    bad = write_lines(tmp_path / "bad.jsonl", [{**HEAD}, {"type": "chain_start", "t": -1, "chain": "c"}])
    with pytest.raises(InvalidInput):
        read_sessions([bad])
    assert gc.get_threshold() == before  # put back when the read fails too


def test_order_and_defaults_are_read_in_columns(tmp_path, monkeypatch):
    p = write_lines(tmp_path / "odd.jsonl", odd_rows())
    monkeypatch.setattr(columnar, "digest_session", None)  # prove the columns did it all
    got = list(digest_log(p))
    monkeypatch.undo()
    assert_same(got, line_by_line(p))
    assert got[0].out_person[:3] == ["al", "bo", "(unattributed)"] and got[0].pair_key == "proto:3"


def _spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the blocks read one buffer per line type and those read whole."""
    seen = {"by_type": 0, "whole": 0}
    by_type, whole = columnar._parse_by_type, columnar._Whole

    def spy_by_type(*a: Any, **kw: Any) -> Any:
        seen["by_type"] += 1
        return by_type(*a, **kw)

    def spy_whole(tab: Any) -> Any:
        seen["whole"] += 1
        return whole(tab)

    monkeypatch.setattr(columnar, "_parse_by_type", spy_by_type)
    monkeypatch.setattr(columnar, "_Whole", spy_whole)
    return seen


@pytest.mark.parametrize("separators", [(",", ":"), (", ", ": ")])
def test_lines_naming_their_type_first_are_read_by_type(tmp_path, monkeypatch, separators):
    rows = odd_rows()
    p = tmp_path / "odd.jsonl"
    p.write_text("".join(json.dumps(r, separators=separators) + "\n" for r in rows))
    seen = _spy(monkeypatch)
    monkeypatch.setattr(columnar, "digest_session", None)  # in columns, not handed over
    got = list(digest_log(p))
    monkeypatch.undo()
    assert seen["by_type"] >= 1 and seen["whole"] == 0
    assert_same(got, line_by_line(p))


def test_lines_naming_their_type_later_are_read_whole(tmp_path, monkeypatch):
    rows = odd_rows()
    rows[5] = {k: rows[5][k] for k in [*list(rows[5])[1:], "type"]}  # "type" last on one line
    p = write_lines(tmp_path / "late.jsonl", rows)
    seen = _spy(monkeypatch)
    monkeypatch.setattr(columnar, "digest_session", None)
    got = list(digest_log(p))
    monkeypatch.undo()
    assert seen["whole"] >= 1  # (a first block holding less than a session may be tried by type)
    assert_same(got, line_by_line(p))


@pytest.mark.parametrize(
    "line",
    [
        # the last "type" counts for the line reader; arrow refuses a key given twice
        '{"type":"subtask_end","t":4,"subtask":"a","outcome":"success","type":"recovery"}',
        # a field of another type is kept unchecked in ``extra`` by the line reader
        '{"type":"subtask_end","t":4,"subtask":"a","outcome":"success","text":5,"kind":[1]}',
        '{"type":"subtask_endx","t":4}',  # no such type (skipped when not strict)
        '{"type":"safety","t":4,"kind":"contact","separation_m":"far"}',  # a wrong type of its own field
    ],
)
def test_by_type_reads_as_the_line_reader(tmp_path, line):
    rows: list[Any] = odd_rows()
    rows.insert(6, line)
    p = write_lines(tmp_path / "x.jsonl", rows)
    for strict in (True, False):
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert _outcome(lambda s=strict: list(digest_log(p, strict=s))) == _outcome(
                lambda s=strict: line_by_line(p, strict=s)
            )


@pytest.mark.parametrize(
    "header",
    [
        {"meta": {"robot": {"arm": 7}}},  # an object of any shape: read by the Session class
        {"site": "lab", "policy_version": "v2", "robot": "r1", "seed": 9, "protocol": "p"},  # pair key made
        {"pair_key": "given", "protocol": "p", "seed": 1},
        {"people": [{"id": "al", "role": "parent", "priority": 0}, {"id": "al", "role": "child"}]},  # last wins
        {"people": []},
        {"deployment_day": 1.5, "format_version": 1},
        {"surprise": [1, {"x": 2}]},  # an unknown field is kept in ``extra``
        {"seed": 3.0},  # an integer written as a float
        {"people": [{"role": "parent"}]},  # a person without id
        {"people": [{"id": "al", "age": 7}]},  # an unknown key inside a person
        {"people": [{"id": "al", "priority": True}]},
        {"people": ["al"]},
        {"session_id": ""},
        {"source": "dream"},
        {"format_version": 99},
        {"deployment_day": "monday"},
        {"policy": 5},
    ],
)
def test_headers_read_by_arrow_read_as_the_line_reader(tmp_path, header):
    rows: list[Any] = odd_rows()
    rows[0] = {**rows[0], **header}
    rows += [{**HEAD, "session_id": "s2"}, {"type": "session_end", "t": 3}]  # a second, plain session
    p = write_lines(tmp_path / "x.jsonl", rows)
    for strict in (True, False):
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert _outcome(lambda s=strict: list(digest_log(p, strict=s))) == _outcome(
                lambda s=strict: line_by_line(p, strict=s)
            )


def _misinterpreted(*rest: dict[str, Any]) -> list[Any]:
    return [
        {**HEAD, "people": [{"id": "al"}]},
        {"type": "misinterpretation", "t": 1, "id": "m1", "source": "injected"},
        {"type": "misinterpretation", "t": 2, "id": "m2"},
        {"type": "misinterpretation", "t": 3, "id": "m3", "source": "observed"},
        {"type": "recovery", "t": 4, "misinterpretation": "m2"},
        {"type": "recovery", "t": 5, "misinterpretation": "elsewhere"},  # no such one: ignored
        *rest,
        {"type": "recovery", "t": 6, "misinterpretation": "m1"},
        {"type": "session_end", "t": 9},
        {**HEAD, "session_id": "s2"},
        {"type": "misinterpretation", "t": 1, "id": "m1"},  # the same id in another session
        {"type": "recovery", "t": 0.5, "misinterpretation": "m1"},  # t before it: time 0
        {"type": "misinterpretation", "t": 2, "id": "m9"},  # open at the end: censored
    ]


@pytest.mark.parametrize(
    "rest, walked",
    [
        ((), False),
        (({"type": "recovery", "t": 5.5, "misinterpretation": "m2"},), True),  # recovered twice
        (({"type": "recovery", "t": 5.5},), True),  # names none: the oldest open one
        (({"type": "misinterpretation", "t": 5.5, "id": "m3"},), True),  # an id re-opened
        (
            (
                {"type": "recovery", "t": 5.5, "misinterpretation": "m4"},
                {"type": "misinterpretation", "t": 5.7, "id": "m4"},
            ),
            True,
        ),
    ],
)
def test_misinterpretations_paired_in_columns_as_the_line_reader(tmp_path, monkeypatch, rest, walked):
    p = write_lines(tmp_path / "m.jsonl", _misinterpreted(*rest))
    used = []
    paired = columnar._paired_misinterpretations
    monkeypatch.setattr(columnar, "_paired_misinterpretations", lambda *a: used.append(paired(*a)) or used[-1])
    got = list(digest_log(p))
    assert used[0] is not walked and all(used[1:])  # the second session, in its own block, pairs
    assert_same(got, line_by_line(p))
    if not walked:
        assert (got[0].mis_time.tolist(), got[0].mis_recovered.tolist(), got[0].mis_injected.tolist()) == (
            [2.0, 5.0, 6.0],
            [1, 1, 0],
            [0, 1, 0],
        )
        assert (got[1].mis_time.tolist(), got[1].mis_recovered.tolist()) == ([0.0, 0.0], [1, 0])


def _outcome(read: Any) -> Any:
    """The error a reader raises, or its digests as comparable tuples."""
    try:
        ds = read()
    except InvalidInput as exc:
        return exc.code, str(exc)
    return [tuple(repr(getattr(d, f)) for f in d.__dataclass_fields__) for d in ds]


@pytest.mark.parametrize(
    "change",
    [
        lambda rows: rows.insert(3, {"type": "instruction", "t": 0.5, "id": "i7", "person": None}),  # null literal
        lambda rows: rows.insert(3, ""),  # blank line
        lambda rows: rows.insert(
            4, {"type": "subtask_end", "t": 4, "subtask": "a", "outcome": "success", "chain": "c1"}
        ),
        lambda rows: rows.insert(4, '{"type":"instruction","t":4,"id":"a","id":"b","person":"x"}'),  # repeated key
        lambda rows: rows.insert(
            4, {"type": "subtask_end", "t": 4.0, "subtask": "a", "outcome": "success", "index": 1.0}
        ),
        lambda rows: rows.__setitem__(0, {**rows[0], "meta": {"run": 1}}),
    ],
)
def test_odd_lines_are_handed_to_the_line_reader_with_the_same_result(tmp_path, change, monkeypatch):
    rows = odd_rows()
    change(rows)
    p = write_lines(tmp_path / "odd.jsonl", rows)
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 700)
    assert_same(list(digest_log(p)), line_by_line(p))


def errors_of(p: Path, **kw: Any) -> tuple[str | None, str]:
    try:
        list(digest_log(p, **kw))
    except InvalidInput as exc:
        return exc.code, str(exc)
    raise AssertionError("no error")


@pytest.mark.parametrize(
    "bad",
    [
        '{"type":"subtask_end","t":1,"subtask":"a"',  # corrupt line inside the file
        {"type": "subtask_end", "t": -1, "subtask": "a", "outcome": "success"},
        {"type": "subtask_end", "t": 1, "subtask": "a", "outcome": "won"},
        {"type": "subtask_end", "t": 1, "subtask": "a", "outcome": "partial"},
        {"type": "subtask_end", "t": 1, "subtask": "a", "outcome": "success", "index": 0},
        {"type": "chain_start", "t": 1, "chain": "c", "length": 0},
        {"type": "intervention", "t": 1, "reason": "x", "duration": -2},
        {"type": "safety", "t": 1},
        {"type": "teleport", "t": 1},
        {**HEAD, "session_id": "s9", "people": [{"id": "a", "age": 3}]},
        {**HEAD, "session_id": "s9", "format_version": 99},
        {**HEAD, "session_id": ""},
        {"type": "instruction", "t": 4, "id": 7, "person": 5},  # numbers for strings
        {"type": "subtask_end", "t": 1, "subtask": "a", "outcome": "success", "chain": "c1", "index": 2.5},
        {"type": "subtask_end", "t": 1, "subtask": "a", "outcome": "success", "chain": "c1", "index": 6},  # > 5
    ],
)
def test_invalid_lines_raise_as_before(tmp_path, bad, monkeypatch):
    rows = odd_rows()
    rows.insert(20, bad)
    p = write_lines(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InvalidInput) as want:
        line_by_line(p)
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 900)
    assert errors_of(p) == (want.value.code, str(want.value))


def test_first_line_must_be_a_header_and_unknown_types_skip_when_not_strict(tmp_path):
    p = write_lines(tmp_path / "a.jsonl", odd_rows()[1:])
    with pytest.raises(InvalidInput, match="must start with a session header"):
        list(digest_log(p))
    rows = odd_rows()
    rows.insert(5, {"type": "teleport", "t": 1})
    p = write_lines(tmp_path / "b.jsonl", rows)
    assert_same(list(digest_log(p, strict=False)), line_by_line(p, strict=False))


def test_truncated_last_line_and_gzip(tmp_path, monkeypatch):
    p = tmp_path / "t.jsonl"
    p.write_text(write_lines(tmp_path / "x.jsonl", odd_rows()).read_text() + '{"type":"safety","t":1,"ki')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = list(digest_log(p))
    assert any("ignoring truncated last line" in str(x.message) for x in w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(got, line_by_line(p))
    g = tmp_path / "t.jsonl.gz"
    g.write_bytes(gzip.compress((tmp_path / "x.jsonl").read_bytes()))
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 500)
    assert_same(list(digest_log(g)), line_by_line(g))


def test_progress_counts_every_byte_once(tmp_path, monkeypatch):
    p = tmp_path / "s.jsonl"
    write_synthetic(p, [SynthPolicy("a")], 10)
    lines = p.read_text().splitlines(keepends=True)
    lines.insert(len(lines) // 2, "\n")  # the second half goes line by line
    p.write_text("".join(lines))
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 2000)
    seen: list[int] = []
    list(digest_log(p, on_progress=seen.append))
    assert sum(seen) == p.stat().st_size


@pytest.mark.parametrize("bad_error", [False, True])
def test_hand_over_while_the_next_block_is_parsed_ahead(tmp_path, monkeypatch, bad_error):
    """A block that only its reduction sends to the line reader (a chain step without an index),
    in the middle of a log: the block read ahead meanwhile is read again, line by line."""
    p = tmp_path / "s.jsonl"
    write_synthetic(p, [SynthPolicy("a", 0.8), SynthPolicy("b", 0.6)], 20, seed=2)
    lines = p.read_text().splitlines(keepends=True)
    at = len(lines) // 2
    step = {"type": "subtask_end", "t": 0.0, "subtask": "x", "outcome": "success", "chain": "zz"}
    lines.insert(at, json.dumps(step) + "\n")
    if bad_error:  # and an error further on, found by the line reader with its line number
        lines.insert(at + 40, '{"type":"safety","t":1,"kind":"nope"}\n')
    p.write_text("".join(lines))
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 3000)
    if bad_error:
        with pytest.raises(InvalidInput) as want:
            line_by_line(p)
        assert errors_of(p) == (want.value.code, str(want.value)) and f":{at + 41}:" in str(want.value)
    else:
        assert_same(list(digest_log(p)), line_by_line(p))

"""Property-based fuzzing of the bench readers: arbitrary bytes and structure-aware mutations of
valid files either read or raise our InvalidInput (never another exception); the columnar and the
line-by-line JSONL readers agree on every input; what reads also scores. Inputs are small and
examples few, so this runs in seconds; the deadline catches a hang or a blow-up in size."""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from egocrowd.bench import schema as S
from egocrowd.bench.digest import SessionDigest, digest_log, digest_session
from egocrowd.bench.importers import read_pairwise_csv, read_trials
from egocrowd.bench.metrics import ScoreConfig
from egocrowd.bench.ranking import Battle
from egocrowd.bench.score import score_digests
from egocrowd.errors import InvalidInput

FUZZ = settings(max_examples=40, deadline=timedelta(seconds=10), database=None)


def outcome(fn: Callable[[], Any]) -> Any:
    """("ok", value) or ("error", code, message); anything but our error fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a truncated last line is skipped with a warning
        try:
            return ("ok", fn())
        except InvalidInput as exc:
            assert exc.message and "\n" not in exc.message.split(": ", 1)[0]
            return ("error", exc.code, exc.message)


def summary(d: SessionDigest) -> tuple[Any, ...]:
    return tuple(
        v.tolist() if isinstance(v, np.ndarray) else dict(v) if isinstance(v, dict) else v
        for v in (getattr(d, f) for f in d.__dataclass_fields__)
    )


def scores(digests: list[SessionDigest], battles: list[Battle] | None = None) -> None:
    """What reads must score (validate == score): only our error, and JSON without NaN."""
    if not digests and not battles:
        return
    got = outcome(lambda: score_digests(digests, ScoreConfig(rounds=5), battles=battles))
    if got[0] == "ok":
        json.dumps(got[1], allow_nan=False)


def check_log(data: bytes, suffix: str = ".jsonl") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"log{suffix}"
        p.write_bytes(data)
        fast = outcome(lambda: list(digest_log(p)))
        slow = outcome(lambda: [digest_session(s, e) for s, e in S.iter_sessions(p)])
        if fast[0] == slow[0] == "ok":
            assert [summary(d) for d in fast[1]] == [summary(d) for d in slow[1]]
            scores(fast[1])
        else:
            assert fast == slow


def check_csv(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "t.csv"
        p.write_bytes(data)
        trials = outcome(lambda: read_trials([p]).digests)
        if trials[0] == "ok":
            scores(trials[1])
        battles = outcome(lambda: read_pairwise_csv(p))
        if battles[0] == "ok":
            scores([], battles[1])


# --------------------------------------------------------------------------- arbitrary bytes


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_a_log(data):
    check_log(data)
    check_log(b'{"type":"session","session_id":"s","policy":"p","environment":"e"}\n' + data)


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_as_a_csv(data):
    check_csv(data)
    check_csv(b"policy,task,success,duration,progress,session,day,pair\n" + data)
    check_csv(b"a,b,winner\n" + data)


# ----------------------------------------------------------------- mutations of valid files

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, 2, 5, 0.5, 2.5, 1e9, 10**9, "", "success", "partial", "c1", "i1", "m1", "al"])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)

HEAD = {"type": "session", "session_id": "s1", "policy": "P", "environment": "e", "people": [{"id": "al"}]}
EVENTS = [
    {"type": "chain_start", "t": 0, "chain": "c1", "length": 3},
    {"type": "instruction", "t": 0.5, "id": "i1", "person": "al", "text": "go", "priority": 1},
    {"type": "subtask_start", "t": 1, "subtask": "a", "chain": "c1", "index": 1},
    {"type": "subtask_end", "t": 2, "subtask": "a", "chain": "c1", "index": 1, "outcome": "success"},
    {"type": "subtask_end", "t": 3, "subtask": "b", "outcome": "partial", "progress": 0.5, "instruction": "i1"},
    {"type": "misinterpretation", "t": 4, "id": "m1", "source": "injected"},
    {"type": "recovery", "t": 5, "misinterpretation": "m1"},
    {"type": "intervention", "t": 6, "reason": "stuck", "duration": 2.5},
    {"type": "conflict", "t": 7, "id": "k1", "instructions": ["i1"], "detected": True, "resolution": "refused"},
    {"type": "clarification", "t": 8, "needed": False},
    {"type": "safety", "t": 9, "kind": "near_miss", "separation_m": 0.3},
    {"type": "env_change", "t": 10, "kind": "lighting"},
    {"type": "session_end", "t": 11, "reason": "completed"},
]


@st.composite
def mutated_log(draw: Any) -> bytes:
    rows: list[Any] = [dict(HEAD)] + [dict(e) for e in draw(st.lists(st.sampled_from(EVENTS), max_size=12))]
    if draw(st.booleans()):
        rows += [dict(HEAD, session_id="s2")] + [dict(e) for e in draw(st.lists(st.sampled_from(EVENTS), max_size=6))]
    for _ in range(draw(st.integers(1, 3))):
        row = rows[draw(st.integers(0, len(rows) - 1))]
        key = draw(st.sampled_from(sorted(row) + ["t", "index", "length", "progress", "extra"]))
        if draw(st.integers(0, 4)) == 0:
            row.pop(key, None)
        else:
            row[key] = draw(JSON_VALUES)
    text = b"".join(json.dumps(r).encode() + b"\n" for r in rows)  # NaN and Infinity literals too
    if draw(st.integers(0, 3)) == 0:  # cut short or with bytes spliced in
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(max_size=8)) + (text[at:] if draw(st.booleans()) else b"")
    return text


@FUZZ
@given(mutated_log())
def test_mutated_logs(data):
    check_log(data)


@FUZZ
@given(mutated_log())
def test_mutated_logs_gzipped(data):
    import gzip

    check_log(gzip.compress(data), ".jsonl.gz")


CELLS = st.sampled_from(["", "1", "0", "yes", "partial", "nan", "inf", "-1", "2.5", "1e12", "a", "b", "x,y", '"', "\n"])


@st.composite
def mutated_csv(draw: Any) -> bytes:
    header = draw(
        st.sampled_from(
            [
                ["policy", "task", "success", "duration", "progress", "session", "day", "pair"],
                ["model", "task", "outcome", "duration_s", "person", "env", "seed"],
                ["a", "b", "winner"],
                ["model_a", "model_b", "winner", "judge"],
            ]
        )
    )
    rows = [header]
    for _ in range(draw(st.integers(0, 6))):
        n = len(header) + draw(st.integers(-2, 2))
        rows.append([draw(CELLS | st.text(max_size=5)) for _ in range(max(n, 0))])
    text = "".join(",".join(r) + "\n" for r in rows).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 3)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(max_size=6)) + text[at:]
    return text


@FUZZ
@given(mutated_csv())
def test_mutated_csvs(data):
    check_csv(data)

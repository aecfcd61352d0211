"""Streaming reduction of a session's events to a small :class:`SessionDigest`.

Metrics never see raw events: a log of many GB is read line by line and each session is reduced to
a digest of a few numbers and short arrays (one entry per subtask outcome, chain and
misinterpretation). :func:`build_corpus` stacks digests into numpy arrays that the metrics and the
cluster bootstrap work on. This is the only place that interprets event semantics.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from egocrowd.bench import schema as S
from egocrowd.bench.limits import MAX_GROUPS, MAX_POLICIES
from egocrowd.errors import InvalidInput

NO_PERSON = "(unattributed)"


@dataclass(slots=True)
class SessionDigest:
    session_id: str
    policy: str
    environment: str
    site: str | None = None
    source: str = "sim"
    pair_key: str | None = None
    deployment_day: float | None = None
    duration: float = 0.0  # seconds (session_end.t, else last event t)
    end_reason: str | None = None  # None = no session_end (crashed/truncated log)
    people: dict[str, str | None] = field(default_factory=dict)
    # subtask outcomes, one entry per subtask_end
    out_t: list[float] = field(default_factory=list)
    out_success: list[int] = field(default_factory=list)
    out_progress: list[float] = field(default_factory=list)
    out_person: list[str] = field(default_factory=list)
    out_task: list[str] = field(default_factory=list)
    # chains: k (successes before first failure) and declared length
    chain_k: list[int] = field(default_factory=list)
    chain_len: list[int] = field(default_factory=list)
    # misinterpretations: time to recovery (or to censoring) and whether recovered
    mis_time: list[float] = field(default_factory=list)
    mis_recovered: list[int] = field(default_factory=list)
    mis_injected: list[int] = field(default_factory=list)
    # conflicts and clarifications
    conflicts: int = 0
    conflicts_detected: int = 0
    conflicts_correct: int = 0
    conflicts_clarified: int = 0
    resolutions: Counter[str] = field(default_factory=Counter)
    clarifications_needed: int = 0
    clarifications_unneeded: int = 0
    instructions: int = 0
    instructions_in_conflict: int = 0
    # interventions, safety, environment
    interventions: int = 0
    intervention_time: float = 0.0
    intervention_reasons: Counter[str] = field(default_factory=Counter)
    safety: Counter[str] = field(default_factory=Counter)
    env_changes: Counter[str] = field(default_factory=Counter)
    events: int = 0

    def compact(self) -> SessionDigest:
        """Swap the per-item lists for numpy arrays (and intern person names): a digest of a
        long session then costs bytes per item instead of a Python object per number."""
        self.out_t = np.asarray(self.out_t, dtype=np.float64)  # type: ignore[assignment]
        self.out_success = np.asarray(self.out_success, dtype=np.int32)  # type: ignore[assignment]
        self.out_progress = np.asarray(self.out_progress, dtype=np.float64)  # type: ignore[assignment]
        self.out_person = [sys.intern(p) for p in self.out_person]
        self.out_task = [sys.intern(t) for t in self.out_task]
        self.chain_k = np.asarray(self.chain_k, dtype=np.int64)  # type: ignore[assignment]
        self.chain_len = np.asarray(self.chain_len, dtype=np.int64)  # type: ignore[assignment]
        self.mis_time = np.asarray(self.mis_time, dtype=np.float64)  # type: ignore[assignment]
        self.mis_recovered = np.asarray(self.mis_recovered, dtype=np.int32)  # type: ignore[assignment]
        self.mis_injected = np.asarray(self.mis_injected, dtype=np.int32)  # type: ignore[assignment]
        return self

    @property
    def autonomous_time(self) -> float:
        """Session time minus time a human had control (never negative)."""
        return max(self.duration - self.intervention_time, 0.0)


def digest_session(session: S.Session, events: Iterable[S.Event]) -> SessionDigest:
    """Reduce one session's events (in log order) to a digest. One pass, memory O(open items)."""
    d = SessionDigest(
        session_id=session.session_id,
        policy=session.policy,
        environment=session.environment,
        site=session.site,
        source=session.source,
        pair_key=session.pair_key,
        deployment_day=None if session.deployment_day is None else float(session.deployment_day),
        people={p.id: p.role for p in session.people},
    )
    instr_person: dict[str, str] = {}
    chains: dict[str, dict[int, int]] = {}  # chain -> {index: success} (first outcome per index)
    chain_order: dict[str, int] = {}  # chain -> next implicit index when index is missing
    chain_declared: dict[str, int] = {}
    open_mis: dict[str, tuple[float, int]] = {}  # id -> (t, injected); insertion order = FIFO
    in_conflict: set[str] = set()
    last_t = 0.0
    n = 0
    for e in events:
        n += 1
        t = e.t
        if t > last_t:
            last_t = t
        # isinstance, not ``e.type``: the same test, and the type checker then knows the fields
        if isinstance(e, S.SubtaskEnd):
            person = e.person or (instr_person.get(e.instruction) if e.instruction else None) or NO_PERSON
            ok = 1 if e.outcome == "success" else 0
            d.out_t.append(t)
            d.out_success.append(ok)
            d.out_progress.append(e.progress or 0.0)  # never None after validation
            d.out_person.append(person)
            d.out_task.append(e.subtask)
            if e.chain is not None:
                idx = e.index
                if idx is None:
                    idx = chain_order.get(e.chain, 1)
                chain_order[e.chain] = idx + 1
                chains.setdefault(e.chain, {}).setdefault(idx, ok)
        elif isinstance(e, S.Instruction):
            d.instructions += 1
            if e.person:
                instr_person[e.id] = e.person
        elif isinstance(e, S.ChainStart):
            if e.chain is not None:  # always: validation requires it
                chain_declared[e.chain] = e.length
                chains.setdefault(e.chain, {})
        elif isinstance(e, S.SubtaskStart):
            if e.chain is not None:
                chains.setdefault(e.chain, {})
        elif isinstance(e, S.Misinterpretation):
            open_mis[e.id] = (t, 1 if e.source == "injected" else 0)
        elif isinstance(e, S.Recovery):
            key = e.misinterpretation
            if key is None and open_mis:
                key = next(iter(open_mis))  # oldest open one
            if key is not None and key in open_mis:
                t0, inj = open_mis.pop(key)
                d.mis_time.append(max(t - t0, 0.0))
                d.mis_recovered.append(1)
                d.mis_injected.append(inj)
        elif isinstance(e, S.Intervention):
            d.interventions += 1
            d.intervention_time += e.duration
            d.intervention_reasons[e.reason] += 1
        elif isinstance(e, S.Conflict):
            d.conflicts += 1
            d.conflicts_detected += bool(e.detected)
            d.conflicts_correct += bool(e.correct)
            d.conflicts_clarified += e.resolution == "asked_clarification"
            d.resolutions[e.resolution or "none"] += 1
            in_conflict.update(e.instructions)
        elif isinstance(e, S.Clarification):
            if e.needed:
                d.clarifications_needed += 1
            else:
                d.clarifications_unneeded += 1
        elif isinstance(e, S.Safety):
            d.safety[e.kind] += 1
        elif isinstance(e, S.EnvChange):
            d.env_changes[e.kind] += 1
        elif isinstance(e, S.SessionEnd):
            d.end_reason = e.reason
            d.duration = t
    d.events = n
    if d.end_reason is None:
        d.duration = last_t
    d.duration = max(d.duration, last_t)
    # misinterpretations never recovered are right-censored at the end of the session
    for t0, inj in open_mis.values():
        d.mis_time.append(max(d.duration - t0, 0.0))
        d.mis_recovered.append(0)
        d.mis_injected.append(inj)
    for chain, outcomes in chains.items():
        k = 0
        while outcomes.get(k + 1) == 1:  # CALVIN: a chain stops at its first failure
            k += 1
        d.chain_k.append(k)
        d.chain_len.append(max(chain_declared.get(chain, 0), max(outcomes, default=0)))
    d.instructions_in_conflict = len(in_conflict)
    return d.compact()


def digest_log(
    path: str | os.PathLike[str], *, strict: bool = True, on_progress: Callable[[int], None] | None = None
) -> Iterator[SessionDigest]:
    """Stream a log file to one digest per session (see :func:`log_tables`)."""
    for table in log_tables(path, strict=strict, on_progress=on_progress):
        yield from table


def log_tables(
    path: str | os.PathLike[str], *, strict: bool = True, on_progress: Callable[[int], None] | None = None
) -> Iterator[SessionTable]:
    """Stream a log file to tables of digests, in file order.

    JSONL logs are read in columnar blocks (:mod:`egocrowd.bench.columnar`, same digests, several
    times faster); Parquet logs line by line.
    """
    p = Path(path)
    if p.suffix == ".parquet":
        sessions = S.iter_sessions(p, strict=strict, on_progress=on_progress)
        digests = (digest_session(session, events) for session, events in sessions)  # each in turn
        while chunk := list(itertools.islice(digests, TABLE_SESSIONS)):
            yield SessionTable.from_digests(chunk)
        return
    from egocrowd.bench.columnar import tables_jsonl  # imports this module

    yield from tables_jsonl(p, strict=strict, on_progress=on_progress)


#: sessions read line by line that are gathered into one table
TABLE_SESSIONS = 1000

# How many new objects wake Python's cycle collector while logs are read (its default is 700).
# Reading a block allocates a few thousand short-lived objects (arrow's wrappers, small lists) and
# keeps almost none, yet at 700 every block set off a collection, and these in turn the rare one of
# the whole heap: 70 ms with the interpreter held, in a process that has numpy, pyarrow and pandas
# loaded (1M events: 17 collections, 70 ms; at 50,000: one, 1 ms). Cyclic garbage is still
# collected, in larger batches (memory stays bounded).
READING_COLLECT_EVERY = 50_000
_reading = threading.Lock()
_readers = 0
_threshold: tuple[int, int, int] | None = None


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the cycle collector's first threshold to :data:`READING_COLLECT_EVERY` for a while
    (process-wide: nested and concurrent readers share it; the last one out restores it)."""
    global _readers, _threshold
    with _reading:
        if _readers == 0:
            _threshold = gc.get_threshold()
            gc.set_threshold(max(READING_COLLECT_EVERY, _threshold[0]), *_threshold[1:])
        _readers += 1
    try:
        yield
    finally:
        with _reading:
            _readers -= 1
            if _readers == 0 and _threshold is not None:
                gc.set_threshold(*_threshold)


def check_inputs(digests: Iterable[SessionDigest], battles: Iterable[Any] = ()) -> None:
    """The caps that span all inputs scored together (each file's own rules are checked as it is
    read): distinct policies, and distinct tasks, people and environments. ``validate`` and
    ``score`` both run this, so one accepts exactly what the other does."""
    t = as_table(digests)
    policies: set[str] = set(t.heads["policy"])
    groups = {
        "tasks": set(t.items["out_task"].tolist()),
        "people": set(t.items["out_person"].tolist()),
        "environments": set(t.heads["environment"]),
    }
    for b in battles:
        policies.update((b.a, b.b))
    counts = {"policies": (len(policies), MAX_POLICIES), **{k: (len(v), MAX_GROUPS) for k, v in groups.items()}}
    for what, (n, cap) in counts.items():
        if n > cap:
            raise InvalidInput(
                f"{n} distinct {what} in the inputs; at most {cap} are scored together", code="bench.too_large"
            )


# ----------------------------------------------------------------------------------------- table

#: per-session strings and other Python values of a digest, in a table as lists
HEAD_FIELDS = (
    "session_id",
    "policy",
    "environment",
    "site",
    "source",
    "pair_key",
    "deployment_day",
    "people",
    "end_reason",
)
#: per-session counts (integers)
COUNT_FIELDS = (
    "conflicts",
    "conflicts_detected",
    "conflicts_correct",
    "conflicts_clarified",
    "clarifications_needed",
    "clarifications_unneeded",
    "instructions",
    "instructions_in_conflict",
    "interventions",
    "events",
)
#: per-session Counters of labels
TALLY_FIELDS = ("resolutions", "intervention_reasons", "safety", "env_changes")
#: per-item arrays, by the kind of item (its session in ``<kind>_sess``) and their dtypes
ITEM_FIELDS: dict[str, dict[str, Any]] = {
    "out": {
        "out_t": np.float64,
        "out_success": np.int32,
        "out_progress": np.float64,
        "out_person": object,
        "out_task": object,
    },
    "chain": {"chain_k": np.int64, "chain_len": np.int64},
    "mis": {"mis_time": np.float64, "mis_recovered": np.int32, "mis_injected": np.int32},
}


@dataclass(eq=False)  # arrays: no element-wise == of whole tables
class Tally:
    """Labels counted per session: rows grouped by session (non-decreasing ``sess``), each session's
    labels in the order they were first seen, as in the digests' Counters."""

    sess: np.ndarray
    label: np.ndarray  # object array of str
    count: np.ndarray

    def total(self) -> dict[str, int]:
        """Counts over all sessions, in first-seen order (as summing the Counters in order gives them)."""
        out: dict[str, int] = {}
        for k, v in zip(self.label.tolist(), self.count.tolist()):
            out[k] = out.get(k, 0) + v
        return {k: v for k, v in out.items() if v > 0}

    def per_session(self, n: int, label: str | None = None) -> np.ndarray:
        """Each session's count (of one label, or of all)."""
        rows = slice(None) if label is None else self.label == label
        return np.bincount(self.sess[rows], weights=self.count[rows], minlength=n)


@dataclass(eq=False)
class SessionTable(Sequence[SessionDigest]):
    """The digests of many sessions in columns: what the columnar reader makes and the metrics read,
    with no Python object per session. It is also a sequence of :class:`SessionDigest` (each made
    when asked for), for code that wants one session at a time."""

    heads: dict[str, list[Any]]  # HEAD_FIELDS → one value per session
    duration: np.ndarray
    intervention_time: np.ndarray
    counts: dict[str, np.ndarray]  # COUNT_FIELDS → int64 per session
    items: dict[str, np.ndarray]  # "<kind>_sess" and every ITEM_FIELDS array, items grouped by session
    tallies: dict[str, Tally]  # TALLY_FIELDS
    _cached_bounds: dict[str, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.duration)

    @overload
    def __getitem__(self, i: int) -> SessionDigest: ...
    @overload
    def __getitem__(self, i: slice) -> list[SessionDigest]: ...
    def __getitem__(self, i: int | slice) -> SessionDigest | list[SessionDigest]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        i %= n
        bounds = self._bounds()
        values: dict[str, Any] = {f: self.heads[f][i] for f in HEAD_FIELDS}
        values.update({f: int(self.counts[f][i]) for f in COUNT_FIELDS})
        d = SessionDigest(
            **values, duration=float(self.duration[i]), intervention_time=float(self.intervention_time[i])
        )
        for kind, fields in ITEM_FIELDS.items():
            lo, hi = bounds[kind][i], bounds[kind][i + 1]
            for f, dtype in fields.items():
                v = self.items[f][lo:hi]
                setattr(d, f, v.tolist() if dtype is object else v)
        for f in TALLY_FIELDS:
            t = self.tallies[f]
            lo, hi = bounds[f][i], bounds[f][i + 1]
            c: Counter[str] = Counter()
            c.update(dict(zip(t.label[lo:hi].tolist(), t.count[lo:hi].tolist())))
            setattr(d, f, c)
        return d

    def _bounds(self) -> dict[str, np.ndarray]:
        """Where each session's items start, by kind (searching the grouped ``*_sess`` arrays)."""
        if self._cached_bounds is None:
            edges = np.arange(len(self) + 1)
            out = {kind: np.searchsorted(self.items[f"{kind}_sess"], edges) for kind in ITEM_FIELDS}
            out.update({f: np.searchsorted(self.tallies[f].sess, edges) for f in TALLY_FIELDS})
            self._cached_bounds = out
        return self._cached_bounds

    @classmethod
    def from_digests(cls, digests: Iterable[SessionDigest]) -> SessionTable:
        ds = list(digests)
        n = len(ds)
        items: dict[str, np.ndarray] = {}
        for kind, fields in ITEM_FIELDS.items():
            for j, (f, dtype) in enumerate(fields.items()):
                lists = [getattr(d, f) for d in ds]
                if j == 0:
                    lens = np.fromiter(map(len, lists), dtype=np.int64, count=n)
                    items[f"{kind}_sess"] = np.repeat(np.arange(n, dtype=np.int64), lens)
                if dtype is object:  # strings: one list, then one array (numpy would make fixed-width str)
                    items[f] = np.array(list(itertools.chain.from_iterable(lists)), dtype=object)
                else:  # arrays (compacted digests) or lists
                    items[f] = np.concatenate([np.zeros(0, dtype), *lists]).astype(dtype, copy=False)
        tallies = {}
        for f in TALLY_FIELDS:
            sess, label, count = [], [], []
            for i, d in enumerate(ds):
                for k, v in getattr(d, f).items():
                    sess.append(i)
                    label.append(k)
                    count.append(v)
            tallies[f] = Tally(
                np.array(sess, dtype=np.int64), np.array(label, dtype=object), np.array(count, dtype=np.int64)
            )
        return cls(
            heads={f: [getattr(d, f) for d in ds] for f in HEAD_FIELDS},
            duration=np.array([d.duration for d in ds], dtype=np.float64),
            intervention_time=np.array([d.intervention_time for d in ds], dtype=np.float64),
            counts={f: np.array([getattr(d, f) for d in ds], dtype=np.int64) for f in COUNT_FIELDS},
            items=items,
            tallies=tallies,
        )

    @classmethod
    def concat(cls, tables: Sequence[SessionTable]) -> SessionTable:
        if len(tables) == 1:
            return tables[0]
        if not tables:
            return cls.from_digests([])
        offset = np.cumsum([0] + [len(t) for t in tables[:-1]]).tolist()

        def shifted(arrays: Iterable[np.ndarray]) -> np.ndarray:
            """Session numbers of each table's items, counted on from the tables before it."""
            return np.concatenate([a + o for a, o in zip(arrays, offset)])

        items = {
            f: shifted(t.items[f] for t in tables)
            if f.endswith("_sess")
            else np.concatenate([t.items[f] for t in tables])
            for f in tables[0].items
        }
        tallies = {
            f: Tally(
                shifted(t.tallies[f].sess for t in tables),
                np.concatenate([t.tallies[f].label for t in tables]),
                np.concatenate([t.tallies[f].count for t in tables]),
            )
            for f in TALLY_FIELDS
        }
        return cls(
            heads={f: list(itertools.chain.from_iterable(t.heads[f] for t in tables)) for f in HEAD_FIELDS},
            duration=np.concatenate([t.duration for t in tables]),
            intervention_time=np.concatenate([t.intervention_time for t in tables]),
            counts={f: np.concatenate([t.counts[f] for t in tables]) for f in COUNT_FIELDS},
            items=items,
            tallies=tallies,
        )

    def take(self, rows: np.ndarray) -> SessionTable:
        """The sessions at these rows (ascending), items and all."""
        rows = np.asarray(rows, dtype=np.int64)
        if (np.diff(rows) <= 0).any():  # items stay grouped by session only in the sessions' order
            raise ValueError("SessionTable.take needs ascending, distinct rows")
        new = np.full(len(self), -1, dtype=np.int64)
        new[rows] = np.arange(rows.size)

        def pick(sess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            keep = new[sess] >= 0
            return keep, new[sess[keep]]

        items = {}
        for kind, fields in ITEM_FIELDS.items():
            keep, sess = pick(self.items[f"{kind}_sess"])
            items[f"{kind}_sess"] = sess
            items.update({f: self.items[f][keep] for f in fields})
        tallies = {}
        for f in TALLY_FIELDS:
            t = self.tallies[f]
            keep, sess = pick(t.sess)
            tallies[f] = Tally(sess, t.label[keep], t.count[keep])
        at = rows.tolist()
        return SessionTable(
            heads={f: [v[i] for i in at] for f, v in ((f, self.heads[f]) for f in HEAD_FIELDS)},
            duration=self.duration[rows],
            intervention_time=self.intervention_time[rows],
            counts={f: v[rows] for f, v in self.counts.items()},
            items=items,
            tallies=tallies,
        )

    @property
    def autonomous(self) -> np.ndarray:
        """Session time minus time a human had control (never negative), per session."""
        return np.maximum(self.duration - self.intervention_time, 0.0)


def as_table(digests: Iterable[SessionDigest]) -> SessionTable:
    return digests if isinstance(digests, SessionTable) else SessionTable.from_digests(digests)


# ---------------------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """The sessions of one group (usually one policy) as flat numpy arrays.

    ``*_sess`` arrays map each item (outcome, chain, misinterpretation) to its session's row, the
    cluster for the bootstrap. ``table`` holds every other column; ``digests`` makes the sessions'
    :class:`SessionDigest` objects when a metric wants them one by one.
    """

    table: SessionTable
    n_sessions: int
    duration: np.ndarray
    autonomous: np.ndarray
    interventions: np.ndarray
    deployment_day: np.ndarray  # NaN where unknown
    out_sess: np.ndarray
    out_t: np.ndarray
    out_success: np.ndarray
    out_progress: np.ndarray
    out_person: np.ndarray  # object array of str
    chain_sess: np.ndarray
    chain_k: np.ndarray
    chain_len: np.ndarray
    mis_sess: np.ndarray
    mis_time: np.ndarray
    mis_recovered: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def digests(self) -> list[SessionDigest]:
        return list(self.table)

    def session_sum(self, item_sess: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Per-session sums of item values (counts when ``values`` is None)."""
        return np.bincount(item_sess, weights=values, minlength=self.n_sessions).astype(float)


def build_corpus(digests: Iterable[SessionDigest]) -> Corpus:
    t = as_table(digests)
    it = t.items
    day = t.heads["deployment_day"]
    return Corpus(
        table=t,
        n_sessions=len(t),
        duration=t.duration,
        autonomous=t.autonomous,
        interventions=t.counts["interventions"].astype(float),
        deployment_day=np.array([np.nan if x is None else x for x in day], dtype=float),
        out_sess=it["out_sess"],
        out_t=it["out_t"],
        out_success=it["out_success"].astype(float),
        out_progress=it["out_progress"],
        out_person=it["out_person"],
        chain_sess=it["chain_sess"],
        chain_k=it["chain_k"],
        chain_len=it["chain_len"],
        mis_sess=it["mis_sess"],
        mis_time=it["mis_time"],
        mis_recovered=it["mis_recovered"].astype(float),
    )

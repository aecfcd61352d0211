"""Streaming reduction of a session's events to a small :class:`SessionDigest`.

Metrics never see raw events: a log of many GB is read line by line and each session is reduced to
a digest of a few numbers and short arrays (one entry per subtask outcome, chain and
misinterpretation). :func:`build_corpus` stacks digests into numpy arrays that the metrics and the
cluster bootstrap work on. This is the only place that interprets event semantics.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """Stream a log file to one digest per session.

    JSONL logs are read in columnar blocks (:mod:`egocrowd.bench.columnar`, same digests, several
    times faster); Parquet logs line by line.
    """
    p = Path(path)
    if p.suffix == ".parquet":
        for session, events in S.iter_sessions(p, strict=strict, on_progress=on_progress):
            yield digest_session(session, events)
        return
    from egocrowd.bench.columnar import digest_jsonl  # imports this module

    yield from digest_jsonl(p, strict=strict, on_progress=on_progress)


def check_inputs(digests: Iterable[SessionDigest], battles: Iterable[Any] = ()) -> None:
    """The caps that span all inputs scored together (each file's own rules are checked as it is
    read): distinct policies, and distinct tasks, people and environments. ``validate`` and
    ``score`` both run this, so one accepts exactly what the other does."""
    policies: set[str] = set()
    groups: dict[str, set[str]] = {"tasks": set(), "people": set(), "environments": set()}
    for d in digests:
        policies.add(d.policy)
        groups["tasks"].update(d.out_task)
        groups["people"].update(d.out_person)
        groups["environments"].add(d.environment)
    for b in battles:
        policies.update((b.a, b.b))
    counts = {"policies": (len(policies), MAX_POLICIES), **{k: (len(v), MAX_GROUPS) for k, v in groups.items()}}
    for what, (n, cap) in counts.items():
        if n > cap:
            raise InvalidInput(
                f"{n} distinct {what} in the inputs; at most {cap} are scored together", code="bench.too_large"
            )


# ---------------------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """Digests of one group of sessions (usually one policy) as flat numpy arrays.

    ``*_sess`` arrays map each item (outcome, chain, misinterpretation) to its session's row, the
    cluster for the bootstrap.
    """

    digests: list[SessionDigest]
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

    def session_sum(self, item_sess: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """Per-session sums of item values (counts when ``values`` is None)."""
        return np.bincount(item_sess, weights=values, minlength=self.n_sessions).astype(float)


def build_corpus(digests: Sequence[SessionDigest]) -> Corpus:
    ds = list(digests)

    def cat(attr: str, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        lists = [getattr(d, attr) for d in ds]
        lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(ds))
        sess = np.repeat(np.arange(len(ds)), lens)
        if dtype is object:  # strings: one list, then one array (numpy would make fixed-width str)
            return sess, np.array(list(itertools.chain.from_iterable(lists)), dtype=object)
        if not lists:
            return sess, np.zeros(0, dtype=dtype)
        return sess, np.concatenate(lists).astype(dtype, copy=False)  # arrays (compacted) or lists

    out_sess, out_t = cat("out_t", float)
    _, out_success = cat("out_success", float)
    _, out_progress = cat("out_progress", float)
    _, out_person = cat("out_person", object)
    chain_sess, chain_k = cat("chain_k", np.int64)
    _, chain_len = cat("chain_len", np.int64)
    mis_sess, mis_time = cat("mis_time", float)
    _, mis_recovered = cat("mis_recovered", float)
    return Corpus(
        digests=ds,
        n_sessions=len(ds),
        duration=np.array([d.duration for d in ds], dtype=float),
        autonomous=np.array([d.autonomous_time for d in ds], dtype=float),
        interventions=np.array([d.interventions for d in ds], dtype=float),
        deployment_day=np.array([np.nan if d.deployment_day is None else d.deployment_day for d in ds], dtype=float),
        out_sess=out_sess,
        out_t=out_t,
        out_success=out_success,
        out_progress=out_progress,
        out_person=out_person,
        chain_sess=chain_sess,
        chain_k=chain_k,
        chain_len=chain_len,
        mis_sess=mis_sess,
        mis_time=mis_time,
        mis_recovered=mis_recovered,
    )

"""Importers so a lab with spreadsheets gets the statistics at once.

**Trials CSV** (:func:`read_trials_csv`): one row per trial. Columns (header names are
case-insensitive; aliases in brackets):

    policy [model]          required  policy name
    task                    required  task name
    success [outcome]       required  1/0, true/false, yes/no, success/failure/partial
    duration                optional  seconds the trial took (default 0)
    progress                optional  0–1 (default: 1 for success, 0 for failure)
    person                  optional  who gave the instruction
    environment [env]       optional  default "default"
    session                 optional  trials with the same (policy, session) form one cluster for the
                                      bootstrap and one session; without it every row is its own session
    day                     optional  days since deployment (drift across days)
    pair                    optional  pairing key for paired comparisons (default: task)

Within a session trials are laid end to end in file order: a trial starts when the previous one
ended, so "success against time into the session" works from durations alone.

**Pairwise CSV** (:func:`read_pairwise_csv`): one row per A/B battle with columns ``a`` [model_a,
policy_a], ``b`` [model_b, policy_b] and ``winner``: "a", "b", "tie", "model_a", "model_b",
"tie (bothbad)" (Chatbot Arena's spelling) or the winning policy's name.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from egocrowd.bench import schema as S
from egocrowd.bench.digest import NO_PERSON, SessionDigest
from egocrowd.bench.ranking import Battle
from egocrowd.errors import InvalidInput

IMPORTER_FORMAT_VERSION = 1

_TRUE = {"1", "true", "yes", "y", "success", "succeeded", "pass", "t"}
_FALSE = {"0", "false", "no", "n", "failure", "failed", "fail", "f", "partial"}
_ALIASES = {
    "model": "policy",
    "outcome": "success",
    "env": "environment",
    "model_a": "a",
    "policy_a": "a",
    "model_b": "b",
    "policy_b": "b",
}


def _open(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    try:
        if p.suffix == ".gz":
            return gzip.open(p, "rt", encoding="utf-8-sig", newline="")
        return open(p, encoding="utf-8-sig", newline="")  # utf-8-sig: spreadsheets add a BOM
    except FileNotFoundError:
        raise InvalidInput(f"file not found: {p}", code="bench.csv_not_found") from None


def _rows(path: str | os.PathLike[str], required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    with _open(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InvalidInput(f"{path}: empty CSV", code="bench.bad_csv")
        cols = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
        missing = [c for c in required if c not in cols]
        if missing:
            raise InvalidInput(
                f"{path}: missing column(s) {', '.join(missing)}; have {', '.join(cols)}", code="bench.bad_csv"
            )
        for lineno, row in enumerate(reader, 2):
            if not row or all(not x.strip() for x in row):
                continue
            yield lineno, {c: v.strip() for c, v in zip(cols, row)}


def _float(v: str | None, default: float | None, where: str, name: str) -> float | None:
    if v is None or v == "":
        return default
    try:
        x = float(v)
    except ValueError:
        x = math.nan
    if not math.isfinite(x):  # "nan"/"inf" parse as floats but poison every sum (and the JSON output)
        raise InvalidInput(f"{where}: {name} must be a number (finite); got {v!r}", code="bench.bad_csv")
    return x


def read_trials_csv(path: str | os.PathLike[str]) -> list[SessionDigest]:
    """Trials CSV → session digests, ready for :func:`egocrowd.bench.score.score_digests`."""
    sessions: dict[tuple[str, str], SessionDigest] = {}
    for lineno, r in _rows(path, ("policy", "task", "success")):
        where = f"{path}:{lineno}"
        s = r["success"].lower()
        if s in _TRUE:
            ok = 1
        elif s in _FALSE:
            ok = 0
        else:
            raise InvalidInput(
                f"{where}: success must be 1/0, true/false, yes/no; got {r['success']!r}", code="bench.bad_csv"
            )
        duration = _float(r.get("duration"), 0.0, where, "duration") or 0.0
        progress = _float(r.get("progress"), float(ok), where, "progress")
        if duration < 0 or progress is None or not 0 <= progress <= 1:
            raise InvalidInput(f"{where}: duration must be >= 0 and progress in [0, 1]", code="bench.bad_csv")
        policy = r["policy"]
        if not policy:
            raise InvalidInput(f"{where}: empty policy", code="bench.bad_csv")
        sid = r.get("session") or f"row{lineno}"
        key = (policy, sid)
        d = sessions.get(key)
        if d is None:
            d = sessions[key] = SessionDigest(
                session_id=f"{policy}/{sid}",
                policy=policy,
                environment=r.get("environment") or "default",
                source="real",
                deployment_day=_float(r.get("day"), None, where, "day"),
                end_reason="completed",
            )
            d.pair_key = r.get("pair") or r["task"]
        d.duration += duration
        d.out_t.append(d.duration)  # the trial ends when its duration has elapsed
        d.out_success.append(ok)
        d.out_progress.append(progress)
        d.out_person.append(r.get("person") or NO_PERSON)
        d.out_task.append(r["task"])
        d.events += 1
    if not sessions:
        raise InvalidInput(f"{path}: no trials", code="bench.bad_csv")
    return list(sessions.values())


def read_pairwise_csv(path: str | os.PathLike[str]) -> list[Battle]:
    """Pairwise A/B preference table → battles for :func:`egocrowd.bench.ranking.rank_battles`."""
    battles = []
    for lineno, r in _rows(path, ("a", "b", "winner")):
        a, b, w = r["a"], r["b"], r["winner"]
        wl = w.lower()
        if wl in ("a", "model_a"):
            winner = "a"
        elif wl in ("b", "model_b"):
            winner = "b"
        elif wl.startswith("tie") or wl in ("draw", "="):
            winner = "tie"
        elif w == a:
            winner = "a"
        elif w == b:
            winner = "b"
        else:
            raise InvalidInput(
                f"{path}:{lineno}: winner {w!r} is neither a, b, tie nor one of the two policies", code="bench.bad_csv"
            )
        try:
            battles.append(Battle(a, b, winner))
        except InvalidInput as exc:
            raise InvalidInput(f"{path}:{lineno}: {exc.message}", code="bench.bad_csv") from None
    if not battles:
        raise InvalidInput(f"{path}: no battles", code="bench.bad_csv")
    return battles


def digests_to_log(digests: list[SessionDigest], path: str | os.PathLike[str]) -> int:
    """Write imported trials as a regular bench log (one session per digest); returns events written.

    Each trial becomes subtask_start (when the previous trial ended) and subtask_end; so spreadsheet
    data can be converted to Parquet or merged with simulated logs.
    """
    total = 0
    for d in digests:
        session = S.Session(
            session_id=d.session_id,
            policy=d.policy,
            environment=d.environment,
            source=d.source,
            deployment_day=d.deployment_day,
            pair_key=d.pair_key,
            meta={"imported_from": "trials_csv", "importer_version": IMPORTER_FORMAT_VERSION},
        )
        events: list[S.Event] = []
        start = 0.0
        for t, ok, prog, person, task in zip(d.out_t, d.out_success, d.out_progress, d.out_person, d.out_task):
            who = None if person == NO_PERSON else person
            events.append(S.SubtaskStart(t=start, subtask=task, person=who))
            outcome = "success" if ok else ("partial" if 0 < prog < 1 else "failure")
            events.append(S.SubtaskEnd(t=t, subtask=task, outcome=outcome, progress=prog, person=who))
            start = t
        events.append(S.SessionEnd(t=d.duration, reason="completed"))
        total += S.write_log(path, session, events)
    return total

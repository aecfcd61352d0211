"""Importers so a lab with spreadsheets gets the statistics at once.

**Trials CSV** (:func:`read_trials_csv`): one row per trial. Columns (header names are
case-insensitive; aliases in brackets):

    policy [model]          required  policy name
    task                    required  task name
    success [outcome]       required  1/0, true/false, yes/no, success/failure/partial
    duration [duration_s]   optional  seconds the trial took (default 0)
    progress                optional  0–1 (default: 1 for success, 0 for failure)
    person                  optional  who gave the instruction
    environment [env]       optional  default "default"
    seed                    optional  protocol seed of the trial
    session                 optional  trials with the same (policy, session) form one cluster for the
                                      bootstrap and one session; without it every row is its own session
    day                     optional  days since deployment (drift across days)
    pair                    optional  pairing key for paired comparisons

Within a session trials are laid end to end in file order: a trial starts when the previous one
ended, so "success against time into the session" works from durations alone. A row without a
session is a session of one trial: it has no time axis, so it gives no drift within a session.

**Pairing** (which sessions of two policies are compared with each other): by the ``pair`` column
when every file has one (a session whose rows name two pairs is an error); otherwise by every
design column (task, environment, person, seed) that all files share and that is constant within
each session. A design column that varies inside a session cannot say which session pairs with
which, so it is left out, with a warning; when none is left the trials are not paired (warning).
Columns the importer does not know are reported, not silently ignored (:class:`TrialsImport`).

**Pairwise CSV** (:func:`read_pairwise_csv`): one row per A/B battle with columns ``a`` [model_a,
policy_a], ``b`` [model_b, policy_b] and ``winner``: "a", "b", "tie", "model_a", "model_b",
"tie (bothbad)" (Chatbot Arena's spelling), "draw" or the winning policy's name; any other
spelling is an error.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egocrowd.bench import schema as S
from egocrowd.bench.digest import NO_PERSON, SessionDigest
from egocrowd.bench.limits import (
    MAX_BATTLES,
    MAX_EVENTS_PER_SESSION,
    MAX_GROUPS,
    MAX_LINE_BYTES,
    MAX_POLICIES,
    MAX_SECONDS,
)
from egocrowd.bench.ranking import Battle
from egocrowd.errors import InvalidInput

IMPORTER_FORMAT_VERSION = 1

_TRUE = {"1", "true", "yes", "y", "success", "succeeded", "pass", "t"}
_FALSE = {"0", "false", "no", "n", "failure", "failed", "fail", "f", "partial"}
_ALIASES = {
    "model": "policy",
    "outcome": "success",
    "env": "environment",
    "duration_s": "duration",
    "model_a": "a",
    "policy_a": "a",
    "model_b": "b",
    "policy_b": "b",
}


#: Columns of a trials CSV that describe how a trial was set up, in the order a pair key lists them.
DESIGN_COLUMNS = ("task", "environment", "person", "seed")
TRIAL_COLUMNS = frozenset(
    {"policy", "task", "success", "duration", "progress", "person", "environment", "seed", "session", "day", "pair"}
)


def _bad(path: Any, line: int | None, msg: str) -> InvalidInput:
    return S.bad_line(path, line, msg, code="bench.bad_csv")


class _Lines:
    """The decoded text lines of a CSV for :func:`csv.reader`, each checked (UTF-8, length) as it
    is read, so an error names its line. ``row_bytes`` counts the bytes of the row being read: a
    quote never closed would otherwise make one row of the rest of the file."""

    def __init__(self, raw: Any, path: Any) -> None:
        self._lines = S.bounded_lines(raw, path, code="bench.bad_csv")
        self.path = path
        self.lineno = 0
        self.row_bytes = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.lineno += 1
        self.row_bytes += len(line)
        if self.row_bytes > MAX_LINE_BYTES:
            raise _bad(self.path, self.lineno, f"row longer than {MAX_LINE_BYTES} bytes (a quote not closed?)")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(self.path, self.lineno, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
        if "\0" in text:
            raise _bad(self.path, self.lineno, "a NUL character: binary data, not text")
        return text.removeprefix("\ufeff") if self.lineno == 1 else text  # spreadsheets add a BOM


def _rows(
    path: str | os.PathLike[str], required: tuple[str, ...], header_out: list[str] | None = None
) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows as ``(line number, {column: value})``; ``header_out`` receives the columns (aliases
    resolved). A short row reads as blank cells, as in a spreadsheet; a long one is an error unless
    the extra cells are blank (trailing commas)."""
    p = Path(path)
    try:
        raw = gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise InvalidInput(f"file not found: {p}", code="bench.csv_not_found") from None
    with raw:
        lines = _Lines(raw, path)
        reader = csv.reader(lines, strict=True)  # strict: a quote never closed is an error, not a swallowed file

        def row() -> tuple[int, list[str] | None]:
            lines.row_bytes = 0
            start = lines.lineno + 1
            try:
                return start, next(reader, None)
            except csv.Error as exc:
                raise _bad(path, lines.lineno, f"not a valid CSV row: {exc}") from None

        _, header = row()
        if header is None:
            raise _bad(path, None, "empty CSV")
        cols = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
        seen: dict[str, str] = {}
        for raw_name, c in zip(header, cols):
            if c in seen and c:
                # before, the later column silently won (e.g. both duration and duration_s)
                raise _bad(path, 1, f"column {c!r} given twice (as {seen[c]!r} and {raw_name.strip()!r})")
            seen[c] = raw_name.strip()
        if header_out is not None:
            header_out.extend(cols)
        missing = [c for c in required if c not in cols]
        if missing:
            raise _bad(path, 1, f"missing column(s) {', '.join(missing)}; have {', '.join(cols)}")
        while True:
            lineno, values = row()
            if values is None:
                return
            if all(not x.strip() for x in values):
                continue
            if len(values) > len(cols) and any(x.strip() for x in values[len(cols) :]):
                raise _bad(path, lineno, f"{len(values)} cells in a row under a header of {len(cols)} columns")
            yield lineno, {c: v.strip() for c, v in zip(cols, values)}


def _float(v: str | None, default: float | None, path: Any, line: int, name: str) -> float | None:
    if v is None or v == "":
        return default
    try:
        x = float(v)
    except ValueError:
        x = math.nan
    if not math.isfinite(x):  # "nan"/"inf" parse as floats but poison every sum (and the JSON output)
        raise _bad(path, line, f"{name} must be a number (finite); got {v!r}")
    return x


class _Distinct:
    """Counts distinct names of one kind (policies, tasks…) against a cap, so that an absurd file
    fails at the row that crosses it rather than after filling memory."""

    def __init__(self, what: str, cap: int) -> None:
        self.what, self.cap, self.seen = what, cap, set[str]()

    def add(self, name: str, path: Any, line: int) -> None:
        if name not in self.seen:
            if len(self.seen) >= self.cap:
                raise _bad(path, line, f"more than {self.cap} distinct {self.what}")
            self.seen.add(name)


@dataclass
class TrialsImport:
    """Trials read from one or more CSVs: digests ready for scoring, the columns that pair
    sessions across policies (empty: not paired) and warnings for the person who made the files."""

    digests: list[SessionDigest]
    pair_columns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Design:
    values: dict[str, str]  # design column -> value of the session's first row
    where: str  # file:line of that row
    varies: dict[str, str] = field(default_factory=dict)  # column -> file:line where it first differs


def read_trials_csv(path: str | os.PathLike[str]) -> list[SessionDigest]:
    """Trials CSV → session digests, ready for :func:`egocrowd.bench.score.score_digests`.

    Warnings (unknown columns, pairing) are dropped here; :func:`read_trials` returns them."""
    return read_trials([path]).digests


def read_trials(paths: Sequence[str | os.PathLike[str]]) -> TrialsImport:
    """Trials CSVs read together, so that sessions are paired by the design columns all of them share."""
    out = TrialsImport(digests=[])
    designs: list[_Design] = []
    headers: list[set[str]] = []
    caps = {
        "policy": _Distinct("policies", MAX_POLICIES),
        "task": _Distinct("tasks", MAX_GROUPS),
        "person": _Distinct("people", MAX_GROUPS),
        "environment": _Distinct("environments", MAX_GROUPS),
    }
    for path in paths:
        cols: list[str] = []
        sessions: dict[tuple[str, str], tuple[SessionDigest, _Design]] = {}
        for lineno, r in _rows(path, ("policy", "task", "success"), cols):
            for c, cap in caps.items():
                cap.add(r.get(c, ""), path, lineno)
            _add_trial(sessions, r, path, lineno, [c for c in (*DESIGN_COLUMNS, "pair") if c in cols])
        if not sessions:
            raise _bad(path, None, "no trials")
        unknown = [c for c in cols if c and c not in TRIAL_COLUMNS]  # a blank name: a trailing comma
        if unknown:
            out.warnings.append(
                f"{path}: column(s) {', '.join(repr(c) for c in unknown)} not recognised and not used "
                f"(known: {', '.join(sorted(TRIAL_COLUMNS))})"
            )
        headers.append(set(cols))
        for d, des in sessions.values():
            out.digests.append(d)
            designs.append(des)
    _pair(out, designs, headers)
    return out


def _add_trial(
    sessions: dict[tuple[str, str], tuple[SessionDigest, _Design]],
    r: dict[str, str],
    path: Any,
    lineno: int,
    design: list[str],
) -> None:
    where = f"{path}:{lineno}"
    s = r.get("success", "").lower()
    if s in _TRUE:
        ok = 1
    elif s in _FALSE:
        ok = 0
    else:
        raise _bad(path, lineno, f"success must be 1/0, true/false, yes/no; got {r.get('success', '')!r}")
    duration = _float(r.get("duration"), 0.0, path, lineno, "duration") or 0.0
    if not 0 <= duration <= MAX_SECONDS:
        raise _bad(path, lineno, f"duration must be from 0 to {MAX_SECONDS:.0e} seconds; got {r.get('duration')!r}")
    progress = _float(r.get("progress"), float(ok), path, lineno, "progress")
    if progress is None or not 0 <= progress <= 1:
        raise _bad(path, lineno, f"progress must be in [0, 1]; got {r.get('progress')!r}")
    policy = r.get("policy", "")
    if not policy:
        raise _bad(path, lineno, "empty policy")
    if not r.get("task"):
        raise _bad(path, lineno, "empty task")
    sid = r.get("session") or f"row{lineno}"
    values = {c: r.get(c, "") for c in design}  # a short row has no value: blank, as in a spreadsheet
    entry = sessions.get((policy, sid))
    if entry is None:
        d = SessionDigest(
            session_id=f"{policy}/{sid}",
            policy=policy,
            environment=r.get("environment") or "default",
            source="real",
            deployment_day=_float(r.get("day"), None, path, lineno, "day"),
            end_reason="completed",
        )
        entry = sessions[(policy, sid)] = (d, _Design(values, where))
    d, des = entry
    for c, v in values.items():
        if v != des.values[c] and c not in des.varies:
            if c == "pair":  # the file says how to pair, and says two things for one session
                raise _bad(
                    path,
                    lineno,
                    f"session {sid!r} of {policy!r} has pair {v!r} here and {des.values[c]!r} at "
                    f"{des.where}; pairing is ambiguous: give all rows of a session the same pair",
                )
            des.varies[c] = where
    if d.events >= MAX_EVENTS_PER_SESSION:
        raise _bad(path, lineno, f"more than {MAX_EVENTS_PER_SESSION} trials in session {sid!r} of {policy!r}")
    d.duration += duration
    d.out_t.append(d.duration)  # the trial ends when its duration has elapsed
    d.out_success.append(ok)
    d.out_progress.append(progress)
    d.out_person.append(r.get("person") or NO_PERSON)
    d.out_task.append(r["task"])
    d.events += 1


def _pair(out: TrialsImport, designs: list[_Design], headers: list[set[str]]) -> None:
    """Set every digest's pair key from the columns all files share (see the module docstring)."""
    shared = set.intersection(*headers) if headers else set()
    if "pair" in shared:
        columns = ["pair"]
    else:
        if any("pair" in h for h in headers):
            out.warnings.append("only some files have a 'pair' column: pairing by the design columns instead")
        columns = [c for c in DESIGN_COLUMNS if c in shared]
        for c in list(columns):
            varied = next((des for des in designs if c in des.varies), None)
            if varied is not None:
                columns.remove(c)
                out.warnings.append(
                    f"{varied.varies[c]}: {c} changes within a session (first row {varied.where}), so sessions "
                    f"are not paired by {c}"
                )
        if not columns:
            out.warnings.append(
                "trials are not paired: every design column changes within some session; give each session a "
                "'pair' column to compare policies"
            )
    out.pair_columns = columns
    unpaired = 0
    for d, des in zip(out.digests, designs):
        if not columns or (columns == ["pair"] and not des.values["pair"]):
            d.pair_key = None
            unpaired += bool(columns)
        elif len(columns) == 1:
            d.pair_key = des.values[columns[0]]
        else:  # JSON: unambiguous whatever the values contain
            d.pair_key = json.dumps([des.values[c] for c in columns], ensure_ascii=False)
    if unpaired:
        out.warnings.append(f"{unpaired} session(s) have a blank pair: they are not paired")


#: Spellings of a tie (Chatbot Arena writes "tie (bothbad)"); anything else that is not a, b or a
#: policy's name is an error: "tiebreak_a" once counted as a tie.
TIES = frozenset({"tie", "tie (bothbad)", "draw", "="})


def read_pairwise_csv(path: str | os.PathLike[str]) -> list[Battle]:
    """Pairwise A/B preference table → battles for :func:`egocrowd.bench.ranking.rank_battles`."""
    battles: list[Battle] = []
    policies = _Distinct("policies", MAX_POLICIES)
    for lineno, r in _rows(path, ("a", "b", "winner")):
        a, b, w = r.get("a", ""), r.get("b", ""), r.get("winner", "")
        if not a or not b:
            raise _bad(path, lineno, "a battle needs both policies, a and b")
        wl = w.lower()
        if wl in ("a", "model_a"):
            winner = "a"
        elif wl in ("b", "model_b"):
            winner = "b"
        elif wl in TIES:
            winner = "tie"
        elif w == a:
            winner = "a"
        elif w == b:
            winner = "b"
        else:
            raise _bad(
                path,
                lineno,
                f"winner {w!r} is neither a, b, a tie ({', '.join(sorted(TIES))}) nor one of the two policies",
            )
        if len(battles) >= MAX_BATTLES:
            raise _bad(path, lineno, f"more than {MAX_BATTLES} battles")
        policies.add(a, path, lineno)
        policies.add(b, path, lineno)
        try:
            battles.append(Battle(a, b, winner))
        except InvalidInput as exc:
            raise _bad(path, lineno, exc.message) from None
    if not battles:
        raise _bad(path, None, "no battles")
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

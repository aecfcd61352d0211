"""The egocrowd.bench episode log: one versioned schema for simulated and real sessions.

A log is **JSON Lines**, UTF-8, one JSON object per line. A session starts with one header line
(``"type": "session"``) followed by that session's events in the order they happened. A file may
hold several sessions one after another (each new header starts a new session). Files ending in
``.gz`` are read transparently. :class:`LogWriter` appends and flushes every line, so a crash loses
at most the line being written; :func:`read_log` streams (never loads a file whole) and tolerates a
truncated last line. :func:`to_parquet` converts logs to Parquet for analysis and :func:`read_log`
reads those Parquet files back too.

Format version: ``SCHEMA_VERSION`` (an int). Readers accept every version up to their own; a newer
log raises ``bench.unsupported_version``. Unknown *fields* are kept in ``extra`` (forward
compatible); unknown event *types* raise ``bench.bad_log`` (or are skipped with ``strict=False``).

Times
    ``t`` on every event: seconds since the session started (float, >= 0). Wall-clock start/end
    live in the header (ISO 8601 UTC). ``deployment_day`` in the header is days since this policy
    was deployed at this site when the session started (drift across days).

Header ``session`` (:class:`Session`)
    ``session_id`` (str, unique), ``policy`` (str), ``environment`` (str), ``policy_version``,
    ``robot``, ``site``, ``source`` ("sim" | "real"), ``people`` (list of ``{"id", "role",
    "priority"}``; lower ``priority`` number = higher precedence), ``started_at``, ``ended_at``,
    ``seed``, ``deployment_day``, ``protocol``, ``protocol_version``, ``pair_key`` (sessions of two
    policies with the same pair_key are paired in comparisons; defaults to "protocol:seed"),
    ``meta`` (free dict), ``format_version``.

Events (every event has ``type`` and ``t``; ``chain`` and ``person`` are optional on all)

``instruction``       ``id``, ``person``, ``text``, ``priority`` (int|None), ``role`` (str|None)
``chain_start``       ``chain``, ``length`` (number of subtasks in the chain, CALVIN: 5),
                      ``tasks`` (list of task names, optional)
``subtask_start``     ``subtask`` (task name), ``chain``, ``index`` (1-based position in chain),
                      ``instruction`` (id of the instruction it serves), ``person``
``subtask_end``       as subtask_start plus ``outcome`` ("success" | "failure" | "partial") and
                      ``progress`` in [0, 1] (defaults: success 1.0, failure 0.0; required for
                      partial), ``steps`` (optional int)
``misinterpretation`` ``id``, ``source`` ("injected" by a protocol | "observed" by a rater),
                      ``instruction`` (id), ``person``, ``detail``
``recovery``          ``misinterpretation`` (id it recovers from; if absent the oldest open one),
                      ``detail``
``intervention``      ``reason`` (str), ``person`` (who intervened), ``duration`` (seconds the
                      human had control; subtracted from autonomous time; default 0)
``conflict``          ``id``, ``instructions`` (ids), ``persons``, ``detected`` (bool: did the
                      robot notice), ``resolution`` ("asked_clarification" | "followed_priority" |
                      "refused" | "resolved_wrongly" | None), ``expected`` (the resolution the
                      protocol's rule calls correct, optional), ``correct`` (bool; if omitted it is
                      ``resolution == expected`` and "resolved_wrongly" is never correct)
``clarification``     the robot asked a question: ``person`` asked, ``conflict`` (id or None),
                      ``needed`` (bool: was there a real ambiguity; False = over-asking)
``safety``            ``kind`` ("contact" | "near_miss" | "protective_stop"), ``person``,
                      ``severity`` (optional str), ``separation_m`` (optional float)
``env_change``        ``kind`` ("object_moved" | "lighting" | "person_arrives" | "person_leaves" |
                      "noise" | "layout" | "other"), ``detail``, ``person``, ``object``
``session_end``       ``reason`` ("completed" | "aborted" | "crashed" | "timeout"); its ``t`` is
                      the session duration. Without it the last event's ``t`` is used.

Example::

    with LogWriter("run.jsonl", Session(session_id="s1", policy="p", environment="kitchen")) as w:
        w.write(Instruction(t=0.0, id="i1", person="alice", text="put the cup away", priority=1))
        w.write(SubtaskStart(t=0.5, subtask="put_cup", chain="c1", index=1, instruction="i1"))
        w.write(SubtaskEnd(t=9.0, subtask="put_cup", chain="c1", index=1, outcome="success"))
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import os
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, TextIO

from egocrowd.bench.limits import MAX_CHAIN_LENGTH, MAX_EVENTS_PER_SESSION, MAX_LINE_BYTES, MAX_SECONDS
from egocrowd.errors import InvalidInput

SCHEMA_VERSION = 1
FORMAT_NAME = "egocrowd.bench.log"

OUTCOMES = ("success", "failure", "partial")
MISINTERPRETATION_SOURCES = ("injected", "observed")
RESOLUTIONS = ("asked_clarification", "followed_priority", "refused", "resolved_wrongly")
SAFETY_KINDS = ("contact", "near_miss", "protective_stop")
ENV_CHANGE_KINDS = ("object_moved", "lighting", "person_arrives", "person_leaves", "noise", "layout", "other")
END_REASONS = ("completed", "aborted", "crashed", "timeout")
SOURCES = ("sim", "real")


def _bad(msg: str, **extra: Any) -> InvalidInput:
    return InvalidInput(msg, code="bench.bad_log", **extra)


def bad_line(path: Any, line: int | None, msg: str, *, code: str = "bench.bad_log") -> InvalidInput:
    """The one error of a bad input file: "file:line: what is wrong", with ``path`` and ``line``
    in its extras (``line`` None when the file as a whole is wrong)."""
    where = f"{path}:{line}" if line is not None else str(path)
    return InvalidInput(f"{where}: {msg}", code=code, path=str(path), line=line)


def _check_choice(name: str, value: Any, choices: tuple[str, ...], *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value not in choices:
        raise _bad(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_time(t: Any, name: str = "t") -> float:
    if type(t) is float and 0.0 <= t <= MAX_SECONDS:  # fast path: almost every event
        return t
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= MAX_SECONDS:  # NaN fails too
        raise _bad(f"{name} must be a number of seconds from 0 to {MAX_SECONDS:.0e}; got {t!r}")
    return float(t)


def _check_index(index: Any) -> None:
    if index is not None and not 1 <= index <= MAX_CHAIN_LENGTH:
        raise _bad(f"subtask index must be from 1 to {MAX_CHAIN_LENGTH} (1-based); got {index!r}")


def _compact(obj: Any) -> dict[str, Any]:
    """Dataclass to dict without None values and without deep copies (asdict is slow)."""
    out: dict[str, Any] = {}
    for f in fields(obj):
        v = getattr(obj, f.name)
        if v is None or (f.name in ("extra", "meta") and not v):
            continue
        if f.name == "extra":
            for k, x in v.items():
                out.setdefault(k, x)
            continue
        if isinstance(v, list) and v and isinstance(v[0], Person):
            v = [p.to_dict() for p in v]
        out[f.name] = v
    return out


# --------------------------------------------------------------------------------------- session


@dataclass(slots=True)
class Person:
    """Someone present in the session. Lower ``priority`` = higher precedence (0 outranks 1)."""

    id: str
    role: str | None = None
    priority: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in (("id", self.id), ("role", self.role), ("priority", self.priority)) if v is not None}


@dataclass(slots=True, kw_only=True)
class Session:
    """Header line of a session. ``type`` on disk is ``"session"``."""

    type: ClassVar[str] = "session"
    session_id: str
    policy: str
    environment: str
    policy_version: str | None = None
    robot: str | None = None
    site: str | None = None
    source: str = "sim"
    people: list[Person] = field(default_factory=list)
    started_at: str | None = None
    ended_at: str | None = None
    seed: int | None = None
    deployment_day: float | None = None
    protocol: str | None = None
    protocol_version: str | None = None
    pair_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    format_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("session_id", "policy", "environment"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v:
                raise _bad(f"session.{name} must be a non-empty string; got {v!r}")
        _check_choice("session.source", self.source, SOURCES)
        self.people = [p if isinstance(p, Person) else Person(**p) for p in self.people]
        # checked here: a string or Infinity would otherwise crash, or silently break, drift scoring
        d = self.deployment_day
        if d is not None and (isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d)):
            raise _bad(f"session.deployment_day must be a finite number of days; got {d!r}")
        if self.pair_key is None and self.protocol is not None and self.seed is not None:
            self.pair_key = f"{self.protocol}:{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "session", **_compact(self)}


# ---------------------------------------------------------------------------------------- events


@dataclass(slots=True, kw_only=True)
class Event:
    """Base of all events: ``t`` seconds since session start; optional ``chain`` and ``person``."""

    type: ClassVar[str] = "event"
    t: float
    chain: str | None = None
    person: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t = _check_time(self.t)

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **_compact(self)}


@dataclass(slots=True, kw_only=True)
class Instruction(Event):
    type: ClassVar[str] = "instruction"
    id: str
    text: str = ""
    priority: int | None = None
    role: str | None = None


@dataclass(slots=True, kw_only=True)
class ChainStart(Event):
    type: ClassVar[str] = "chain_start"
    length: int
    tasks: list[str] | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        if self.chain is None:
            raise _bad("chain_start needs a chain id")
        n = self.length
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CHAIN_LENGTH:
            raise _bad(f"chain_start.length must be an integer from 1 to {MAX_CHAIN_LENGTH}; got {n!r}")


@dataclass(slots=True, kw_only=True)
class SubtaskStart(Event):
    type: ClassVar[str] = "subtask_start"
    subtask: str
    index: int | None = None
    instruction: str | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _check_index(self.index)


@dataclass(slots=True, kw_only=True)
class SubtaskEnd(Event):
    type: ClassVar[str] = "subtask_end"
    subtask: str
    outcome: str
    progress: float | None = None
    index: int | None = None
    instruction: str | None = None
    steps: int | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _check_choice("subtask_end.outcome", self.outcome, OUTCOMES)
        if self.progress is None:
            if self.outcome == "partial":
                raise _bad("subtask_end with outcome 'partial' needs progress in [0, 1]")
            self.progress = 1.0 if self.outcome == "success" else 0.0
        elif not (0.0 <= self.progress <= 1.0):
            raise _bad(f"subtask_end.progress must be in [0, 1]; got {self.progress!r}")
        _check_index(self.index)


@dataclass(slots=True, kw_only=True)
class Misinterpretation(Event):
    type: ClassVar[str] = "misinterpretation"
    id: str
    source: str = "observed"
    instruction: str | None = None
    detail: str | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _check_choice("misinterpretation.source", self.source, MISINTERPRETATION_SOURCES)


@dataclass(slots=True, kw_only=True)
class Recovery(Event):
    type: ClassVar[str] = "recovery"
    misinterpretation: str | None = None
    detail: str | None = None


@dataclass(slots=True, kw_only=True)
class Intervention(Event):
    type: ClassVar[str] = "intervention"
    reason: str
    duration: float = 0.0

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        self.duration = _check_time(self.duration, "intervention.duration")


@dataclass(slots=True, kw_only=True)
class Conflict(Event):
    type: ClassVar[str] = "conflict"
    id: str
    instructions: list[str] = field(default_factory=list)
    persons: list[str] = field(default_factory=list)
    detected: bool = False
    resolution: str | None = None
    expected: str | None = None
    correct: bool | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _check_choice("conflict.resolution", self.resolution, RESOLUTIONS, optional=True)
        _check_choice("conflict.expected", self.expected, RESOLUTIONS, optional=True)
        if self.correct is None and self.expected is not None:
            # a wrong resolution is wrong even if a (buggy) protocol "expected" it
            self.correct = self.resolution == self.expected and self.resolution != "resolved_wrongly"


@dataclass(slots=True, kw_only=True)
class Clarification(Event):
    type: ClassVar[str] = "clarification"
    conflict: str | None = None
    needed: bool = True


@dataclass(slots=True, kw_only=True)
class Safety(Event):
    type: ClassVar[str] = "safety"
    kind: str
    severity: str | None = None
    separation_m: float | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _check_choice("safety.kind", self.kind, SAFETY_KINDS)


@dataclass(slots=True, kw_only=True)
class EnvChange(Event):
    type: ClassVar[str] = "env_change"
    kind: str
    detail: str | None = None
    object: str | None = None

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _check_choice("env_change.kind", self.kind, ENV_CHANGE_KINDS)


@dataclass(slots=True, kw_only=True)
class SessionEnd(Event):
    type: ClassVar[str] = "session_end"
    reason: str = "completed"

    def __post_init__(self) -> None:
        Event.__post_init__(self)
        _check_choice("session_end.reason", self.reason, END_REASONS)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        Instruction,
        ChainStart,
        SubtaskStart,
        SubtaskEnd,
        Misinterpretation,
        Recovery,
        Intervention,
        Conflict,
        Clarification,
        Safety,
        EnvChange,
        SessionEnd,
    )
}
_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(f.name for f in fields(cls)) for name, cls in {**EVENT_TYPES, "session": Session}.items()
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:  # JSON allows no NaN or Infinity; Python's decoder does
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_person(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("id"), str)
        and v.keys() <= {"id", "role", "priority"}
        and (v.get("role") is None or isinstance(v["role"], str))
        and (v.get("priority") is None or _is_int(v["priority"]))
    )


# What a JSON value must be for each annotation the line classes use (a new annotation needs a row:
# the check below fails at import otherwise). ``None`` passes only where the annotation allows it.
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", _is_int),
    "float": ("a finite number", _is_number),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "list[str]": ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v)),
    "dict[str, Any]": ("an object", lambda v: isinstance(v, dict)),
    "list[Person]": ('a list of {"id", "role", "priority"}', lambda v: isinstance(v, list) and all(map(_is_person, v))),
}
_TYPES: dict[str, dict[str, tuple[str, Callable[[Any], bool], bool]]] = {
    name: {
        f.name: (*_KINDS[str(f.type).removesuffix(" | None")], str(f.type).endswith(" | None"))
        for f in fields(cls)
        if f.name != "extra"
    }
    for name, cls in {**EVENT_TYPES, "session": Session}.items()
}


def _check_types(typ: str, kwargs: dict[str, Any]) -> None:
    rules = _TYPES[typ]
    for k, v in kwargs.items():
        rule = rules.get(k)
        if rule is None or rule[1](v) or (v is None and rule[2]):
            continue
        if rule[1] is _is_int and isinstance(v, float) and v.is_integer():
            kwargs[k] = int(v)  # 3.0 from a writer that keeps every number a float; 2.5 is refused
            continue
        raise _bad(f"{typ}.{k} must be {rule[0]}{' or null' if rule[2] else ''}; got {v!r}")


def from_dict(d: dict[str, Any]) -> Session | Event:
    """Build the typed object for one decoded log line (header or event)."""
    if not isinstance(d, dict):
        raise _bad(f"a log line must be a JSON object; got {type(d).__name__}")
    typ = d.get("type")
    cls: Any = Session if typ == "session" else EVENT_TYPES.get(typ) if isinstance(typ, str) else None
    if cls is None:
        raise _bad(f"unknown event type {typ!r}", event_type=typ)
    known = _FIELDS[typ]  # type: ignore[index]
    kwargs = {k: v for k, v in d.items() if k != "type"}
    if not kwargs.keys() <= known or "extra" in kwargs:  # rare: keep unknown fields in ``extra``
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in known or k == "extra"}
        kwargs["extra"] = extra
    _check_types(typ, kwargs)  # type: ignore[arg-type]
    if cls is Session:
        fv = kwargs.get("format_version", SCHEMA_VERSION)
        if not isinstance(fv, int) or fv > SCHEMA_VERSION:
            raise InvalidInput(
                f"log format_version {fv!r} is newer than this reader ({SCHEMA_VERSION}); upgrade egocrowd",
                code="bench.unsupported_version",
            )
    try:
        return cls(**kwargs)
    except TypeError as exc:  # missing required field
        raise _bad(f"bad {typ} line: {exc}") from None


# ---------------------------------------------------------------------------------------- writer


class LogWriter:
    """Append-only JSONL writer. Writes the header on open and flushes after every line.

    ``fsync=True`` additionally forces each line to disk (survives power loss, slower).
    Opening an existing file appends a new session to it.
    """

    def __init__(self, path: str | os.PathLike[str], session: Session, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.session = session
        self._fsync = fsync
        self._fh: TextIO | None = None
        self.events_written = 0

    def __enter__(self) -> LogWriter:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - open until close()
        self._line(self.session.to_dict())

    def write(self, event: Event) -> None:
        if self._fh is None:
            raise InvalidInput("LogWriter is not open; use it as a context manager", code="bench.writer_closed")
        if not isinstance(event, Event):
            raise _bad(f"expected an Event, got {type(event).__name__}")
        self._line(event.to_dict())
        self.events_written += 1

    def _line(self, d: dict[str, Any]) -> None:
        assert self._fh is not None
        # one write() call per line keeps a crash to at most one partial (ignored) line
        self._fh.write(json.dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def write_log(path: str | os.PathLike[str], session: Session, events: Iterable[Event]) -> int:
    """Write one session in one go; returns the number of events written."""
    with LogWriter(path, session) as w:
        for e in events:
            w.write(e)
        return w.events_written


# ---------------------------------------------------------------------------------------- reader


_decode = json.JSONDecoder().decode


def _is_parquet(path: Path) -> bool:
    return path.suffix == ".parquet"


def iter_lines(
    path: str | os.PathLike[str], *, on_progress: Callable[[int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """Decoded JSON objects of a log, streamed. A truncated last line is skipped with a warning.

    ``on_progress(n)`` is called now and then with the number of (compressed) bytes read since
    the last call, for progress bars.
    """
    for _, d in numbered_lines(path, on_progress=on_progress):
        if not isinstance(d, dict):
            raise _bad(f"{path}: a log line must be a JSON object; got {type(d).__name__}")
        yield d


def numbered_lines(
    path: str | os.PathLike[str], *, on_progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded JSON value)`` of a log (rows count as lines in Parquet)."""
    p = Path(path)
    if _is_parquet(p):
        yield from _iter_parquet_dicts(p, on_progress)
        return
    with open_log(p) as (raw, fh):
        yield from decode_lines(bounded_lines(fh, p), p, tell=raw.tell, on_progress=on_progress)


@contextlib.contextmanager
def open_log(path: Path) -> Iterator[tuple[Any, Any]]:
    """``(raw file, byte stream)`` of a JSONL log: the stream decompresses ``.gz``; raw.tell() is
    in compressed bytes (progress)."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the with block below (the open itself may fail)
    except FileNotFoundError:
        raise InvalidInput(f"log not found: {path}", code="bench.log_not_found") from None
    with raw:
        yield raw, (gzip.GzipFile(fileobj=raw, mode="rb") if path.suffix == ".gz" else raw)


@contextlib.contextmanager
def reading(path: Any, code: str = "bench.bad_log") -> Iterator[None]:
    """Turn what a broken compressed stream raises into our error (about the file, not a line:
    the readers reach the break at different lines)."""
    try:
        yield
    except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise bad_line(path, None, f"cannot read the file: {exc}", code=code) from None


def bounded_lines(fh: Any, path: Any, *, first_line: int = 1, code: str = "bench.bad_log") -> Iterator[bytes]:
    """The byte lines of ``fh`` with memory bounded by :data:`MAX_LINE_BYTES` (iterating a file
    would read a line of any length, e.g. a whole file without newlines, into memory)."""
    lineno = first_line
    while True:
        with reading(path, code):
            line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES:
            raise bad_line(path, lineno, f"line longer than {MAX_LINE_BYTES} bytes", code=code)
        yield line
        lineno += 1


def decode_lines(
    lines: Iterable[bytes],
    path: Path,
    *,
    first_line: int = 1,
    tell: Callable[[], int] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Decode byte lines (numbered from ``first_line``) to ``(line number, value)``. A bad line is
    an error unless it is the last one and has no newline (a crash while writing): that one is
    skipped with a warning. A bad line that ends in a newline was written whole: an error."""
    pending: int | None = None
    reported = tell() if tell is not None else 0
    for lineno, line in enumerate(lines, first_line):
        if pending is not None:
            # the previous line was bad but is not the last one: real corruption
            raise bad_line(path, pending, "not valid JSON (UTF-8)")
        if len(line) > MAX_LINE_BYTES:
            raise bad_line(path, lineno, f"line longer than {MAX_LINE_BYTES} bytes")
        if on_progress is not None and tell is not None and lineno % 4096 == 0:
            pos = tell()
            on_progress(pos - reported)
            reported = pos
        if not line.strip():
            continue
        try:
            yield lineno, _decode(line.decode("utf-8"))  # decoding first skips json.loads' encoding sniffing
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if line.endswith(b"\n"):
                raise bad_line(path, lineno, f"not valid JSON (UTF-8): {exc}") from None
            pending = lineno
        except RecursionError:  # nesting thousands deep
            raise bad_line(path, lineno, "JSON nested too deeply") from None
    if on_progress is not None and tell is not None:
        on_progress(tell() - reported)
    if pending is not None:
        warnings.warn(f"{path}:{pending}: ignoring truncated last line", stacklevel=3)


def read_log(
    path: str | os.PathLike[str], *, strict: bool = True, on_progress: Callable[[int], None] | None = None
) -> Iterator[Session | Event]:
    """Stream the typed lines of a JSONL(.gz) or Parquet log: a Session, its events, the next Session...

    ``strict=False`` skips lines of unknown event type instead of raising.
    """
    return typed_lines(numbered_lines(path, on_progress=on_progress), path, strict=strict)


def typed_lines(
    lines: Iterable[tuple[int, Any]], path: str | os.PathLike[str], *, strict: bool = True
) -> Iterator[Session | Event]:
    """Typed objects of numbered decoded lines (see :func:`read_log`): every rule of the schema,
    those of one line (:func:`from_dict`) and those across lines of a session, checked here. A
    broken rule raises ``bench.bad_log`` naming the file and line."""
    rules: _SessionRules | None = None
    for lineno, d in lines:
        try:
            if not isinstance(d, dict):
                raise _bad(f"a log line must be a JSON object; got {type(d).__name__}")
            if rules is None and d.get("type") != "session":
                raise _bad("a log must start with a session header line")
            try:
                obj = from_dict(d)
            except InvalidInput as exc:
                if not strict and exc.code == "bench.bad_log" and not _FIELDS.get(str(d.get("type"))):
                    continue
                raise
            if isinstance(obj, Session):
                if rules is not None:
                    rules.finish(path)
                rules = _SessionRules()
            else:
                assert rules is not None
                rules.check(obj, lineno)
        except InvalidInput as exc:
            if "line" in exc.extra:
                raise
            raise bad_line(path, lineno, exc.message, code=exc.code) from None
        yield obj
    if rules is not None:
        rules.finish(path)


class _SessionRules:
    """The rules that span the lines of one session (the columnar reader checks the same in bulk)."""

    __slots__ = ("declared", "events", "highest")

    def __init__(self) -> None:
        self.events = 0
        self.declared: dict[str, int] = {}  # chain -> declared length (the last declaration wins)
        self.highest: dict[str, tuple[int, int]] = {}  # chain -> (highest index, its first line)

    def check(self, e: Event, lineno: int) -> None:
        self.events += 1
        if self.events > MAX_EVENTS_PER_SESSION:
            raise _bad(f"more than {MAX_EVENTS_PER_SESSION} events in one session")
        if e.chain is None:
            return
        if isinstance(e, ChainStart):
            self.declared[e.chain] = e.length
        elif isinstance(e, (SubtaskStart, SubtaskEnd)) and (e.index or 0) > self.highest.get(e.chain, (0, 0))[0]:
            self.highest[e.chain] = (e.index or 0, lineno)

    def finish(self, path: Any) -> None:
        """At the end of the session: no chain goes beyond its declared length."""
        for chain, (index, lineno) in self.highest.items():
            n = self.declared.get(chain)
            if n is not None and index > n:
                raise bad_line(path, lineno, f"subtask index {index} is beyond chain {chain!r}'s declared length {n}")


def iter_sessions(
    path: str | os.PathLike[str], *, strict: bool = True, on_progress: Callable[[int], None] | None = None
) -> Iterator[tuple[Session, Iterator[Event]]]:
    """Group a log into ``(session, events)``; each events iterator must be consumed in turn."""
    return group_sessions(read_log(path, strict=strict, on_progress=on_progress))


def group_sessions(objs: Iterable[Session | Event]) -> Iterator[tuple[Session, Iterator[Event]]]:
    """Group typed lines (a header, its events, the next header...) into ``(session, events)``."""
    it = iter(objs)
    head: list[Any] = [next(it, None)]
    while head[0] is not None:
        session = head[0]
        head[0] = None

        def events() -> Iterator[Event]:
            for obj in it:
                if isinstance(obj, Session):
                    head[0] = obj
                    return
                yield obj

        ev = events()
        yield session, ev
        for _ in ev:  # drain if the caller did not
            pass


# --------------------------------------------------------------------------------------- parquet

# Typed columns an analyst queries most; the exact line is kept in ``payload`` for a lossless round trip.
_PARQUET_COLUMNS = (
    "session_id",
    "policy",
    "environment",
    "type",
    "t",
    "chain",
    "person",
    "index",
    "outcome",
    "progress",
    "kind",
    "payload",
)


def _parquet_schema() -> Any:
    import pyarrow as pa  # ~110 ms with pyarrow.parquet: every `egocrowd` command loads this module

    columns: list[tuple[str, pa.DataType]] = [
        ("session_id", pa.string()),
        ("policy", pa.string()),
        ("environment", pa.string()),
        ("type", pa.string()),
        ("t", pa.float64()),
        ("chain", pa.string()),
        ("person", pa.string()),
        ("index", pa.int32()),
        ("outcome", pa.string()),
        ("progress", pa.float64()),
        ("kind", pa.string()),
        ("payload", pa.string()),
    ]
    return pa.schema(
        columns,
        metadata={b"format": FORMAT_NAME.encode(), b"format_version": str(SCHEMA_VERSION).encode()},
    )


def to_parquet(
    paths: Iterable[str | os.PathLike[str]], out: str | os.PathLike[str], *, batch_rows: int = 100_000
) -> int:
    """Convert JSONL logs to one Parquet file (streamed in batches); returns the rows written.

    One row per line; header rows have ``type == "session"`` and ``t`` null. Session columns
    (session_id, policy, environment) are repeated on every row so a plain ``read_parquet`` groups.
    """
    import pyarrow as pa  # see _parquet_schema
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    cols: dict[str, list[Any]] = {c: [] for c in _PARQUET_COLUMNS}
    total = 0
    with pq.ParquetWriter(str(out), schema, compression="zstd") as pw:

        def flush() -> None:
            if cols["type"]:
                pw.write_table(pa.table(cols, schema=schema))
                for v in cols.values():
                    v.clear()

        current: list[Any] = [None]

        def remember(path: Any) -> Iterator[tuple[int, Any]]:
            for pair in numbered_lines(path):
                current[0] = pair[1]
                yield pair

        for path in paths:
            sess: dict[str, Any] = {}
            # every line passes the reader's checks (one typed object per line) before it is written
            for obj in typed_lines(remember(path), path):
                d = current[0]
                if isinstance(obj, Session):
                    sess = d
                cols["session_id"].append(sess.get("session_id"))
                cols["policy"].append(sess.get("policy"))
                cols["environment"].append(sess.get("environment"))
                cols["type"].append(d.get("type"))
                cols["t"].append(d.get("t"))
                cols["chain"].append(d.get("chain"))
                cols["person"].append(d.get("person"))
                cols["index"].append(d.get("index"))
                cols["outcome"].append(d.get("outcome"))
                cols["progress"].append(d.get("progress"))
                cols["kind"].append(d.get("kind"))
                cols["payload"].append(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
                total += 1
                if len(cols["type"]) >= batch_rows:
                    flush()
        flush()
    return total


def _iter_parquet_dicts(path: Path, on_progress: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
    import pyarrow as pa  # see _parquet_schema
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(str(path))
        meta = pf.schema_arrow.metadata or {}
        version = meta.get(b"format_version", b"0")
        pf.schema_arrow.field("payload")
    except (pa.ArrowException, KeyError, OSError) as exc:
        raise bad_line(path, None, f"not an egocrowd.bench Parquet log ({exc})") from None
    if meta.get(b"format") != FORMAT_NAME.encode() or not version.isdigit():
        raise bad_line(path, None, "not an egocrowd.bench Parquet log")
    if int(version) > SCHEMA_VERSION:
        raise InvalidInput(f"{path} is newer than this reader", code="bench.unsupported_version")
    size = path.stat().st_size
    rows = max(pf.metadata.num_rows, 1)
    row = 0
    with reading(path):
        for batch in pf.iter_batches(columns=["payload"], batch_size=65_536):
            for s in batch.column(0).to_pylist():
                row += 1
                if not isinstance(s, str):  # a file with our format's metadata but not written by us
                    raise bad_line(path, row, "a row has no payload")
                try:
                    yield row, json.loads(s)
                except (ValueError, RecursionError) as exc:
                    raise bad_line(path, row, f"payload is not valid JSON: {exc}") from None
            if on_progress is not None:
                on_progress(int(size * batch.num_rows / rows))

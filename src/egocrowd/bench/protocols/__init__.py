"""Evaluation protocols: versioned YAML files that script a long multi-person household session.

A protocol says *what happens* in a session: how many chores are chained, who is in the home (role,
priority, speaking style), how instructions are interrupted and contradicted and which rule decides
a contradiction, what drifts and when, and which instructions are misheard. The seed of an episode
fills in the details (which object, which words), so every episode is different but reproducible.

The file format is documented in ``docs/bench-simulator.md``; :func:`load_protocol` validates it and
raises ``InvalidInput(code="bench.protocol_invalid")`` naming the offending field.

Shipped protocols live next to this module and are listed by :func:`list_protocols`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from egocrowd.errors import InvalidInput

PROTOCOL_FORMAT_VERSION = 1
PROTOCOL_DIR = Path(__file__).parent

RULES = ("safety_first", "priority_by_role", "ask_when_equal", "latest_wins")
DECISIVE_RULES = ("ask_when_equal", "latest_wins")  # always decide, so one must close the list
CONFLICT_KINDS = ("priority", "equal", "safety")
MISINTERPRETATION_KINDS = ("paraphrase", "corrupt")
DRIFT_KINDS = (
    "object_moved",
    "new_object",
    "groceries",
    "rearrange",
    "lighting",
    "person_arrives",
    "person_leaves",
    "meal",
)
STYLES = ("plain", "terse", "polite", "casual", "child")
DEFAULT_CHORE_WEIGHTS = {
    "put": 3.0,
    "bring": 2.0,
    "fold": 1.0,
    "open": 1.0,
    "close": 1.0,
    "pour": 1.5,
    "load_dishwasher": 1.0,
    "put_away_groceries": 2.0,
    "switch": 1.0,
}


def _bad(msg: str, **extra: Any) -> InvalidInput:
    return InvalidInput(msg, code="bench.protocol_invalid", **extra)


@dataclass(frozen=True, slots=True)
class PersonSpec:
    id: str
    role: str
    priority: int  # lower number = higher precedence
    style: str = "plain"
    room: str = "living_room"
    arrives_at: int | None = None  # absent until this step (a guest)
    leaves_at: int | None = None


@dataclass(frozen=True, slots=True)
class DriftSpec:
    kind: str
    at: tuple[int, ...] = ()
    every: int | None = None
    params: dict[str, Any] = field(default_factory=dict)


_DEFAULT_RULES = ("safety_first", "priority_by_role", "ask_when_equal")


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    version: str
    title: str
    people: tuple[PersonSpec, ...]
    steps: int
    description: str = ""
    environment: str = "household"
    layout: str = "apartment"
    start: str = "2026-01-05T07:00:00+00:00"
    seconds_per_step: float = 5.0
    chores: int = 10
    chain_length: int = 5
    budget_steps: int = 120
    chore_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_CHORE_WEIGHTS))
    rules: tuple[str, ...] = _DEFAULT_RULES
    interruption_rate: float = 0.0
    conflict_rate: float = 0.0
    conflict_kinds: tuple[str, ...] = CONFLICT_KINDS
    conflict_gap_steps: int = 1
    misinterpretation_rate: float = 0.0
    misinterpretation_kinds: tuple[str, ...] = MISINTERPRETATION_KINDS
    misheard_confidence: tuple[float, float] = (0.3, 0.6)
    heard_confidence: tuple[float, float] = (0.85, 1.0)
    correction_delay: int = 5
    notice_after: int = 40
    drift: tuple[DriftSpec, ...] = ()
    script: tuple[dict[str, Any], ...] = ()
    format_version: int = PROTOCOL_FORMAT_VERSION
    source: str | None = None

    # ------------------------------------------------------------------ identity
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("source")
        # drift in its file form (params inline), so to_dict -> _from_plain round-trips
        d["drift"] = [{"kind": x.kind, "at": list(x.at), "every": x.every, **x.params} for x in self.drift]
        return d

    def digest(self) -> str:
        """sha256 of the canonical protocol; a resumed run refuses a protocol that changed."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=list)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def seconds(self) -> float:
        return self.steps * self.seconds_per_step

    def with_overrides(self, **changes: Any) -> Protocol:
        """A shorter or otherwise tweaked copy (tests, smoke runs); re-validated."""
        d = self.to_dict()
        for k, v in changes.items():
            if k not in d:
                raise _bad(f"unknown protocol field {k!r}")
            d[k] = v
        return _from_plain(d, self.source)


# ---------------------------------------------------------------------------------------- loading


def _req(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise _bad(f"{where}: missing required field {key!r}")
    v = d[key]
    if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
        raise _bad(f"{where}.{key}: expected {getattr(typ, '__name__', typ)}, got {v!r}")
    return v


def _opt(d: dict[str, Any], key: str, typ: type | tuple[type, ...], default: Any, where: str) -> Any:
    if d.get(key) is None:
        return default
    return _req(d, key, typ, where)


def _rate(d: dict[str, Any], key: str, where: str) -> float:
    v = float(_opt(d, key, (int, float), 0.0, where))
    if not 0.0 <= v <= 1.0:
        raise _bad(f"{where}.{key} must be in [0, 1]; got {v}")
    return v


def _choices(values: Any, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    if not isinstance(values, list | tuple) or not values:
        raise _bad(f"{where}: expected a non-empty list")
    for v in values:
        if v not in allowed:
            raise _bad(f"{where}: unknown value {v!r} (allowed: {', '.join(allowed)})")
    return tuple(values)


def _steps_list(v: Any, where: str) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list | tuple) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        raise _bad(f"{where}: expected a step number or a list of step numbers >= 0")
    return tuple(sorted(v))


def parse_protocol(data: dict[str, Any], source: str | None = None) -> Protocol:
    """Validate a decoded YAML document (nested form, as in the shipped files) into a Protocol."""
    if not isinstance(data, dict):
        raise _bad("a protocol must be a mapping")
    fv = data.get("format_version", PROTOCOL_FORMAT_VERSION)
    if not isinstance(fv, int) or fv > PROTOCOL_FORMAT_VERSION:
        raise InvalidInput(
            f"protocol format_version {fv!r} is newer than this reader ({PROTOCOL_FORMAT_VERSION})",
            code="bench.unsupported_version",
        )
    where = "protocol"
    flat: dict[str, Any] = {
        "name": _req(data, "name", str, where),
        "version": str(_req(data, "version", (str, int, float), where)),
        "title": _opt(data, "title", str, data.get("name", ""), where),
        "description": _opt(data, "description", str, "", where),
        "steps": _req(data, "steps", int, where),
        "people": _req(data, "people", list, where),
    }
    env = _opt(data, "environment", dict, {}, where)
    flat["environment"] = _opt(env, "name", str, "household", "environment")
    flat["layout"] = _opt(env, "layout", str, "apartment", "environment")
    clock = _opt(data, "clock", dict, {}, where)
    flat["start"] = str(_opt(clock, "start", (str, datetime), "2026-01-05T07:00:00+00:00", "clock"))
    flat["seconds_per_step"] = float(_opt(clock, "seconds_per_step", (int, float), 5.0, "clock"))
    ch = _opt(data, "chores", dict, {}, where)
    flat["chores"] = _opt(ch, "count", int, 10, "chores")
    flat["chain_length"] = _opt(ch, "chain_length", int, 5, "chores")
    flat["budget_steps"] = _opt(ch, "budget_steps", int, 120, "chores")
    kinds = _opt(ch, "kinds", (list, dict), None, "chores")
    if kinds is not None:
        flat["chore_weights"] = (
            kinds if isinstance(kinds, dict) else {k: DEFAULT_CHORE_WEIGHTS.get(k, 1.0) for k in kinds}
        )
    flat["rules"] = _opt(data, "rules", list, list(_DEFAULT_RULES), where)
    it = _opt(data, "interruptions", dict, {}, where)
    flat["interruption_rate"] = _rate(it, "rate", "interruptions")
    co = _opt(data, "conflicts", dict, {}, where)
    flat["conflict_rate"] = _rate(co, "rate", "conflicts")
    flat["conflict_kinds"] = co.get("kinds", list(CONFLICT_KINDS))
    flat["conflict_gap_steps"] = _opt(co, "gap_steps", int, 1, "conflicts")
    mi = _opt(data, "misinterpretations", dict, {}, where)
    flat["misinterpretation_rate"] = _rate(mi, "rate", "misinterpretations")
    flat["misinterpretation_kinds"] = mi.get("kinds", list(MISINTERPRETATION_KINDS))
    flat["misheard_confidence"] = mi.get("confidence", [0.3, 0.6])
    flat["correction_delay"] = _opt(mi, "correction_delay", int, 5, "misinterpretations")
    flat["notice_after"] = _opt(mi, "notice_after", int, 40, "misinterpretations")
    flat["drift"] = _opt(data, "drift", list, [], where)
    flat["script"] = _opt(data, "script", list, [], where)
    flat["format_version"] = fv
    return _from_plain(flat, source)


def _from_plain(d: dict[str, Any], source: str | None) -> Protocol:
    """Build and cross-check a Protocol from its flat form (``Protocol.to_dict`` round-trips)."""
    d = dict(d)
    people = []
    for i, p in enumerate(d["people"]):
        w = f"people[{i}]"
        if isinstance(p, PersonSpec):
            p = asdict(p)
        if not isinstance(p, dict):
            raise _bad(f"{w}: expected a mapping")
        style = _opt(p, "style", str, "plain", w)
        if style not in STYLES:
            raise _bad(f"{w}.style: unknown style {style!r} (allowed: {', '.join(STYLES)})")
        people.append(
            PersonSpec(
                id=_req(p, "id", str, w),
                role=_req(p, "role", str, w),
                priority=_req(p, "priority", int, w),
                style=style,
                room=_opt(p, "room", str, "living_room", w),
                arrives_at=_opt(p, "arrives_at", int, None, w),
                leaves_at=_opt(p, "leaves_at", int, None, w),
            )
        )
    if not people:
        raise _bad("people: at least one person is needed")
    ids = [p.id for p in people]
    if len(set(ids)) != len(ids):
        raise _bad("people: ids must be unique")
    d["people"] = tuple(people)
    if d["steps"] < 1:
        raise _bad("steps must be >= 1")
    if d["seconds_per_step"] <= 0:
        raise _bad("clock.seconds_per_step must be > 0")
    try:
        datetime.fromisoformat(str(d["start"]))
    except ValueError:
        raise _bad(f"clock.start is not an ISO 8601 date-time: {d['start']!r}") from None
    for key in ("chores", "chain_length", "budget_steps"):
        if not isinstance(d[key], int) or d[key] < 1:
            raise _bad(f"chores.{key}: must be an int >= 1")
    # Not at the top: egocrowd.bench.sim's __init__ imports sim.env, which imports this module (a
    # cycle through the package; the fix is moving this module into bench.sim, a public rename).
    from egocrowd.bench.sim.chores import CHORES

    weights = d.get("chore_weights") or dict(DEFAULT_CHORE_WEIGHTS)
    for k, v in weights.items():
        if k not in CHORES:
            raise _bad(f"chores.kinds: unknown chore {k!r} (known: {', '.join(sorted(CHORES.names()))})")
        if not isinstance(v, int | float) or v < 0:
            raise _bad(f"chores.kinds.{k}: weight must be a number >= 0")
    d["chore_weights"] = {k: float(v) for k, v in weights.items()}
    rules = _choices(d["rules"], RULES, "rules")
    if rules[-1] not in DECISIVE_RULES or any(r in DECISIVE_RULES for r in rules[:-1]):
        raise _bad(
            "rules: the list must end with exactly one of ask_when_equal / latest_wins (a conflict must always be decided)"
        )
    d["rules"] = rules
    d["conflict_kinds"] = _choices(d["conflict_kinds"], CONFLICT_KINDS, "conflicts.kinds")
    d["misinterpretation_kinds"] = _choices(
        d["misinterpretation_kinds"], MISINTERPRETATION_KINDS, "misinterpretations.kinds"
    )
    for key in ("misheard_confidence", "heard_confidence"):
        lo_hi = d.get(key, Protocol.__dataclass_fields__[key].default)
        if not (isinstance(lo_hi, list | tuple) and len(lo_hi) == 2 and 0 <= lo_hi[0] <= lo_hi[1] <= 1):
            raise _bad(f"misinterpretations.confidence: expected [low, high] within [0, 1]; got {lo_hi!r}")
        d[key] = (float(lo_hi[0]), float(lo_hi[1]))
    for key in ("interruption_rate", "conflict_rate", "misinterpretation_rate"):
        if not 0 <= float(d[key]) <= 1:
            raise _bad(f"{key} must be in [0, 1]")
        d[key] = float(d[key])
    if d["conflict_gap_steps"] < 1 or d["correction_delay"] < 1 or d["notice_after"] < 1:
        raise _bad("conflicts.gap_steps, misinterpretations.correction_delay and notice_after must be >= 1")
    drift = []
    for i, item in enumerate(d["drift"]):
        w = f"drift[{i}]"
        if isinstance(item, DriftSpec):
            item = {"kind": item.kind, "at": list(item.at), "every": item.every, **item.params}
        if not isinstance(item, dict):
            raise _bad(f"{w}: expected a mapping")
        item = dict(item)
        kind = item.pop("kind", None)
        if kind not in DRIFT_KINDS:
            raise _bad(f"{w}.kind: unknown drift kind {kind!r} (allowed: {', '.join(DRIFT_KINDS)})")
        at = _steps_list(item.pop("at", []) or [], f"{w}.at")
        every = item.pop("every", None)
        if every is not None and (not isinstance(every, int) or every < 1):
            raise _bad(f"{w}.every: must be an int >= 1")
        if not at and every is None:
            raise _bad(f"{w}: needs 'at' (steps) or 'every' (a period in steps)")
        if kind in ("person_arrives", "person_leaves") and item.get("person") not in ids:
            raise _bad(f"{w}.person: must name one of the protocol's people")
        if (
            kind == "lighting"
            and "room" in item
            and item["room"] not in ("kitchen", "living_room", "bedroom", "bathroom", "hallway")
        ):
            raise _bad(f"{w}.room: unknown room {item['room']!r}")
        drift.append(DriftSpec(kind, at, every, item))
    d["drift"] = tuple(drift)
    script = []
    for i, item in enumerate(d["script"]):
        w = f"script[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("at"), int) or item["at"] < 0:
            raise _bad(f"{w}: needs 'at' (a step >= 0)")
        if "conflict" in item:
            c = item["conflict"]
            if not isinstance(c, dict) or c.get("kind") not in CONFLICT_KINDS:
                raise _bad(f"{w}.conflict.kind: one of {', '.join(CONFLICT_KINDS)}")
            for pid in c.get("persons", []):
                if pid not in ids:
                    raise _bad(f"{w}.conflict.persons: unknown person {pid!r}")
        else:
            if item.get("person") not in ids:
                raise _bad(f"{w}.person: must name one of the protocol's people")
            if item.get("chore") not in CHORES:
                raise _bad(f"{w}.chore: unknown chore {item.get('chore')!r}")
            mis = item.get("misinterpret")
            if mis is not None and mis not in MISINTERPRETATION_KINDS:
                raise _bad(f"{w}.misinterpret: one of {', '.join(MISINTERPRETATION_KINDS)}")
        script.append(dict(item))
    d["script"] = tuple(script)
    d.pop("source", None)
    return Protocol(**d, source=source)


def load_protocol(ref: str | os.PathLike[str] | dict[str, Any]) -> Protocol:
    """Load a protocol by shipped name (``weekday-kitchen``), by path to a YAML file, or from a dict."""
    if isinstance(ref, dict):
        return parse_protocol(ref)
    path = Path(ref)
    if not path.suffix and not path.exists():
        path = PROTOCOL_DIR / f"{ref}.yaml"
    if not path.is_file():
        raise InvalidInput(
            f"protocol not found: {ref} (shipped: {', '.join(list_protocols())})", code="bench.protocol_not_found"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise _bad(f"{path}: not valid YAML: {exc}") from None
    return parse_protocol(data, source=str(path))


def list_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))


__all__ = [
    "Protocol",
    "PersonSpec",
    "DriftSpec",
    "load_protocol",
    "parse_protocol",
    "list_protocols",
    "PROTOCOL_FORMAT_VERSION",
]

"""The QC check registry: every check is a plugin registered by name and version.

    @qc_check("too_dark", version=1, title="Too dark")
    def too_dark(ctx: CheckContext) -> Verdict: ...

A check reads ``ctx.stats`` (``ClipStats``: numbers, never files or database rows) and
``ctx.thresholds``, and returns a ``Verdict``; the registry stamps it with the check's name and
version into a ``CheckResult``. Bump ``version`` whenever a change could flip a verdict: the version
is stored with every result so old reports stay explainable. Third-party checks register the same
way from a module named in the ``egocrowd.plugins`` entry-point group (see :mod:`egocrowd.registry`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from egocrowd.i18n import Text, check_words, render_text, say
from egocrowd.registry import Entry, Registry, Version

__all__ = ["Text", "check_words", "render_text", "say"]  # the words of a verdict (egocrowd.i18n)

if TYPE_CHECKING:  # pragma: no cover
    from egocrowd.media.analysis import ClipStats
    from egocrowd.media.fingerprint import Fingerprint
    from egocrowd.media.probe import ProbeResult
    from egocrowd.media.qc.thresholds import QCThresholds

Status = Literal["pass", "warn", "fail"]
STATUSES = ("pass", "warn", "fail")


@dataclass
class Verdict:
    """What a check says; ``message`` in plain words, ``advice`` how to fix it (empty on pass).
    Built-in checks give both as :class:`Text` so they can be shown in the worker's language;
    a plugin's plain string is shown as written."""

    status: Status
    value: Any
    threshold: dict[str, Any]
    message: str | Text
    advice: str | Text = ""
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckResult:
    name: str
    version: Version
    title: str
    status: Status
    value: Any
    threshold: dict[str, Any]
    message: str
    advice: str
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    # The msgids (marked with N_) and placeholder values behind message and advice; empty in
    # reports written before they were kept, and for plugins that give plain strings.
    message_id: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    advice_id: str = ""
    advice_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckContext:
    stats: ClipStats
    thresholds: QCThresholds
    probe: ProbeResult | None = None
    fingerprint: Fingerprint | None = None
    known_fingerprints: Any = ()
    # What the uploader declared (the clip's client_meta, e.g. {"mount": "chest_mounted"}): untrusted
    client_meta: dict[str, Any] = field(default_factory=dict)


CheckFn = Callable[[CheckContext], Verdict]
#: Every QC check; an entry's description is the check's title.
CHECKS: Registry[CheckFn] = Registry("qc.check", builtins="egocrowd.media.qc.checks")


def qc_check(name: str, *, version: int, title: str = "") -> Callable[[CheckFn], CheckFn]:
    """Register a QC check. Names are stable identifiers (stored in reports and campaign configs)."""
    return CHECKS.register(name, version=version, description=title or name.replace("_", " ").capitalize())


def run_check(entry: Entry[CheckFn], ctx: CheckContext) -> CheckResult:
    """Run one registered check and stamp its verdict with the check's name, version and title."""
    v = entry.obj(ctx)
    if v.status not in STATUSES:
        raise ValueError(f"check {entry.name} returned status {v.status!r}")
    advice = v.advice if v.status != "pass" else ""
    return CheckResult(
        name=entry.name,
        version=entry.version,
        title=entry.description,
        status=v.status,
        value=v.value,
        threshold=v.threshold,
        message=v.message.english() if isinstance(v.message, Text) else v.message,
        advice=advice.english() if isinstance(advice, Text) else advice,
        unit=v.unit,
        details=v.details,
        message_id=v.message.id if isinstance(v.message, Text) else "",
        params=v.message.to_dict()["params"] if isinstance(v.message, Text) else {},
        advice_id=advice.id if isinstance(advice, Text) else "",
        advice_params=advice.to_dict()["params"] if isinstance(advice, Text) else {},
    )


def registered_checks() -> list[Entry[CheckFn]]:
    return CHECKS.entries()


def get_check(name: str) -> Entry[CheckFn]:
    return CHECKS.get(name)

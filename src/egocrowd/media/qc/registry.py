"""The QC check registry: every check is a plugin registered by name and version.

    @qc_check("too_dark", version=1, title="Too dark")
    def too_dark(ctx: CheckContext) -> Verdict: ...

A check reads ``ctx.stats`` (``ClipStats``: numbers, never files or database rows) and
``ctx.thresholds``, and returns a ``Verdict``; the registry stamps it with the check's name and
version into a ``CheckResult``. Bump ``version`` whenever a change could flip a verdict: the version
is stored with every result so old reports stay explainable. Third-party checks register the same
way from a module named in the ``egocrowd.plugins`` entry-point group.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from egocrowd.plugins import load_plugins
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:  # pragma: no cover
    from egocrowd.media.analysis import ClipStats
    from egocrowd.media.fingerprint import Fingerprint
    from egocrowd.media.probe import ProbeResult
    from egocrowd.media.qc.thresholds import QCThresholds

log = logging.getLogger(__name__)

Status = Literal["pass", "warn", "fail"]
STATUSES = ("pass", "warn", "fail")


@dataclass
class Verdict:
    """What a check says; ``message`` in plain words, ``advice`` how to fix it (empty on pass)."""

    status: Status
    value: Any
    threshold: dict[str, Any]
    message: str
    advice: str = ""
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class CheckResult:
    name: str
    version: int
    title: str
    status: Status
    value: Any
    threshold: dict[str, Any]
    message: str
    advice: str
    unit: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CheckContext:
    stats: "ClipStats"
    thresholds: "QCThresholds"
    probe: "ProbeResult | None" = None
    fingerprint: "Fingerprint | None" = None
    known_fingerprints: Any = ()


@dataclass(frozen=True)
class CheckSpec:
    name: str
    version: int
    title: str
    fn: Callable[[CheckContext], Verdict]

    def run(self, ctx: CheckContext) -> CheckResult:
        v = self.fn(ctx)
        if v.status not in STATUSES:
            raise ValueError(f"check {self.name} returned status {v.status!r}")
        return CheckResult(name=self.name, version=self.version, title=self.title,
                           status=v.status, value=v.value, threshold=v.threshold,
                           message=v.message, advice=v.advice if v.status != "pass" else "",
                           unit=v.unit, details=v.details)


_REGISTRY: dict[str, CheckSpec] = {}


def qc_check(name: str, *, version: int, title: str = "") -> Callable[[Callable[[CheckContext], Verdict]], Callable[[CheckContext], Verdict]]:
    """Register a QC check. Names are stable identifiers (stored in reports and campaign configs)."""

    def decorator(fn: Callable[[CheckContext], Verdict]) -> Callable[[CheckContext], Verdict]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.fn is not fn and (
                existing.fn.__module__, existing.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"a QC check named {name!r} is already registered")
        _REGISTRY[name] = CheckSpec(name=name, version=version,
                                    title=title or name.replace("_", " ").capitalize(), fn=fn)
        return fn

    return decorator


def registered_checks() -> list[CheckSpec]:
    from egocrowd.media.qc import checks  # noqa: F401 - registers the built-in checks

    load_plugins()
    return list(_REGISTRY.values())


def get_check(name: str) -> CheckSpec:
    for spec in registered_checks():
        if spec.name == name:
            return spec
    raise KeyError(f"no QC check named {name!r}")

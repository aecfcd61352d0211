"""``run_qc``: probe -> one decoding pass -> every registered check -> a JSON-ready ``QCReport``.

``evaluate`` is the pure half (stats in, report out); ``run_qc`` adds the file I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egocrowd.media.analysis import ANALYZER_VERSION, AnalysisConfig, ClipStats, analyze_video, fingerprint
from egocrowd.media.fingerprint import Fingerprint
from egocrowd.media.hands import DETECTOR_NAME, get_palm_detector
from egocrowd.media.probe import ProbeLimits, ProbeResult, probe
from egocrowd.media.qc.registry import CheckContext, CheckResult, registered_checks, run_check
from egocrowd.media.qc.thresholds import QCThresholds

QC_REPORT_FORMAT_VERSION = 1
QC_PASSED = "qc_passed"
QC_FAILED = "qc_failed"

KnownFingerprints = Mapping[Any, Any] | Iterable[tuple[Any, Any]]


@dataclass
class QCReport:
    status: str  # qc_passed | qc_failed
    checks: list[CheckResult]
    thresholds: dict[str, Any]
    clip: dict[str, Any]  # what was measured about the file (probe + decode)
    fingerprint: dict[str, Any]  # store it: later clips are compared against it
    analyzer_version: int = ANALYZER_VERSION
    hands_detector: str | None = None
    elapsed_s: float = 0.0
    format_version: int = QC_REPORT_FORMAT_VERSION
    probe: dict[str, Any] | None = field(default=None)

    @property
    def passed(self) -> bool:
        return self.status == QC_PASSED

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "warn"]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def reasons(self) -> list[str]:
        """One line per failed check, for the worker: "too dark: 62 % of frames — record ..."."""
        return [f"{c.message} — {c.advice}" if c.advice else c.message for c in self.failed_checks]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "status": self.status,
            "failed": [c.name for c in self.failed_checks],
            "warnings": [c.name for c in self.warnings],
            "reasons": self.reasons(),
            "checks": [c.to_dict() for c in self.checks],
            "check_versions": {c.name: c.version for c in self.checks},
            "thresholds": self.thresholds,
            "clip": self.clip,
            "probe": self.probe,
            "fingerprint": self.fingerprint,
            "analyzer_version": self.analyzer_version,
            "hands_detector": self.hands_detector,
            "elapsed_s": round(self.elapsed_s, 3),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QCReport:
        return cls(
            status=data["status"],
            checks=[CheckResult(**c) for c in data["checks"]],
            thresholds=dict(data["thresholds"]),
            clip=dict(data["clip"]),
            fingerprint=dict(data["fingerprint"]),
            analyzer_version=data.get("analyzer_version", ANALYZER_VERSION),
            hands_detector=data.get("hands_detector"),
            elapsed_s=data.get("elapsed_s", 0.0),
            format_version=data.get("format_version", QC_REPORT_FORMAT_VERSION),
            probe=data.get("probe"),
        )


def evaluate(
    stats: ClipStats,
    thresholds: QCThresholds | Mapping[str, Any] | None = None,
    known_fingerprints: KnownFingerprints = (),
    *,
    probe_result: ProbeResult | None = None,
    only: Iterable[str] | None = None,
    client_meta: Mapping[str, Any] | None = None,
) -> QCReport:
    """Run every registered (and not disabled) check on already computed ``stats``. Pure.
    ``client_meta`` is what the uploader declared (the mount they confirmed)."""
    th = thresholds if isinstance(thresholds, QCThresholds) else QCThresholds.from_dict(thresholds)
    fp = fingerprint(stats)
    ctx = CheckContext(
        stats=stats,
        thresholds=th,
        probe=probe_result,
        fingerprint=fp,
        known_fingerprints=known_fingerprints,
        client_meta=dict(client_meta or {}),
    )
    wanted = set(only) if only is not None else None
    results = [
        run_check(spec, ctx)
        for spec in registered_checks()
        if spec.name not in th.disabled and (wanted is None or spec.name in wanted)
    ]
    status = QC_FAILED if any(r.status == "fail" for r in results) else QC_PASSED
    clip = {
        "width": stats.width,
        "height": stats.height,
        "fps": round(stats.fps, 3),
        "duration_s": round(stats.duration_s, 3),
        "frames_decoded": stats.n_frames,
        "packets": stats.packets,
        "decode_errors": stats.decode_errors,
        "hand_frames_checked": int(stats.hand_score.size),
    }
    return QCReport(
        status=status,
        checks=results,
        thresholds=th.to_dict(),
        clip=clip,
        fingerprint=fp.to_dict(),
        hands_detector=stats.hands_detector,
        probe=probe_result.to_dict() if probe_result else None,
    )


def run_qc(
    path: str,
    thresholds: QCThresholds | Mapping[str, Any] | None = None,
    known_fingerprints: KnownFingerprints = (),
    *,
    probe_result: ProbeResult | None = None,
    limits: ProbeLimits | None = None,
    config: AnalysisConfig | None = None,
    timeout_s: float = 600.0,
    use_hand_detector: bool = True,
    palm_model: str | Path | None = None,
    client_meta: Mapping[str, Any] | None = None,
) -> QCReport:
    """QC one clip. Raises ``MediaError`` (with a stable code) when the file cannot be QC'd at all;
    otherwise returns a report whose ``status`` is ``qc_passed`` or ``qc_failed``.

    Pass ``probe_result`` when the probe stage already ran, to skip probing again; ``palm_model``
    is the setting of that name (default: the packaged model)."""
    started = time.monotonic()
    th = thresholds if isinstance(thresholds, QCThresholds) else QCThresholds.from_dict(thresholds)
    pr = probe_result or probe(path, limits)
    detector = get_palm_detector(palm_model) if use_hand_detector and "hands_visible" not in th.disabled else None
    stats = analyze_video(
        path,
        config,
        hand_scorer=detector.score if detector else None,
        hands_detector_name=DETECTOR_NAME if detector else None,
        timeout_s=timeout_s,
        expected_duration_s=pr.duration_s,
    )
    report = evaluate(stats, th, known_fingerprints, probe_result=pr, client_meta=client_meta)
    report.elapsed_s = time.monotonic() - started
    return report


__all__ = ["QCReport", "evaluate", "run_qc", "QC_PASSED", "QC_FAILED", "QC_REPORT_FORMAT_VERSION", "Fingerprint"]

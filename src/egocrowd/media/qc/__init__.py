"""Automated quality control of uploaded clips: registered checks over one decoding pass."""

from egocrowd.media.qc.registry import (
    CHECKS,
    CheckContext,
    CheckResult,
    Verdict,
    get_check,
    qc_check,
    registered_checks,
    run_check,
)
from egocrowd.media.qc.report import QC_FAILED, QC_PASSED, QC_REPORT_FORMAT_VERSION, QCReport, evaluate, run_qc
from egocrowd.media.qc.thresholds import QCThresholds

__all__ = [
    "CHECKS",
    "CheckContext",
    "CheckResult",
    "Verdict",
    "get_check",
    "qc_check",
    "registered_checks",
    "run_check",
    "QC_FAILED",
    "QC_PASSED",
    "QC_REPORT_FORMAT_VERSION",
    "QCReport",
    "evaluate",
    "run_qc",
    "QCThresholds",
]

"""Automated quality control of uploaded clips: registered checks over one decoding pass."""

from egocrowd.media.qc.registry import (CheckContext, CheckResult, CheckSpec, Verdict, get_check,
                                        qc_check, registered_checks)
from egocrowd.media.qc.report import (QC_FAILED, QC_PASSED, QC_REPORT_FORMAT_VERSION, QCReport,
                                      evaluate, run_qc)
from egocrowd.media.qc.thresholds import QCThresholds

__all__ = ["CheckContext", "CheckResult", "CheckSpec", "Verdict", "get_check", "qc_check",
           "registered_checks", "QC_FAILED", "QC_PASSED", "QC_REPORT_FORMAT_VERSION", "QCReport",
           "evaluate", "run_qc", "QCThresholds"]

"""Media: probing uploads, one-pass frame analysis, QC checks, fingerprints, test media.

The pure entry points the pipeline calls:

    probe(path, limits) -> ProbeResult                      # raises MediaError(code=...)
    run_qc(path, thresholds, known_fingerprints) -> QCReport  # report.to_dict() is JSON
    call_bounded(fn, *args, timeout_s=..., max_memory_mb=...)  # isolate a hostile file
    open_media(path)                                          # the one way to open an upload
"""

from egocrowd.media.analysis import fingerprint
from egocrowd.media.bounded import call_bounded
from egocrowd.media.fingerprint import Fingerprint, find_duplicates, match_fingerprints
from egocrowd.media.opener import open_media
from egocrowd.media.probe import REASON_CODES, ProbeLimits, ProbeResult, probe
from egocrowd.media.qc import QCReport, QCThresholds, evaluate, qc_check, registered_checks, run_qc

__all__ = [
    "call_bounded",
    "Fingerprint",
    "find_duplicates",
    "fingerprint",
    "match_fingerprints",
    "open_media",
    "REASON_CODES",
    "ProbeLimits",
    "ProbeResult",
    "probe",
    "QCReport",
    "QCThresholds",
    "evaluate",
    "qc_check",
    "registered_checks",
    "run_qc",
]

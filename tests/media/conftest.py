"""The QC thresholds sized for the generated test clips (``qc_media``, in tests/conftest.py)."""

from __future__ import annotations

import pytest

from egocrowd.media.qc import QCThresholds

# Campaign-style overrides sized for the small generated clips (8 s, 352x288): they also exercise
# QCThresholds.from_dict, the way a campaign sets them.
TEST_THRESHOLDS = QCThresholds.from_dict(
    {
        "min_duration_s": 3,
        "max_duration_s": 60,
        "min_short_side": 200,
        "warn_short_side": 240,
        "min_fps": 20,
        "warn_fps": 24,
        "idle_warn_s": 2,
        "idle_fail_s": 3,
        "orientation": "landscape",
    }
)


@pytest.fixture(scope="session")
def qc_thresholds() -> QCThresholds:
    return TEST_THRESHOLDS

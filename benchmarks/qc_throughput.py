#!/usr/bin/env python
"""QC throughput against a plain PyAV decode of the same clip, and clips per minute in a batch.

    .venv/bin/python benchmarks/qc_throughput.py [--seconds 20] [--batch 50] [--rounds 5] [--quick]

1. A 1280x720 30 fps H.264 clip (made from bigbuckbunny.mp4, looped) is decoded plainly (every
   frame, threaded, no conversion) and QC'd with ``run_qc`` as the pipeline's QC stage runs it
   (the probe stage's result passed in; analysis + every check, including the palm detector), and
   also with the probe included; the three alternate, ``--rounds`` times, and medians are
   compared. Target: qc_vs_decode = decode time / QC-stage time >= 0.8 (wall clock); the CPU-time
   ratio is printed beside it (on a loaded machine it is the steadier of the two).
2. A batch of ``--batch`` clips (the generated test clips, cycled) goes through the process-pool
   executor (one process per core) and through the inline executor; clips per minute for both.
Numbers are measured side by side in one run on this machine; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
from _common import target  # benchmarks/_common.py: the one format of target lines


def plain_decode(path: str) -> int:
    n = 0
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return n


def qc_one(path: str) -> str:
    from egocrowd.media import run_qc

    # The small generated clips run under the test overrides so that every check does its work.
    return run_qc(
        path, {"min_duration_s": 1, "min_short_side": 100, "warn_short_side": 100, "min_fps": 5, "warn_fps": 5}
    ).status


def main(argv: list[str] | None = None) -> int:
    from egocrowd.media import run_qc
    from egocrowd.media.hands import get_palm_detector
    from egocrowd.media.testmedia import QC_CLIPS, make_benchmark_clip, make_test_media
    from egocrowd.pipeline.executors import get_executor

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="smoke run: 6 s clip, 3 rounds, batch of 8")
    args = ap.parse_args(argv)
    if args.quick:
        args.seconds, args.rounds, args.batch = 6.0, 3, 8

    with tempfile.TemporaryDirectory() as tmp:
        clip = str(make_benchmark_clip(Path(tmp) / "720p30.mp4", args.seconds))
        print(
            f"clip: 1280x720 30 fps H.264, {args.seconds:g} s; palm detector: "
            f"{'installed' if get_palm_detector() else 'MISSING (hands not measured)'}"
        )
        from egocrowd.media.probe import probe

        plain_decode(clip)  # warm the page cache and the libraries
        probed = probe(clip)  # the probe stage, run before QC in the pipeline
        run_qc(clip, probe_result=probed)
        runs = {
            "decode": lambda: plain_decode(clip),
            "qc": lambda: run_qc(clip, probe_result=probed),
            "qc+probe": lambda: run_qc(clip),
        }
        wall: dict[str, list[float]] = {k: [] for k in runs}
        cpu: dict[str, list[float]] = {k: [] for k in runs}
        frames, report = 0, None
        for r in range(args.rounds):
            # Alternate the order each round so that load from other work falls on all three alike.
            for name in list(runs) if r % 2 == 0 else list(runs)[::-1]:
                t, c = time.perf_counter(), time.process_time()
                out = runs[name]()
                wall[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
                if name == "decode":
                    frames = out
                elif name == "qc":
                    report = out
        w = {k: statistics.median(v) for k, v in wall.items()}
        c = {k: statistics.median(v) for k, v in cpu.items()}
        assert report is not None
        for name in runs:
            print(f"{name:9s}: {w[name]:.2f} s wall, {c[name]:.2f} s CPU ({frames / w[name]:.0f} fps)")
        print(
            f"QC stage: {report.status}, {report.clip['hand_frames_checked']} frames through the palm detector; "
            f"decode / QC = {w['decode'] / w['qc']:.2f} wall-clock, {c['decode'] / c['qc']:.2f} CPU time; "
            f"with the probe: {w['decode'] / w['qc+probe']:.2f} wall-clock, {c['decode'] / c['qc+probe']:.2f} CPU time"
        )
        try:
            load = os.getloadavg()[0]
            print(
                f"load average during the run: {load:.1f} on {os.cpu_count()} cores "
                "(other work on the machine lowers the wall-clock ratio most)"
            )
        except OSError:
            pass

        media = make_test_media(Path(tmp) / "media", include_real=False)
        paths = [str(media[QC_CLIPS[i % len(QC_CLIPS)]]) for i in range(args.batch)]
        rates = {}
        for name, options in (("process", {"max_workers": args.workers}), ("inline", {})):
            with get_executor(name, **options) as ex:
                if name == "process":
                    ex.map(qc_one, paths[: ex.workers])  # start the workers before timing
                t = time.perf_counter()
                out = ex.map(qc_one, paths, return_exceptions=True)
                elapsed = time.perf_counter() - t
            errors = sum(isinstance(o, BaseException) for o in out)
            rates[name] = len(paths) / elapsed * 60
            workers = f"{ex.workers} workers" if name == "process" else "1 thread"
            print(
                f"batch of {len(paths)} clips (352x288, ~8 s each) via {name} ({workers}): "
                f"{elapsed:.1f} s = {rates[name]:.0f} clips/min, {errors} errors"
            )
        print(f"process pool / inline = {rates['process'] / rates['inline']:.2f}x")
        target("qc_vs_decode", w["decode"] / w["qc"], 0.8)  # the QC stage at 0.8x a plain decode or better
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""QC throughput against a plain PyAV decode of the same clip, and clips per minute in a batch.

    .venv/bin/python benchmarks/qc_throughput.py [--seconds 20] [--batch 50] [--rounds 3]

1. A 1280x720 30 fps H.264 clip (made from bigbuckbunny.mp4, looped) is decoded plainly (every
   frame, threaded, no conversion) and QC'd with ``run_qc`` (probe + analysis + all checks,
   including the palm detector), alternately, ``--rounds`` times; medians are compared. Target:
   ratio = decode time / QC time >= 0.5 (QC costs at most twice a decode).
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
from _targets import target  # benchmarks/_targets.py: the one format of target lines


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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        clip = str(make_benchmark_clip(Path(tmp) / "720p30.mp4", args.seconds))
        print(
            f"clip: 1280x720 30 fps H.264, {args.seconds:g} s; palm detector: "
            f"{'installed' if get_palm_detector() else 'MISSING (hands not measured)'}"
        )
        plain_decode(clip)  # warm the page cache and the libraries
        run_qc(clip)
        dec, qc, dec_cpu, qc_cpu = [], [], [], []
        for _ in range(args.rounds):
            t, c = time.perf_counter(), time.process_time()
            frames = plain_decode(clip)
            dec.append(time.perf_counter() - t)
            dec_cpu.append(time.process_time() - c)
            t, c = time.perf_counter(), time.process_time()
            report = run_qc(clip)
            qc.append(time.perf_counter() - t)
            qc_cpu.append(time.process_time() - c)
        d, q = statistics.median(dec), statistics.median(qc)
        dc, qcc = statistics.median(dec_cpu), statistics.median(qc_cpu)
        print(
            f"plain decode: {d:.2f} s wall, {dc:.2f} s CPU ({frames / d:.0f} fps)   "
            f"QC: {q:.2f} s wall, {qcc:.2f} s CPU ({frames / q:.0f} fps, {report.status})"
        )
        print(f"QC throughput / decode throughput = {d / q:.2f} wall-clock, {dc / qcc:.2f} CPU time")
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
        target("qc_over_decode_cpu", dc / qcc, 0.5)  # QC costs at most twice a plain decode
        target("qc_over_decode_wall", d / q, 0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())

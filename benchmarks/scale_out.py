#!/usr/bin/env python
"""Stages on a cluster: QC throughput through the Dask executor against the local process pool.

    .venv/bin/python benchmarks/scale_out.py [--batch 32] [--rounds 3] [--quick]

The same small generated clips (352x288, ~8 s each, cycled) are QC'd as a batch through four
executors started side by side: the process pool and a local Dask cluster (``dask+local://N``),
each with 1 and with 2 worker processes. Every executor is warmed first (its workers started and
their media libraries loaded); then the batch runs through each in turn, the order alternating per
round so that other load on the machine falls on all alike, and medians of clips/s are compared.
Target per worker count: dask / process pool >= 0.8 (the engine's overhead under 20 %).
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

from _common import target  # benchmarks/_common.py: the one format of target lines


def qc_one(path: str) -> str:
    from egocrowd.media import run_qc

    return run_qc(
        path, {"min_duration_s": 1, "min_short_side": 100, "warn_short_side": 100, "min_fps": 5, "warn_fps": 5}
    ).status


def main(argv: list[str] | None = None) -> int:
    from egocrowd.media.testmedia import QC_CLIPS, make_test_media
    from egocrowd.pipeline.executors import get_executor

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="smoke run: a batch of 8, 2 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.rounds = 8, 2

    with tempfile.TemporaryDirectory() as tmp:
        media = make_test_media(Path(tmp) / "media", include_real=False)
        paths = [str(media[QC_CLIPS[i % len(QC_CLIPS)]]) for i in range(args.batch)]
        executors = {}
        try:
            for n in (1, 2):
                executors[f"process/{n}"] = get_executor("process", max_workers=n)
                executors[f"dask/{n}"] = get_executor("dask", cluster_url=f"dask+local://{n}")
            for ex in executors.values():
                ex.map(qc_one, paths[: 2 * ex.workers])  # start the workers, load the libraries
            seconds: dict[str, list[float]] = {k: [] for k in executors}
            for r in range(args.rounds):
                for name in list(executors) if r % 2 == 0 else list(executors)[::-1]:
                    t = time.perf_counter()
                    out = executors[name].map(qc_one, paths, return_exceptions=True)
                    seconds[name].append(time.perf_counter() - t)
                    errors = [o for o in out if isinstance(o, BaseException)]
                    if errors:
                        raise SystemExit(f"{name}: {len(errors)} clips failed, e.g. {errors[0]!r}")
        finally:
            for ex in executors.values():
                ex.shutdown()
    rate = {k: len(paths) / statistics.median(v) for k, v in seconds.items()}
    for name, r in rate.items():
        print(f"{name:10s}: {r:5.2f} clips/s (median of {args.rounds} batches of {len(paths)})")
    try:
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    except OSError:
        pass
    for n in (1, 2):
        target(f"dask_vs_process_pool_{n}", rate[f"dask/{n}"] / rate[f"process/{n}"], 0.8)
    return 0


if __name__ == "__main__":
    sys.exit(main())

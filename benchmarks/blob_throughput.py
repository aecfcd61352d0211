#!/usr/bin/env python
"""Blob store throughput: the S3-compatible object store against the local directory, same files.

    .venv/bin/python benchmarks/blob_throughput.py [--files 8] [--mb 32] [--repeat 3]

Each round puts ``--files`` random files of ``--mb`` MiB into a fresh local store (``file://``) and
into a fresh bucket of an S3-compatible server on this machine (moto's standalone server, the one
the tests use), then gets every blob back whole: ``local_path`` on both (FFmpeg's way in: the blob
itself on disk, a verified download into the cache on S3; the cache is emptied first) and a
streamed read of every byte (``iter_range``: the player's and the exporters' way). Puts hash the
bytes on both (content addressing); the S3 puts go up in 8 MiB parts. The stores alternate and the
best of ``--repeat`` rounds counts, so load from neighbours cancels out. Ratio = local time / S3
time (1.0: as fast as the local disk).

moto is a Python (werkzeug) server that keeps objects in its own process: it measures our client
path (hashing, multipart, ranged GETs, the verified cache), not what a real object store sustains,
which is why the goals are modest (0.1: the S3 path at a tenth of the local disk's speed or better).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support.s3: the tests' server
from _common import target  # benchmarks/_common.py: the one format of target lines

from egocrowd.blobs import Blobs, open_blob_store
from tests.support.s3 import s3_server


def _round(store: Blobs, files: list[Path]) -> dict[str, float]:
    t0 = time.perf_counter()
    shas = [store.put_file(f).sha256 for f in files]
    t1 = time.perf_counter()
    for sha in shas:
        store.local_path(sha).stat()
    t2 = time.perf_counter()
    for sha in shas:
        for _ in store.iter_range(sha, 0, store.size(sha), chunk=8 * 1024 * 1024):
            pass
    t3 = time.perf_counter()
    return {"put": t1 - t0, "local_path": t2 - t1, "stream": t3 - t2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    total_mb = args.files * args.mb
    best: dict[str, dict[str, float]] = {"local": {}, "s3": {}}
    with tempfile.TemporaryDirectory(prefix="egocrowd-bench-blobs-") as tmp, s3_server() as s3:
        root = Path(tmp)
        files = []
        for i in range(args.files):
            p = root / f"in-{i}.bin"
            p.write_bytes(os.urandom(args.mb * 1024 * 1024))
            files.append(p)
        for r in range(args.repeat):
            for kind in ("local", "s3") if r % 2 == 0 else ("s3", "local"):
                where = root / f"{kind}-{uuid.uuid4().hex[:8]}"
                if kind == "local":
                    store = open_blob_store(where.as_uri())
                else:
                    bucket = f"bench-{uuid.uuid4().hex[:12]}"
                    httpx.put(f"{s3.endpoint}/{bucket}").raise_for_status()
                    store = open_blob_store(
                        f"s3://{bucket}/blobs", cache_dir=where, endpoint_url=s3.endpoint, region=s3.region
                    )
                took = _round(store, files)
                for k, v in took.items():
                    best[kind][k] = min(best[kind].get(k, v), v)
                shutil.rmtree(where, ignore_errors=True)
    print(f"{args.files} files x {args.mb} MiB = {total_mb} MiB, best of {args.repeat}")
    print("local_path: the blob itself on file:// (a stat), a verified download on S3; get = stream")
    print(f"{'':12}{'local MB/s':>12}{'s3 MB/s':>12}{'ratio':>8}")
    for k in ("put", "local_path", "stream"):
        lo, s3v = total_mb / best["local"][k], total_mb / best["s3"][k]
        print(f"{k:12}{lo:12.0f}{s3v:12.0f}{s3v / lo:8.2f}")
    get_local = best["local"]["stream"]
    target("s3_put_vs_local", best["local"]["put"] / best["s3"]["put"], 0.1)
    target("s3_get_vs_local", get_local / best["s3"]["stream"], 0.1)


if __name__ == "__main__":
    main()

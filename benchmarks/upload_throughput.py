"""Upload throughput over loopback (tuspy → our tus server) vs. copying the same file on local disk.

    .venv/bin/python benchmarks/upload_throughput.py            # 50 MB and 500 MB
    .venv/bin/python benchmarks/upload_throughput.py --sizes 100 --chunk-mb 8

For each size a fresh server process (uvicorn, one worker) is started, so its peak RSS (VmHWM from
/proc) belongs to that size alone; memory that does not grow from 50 MB to 500 MB shows that
uploads are streamed to disk, not buffered. The upload time includes completion (sha256 of the
whole file and the move into the content-addressed blob store), as in production. The disk copy
is ``shutil.copyfile`` + fsync (the server also fsyncs). Prints MB/s, the ratio upload/copy
(target >= 0.5), the server's peak memory, and for reference the same chunked PATCHes sent to a
handler that discards them ("HTTP sink": what loopback HTTP alone manages on this machine).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _targets import target  # benchmarks/_targets.py: the one format of target lines

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def serve(root: Path, port: int) -> None:
    """The server side (run in its own process): the real router with minimal hooks."""
    import uvicorn
    from fastapi import FastAPI

    from egocrowd.blobs import BlobStore
    from egocrowd.uploads import Grant, UploadStore
    from egocrowd.web.tus import make_tus_router

    blobs = BlobStore(root / "blobs")

    class Hooks:
        def authorize_create(self, request, length, metadata):
            return Grant(owner="bench", max_length=1 << 40)

        def authorize_access(self, request, info, verb):
            return None

        def on_complete(self, info, data_path):
            ref = blobs.put_file(data_path, sha256=info.sha256, move=True, verify=info.sha256 is None)
            return {"Egocrowd-Blob": ref.sha256}

    app = FastAPI()
    app.include_router(make_tus_router(UploadStore(root / "uploads"), Hooks(), max_size=1 << 40), prefix="/files")

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    async def asgi(scope, receive, send):
        # /sink drains the body and stores nothing: the HTTP-over-loopback ceiling on this machine.
        if scope["type"] != "http" or scope["path"] != "/sink":
            return await app(scope, receive, send)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    uvicorn.run(asgi, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _peak_rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _make_source(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n


def _copy(src: Path, dst: Path) -> float:
    t = time.perf_counter()
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - t


def _sink(url: str, src: Path, chunk: int) -> float:
    """The same chunked PATCHes as tuspy, to a handler that discards them."""
    import requests

    t = time.perf_counter()
    with requests.Session() as s, open(src, "rb") as f:
        while data := f.read(chunk):
            s.patch(url, data=data).raise_for_status()
    return time.perf_counter() - t


def run_size(tmp: Path, size_mb: int, chunk_mb: int, repeat: int) -> dict:
    import httpx
    from tusclient import client as tus_client

    size = size_mb * 1_000_000
    src = tmp / f"src-{size_mb}.bin"
    _make_source(src, size)
    root = tmp / f"server-{size_mb}"
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(root), str(port)])
    try:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        rss_idle, _ = _peak_rss_mb(proc.pid)
        # Interleave copies and uploads and keep the best of each: the machine may be shared.
        client = tus_client.TusClient(f"http://127.0.0.1:{port}/files")
        copy_s = upload_s = sink_s = float("inf")
        for _ in range(repeat):
            sink_s = min(sink_s, _sink(f"http://127.0.0.1:{port}/sink", src, chunk_mb << 20))
            dst = tmp / f"copy-{size_mb}.bin"
            copy_s = min(copy_s, _copy(src, dst))
            dst.unlink()
            up = client.uploader(str(src), chunk_size=chunk_mb << 20, metadata={"filename": src.name})
            t = time.perf_counter()
            up.upload()
            upload_s = min(upload_s, time.perf_counter() - t)
        _, peak = _peak_rss_mb(proc.pid)
        blobs = list((root / "blobs").glob("*/*/*"))
        # identical bytes each round: stored once
        assert len(blobs) == 1 and blobs[0].stat().st_size == size, "upload did not land in the blob store"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)
        src.unlink(missing_ok=True)
        (tmp / f"copy-{size_mb}.bin").unlink(missing_ok=True)
    return {
        "size_mb": size_mb,
        "upload_s": upload_s,
        "copy_s": copy_s,
        "upload_mbps": size_mb / upload_s,
        "copy_mbps": size_mb / copy_s,
        "ratio": copy_s / upload_s,
        "sink_mbps": size_mb / sink_s,
        "rss_idle_mb": rss_idle,
        "rss_peak_mb": peak,
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,500", help="file sizes in MB, comma-separated")
    ap.add_argument("--chunk-mb", type=int, default=32, help="tuspy chunk size (one PATCH per chunk)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per size; the best round counts")
    ap.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        rows = [run_size(Path(d), int(s), args.chunk_mb, args.repeat) for s in args.sizes.split(",")]
    print(
        f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; chunk {args.chunk_mb} MiB; "
        f"best of {args.repeat}"
    )
    print(
        f"{'size':>7} {'tus upload':>12} {'disk copy':>12} {'ratio':>6} {'HTTP sink':>12} {'server RSS idle→peak':>22}"
    )
    for r in rows:
        print(
            f"{r['size_mb']:>5}MB {r['upload_mbps']:>8.0f}MB/s {r['copy_mbps']:>8.0f}MB/s {r['ratio']:>6.2f}"
            f" {r['sink_mbps']:>8.0f}MB/s {r['rss_idle_mb']:>12.0f}MB → {r['rss_peak_mb']:.0f}MB"
        )
    growth = rows[-1]["rss_peak_mb"] - rows[0]["rss_peak_mb"]
    print(f"server peak RSS change {rows[0]['size_mb']}→{rows[-1]['size_mb']} MB: {growth:+.0f} MB")
    target(f"upload_over_disk_copy_{rows[-1]['size_mb']}mb", rows[-1]["ratio"], 0.5)
    # memory flat: the peak at the largest size is within 10 % of the peak at the smallest
    target("server_rss_small_over_large", rows[0]["rss_peak_mb"] / rows[-1]["rss_peak_mb"], 0.9)


if __name__ == "__main__":
    main()

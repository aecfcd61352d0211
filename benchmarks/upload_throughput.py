"""Upload throughput over loopback: tuspy → our tus server, vs. the official Node.js tus server
(``@tus/server`` 2.x with ``@tus/file-store``) and vs. copying the same file on local disk.

    .venv/bin/python benchmarks/upload_throughput.py            # 50 MB and 500 MB, then 50 × 10 MB at once
    .venv/bin/python benchmarks/upload_throughput.py --quick    # a smoke run (small sizes, one round)
    .venv/bin/python benchmarks/upload_throughput.py --sizes 100 --chunk-mb 8 --concurrent 20

The shared upload store (several servers, ``egocrowd.uploads.shared``) is measured against the
local one on the first size (``target shared_vs_local_store``), with PostgreSQL from
EGOCROWD_TEST_DATABASE_URL (a private schema) and its parts in a file:// object store.

The Node server is installed by this script's own set-up: ``npm install --no-save --prefix
~/.cache/egocrowd-bench/tus-node @tus/server@2 @tus/file-store@2`` (once; ``--node-dir`` moves it) and
run from a small script written there. Without npm or node (no network) the Node columns and
targets are skipped with a line saying so.

Both servers get the same tuspy client, the same chunk size and the same loopback. For each size
fresh server processes are started, so their peak RSS (VmHWM from /proc) belongs to that size
alone; memory that does not grow from 50 MB to 500 MB shows that uploads are streamed to disk, not
buffered. Our upload time includes completion (the move into the content-addressed blob store by
the sha256 computed while receiving), and our server fsyncs every PATCH before answering it; the
Node file store does neither (no fsync, no hash). The disk copy is ``shutil.copyfile`` + fsync.

Each server's CPU time per upload (user + system, all threads, from /proc) is printed too: on a
busy machine it moves much less than the times do.

The machine may be shared, so every round runs each contestant once, the order rotating from
round to round, and the medians count. For reference the same chunked PATCHes are also sent to a
handler that discards them ("HTTP sink": what loopback HTTP alone manages here).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from _common import target  # benchmarks/_common.py: the one format of target lines

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

OURS_PATH = "/api/v1/uploads"  # where the app mounts tus (egocrowd.web.tus.UPLOADS_PATH)
SINK_PATH = OURS_PATH + "/sink"  # under it, so it gets the same HTTP read-ahead as uploads
NODE_PACKAGES = ("@tus/server@2", "@tus/file-store@2")
NODE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "egocrowd-bench" / "tus-node"
# The peer as its README shows it: a FileStore under a Server, served by node's own http server.
NODE_SERVER = """\
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';
const [dir, port] = process.argv.slice(2);
const server = new Server({ path: '/files', datastore: new FileStore({ directory: dir }) });
server.listen({ host: '127.0.0.1', port: Number(port) });
"""


def serve(root: Path, port: int, db_url: str | None = None) -> None:
    """Our server side (run in its own process): the real router with minimal hooks; with
    ``db_url`` the shared upload store (rows in that PostgreSQL, parts as objects next to the blobs)."""
    import uvicorn
    from fastapi import FastAPI

    from egocrowd.blobs import BlobStore
    from egocrowd.settings import Settings
    from egocrowd.uploads import Grant, Uploads, UploadStore
    from egocrowd.web.limits import uvicorn_options
    from egocrowd.web.tus import UPLOADS_PATH, make_tus_router

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
    store: Uploads = UploadStore(root / "uploads")
    if db_url is not None:
        import sqlalchemy as sa

        from egocrowd.uploads.shared import SharedUploadStore

        store = SharedUploadStore(sa.create_engine(db_url), blobs.objects("uploads"), root / "uploads")
    app.include_router(make_tus_router(store, Hooks(), max_size=1 << 40), prefix=UPLOADS_PATH)

    async def asgi(scope, receive, send):
        # The sink drains the body and stores nothing: the HTTP-over-loopback ceiling on this machine.
        if scope["type"] != "http" or scope["path"] != SINK_PATH:
            return await app(scope, receive, send)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    # The HTTP protocol options `egocrowd serve` uses (they include the upload read-ahead).
    uvicorn.run(asgi, host="127.0.0.1", port=port, log_level="warning", access_log=False, **uvicorn_options(Settings()))


# -- the Node peer ----------------------------------------------------------------------------------


def node_setup(node_dir: Path) -> Path | None:
    """Install ``@tus/server`` + ``@tus/file-store`` into ``node_dir`` (once) and write the server
    script there (ES modules resolve packages next to the script). None, with a line, if we cannot."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        print("tus-node: skipped (node or npm is not on PATH)")
        return None
    node_dir.mkdir(parents=True, exist_ok=True)
    installed = node_dir / "node_modules" / "@tus" / "server" / "package.json"
    if not installed.exists() or not (node_dir / "node_modules" / "@tus" / "file-store").exists():
        try:
            subprocess.run(
                ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(node_dir), *NODE_PACKAGES],
                check=True,
                capture_output=True,
                timeout=300,
            )
        except (subprocess.SubprocessError, OSError) as err:
            detail = getattr(err, "stderr", b"") or b""
            print(f"tus-node: skipped (npm install failed: {detail.decode(errors='replace').strip()[-300:] or err})")
            return None
    script = node_dir / "tus-bench-server.mjs"
    script.write_text(NODE_SERVER)
    version = json.loads(installed.read_text())["version"]
    store = json.loads((node_dir / "node_modules/@tus/file-store/package.json").read_text())["version"]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"tus-node: @tus/server {version} + @tus/file-store {store} on node {node}")
    return script


# -- servers ----------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str  # the tus creation endpoint
    files: Path  # where it keeps what it received (emptied between rounds)

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident memory of the server process."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            fields[k] = v.strip()
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process (all its threads) has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def clean(self) -> None:
        """Drop finished uploads, so disk use stays bounded (each round's bytes are the same)."""
        for p in self.files.rglob("*"):
            if p.is_file():
                p.unlink(missing_ok=True)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen[bytes], warm_up: Path) -> None:
    """Until the server answers; then one small upload, so first-request costs are not timed."""
    import httpx

    for _ in range(400):
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.options(url, timeout=1).status_code == 204:
                break
        time.sleep(0.05)
    else:
        raise RuntimeError(f"server at {url} did not start")
    _upload(url, warm_up, 1 << 20)


def _warm_up_file(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "warm-up.bin"
    _make_source(path, 3 << 20)
    return path


def start_ours(root: Path, db_url: str | None = None) -> Server:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(root), str(port), *([db_url] if db_url else [])])
    server = Server("egocrowd", proc, f"http://127.0.0.1:{port}{OURS_PATH}", root / "blobs")
    _wait_ready(server.url, proc, _warm_up_file(root))
    server.clean()
    return server


def start_node(root: Path, script: Path) -> Server:
    port = _free_port()
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["node", str(script), str(files), str(port)], cwd=script.parent)
    server = Server("tus-node", proc, f"http://127.0.0.1:{port}/files", files)
    _wait_ready(server.url, proc, _warm_up_file(root))
    server.clean()
    return server


# -- the work ---------------------------------------------------------------------------------------


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
    took = time.perf_counter() - t
    dst.unlink()
    return took


def _sink(url: str, src: Path, chunk: int) -> float:
    """The same chunked PATCHes as tuspy, to a handler that discards them."""
    import requests

    t = time.perf_counter()
    with requests.Session() as s, open(src, "rb") as f:
        while data := f.read(chunk):
            s.patch(url, data=data).raise_for_status()
    return time.perf_counter() - t


def _upload(url: str, src: Path, chunk: int) -> None:
    from tusclient import client as tus_client

    up = tus_client.TusClient(url).uploader(str(src), chunk_size=chunk, metadata={"filename": src.name})
    up.upload()
    if up.offset != src.stat().st_size:
        raise RuntimeError(f"upload to {url} stopped at {up.offset}")


def _upload_many(url: str, srcs: list[Path], chunk: int) -> float:
    """Every file uploaded at once, one thread (one tuspy uploader) per file."""
    t = time.perf_counter()
    with ThreadPoolExecutor(len(srcs)) as pool:
        for f in [pool.submit(_upload, url, s, chunk) for s in srcs]:
            f.result()
    return time.perf_counter() - t


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _rounds(contestants: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """Each contestant once per round, the order rotated each round; every time, round by round."""
    names = list(contestants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            times[name].append(contestants[name]())
    return times


def _median(times: list[float]) -> float:
    return statistics.median(times)


def _ratio(times: dict[str, list[float]], slower: str, faster: str = "egocrowd") -> float:
    """The median over rounds of ``slower``'s time / ``faster``'s time in the same round: a load
    change from others between rounds cancels out within each round."""
    return statistics.median(a / b for a, b in zip(times[slower], times[faster], strict=True))


def run_size(tmp: Path, size_mb: int, chunk: int, repeat: int, node_script: Path | None) -> dict:
    size = size_mb * 1_000_000
    src = tmp / f"src-{size_mb}.bin"
    _make_source(src, size)
    servers: dict[str, Server] = {}
    try:
        servers["egocrowd"] = start_ours(tmp / f"ours-{size_mb}")
        if node_script is not None:
            servers["tus-node"] = start_node(tmp / f"node-{size_mb}", node_script)
        rss_idle = {n: s.rss_mb()[0] for n, s in servers.items()}
        sink_url = servers["egocrowd"].url.removesuffix(OURS_PATH) + SINK_PATH

        cpu: dict[str, list[float]] = {n: [] for n in servers}

        def upload_to(name: str, s: Server) -> Callable[[], float]:
            def go() -> float:
                before = s.cpu_s()
                took = _timed(lambda: _upload(s.url, src, chunk))
                cpu[name].append(s.cpu_s() - before)
                s.clean()
                return took

            return go

        contestants: dict[str, Callable[[], float]] = {n: upload_to(n, s) for n, s in servers.items()}
        contestants["disk copy"] = lambda: _copy(src, tmp / f"copy-{size_mb}.bin")
        contestants["HTTP sink"] = lambda: _sink(sink_url, src, chunk)
        took = _rounds(contestants, repeat)
        rss_peak = {n: s.rss_mb()[1] for n, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()
        src.unlink(missing_ok=True)
        shutil.rmtree(tmp / f"ours-{size_mb}", ignore_errors=True)
        shutil.rmtree(tmp / f"node-{size_mb}", ignore_errors=True)
    return {"size_mb": size_mb, "took": took, "cpu": cpu, "rss_idle": rss_idle, "rss_peak": rss_peak}


def run_concurrent(tmp: Path, n: int, size_mb: int, chunk: int, repeat: int, node_script: Path | None) -> dict:
    srcs = [tmp / f"many-{i}.bin" for i in range(n)]
    for s in srcs:
        _make_source(s, size_mb * 1_000_000)
    servers: dict[str, Server] = {}
    try:
        servers["egocrowd"] = start_ours(tmp / "ours-many")
        if node_script is not None:
            servers["tus-node"] = start_node(tmp / "node-many", node_script)

        def upload_to(s: Server) -> Callable[[], float]:
            def go() -> float:
                took = _upload_many(s.url, srcs, chunk)
                s.clean()
                return took

            return go

        took = _rounds({name: upload_to(s) for name, s in servers.items()}, repeat)
        rss_peak = {name: s.rss_mb()[1] for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
        for path in srcs:
            path.unlink(missing_ok=True)
        shutil.rmtree(tmp / "ours-many", ignore_errors=True)
        shutil.rmtree(tmp / "node-many", ignore_errors=True)
    return {"n": n, "size_mb": size_mb, "took": took, "rss_peak": rss_peak}


def run_shared(tmp: Path, size_mb: int, chunk: int, repeat: int) -> dict[str, list[float]] | None:
    """The same file to the local upload store and to the shared one (records in PostgreSQL, a
    private schema; parts as objects in a file:// object store, so the store's own cost is measured,
    not a network's). None, with a line, without a PostgreSQL to use."""
    from _common import private_schema

    from egocrowd.db import upgrade

    src = tmp / f"shared-{size_mb}.bin"
    _make_source(src, size_mb * 1_000_000)
    servers: dict[str, Server] = {}
    try:
        with private_schema("bench_uploads") as url:
            upgrade(url)
            servers["local"] = start_ours(tmp / "local-store")
            servers["shared"] = start_ours(tmp / "shared-store", url)

            def upload_to(s: Server) -> Callable[[], float]:
                def go() -> float:
                    took = _timed(lambda: _upload(s.url, src, chunk))
                    s.clean()
                    return took

                return go

            return _rounds({n: upload_to(s) for n, s in servers.items()}, repeat)
    except Exception as err:  # noqa: BLE001 - no database here: say so and go on
        print(f"shared store: skipped ({type(err).__name__}: {str(err).splitlines()[0][:200]})")
        return None
    finally:
        for s in servers.values():
            s.stop()
        src.unlink(missing_ok=True)
        shutil.rmtree(tmp / "local-store", ignore_errors=True)
        shutil.rmtree(tmp / "shared-store", ignore_errors=True)


def main() -> None:
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--serve":
        serve(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) == 5 else None)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,500", help="file sizes in MB, comma-separated (single uploads)")
    ap.add_argument("--chunk-mb", type=int, default=32, help="tuspy chunk size in MiB (one PATCH per chunk)")
    ap.add_argument("--concurrent", type=int, default=50, help="uploads at once in the concurrent test")
    ap.add_argument("--concurrent-mb", type=int, default=10, help="size of each concurrent upload in MB")
    ap.add_argument(
        "--concurrent-chunk-mb", type=int, default=8, help="tuspy chunk size there, in MiB (the capture page's)"
    )
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the median of each contestant counts")
    ap.add_argument("--dir", default=None, help="scratch directory (default: system temp)")
    ap.add_argument("--node-dir", default=str(NODE_DIR), help="where @tus/server is installed and run from")
    ap.add_argument("--no-node", action="store_true", help="leave out the Node.js peer")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 and 20 MB, 10 × 2 MB at once, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeat, args.concurrent, args.concurrent_mb = "5,20", 1, 10, 2
        args.chunk_mb, args.concurrent_chunk_mb = min(args.chunk_mb, 4), 1

    node_script = None if args.no_node else node_setup(Path(args.node_dir))
    chunk, many_chunk = args.chunk_mb << 20, args.concurrent_chunk_mb << 20
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        rows = [run_size(Path(d), int(s), chunk, args.repeat, node_script) for s in args.sizes.split(",")]
        many = run_concurrent(Path(d), args.concurrent, args.concurrent_mb, many_chunk, args.repeat, node_script)
        shared_mb = int(args.sizes.split(",")[0])
        shared = run_shared(Path(d), shared_mb, chunk, args.repeat)

    print(
        f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; chunk {args.chunk_mb} MiB; "
        f"median of {args.repeat} rounds, order rotated"
    )
    names = ["egocrowd", "tus-node", "disk copy", "HTTP sink"]
    print(f"{'size':>7} " + " ".join(f"{n:>11}" for n in names) + "   server RSS idle→peak")
    for r in rows:
        cells = [
            f"{r['size_mb'] / _median(r['took'][n]):>6.0f} MB/s" if n in r["took"] else f"{'-':>11}" for n in names
        ]
        rss = ", ".join(f"{n} {r['rss_idle'][n]:.0f}→{r['rss_peak'][n]:.0f} MB" for n in r["rss_peak"])
        print(f"{r['size_mb']:>5}MB " + " ".join(cells) + f"   {rss}")
    total = many["n"] * many["size_mb"]
    print(
        f"{many['n']} concurrent uploads of {many['size_mb']} MB, chunk {args.concurrent_chunk_mb} MiB: "
        + ", ".join(
            f"{n} {total / _median(t):.0f} MB/s (peak RSS {many['rss_peak'][n]:.0f} MB)"
            for n, t in many["took"].items()
        )
    )
    small, large = rows[0], rows[-1]
    growth = large["rss_peak"]["egocrowd"] - small["rss_peak"]["egocrowd"]
    print(f"our server's peak RSS change {small['size_mb']}→{large['size_mb']} MB: {growth:+.0f} MB")

    if shared is not None:
        print(
            f"{shared_mb} MB to the local / shared upload store: "
            + ", ".join(f"{n} {shared_mb / _median(t):.0f} MB/s" for n, t in shared.items())
        )
    for r in rows:
        # Less noisy than the times on a shared machine: what each server itself spent per upload.
        print(
            f"{r['size_mb']} MB, server CPU seconds per upload (median): "
            + ", ".join(f"{n} {_median(c):.2f}" for n, c in r["cpu"].items())
        )
    for r in rows:
        vs = ", ".join(f"{n} {_ratio(r['took'], n):.2f}" for n in r["took"] if n != "egocrowd")
        print(f"{r['size_mb']} MB, egocrowd's speed over (median of per-round ratios): {vs}")
    if node_script is not None:
        target("upload_vs_tus_node", _ratio(large["took"], "tus-node"), 1.0)
        target("upload_concurrent_vs_tus_node", _ratio(many["took"], "tus-node"), 1.0)
    else:
        print("targets upload_vs_tus_node and upload_concurrent_vs_tus_node: skipped (no Node.js peer)")
    target("upload_vs_disk_copy", _ratio(large["took"], "disk copy"), 0.5)
    # memory flat: the peak at the largest size is within 10 % of the peak at the smallest
    if shared is not None:
        # the shared store's speed over the local store's, same file, same rounds
        target("shared_vs_local_store", _ratio(shared, "local", "shared"), 0.5)
    else:
        print("target shared_vs_local_store: skipped (no PostgreSQL)")
    target("server_rss_small_over_large", small["rss_peak"]["egocrowd"] / large["rss_peak"]["egocrowd"], 0.9)


if __name__ == "__main__":
    main()

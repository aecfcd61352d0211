"""Helpers for the upload tests: a real uvicorn server (thread or subprocess) and a TCP proxy."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from tests.uploads.tus_testapp import PREFIX, make_app

HERE = Path(__file__).parent
AUTH = {"Authorization": "Bearer tok-alice"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/_stats", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {base} did not start")


def make_file(path: Path, size: int, seed: int = 0) -> str:
    """Random (incompressible) bytes; returns their sha256."""
    import random

    rnd = random.Random(seed)
    data = rnd.randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class ThreadServer:
    def __init__(self, root: Path, **app_kw) -> None:
        self.root = root
        self.asgi, self.app = make_app(root, **app_kw)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.endpoint = self.base + PREFIX
        self.server = uvicorn.Server(uvicorn.Config(self.asgi, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def store(self):
        return self.app.state.store

    @property
    def hooks(self):
        return self.app.state.hooks

    def body_bytes(self) -> int:
        return sum(self.asgi.counts.values())

    def __enter__(self):
        self.thread.start()
        wait_ready(self.base)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


class ProcessServer:
    """The test app in its own uvicorn process, so it can be killed with SIGKILL."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.endpoint = self.base + PREFIX
        self.proc: subprocess.Popen | None = None

    def start(self) -> ProcessServer:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, str(HERE / "tus_testapp.py"), str(self.root), str(self.port)],
                                     env=env, cwd=HERE)
        wait_ready(self.base)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(10)

    def body_bytes(self) -> int:
        return sum(httpx.get(self.base + "/_stats").json()["body_bytes"].values())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Proxy:
    """A TCP proxy that can cut the connection after N client bytes or flip one byte in transit.

    Counts client→server bytes across connections; once it has cut or flipped it becomes a plain
    pass-through, like a network that recovered.
    """

    def __init__(self, target_port: int, *, cut_after: int | None = None, flip_at: int | None = None,
                 rate: float | None = None) -> None:
        self.target_port = target_port
        self.rate = rate  # client→server bytes/s per connection (a slow uplink), or None
        self.cut_after = cut_after
        self.flip_at = flip_at
        self.sent = 0
        self.tripped = threading.Event()
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.lsock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:  # server down: the client sees a dropped connection
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                if upstream and self.rate:
                    time.sleep(len(data) / self.rate)
                if upstream and not self.tripped.is_set():
                    with self.lock:
                        start, self.sent = self.sent, self.sent + len(data)
                        if self.flip_at is not None and start <= self.flip_at < self.sent:
                            b = bytearray(data)
                            b[self.flip_at - start] ^= 0xFF
                            data = bytes(b)
                            self.tripped.set()
                        elif self.cut_after is not None and self.sent >= self.cut_after:
                            dst.sendall(data[: self.cut_after - start])
                            self.tripped.set()
                            raise ConnectionAbortedError
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.lsock.close()

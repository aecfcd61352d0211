"""Helpers for the upload tests: the tus test app on a real server (thread or process) and a TCP proxy."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from pathlib import Path

import httpx

from tests.support.servers import LiveServer, ServerProcess
from tests.uploads.tus_testapp import PREFIX, make_app

AUTH = {"Authorization": "Bearer tok-alice"}


def make_file(path: Path, size: int, seed: int = 0) -> str:
    """Random (incompressible) bytes; returns their sha256."""
    import random

    rnd = random.Random(seed)
    data = rnd.randbytes(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


class ThreadServer(LiveServer):
    """The tus test app in a uvicorn thread."""

    def __init__(self, root: Path, *, http_options: dict | None = None, **app_kw) -> None:
        self.root = root
        self.asgi, self.app = make_app(root, **app_kw)
        # http_options: e.g. egocrowd.web.limits.uvicorn_options(settings), as `egocrowd serve` runs
        super().__init__(self.asgi, lifespan="on", **(http_options or {}))

    @property
    def endpoint(self) -> str:
        return self.base + PREFIX

    @property
    def store(self):
        return self.app.state.store

    @property
    def hooks(self):
        return self.app.state.hooks

    def body_bytes(self) -> int:
        return sum(self.asgi.counts.values())


class ProcessServer(ServerProcess):
    """The tus test app in its own uvicorn process, so it can be killed with SIGKILL; it comes back
    on the same port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        super().__init__(
            "tests.uploads.tus_testapp:asgi_app",
            str(root),
            workdir=root.with_name(root.name + "-process"),
            ready_path="/_stats",
        )

    @property
    def endpoint(self) -> str:
        return self.base + PREFIX

    def body_bytes(self) -> int:
        return sum(httpx.get(self.base + "/_stats").json()["body_bytes"].values())


class Proxy:
    """A TCP proxy that can cut the connection after N client bytes or flip one byte in transit.

    Counts client→server bytes across connections; once it has cut or flipped it becomes a plain
    pass-through, like a network that recovered.
    """

    def __init__(
        self, target_port: int, *, cut_after: int | None = None, flip_at: int | None = None, rate: float | None = None
    ) -> None:
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

"""Real uvicorn servers for tests, in a thread (``LiveServer``) or in their own process
(``ServerProcess``, for tests that SIGKILL it). Both bind port 0 and read back the port the kernel
gave, so parallel test processes never race for a "free" port."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

REPO = Path(__file__).resolve().parents[2]
CLIENT_TIMEOUT = httpx.Timeout(60.0)  # see LiveServer.client


def server_env(db_url: str, data_dir: Path, keys: Path, **extra: str) -> dict[str, str]:
    """The environment of an ``egocrowd serve``/``worker`` process on a server database: its
    keys made first (the audit signing key and the content-credentials authority, in ``keys``),
    since a server's processes refuse to start without them."""
    from egocrowd.audit import checkpoints
    from egocrowd.releases import credentials

    if not (keys / "audit.pem").exists():
        checkpoints.generate_key(keys / "audit.pem")
        credentials.init_authority(keys / "c2pa")
    return {
        **os.environ,
        "EGOCROWD_DATABASE_URL": db_url,
        "EGOCROWD_DATA_DIR": str(data_dir),
        "EGOCROWD_SECRET_KEY": "k" * 40,
        "EGOCROWD_AUDIT_SIGNING_KEY": str(keys / "audit.pem"),
        "EGOCROWD_CONTENT_CREDENTIALS_DIR": str(keys / "c2pa"),
        **extra,
    }


class LiveServer:
    """``with LiveServer(asgi_app) as live: httpx.get(live.base + ...)``"""

    def __init__(self, app, **config) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **config))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0
        self.base = ""

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:  # set once the lifespan has run and the socket listens
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        # The lifespan's shutdown (stopping an embedded pipeline) can take seconds on a loaded machine;
        # a server thread still running when the test's database is disposed would use it after.
        self.thread.join(60)
        assert not self.thread.is_alive(), "uvicorn did not stop within 60 s"

    def client(self, **kw) -> httpx.Client:
        """A real HTTP client of this server. Its read timeout is generous: on a loaded 2-core CI
        machine a request can wait seconds for the CPU, which httpx's 5 s default mistook for a hang."""
        return httpx.Client(base_url=self.base, timeout=CLIENT_TIMEOUT, **kw)


class ServerProcess:
    """``factory(*args)`` (``"module:function"``, returning an ASGI app) served by uvicorn in a child
    process. The first start binds port 0; later starts (after a kill) bind that same port again."""

    def __init__(
        self, factory: str, *args: str, workdir: Path, env: dict[str, str] | None = None, ready_path: str = "/"
    ) -> None:
        self.factory, self.args, self.workdir = factory, args, workdir
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.ready_path = ready_path
        self.port = 0
        self.base = ""
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / "port"
        port_file.unlink(missing_ok=True)
        with open(self.workdir / "server.log", "ab") as log:  # the child keeps its own copy open
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.serve", str(port_file), str(self.port), self.factory, *self.args],
                env=self.env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            self._check_alive(deadline)
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.base = f"http://127.0.0.1:{self.port}"
        while True:  # the socket listens already; wait until the app answers (its lifespan has run)
            try:
                httpx.get(self.base + self.ready_path, timeout=2)
                return self
            except httpx.HTTPError:
                self._check_alive(deadline)
                time.sleep(0.05)

    def _check_alive(self, deadline: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None or time.monotonic() > deadline:
            self.stop()
            log = (self.workdir / "server.log").read_text(errors="replace")
            raise RuntimeError(f"server {self.factory} did not start:\n{log[-4000:]}")

    def kill(self, sig: int = 9) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

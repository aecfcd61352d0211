"""Fixtures for the clip pipeline: generated test media, a real uvicorn server running the real app."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    from egocrowd.media.testmedia import make_test_media

    return make_test_media(tmp_path_factory.mktemp("media"), include_real=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    def __init__(self, app) -> None:
        self.app = app
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.base + "/api/v1/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def live(app):
    with LiveServer(app) as server:
        yield server

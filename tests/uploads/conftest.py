"""Fixtures for the upload tests: the tus test app in a uvicorn thread or in its own process."""

from __future__ import annotations

import pytest

from tests.uploads.helpers import ProcessServer, ThreadServer


@pytest.fixture
def server(tmp_path):
    with ThreadServer(tmp_path / "srv") as s:
        yield s


@pytest.fixture
def process_server(tmp_path):
    s = ProcessServer(tmp_path / "srv")
    try:
        yield s
    finally:
        s.stop()

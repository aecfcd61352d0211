"""A real S3-compatible HTTP server for tests: moto's standalone server in a thread, bound to port 0
(the port the kernel gave is read back). Every test gets a bucket of its own."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT
    region: str = "us-east-1"

    def new_bucket(self) -> str:
        """A fresh, empty bucket (moto accepts the unsigned CreateBucket)."""
        name = f"t-{uuid.uuid4().hex[:20]}"
        httpx.put(f"{self.endpoint}/{name}").raise_for_status()
        return name


@contextmanager
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    # obstore signs every request with the standard AWS_* credentials; moto accepts any.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()

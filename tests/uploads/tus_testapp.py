"""A tiny app that mounts the real tus router with small but real hooks (used by the upload tests).

Runs in-process (``make_app``) or as its own process (``asgi_app`` through tests.support.servers's
``ServerProcess``) so the crash tests can SIGKILL it. The hooks check a bearer token and an ``assignment`` metadata key, and
on completion put the bytes in a real BlobStore and write a clip record (idempotent by upload id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi import FastAPI, Request

from egocrowd.blobs import Blobs, BlobStore, S3BlobStore
from egocrowd.errors import Forbidden, NotFound, Unauthenticated
from egocrowd.uploads import Grant, UploadInfo, Uploads, UploadStore, recover_completed
from egocrowd.uploads.shared import SharedUploadStore
from egocrowd.web.tus import make_tus_router

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}
# assignment -> (assignee, max bytes)
ASSIGNMENTS = {"A1": ("alice", 64 << 20), "A2": ("bob", 64 << 20), "SMALL": ("alice", 512 << 10)}
PREFIX = "/api/v1/uploads"


def _user(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    user = TOKENS.get(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None
    if user is None and (session := request.cookies.get("session")):
        # Browser clients: a session cookie plus the double-submit CSRF header the widget sends.
        if request.headers.get("x-csrf-token") != f"csrf-{session}":
            raise Forbidden("missing or wrong X-CSRF-Token", code="auth.csrf")
        user = TOKENS.get(session)
    if user is None:
        raise Unauthenticated("a bearer token is required", code="auth.required")
    return user


class AssignmentHooks:
    def __init__(self, root: Path) -> None:
        self.blobs = BlobStore(root / "blobs")
        self.clips = root / "clips"
        self.clips.mkdir(parents=True, exist_ok=True)
        self.fail_next_completion = False  # lets a test simulate a crash inside on_complete

    def authorize_create(self, request: Request, length: int, metadata: dict[str, str]) -> Grant:
        user = _user(request)
        assignment = metadata.get("assignment")
        if assignment not in ASSIGNMENTS:
            raise NotFound("no such assignment", code="assignment.not_found")
        assignee, max_length = ASSIGNMENTS[assignment]
        if assignee != user:
            raise Forbidden("this assignment is not yours", code="upload.forbidden")
        return Grant(owner=user, max_length=max_length, context={"assignment": assignment})

    def authorize_access(self, request: Request, info: UploadInfo, verb: str) -> None:
        if _user(request) != info.owner:
            raise Forbidden("this upload is not yours", code="upload.forbidden")

    def on_complete(self, info: UploadInfo, data_path: os.PathLike[str]) -> dict[str, str]:
        record = self.clips / f"{info.id}.json"
        if record.exists():  # idempotent: a repeated completion returns the first result
            return {"Egocrowd-Clip-Id": info.id, "Egocrowd-Clip-Sha256": json.loads(record.read_text())["sha256"]}
        if self.fail_next_completion:
            self.fail_next_completion = False
            raise RuntimeError("simulated crash during completion")
        ref = self.blobs.put_file(data_path)
        tmp = record.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "upload": info.id,
                    "sha256": ref.sha256,
                    "size": ref.size,
                    "duplicate": ref.existed,
                    "owner": info.owner,
                    "streamed_sha256": info.sha256,
                    **info.context,
                    "metadata": info.metadata,
                }
            )
        )
        os.replace(tmp, record)
        return {"Egocrowd-Clip-Id": info.id, "Egocrowd-Clip-Sha256": ref.sha256}


class BodyCounter:
    """ASGI middleware counting request-body bytes the app actually received, per method."""

    def __init__(self, app, patch_delay_s: float = 0.0) -> None:
        self.app = app
        self.counts: dict[str, int] = {"PATCH": 0, "POST": 0}
        self.patch_delay_s = patch_delay_s  # a slow network, so a test can interrupt mid-upload

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in self.counts:
            return await self.app(scope, receive, send)
        method = scope["method"]
        if method == "PATCH" and self.patch_delay_s:
            await asyncio.sleep(self.patch_delay_s)

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request":
                self.counts[method] += len(message.get("body", b""))
            return message

        return await self.app(scope, counting_receive, send)


@dataclass(frozen=True)
class Shared:
    """Where a shared upload store keeps its records and parts (tests.uploads.conftest)."""

    db_url: str
    parts_url: str  # s3://bucket/prefix, or a local directory: a volume every server mounts
    endpoint: str


def make_app(
    root: Path,
    *,
    ttl_s: float = 3600,
    lock_timeout: float = 5.0,
    patch_delay_s: float = 0.0,
    shared: Shared | None = None,
):
    root = Path(root)
    ttl = timedelta(seconds=ttl_s)
    store: Uploads
    if shared is None:
        store = UploadStore(root / "uploads", lock_timeout=lock_timeout, ttl=ttl)
    else:
        engine = sa.create_engine(shared.db_url)
        parts: Blobs = (
            S3BlobStore(shared.parts_url, cache_dir=root / "cache", endpoint_url=shared.endpoint)
            if shared.parts_url.startswith("s3://")
            else BlobStore(shared.parts_url)
        )
        store = SharedUploadStore(
            engine, parts.objects("uploads"), root / "uploads", lock_timeout=lock_timeout, ttl=ttl
        )
    hooks = AssignmentHooks(root)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        hooks.blobs.clean_tmp()
        await recover_completed(store, hooks.on_complete)
        yield
        if isinstance(store, SharedUploadStore):
            store.close()
            store.engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.include_router(make_tus_router(store, hooks, max_size=256 << 20), prefix=PREFIX)
    counter = BodyCounter(app, patch_delay_s)

    @app.get("/_stats")
    def stats() -> dict:
        return {"body_bytes": dict(counter.counts), "pid": os.getpid()}

    app.state.store, app.state.hooks, app.state.counter = store, hooks, counter
    return counter, app


def asgi_app(root: str):
    """The app for a server process: ``ServerProcess("tests.uploads.tus_testapp:asgi_app", root)``."""
    return make_app(Path(root))[0]

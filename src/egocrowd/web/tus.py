"""The tus 1.0 HTTP server: one handler per verb, one thread pool for blocking I/O.

The protocol itself is :mod:`egocrowd.uploads.protocol` (pure), the bytes and records live in
an :class:`egocrowd.uploads.store.Uploads` store (a local
directory, or database rows and object-store parts shared by several servers), finishing is :mod:`egocrowd.uploads.completion`; the
platform's hooks are :class:`egocrowd.web.routers.uploads.PlatformHooks`. The server knows nothing
of the platform, so a small app (the upload tests) can mount it with hooks of its own. ``X-HTTP-Method-Override`` on POST is honoured for clients behind
proxies that drop PATCH/DELETE.

Why not a library (evaluated Nov 2026): ``tuspyserver`` 4.4.3 (FastAPI router) comes closest — its
``pre_create_dep`` can see the request, metadata and size, so per-assignment limits would work —
but it has no checksum extension (the issue requires sha1 at least), leaves the "only the uploader
may HEAD/PATCH/DELETE" check to a router-wide ``auth`` dependency that would have to re-read the
library's upload records itself, and calls ``on_upload_complete`` once, with nothing to re-run it
after a crash inside it. ``tussi`` (ASGI middleware, own storage) and ``resumable-upload``
(http.server-style) fit our FastAPI app and blob store less well still.

Wiring::

    app.include_router(make_tus_router(store, hooks, max_size=4 << 30), prefix="/api/v1/uploads")
    # at startup and periodically:  await recover_completed(store, hooks.on_complete)

Hooks are plain functions, run in the server's thread pool (blocking database calls are fine):

``authorize_create(request, length, metadata) -> Grant``
    Authenticate the caller and decide whether this upload may start; raise an ``EgocrowdError``
    to refuse. An ``Upload-Length`` above ``Grant.max_length`` is answered 413 ``upload.too_large``
    before any byte is read; ``Grant.context`` (JSON-able) is stored with the upload.
``authorize_access(request, info, verb)``
    Called before HEAD, PATCH and DELETE (``verb`` after any method override); raise to refuse.
``on_complete(info, data_path) -> dict[str, str]``
    See :func:`egocrowd.uploads.completion.complete_upload` for its contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response

from egocrowd import telemetry
from egocrowd.clock import utcnow
from egocrowd.errors import EgocrowdError
from egocrowd.uploads import protocol as tus
from egocrowd.uploads.completion import complete_upload
from egocrowd.uploads.protocol import Checksum, Grant
from egocrowd.uploads.store import UploadInfo, Uploads
from egocrowd.web.problems import render

__all__ = ["UPLOADS_PATH", "TusHooks", "make_tus_router"]

#: Where the app mounts the tus endpoint (the body limit leaves it to tus, see web/limits.py).
UPLOADS_PATH = "/api/v1/uploads"

log = logging.getLogger(__name__)

# Offsets are made durable at least this often during a long PATCH, so a crash loses little.
CHECKPOINT_SECONDS = 2.0
# Start disk writeback every this many bytes so the fsync ending a PATCH has little left to do
# (per batch was tried: sync_file_range then blocks the writer more often, and it was slower).
WRITEBACK_BYTES = 8 << 20
# Received pieces (~1 MiB each, see web/limits.py) are written in batches of at least this size,
# and each batch is hashed by the thread that wrote it, right after, while it is still in that
# core's cache (1 MiB fits its L2). 256 KiB batches were tried: four times the thread hand-offs
# cost more CPU than the warmer cache saved.
BATCH_BYTES = 1 << 20
# Batches of one request in flight at once: receiving and writing+hashing overlap, and memory per
# upload stays bounded (about this many batches plus the one being received).
BATCHES_IN_FLIGHT = 2
# Threads for blocking work (disk writes, hashing, fsync, record saves, hooks) of all requests.
IO_THREADS = 32


class TusHooks(Protocol):
    """The platform's part of the protocol; see the module docstring."""

    def authorize_create(self, request: Request, length: int, metadata: dict[str, str]) -> Grant: ...

    def authorize_access(self, request: Request, info: UploadInfo, verb: str) -> None: ...

    def on_complete(self, info: UploadInfo, data_path: Path) -> Mapping[str, str] | None: ...


def _writeback_starter() -> Any:
    """``sync_file_range(SYNC_FILE_RANGE_WRITE)`` where Linux has it: starts writeback, no wait."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
        return lambda fd, offset, nbytes: fn(fd, offset, nbytes, 2)
    except (OSError, AttributeError):
        return lambda fd, offset, nbytes: None


_start_writeback = _writeback_starter()


@dataclass
class _Exchange:
    """One request's state: what it asks for and the hashes its body feeds."""

    request: Request
    verb: str
    checksum: Checksum | None = None  # of this request's body, when the client sent one
    whole: Any = None  # sha256 of the upload so far, when this process saw every byte


@dataclass
class _Pumped:
    end: int  # offset after the last byte written
    outcome: str  # eof | disconnect | stolen | too_long


class _TusServer:
    def __init__(self, store: Uploads, hooks: TusHooks, max_size: int) -> None:
        self.store = store
        self.hooks = hooks
        self.max_size = max_size
        self._pool = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="tus-io")

    # blocking work --------------------------------------------------------------------------

    async def _io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    @staticmethod
    async def _to_the_end(aw: Awaitable[Any]) -> Any:
        """Durability work (fsync, record writes) runs to completion even if we are cancelled: a
        later writer must not overtake a half-done commit. The cancellation goes through after."""
        fut = asyncio.ensure_future(aw)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            while not fut.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([fut])
            raise

    async def _io_to_the_end(self, fn: Any, *args: Any) -> Any:
        return await self._to_the_end(asyncio.get_running_loop().run_in_executor(self._pool, fn, *args))

    # responses ------------------------------------------------------------------------------

    @staticmethod
    def headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"Tus-Resumable": tus.TUS_VERSION, "Cache-Control": "no-store", **(extra or {})}

    def problem(self, err: EgocrowdError, ex: _Exchange, extra: Mapping[str, str] | None = None) -> Response:
        headers = self.headers(extra)
        if err.status == 412:
            headers["Tus-Version"] = tus.TUS_VERSION
        if ex.request.method == "HEAD":  # HEAD responses carry no body
            if err.status == 401:
                headers["WWW-Authenticate"] = "Bearer"
            return Response(status_code=err.status, headers=headers)
        return render(err, headers=headers)

    # shared steps ---------------------------------------------------------------------------

    async def load(self, ex: _Exchange, upload_id: str) -> UploadInfo:
        # The read (a database read with shared uploads) and the hook in one trip to the pool:
        # every trip waits for a thread and then for the event loop, a few ms each on a busy host.
        return tus.check_usable(await self._io(self._load, ex, upload_id), ex.verb)

    def _load(self, ex: _Exchange, upload_id: str) -> UploadInfo:
        info = self.store.get(upload_id)
        if info is None:
            raise tus.no_such_upload()
        self.hooks.authorize_access(ex.request, info, ex.verb)
        return info

    async def finish(self, info: UploadInfo) -> None:
        """Hand a fully received upload to ``on_complete``; the caller holds the lock."""
        await self._io_to_the_end(complete_upload, self.store, info, self.hooks.on_complete)

    # body streaming -------------------------------------------------------------------------

    @staticmethod
    def _write(fd: int, chunks: list[bytes], at: int) -> None:
        """Write a batch at ``at`` (in a pool thread); start writeback when a window fills."""
        written = os.pwritev(fd, chunks, at)
        total = sum(len(c) for c in chunks)
        if written < total:  # short write: finish the rest the slow way
            rest = memoryview(b"".join(chunks))[written:]
            while rest:
                n = os.pwrite(fd, rest, at + written)
                written += n
                rest = rest[n:]
        if (at + total) // WRITEBACK_BYTES != at // WRITEBACK_BYTES:
            # the window before the one just finished: its pages are complete and not being written
            start = max(0, (at + total) // WRITEBACK_BYTES * WRITEBACK_BYTES - WRITEBACK_BYTES)
            _start_writeback(fd, start, WRITEBACK_BYTES)

    @classmethod
    def _store(cls, fd: int, ex: _Exchange, chunks: list[bytes], at: int, before: Future[None] | None) -> None:
        """Write a batch, then feed it to the request's hashes while it is still in this core's
        cache (in a pool thread). Writes may finish in any order, hash updates must not: the
        batch before (``before``, submitted earlier to the same FIFO pool, so running or done by
        now: the wait cannot deadlock) has hashed its bytes first."""
        cls._write(fd, chunks, at)
        if ex.checksum is None and ex.whole is None:
            return
        if before is not None:
            before.result()
        for c in chunks:
            if ex.checksum is not None:
                ex.checksum.hasher.update(c)
            if ex.whole is not None:
                ex.whole.update(c)

    async def pump(self, ex: _Exchange, fd: int, info: UploadInfo) -> _Pumped:
        """Stream the request body into the data file at ``info.offset``, committing as it goes.

        The ASGI messages (about 1 MiB each, see ``web/limits.py``) are read straight from
        ``receive`` and handed, a batch at a time, to pool threads that write each batch
        (``pwritev`` at its offset) and then hash it while it is hot in the cache, while the event
        loop receives the next batch: network, disk and hashing overlap. At most
        ``BATCHES_IN_FLIGHT`` batches are in flight, so memory per upload stays a few MiB whatever
        the file size.

        Without a checksum, received bytes are committed every CHECKPOINT_SECONDS and when the
        connection drops, so a resumed upload continues from the last byte we have. With a
        checksum the chunk is all-or-nothing (nothing is committed before it verifies).

        A newer request for the same upload cancels this task (see ``UploadStore.locked``) at any
        await, as often as it likes: every cancellation ends as the outcome ``stolen``, never as
        an exception, and what was received is still written before we return.
        """
        receive = ex.request.receive
        pool = self._pool
        received = written = info.offset  # bytes taken from the socket / handed to the writers
        batch: list[bytes] = []
        batch_len = 0
        inflight: deque[Future[None]] = deque()  # one write+hash future per batch, oldest first
        next_checkpoint = time.monotonic() + CHECKPOINT_SECONDS

        async def drain(keep: int = 0) -> None:
            # Until at most ``keep`` are in flight. Cancelled or failed, it still waits for every
            # thread before raising: nothing may be committed (or the fd closed) while one writes.
            while len(inflight) > keep:
                try:
                    await asyncio.shield(asyncio.wrap_future(inflight[0]))
                except BaseException as err:
                    while not all(f.done() for f in inflight):
                        with contextlib.suppress(asyncio.CancelledError):
                            await asyncio.wait([asyncio.wrap_future(f) for f in inflight])
                    done = list(inflight)
                    inflight.clear()
                    for f in done:
                        f.result()  # a failed write or hash is the error to report
                    raise err
                inflight.popleft()

        async def flush() -> None:
            nonlocal batch, batch_len, written
            if not batch:
                return
            await drain(keep=BATCHES_IN_FLIGHT - 1)
            before = inflight[-1] if inflight else None  # none in flight: every hash is done
            inflight.append(pool.submit(self._store, fd, ex, batch, written, before))
            written += batch_len
            telemetry.UPLOAD_BYTES.inc(batch_len)
            batch, batch_len = [], 0

        outcome = "eof"
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":  # http.disconnect
                    outcome = "disconnect"
                    break
                chunk = message.get("body", b"")
                if chunk:
                    if received + len(chunk) > info.length:
                        outcome = "too_long"
                        break
                    batch.append(chunk)
                    batch_len += len(chunk)
                    received += len(chunk)
                    if batch_len >= BATCH_BYTES:
                        await flush()
                    if ex.checksum is None and time.monotonic() >= next_checkpoint:
                        await flush()
                        await drain()
                        await self._to_the_end(self.commit(ex, fd, info, written))
                        next_checkpoint = time.monotonic() + CHECKPOINT_SECONDS
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            outcome = "stolen"
        # Everything received is written before anyone looks at the file again, however many
        # times we are cancelled meanwhile (each cancel only interrupts a wait, not a write).
        while batch or inflight:
            try:
                await flush()
                await drain()
            except asyncio.CancelledError:
                if outcome == "eof" and received == info.length:
                    continue  # the whole body is here: finish it, the newer request waits
                outcome = "stolen"
        return _Pumped(written, outcome)

    async def commit(self, ex: _Exchange, fd: int, info: UploadInfo, end: int) -> None:
        """Make ``[0, end)`` durable, then record ``end`` as the offset (in that order).

        The new record is staged (locally: written and fsynced) while the data is made durable,
        and renamed into place only after both: the client waits for one fsync instead of two in a
        row. The thread that staged the record waits for the data's sync and publishes, so a
        commit is one trip from the event loop to the pool and back. Call through
        ``_to_the_end``: a later writer must not overtake a half-done commit."""
        new = dataclasses.replace(info, offset=end)
        self.store.touch(new)
        if new.offset >= new.length and new.completed_at is None:
            new.completed_at = utcnow()
            if ex.whole is not None:  # every write and hash finished before a commit
                new.sha256 = ex.whole.hexdigest()
        store = self.store
        # Submitted first to the FIFO pool, so it runs before (or while) the task waiting for it.
        synced = self._pool.submit(store.write_back, info, fd, end)

        def stage_and_publish() -> None:
            try:
                staged = store.stage(new)
            except BaseException:
                wait_futures([synced])  # the fd stays open until the sync is over
                synced.result()  # the data's failure, if both failed, is the one to report
                raise
            try:
                durable = synced.result()
            except BaseException:
                store.discard(staged)
                raise
            store.publish(new.id, staged, durable)

        await self._io(stage_and_publish)
        vars(info).update(vars(new))

    async def receive(self, ex: _Exchange, info: UploadInfo, holder: Any) -> None:
        """Append the body of a PATCH (or creation-with-upload POST) at ``info.offset``; raises
        an ``EgocrowdError`` for anything but a complete, verified body."""
        ex.checksum = tus.parse_checksum(ex.request.headers.get("upload-checksum"))
        tus.check_body_fits(info, ex.request.headers.get("content-length"))
        ex.whole = self.store.running_hash(info.id, info.offset)
        fd = self.store.open_data(info)  # the tail beyond info.offset (never committed) is dropped
        try:
            holder.pump = asyncio.ensure_future(self.pump(ex, fd, info))
            try:
                got = await holder.pump
            except asyncio.CancelledError:
                if (me := asyncio.current_task()) is not None and me.cancelling():
                    raise  # we are being cancelled ourselves (shutdown)
                got = _Pumped(info.offset, "stolen")  # taken over before it read a byte
            holder.pump = None
            # Discarding goes back to the last committed offset (checkpoints may have moved it).
            if got.outcome == "too_long":
                os.ftruncate(fd, info.offset)
                self.store.keep_running_hash(info.id, 0, None)
                raise tus.too_long()
            if ex.checksum is not None and (got.outcome != "eof" or not ex.checksum.matches()):
                os.ftruncate(fd, info.offset)  # all-or-nothing: an incomplete chunk cannot be verified
                if got.outcome == "eof":
                    raise tus.ChecksumMismatch("the chunk does not match Upload-Checksum; it was discarded")
            else:
                await self._to_the_end(self.commit(ex, fd, info, got.end))
                self.store.keep_running_hash(info.id, got.end, ex.whole)
            if got.outcome != "eof":
                raise tus.interrupted()
        finally:
            os.close(fd)

    # one handler per verb -------------------------------------------------------------------

    def options(self, ex: _Exchange) -> Response:
        return Response(
            status_code=204,
            headers=self.headers(
                {
                    "Tus-Version": tus.TUS_VERSION,
                    "Tus-Extension": tus.EXTENSIONS,
                    "Tus-Max-Size": str(self.max_size),
                    "Tus-Checksum-Algorithm": ",".join(tus.CHECKSUM_ALGORITHMS),
                }
            ),
        )

    async def create(self, ex: _Exchange) -> Response:
        h = ex.request.headers
        tus.check_version(h.get("tus-resumable"))
        if h.get("upload-defer-length") is not None:
            raise tus.BadTusRequest("Upload-Defer-Length is not supported", code="upload.bad_request")
        length = tus.parse_length(h.get("upload-length"), max_size=self.max_size)
        metadata = tus.parse_metadata(h.get("upload-metadata"))
        has_body = _has_body(ex.request)
        if has_body:
            tus.check_content_type(h.get("content-type"), "a creation body")
        grant = await self._io(self.hooks.authorize_create, ex.request, length, metadata)
        tus.check_length(length, grant)
        info = await self._io(
            lambda: self.store.create(length=length, owner=grant.owner, context=dict(grant.context), metadata=metadata)
        )
        extra = {"Location": str(ex.request.url_for("tus_upload", upload_id=info.id))}
        async with self.store.locked(info.id) as holder:
            try:
                if has_body:
                    await self.receive(ex, info, holder)
                if info.offset >= info.length:
                    await self.finish(info)
            except EgocrowdError as err:
                return self.problem(err, ex, {**extra, **tus.upload_headers(info)})
        return Response(status_code=201, headers=self.headers({**extra, **tus.upload_headers(info)}))

    async def head(self, ex: _Exchange, upload_id: str) -> Response:
        tus.check_version(ex.request.headers.get("tus-resumable"))
        info = await self.load(ex, upload_id)
        h = tus.upload_headers(info)
        h["Upload-Length"] = str(info.length)
        if info.metadata:
            h["Upload-Metadata"] = tus.encode_metadata(info.metadata)
        return Response(status_code=200, headers=self.headers(h))

    async def patch(self, ex: _Exchange, upload_id: str) -> Response:
        h = ex.request.headers
        tus.check_version(h.get("tus-resumable"))
        tus.check_content_type(h.get("content-type"), "PATCH bodies")
        offset = tus.parse_offset(h.get("upload-offset"))
        await self.load(ex, upload_id)
        async with self.store.locked(upload_id) as holder:
            # Fresh: a previous writer may just have committed.
            info = tus.check_offset(await self._io(self.store.get, upload_id), offset)
            if info.state == "receiving":
                await self.receive(ex, info, holder)
            # Also retries a completion that failed transiently (an empty PATCH at the end).
            if info.state == "completing":
                try:
                    await self.finish(info)
                except EgocrowdError as err:
                    return self.problem(err, ex, tus.upload_headers(info))
        return Response(status_code=204, headers=self.headers(tus.upload_headers(info)))

    async def delete(self, ex: _Exchange, upload_id: str) -> Response:
        tus.check_version(ex.request.headers.get("tus-resumable"))
        await self.load(ex, upload_id)
        async with self.store.locked(upload_id):
            await self._io(self.store.delete, upload_id)
        return Response(status_code=204, headers=self.headers())

    async def handle(self, request: Request, upload_id: str | None) -> Response:
        verb = request.method
        if verb == "POST" and upload_id is not None:  # X-HTTP-Method-Override, for networks that drop PATCH
            verb = request.headers.get("x-http-method-override", "").upper()
        ex = _Exchange(request, verb)
        try:
            if request.method == "OPTIONS":
                return self.options(ex)
            if upload_id is None:
                return await self.create(ex)
            if not self.store.valid_id(upload_id):
                raise tus.no_such_upload()
            if verb == "HEAD":
                return await self.head(ex, upload_id)
            if verb == "PATCH":
                return await self.patch(ex, upload_id)
            if verb == "DELETE":
                return await self.delete(ex, upload_id)
            raise tus.BadTusRequest("POST to an upload needs X-HTTP-Method-Override", code="upload.bad_request")
        except EgocrowdError as err:
            if err.status >= 500:
                log.error("tus %s failed: %s", request.method, err)
            return self.problem(err, ex)
        except Exception:
            log.exception("tus %s %s failed", request.method, request.url.path)
            return self.problem(EgocrowdError("internal error while handling the upload", code="upload.internal"), ex)


def _has_body(request: Request) -> bool:
    cl = request.headers.get("content-length")
    if cl is not None:
        return cl.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def make_tus_router(store: Uploads, hooks: TusHooks, *, max_size: int = 8 << 30) -> APIRouter:
    """A router serving the tus protocol; mount it with ``include_router(..., prefix=...)``.

    ``max_size`` is the global ceiling advertised as ``Tus-Max-Size``; per-upload limits come from
    the hooks' :class:`Grant`.
    """
    server = _TusServer(store, hooks, max_size)
    router = APIRouter()

    async def collection(request: Request) -> Response:
        return await server.handle(request, None)

    async def upload(request: Request, upload_id: str) -> Response:
        return await server.handle(request, upload_id)

    for path in ("", "/"):
        router.add_api_route(
            path,
            collection,
            methods=["OPTIONS", "POST"],
            include_in_schema=False,
            name="tus_create" if path == "" else None,
        )
    router.add_api_route(
        "/{upload_id}",
        upload,
        methods=["OPTIONS", "HEAD", "PATCH", "DELETE", "POST"],
        name="tus_upload",
        include_in_schema=False,
    )
    return router

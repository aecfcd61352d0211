"""tus 1.0 resumable uploads as a FastAPI router.

Protocol: core + creation, creation-with-upload, expiration, checksum (sha1, md5, sha256, sha512)
and termination (https://tus.io/protocols/resumable-upload). ``X-HTTP-Method-Override`` on POST is
honoured for clients behind proxies that drop PATCH/DELETE.

Why not a library (evaluated Nov 2026): ``tuspyserver`` 4.4.3 (FastAPI router) comes closest — its
``pre_create_dep`` can see the request, metadata and size, so per-assignment limits would work —
but it has no checksum extension (the issue requires sha1 at least), leaves the "only the uploader
may HEAD/PATCH/DELETE" check to a router-wide ``auth`` dependency that would have to re-read the
library's upload records itself, and calls ``on_upload_complete`` once, with nothing to re-run it
after a crash inside it. ``tussi`` (ASGI middleware, own storage) and ``resumable-upload`` (http.server-style)
fit our FastAPI app and blob store less well still. The protocol is small; owning ~1,000 lines
(with the store), crash-safe offsets and a recoverable completion included, is cheaper than
patching around those gaps.

Wiring (the app does this once)::

    store = UploadStore(settings.data_dir / "uploads", ttl=timedelta(hours=24))
    hooks = MyHooks(...)                      # subclass of TusHooks
    app.include_router(make_tus_router(store, hooks, max_size=4 << 30), prefix="/api/v1/uploads")
    # at startup (lifespan):  await recover_completed(store, hooks)
    # periodically (or `egocrowd` CLI):  expire_uploads(store)

Hooks (sync or async; sync ones run in a worker thread, so blocking DB calls are fine):

``authorize_create(request, length, metadata) -> Grant | dict``
    Authenticate the caller and decide whether this upload may start. Raise an ``EgocrowdError``
    (``Unauthenticated``, ``Forbidden``, ``NotFound``...) to refuse. Return a :class:`Grant` (or a
    dict with the same keys): ``owner`` (opaque id checked by ``authorize_access``),
    ``max_length`` (an ``Upload-Length`` above it is answered 413 ``upload.too_large`` before any
    byte is read) and ``context`` (JSON-able, stored with the upload, e.g. the assignment id).

``authorize_access(request, info)``
    Called before HEAD, PATCH and DELETE; raise to refuse (e.g.
    ``Forbidden(code="upload.forbidden")`` unless the caller is ``info.owner``).

``on_complete(info, data_path) -> dict[str, str]``
    Called once all ``info.length`` bytes are durably on disk, while the upload is locked. Turn
    ``data_path`` into a clip (e.g. ``BlobStore.put_file``) and return response headers for the
    client (e.g. ``{"Egocrowd-Clip-Id": "42"}``); they are stored and repeated on later HEADs.
    It MUST be idempotent, keyed by ``info.id``: if the process dies inside it, it runs again
    (``recover_completed`` at startup, or the client's next PATCH). Raise an ``EgocrowdError`` to
    reject the upload for good (the client gets that status; the bytes are dropped); any other
    exception leaves the upload in state ``completing`` to be retried. ``data_path`` is deleted
    after it returns, so the hook may also move the file away. ``info.sha256`` is the file's
    sha256: computed while receiving, or (after a restart mid-upload) by reading the file once and
    saved before the hook first runs, so a retry after the hook moved the file still knows it.
    ``blobs.put_file(data_path, sha256=info.sha256, move=True, verify=False)`` therefore stores a
    500 MB upload without reading it again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import hashlib
import inspect
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from egocrowd.errors import Conflict, EgocrowdError, Gone, InvalidInput, NotFound, TooLarge
from egocrowd.uploads.store import UploadInfo, UploadStore, utcnow

__all__ = [
    "TUS_VERSION",
    "CHECKSUM_ALGORITHMS",
    "Grant",
    "TusHooks",
    "make_tus_router",
    "expire_uploads",
    "recover_completed",
    "ChecksumMismatch",
]

log = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
OFFSET_CT = "application/offset+octet-stream"
PROBLEM_TYPE_BASE = "https://egocrowd.dev/problems/"
# Offsets are made durable at least this often during a long PATCH, so a crash loses little.
CHECKPOINT_SECONDS = 2.0
# Start disk writeback every this many bytes so the fsync ending a PATCH has little left to do.
WRITEBACK_BYTES = 8 << 20
# Received chunks (64-256 KiB each) are written in batches of about this size.
BATCH_BYTES = 1 << 20


def _writeback_starter() -> Any:
    """``sync_file_range(SYNC_FILE_RANGE_WRITE)`` where Linux has it: starts writeback, no wait."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
        return lambda fd, offset, nbytes: fn(fd, offset, nbytes, 2)
    except (OSError, AttributeError):
        return lambda fd, offset, nbytes: None


_start_writeback = _writeback_starter()


# -- tus-specific errors (statuses fixed by the tus spec) ---------------------------------------


class BadTusRequest(InvalidInput):
    status = 400
    default_code = "upload.bad_request"


class UnsupportedVersion(EgocrowdError):
    status = 412
    default_code = "upload.unsupported_version"


class UnsupportedContentType(InvalidInput):
    status = 415
    default_code = "upload.bad_content_type"


class ChecksumMismatch(InvalidInput):
    status = 460
    default_code = "upload.checksum_mismatch"


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
           409: "Conflict", 410: "Gone", 412: "Precondition Failed", 413: "Content Too Large",
           415: "Unsupported Media Type", 422: "Unprocessable Content", 460: "Checksum Mismatch",
           500: "Internal Server Error"}


# -- hooks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """What ``authorize_create`` allows: who owns the upload, how big it may be, what it is for."""

    owner: str
    max_length: int
    context: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Grant | Mapping[str, Any]) -> Grant:
        if isinstance(value, Grant):
            return value
        return cls(owner=str(value["owner"]), max_length=int(value["max_length"]),
                   context=dict(value.get("context") or {}))


@runtime_checkable
class TusHooks(Protocol):
    """Subclass (or duck-type) this; see the module docstring for the contract of each hook."""

    def authorize_create(self, request: Request, length: int, metadata: dict[str, str]) -> Grant | Mapping[str, Any]:
        raise NotImplementedError

    def authorize_access(self, request: Request, info: UploadInfo) -> None:
        raise NotImplementedError

    def on_complete(self, info: UploadInfo, data_path: os.PathLike[str]) -> Mapping[str, str] | None:
        raise NotImplementedError


async def _call(fn: Any, *args: Any) -> Any:
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await run_in_threadpool(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _in_thread_uncancellable(fn: Any, *args: Any) -> Any:
    """Run blocking durability work (fsync, record writes) to completion even if we are cancelled.

    A cancelled await must not let a later writer overtake a half-done commit; we wait for the
    thread to finish and then let the cancellation through.
    """
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait([fut])
        raise


# -- header helpers ---------------------------------------------------------------------------


def _http_date(dt: datetime) -> str:
    return email.utils.format_datetime(dt, usegmt=True)


MAX_METADATA_CHARS = 16384  # the record is rewritten on every commit: keep it small


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata: key b64,key2 b64,flag`` → dict (values decoded as UTF-8)."""
    out: dict[str, str] = {}
    if not header or not header.strip():
        return out
    if len(header) > MAX_METADATA_CHARS:
        raise BadTusRequest(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters",
                            code="upload.bad_metadata")
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or key in out or not key.isascii():
            raise BadTusRequest(f"malformed Upload-Metadata pair {pair.strip()!r}", code="upload.bad_metadata")
        try:
            out[key] = base64.b64decode(parts[1], validate=True).decode("utf-8") if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadTusRequest(f"Upload-Metadata value for {key!r} is not base64 UTF-8",
                                code="upload.bad_metadata") from None
    return out


def encode_metadata(metadata: Mapping[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in metadata.items())


def _is_decimal(value: str | None) -> bool:
    # ASCII digits only, and not absurdly long: str.isdigit() also accepts e.g. Latin-1 "\u00b2"
    # (which int() refuses), and int() refuses more than 4300 digits; both were a 500.
    return value is not None and 0 < len(value) <= 20 and value.isascii() and value.isdigit()


def _parse_int(value: str | None, name: str) -> int:
    if not _is_decimal(value):
        raise BadTusRequest(f"{name} must be a non-negative integer", code="upload.bad_request")
    return int(value)


def _parse_checksum(header: str | None) -> tuple[Any, bytes] | None:
    if header is None:
        return None
    algo, _, b64 = header.strip().partition(" ")
    factory = CHECKSUM_ALGORITHMS.get(algo.lower())
    if factory is None:
        raise BadTusRequest(f"checksum algorithm {algo!r} not supported", code="upload.bad_checksum")
    try:
        digest = base64.b64decode(b64.strip(), validate=True)
    except binascii.Error:
        raise BadTusRequest("Upload-Checksum value is not base64", code="upload.bad_checksum") from None
    return factory(), digest


# -- the router -------------------------------------------------------------------------------


@dataclass
class _Pumped:
    end: int  # offset after the last byte written
    outcome: str  # eof | disconnect | stolen | too_long


class _Tus:
    def __init__(self, store: UploadStore, hooks: TusHooks, max_size: int) -> None:
        self.store = store
        self.hooks = hooks
        self.max_size = max_size
        self._hasher: Any = None  # per request: checksum of the current chunk
        self._whole: Any = None  # per request: sha256 of the upload so far, when known

    # responses ------------------------------------------------------------------------------

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        h = {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}
        if extra:
            h.update(extra)
        return h

    def problem(self, err: EgocrowdError, request: Request, extra: Mapping[str, str] | None = None) -> Response:
        headers = self.headers(extra)
        if err.status == 412:
            headers["Tus-Version"] = TUS_VERSION
        if err.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if request.method == "HEAD":  # HEAD responses carry no body
            return Response(status_code=err.status, headers=headers)
        # The same document shape as egocrowd.web.problems (not imported: web imports us).
        body = {"type": PROBLEM_TYPE_BASE + err.code, "title": _TITLES.get(err.status, "Error"),
                "status": err.status, "detail": err.message, "code": err.code,
                **{k: v for k, v in err.extra.items() if v is not None}}
        return JSONResponse(body, status_code=err.status, headers=headers, media_type="application/problem+json")

    def upload_headers(self, info: UploadInfo) -> dict[str, str]:
        h = {"Upload-Offset": str(info.offset)}
        if info.state == "receiving":
            h["Upload-Expires"] = _http_date(info.expires_at)
        h.update(info.result)
        if info.error:
            h["Egocrowd-Upload-Error"] = str(info.error.get("code", "upload.rejected"))
        return h

    # checks ---------------------------------------------------------------------------------

    @staticmethod
    def check_version(request: Request) -> None:
        if request.headers.get("tus-resumable") != TUS_VERSION:
            raise UnsupportedVersion(f"Tus-Resumable: {TUS_VERSION} is required")

    async def load(self, request: Request, upload_id: str) -> UploadInfo:
        info = self.store.get(upload_id)
        if info is None:
            raise NotFound("no such upload", code="upload.not_found")
        await _call(self.hooks.authorize_access, request, info)
        if info.is_expired():
            raise Gone("this upload expired; start a new one", code="upload.expired")
        if info.state == "failed" and request.method != "DELETE" and request.method != "HEAD":
            err = info.error or {}
            raise _replay_error(err)
        return info

    # body streaming -------------------------------------------------------------------------

    def _write(self, fd: int, chunks: list[bytes], at: int) -> None:
        """Write a batch at ``at`` and feed the hashes (runs in a worker thread, one at a time)."""
        written = os.pwritev(fd, chunks, at)
        total = sum(len(c) for c in chunks)
        if written < total:  # short write: finish the rest the slow way
            rest = memoryview(b"".join(chunks))[written:]
            while rest:
                n = os.pwrite(fd, rest, at + written)
                written += n
                rest = rest[n:]
        for c in chunks:
            if self._hasher is not None:
                self._hasher.update(c)
            if self._whole is not None:
                self._whole.update(c)
        if (at + total) // WRITEBACK_BYTES != at // WRITEBACK_BYTES:
            start = max(0, (at + total) // WRITEBACK_BYTES * WRITEBACK_BYTES - WRITEBACK_BYTES)
            _start_writeback(fd, start, WRITEBACK_BYTES)

    async def pump(self, request: Request, fd: int, info: UploadInfo, verify: bool) -> _Pumped:
        """Stream the request body into the data file at ``info.offset``, committing as it goes.

        Chunks are batched (~1 MiB) and written and hashed in a worker thread while the event
        loop receives the next batch, so network, disk and hashing overlap; at most one batch is
        in flight, so memory per upload stays around 2 MiB whatever the file size.

        Without a checksum, received bytes are committed every CHECKPOINT_SECONDS and when the
        connection drops, so a resumed upload continues from the last byte we have. With a
        checksum the chunk is all-or-nothing (nothing is committed before it verifies).
        """
        loop = asyncio.get_running_loop()
        received = written = info.offset  # bytes taken from the socket / handed to the writer
        batch: list[bytes] = []
        batch_len = 0
        inflight: asyncio.Future[None] | None = None
        next_checkpoint = time.monotonic() + CHECKPOINT_SECONDS

        async def drain() -> None:
            # Waits for the in-flight write even when we are being cancelled: nothing may be
            # committed (or the fd closed) while a thread still writes.
            nonlocal inflight
            if inflight is not None:
                fut, inflight = inflight, None
                try:
                    await asyncio.shield(fut)
                except asyncio.CancelledError:
                    await asyncio.wait([fut])
                    fut.result()
                    raise

        async def flush() -> None:
            nonlocal batch, batch_len, written, inflight
            if not batch:
                return
            await drain()
            inflight = loop.run_in_executor(None, self._write, fd, batch, written)
            written += batch_len
            batch, batch_len = [], 0

        outcome = "eof"
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                if received + len(chunk) > info.length:
                    outcome = "too_long"
                    break
                batch.append(chunk)
                batch_len += len(chunk)
                received += len(chunk)
                if batch_len >= BATCH_BYTES:
                    await flush()
                if not verify and time.monotonic() >= next_checkpoint:
                    await flush()
                    await drain()
                    await _in_thread_uncancellable(self.commit, fd, info, written)
                    next_checkpoint = time.monotonic() + CHECKPOINT_SECONDS
        except ClientDisconnect:
            outcome = "disconnect"
        except asyncio.CancelledError:
            # A newer request for the same upload took over (see UploadStore.locked).
            outcome = "stolen"
        # Everything received is written before anyone looks at the file again.
        await flush()
        await drain()
        return _Pumped(written, outcome)

    def commit(self, fd: int, info: UploadInfo, end: int) -> None:
        """Make ``[0, end)`` durable, then record ``end`` as the offset (in that order)."""
        os.fsync(fd)
        info.offset = end
        self.store.touch(info)
        if info.offset >= info.length and info.completed_at is None:
            info.completed_at = utcnow()
            if self._whole is not None:
                info.sha256 = self._whole.hexdigest()
        self.store.save(info)

    async def receive(self, request: Request, info: UploadInfo, holder: Any) -> None:
        """Append the body of a PATCH (or creation-with-upload POST) at ``info.offset``; raises
        an ``EgocrowdError`` for anything but a complete, verified body."""
        checksum = _parse_checksum(request.headers.get("upload-checksum"))
        declared = request.headers.get("content-length")
        if _is_decimal(declared) and info.offset + int(declared) > info.length:
            raise TooLarge("the body goes past Upload-Length", code="upload.too_large")
        self._hasher = checksum[0] if checksum else None
        self._whole = self.store.running_hash(info.id, info.offset)
        fd = os.open(self.store.data_path(info.id), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.ftruncate(fd, info.offset)  # drop a tail that was written but never committed
            holder.pump = asyncio.ensure_future(self.pump(request, fd, info, verify=checksum is not None))
            got = await holder.pump
            holder.pump = None
            # Discarding goes back to the last committed offset (checkpoints may have moved it).
            if got.outcome == "too_long":
                os.ftruncate(fd, info.offset)
                self.store.keep_running_hash(info.id, 0, None)
                raise TooLarge("the body goes past Upload-Length", code="upload.too_large")
            if checksum is not None and (got.outcome != "eof" or self._hasher.digest() != checksum[1]):
                os.ftruncate(fd, info.offset)  # all-or-nothing: an incomplete chunk cannot be verified
                if got.outcome == "eof":
                    raise ChecksumMismatch("the chunk does not match Upload-Checksum; it was discarded")
            else:
                await _in_thread_uncancellable(self.commit, fd, info, got.end)
                self.store.keep_running_hash(info.id, got.end, self._whole)
            if got.outcome != "eof":
                raise Conflict("the request body was interrupted", code="upload.interrupted")
        finally:
            os.close(fd)

    # completion -----------------------------------------------------------------------------

    async def finish(self, info: UploadInfo) -> None:
        """Hand a fully received upload to ``on_complete``; caller holds the lock."""
        if info.sha256 is None:
            # No streamed hash (a restart mid-upload): hash the file now and save it BEFORE the hook
            # runs. The hook may move the file into the blob store and then fail (a database
            # hiccup); its retry then finds the bytes by this hash. Without it the retry found
            # neither file nor hash: FileNotFoundError forever, the bytes swept later as an orphan.
            from egocrowd.blobs import sha256_file

            info.sha256 = (await run_in_threadpool(sha256_file, self.store.data_path(info.id)))[0]
            await run_in_threadpool(self.store.save, info)
        try:
            result = await _call(self.hooks.on_complete, info, self.store.data_path(info.id))
        except EgocrowdError as err:
            info.error = {"status": err.status, "code": err.code, "message": err.message}
            info.finished_at = utcnow()
            self.store.touch(info)
            await run_in_threadpool(self.store.save, info)
            self.store.drop_data(info.id)
            raise
        info.result = {str(k): str(v) for k, v in (result or {}).items()}
        info.finished_at = utcnow()
        self.store.touch(info)  # keep the finished record around for one ttl, for late HEADs
        await run_in_threadpool(self.store.save, info)
        self.store.drop_data(info.id)

    # endpoints ------------------------------------------------------------------------------

    def options(self, request: Request) -> Response:
        return Response(status_code=204, headers=self.headers({
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(self.max_size),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        }))

    async def create(self, request: Request) -> Response:
        self.check_version(request)
        if request.headers.get("upload-defer-length") is not None:
            raise BadTusRequest("Upload-Defer-Length is not supported", code="upload.bad_request")
        length = _parse_int(request.headers.get("upload-length"), "Upload-Length")
        if length > self.max_size:
            raise TooLarge(f"Upload-Length {length} exceeds Tus-Max-Size {self.max_size}", code="upload.too_large")
        metadata = parse_metadata(request.headers.get("upload-metadata"))
        has_body = _has_body(request)
        if has_body and request.headers.get("content-type", "").split(";")[0].strip() != OFFSET_CT:
            raise UnsupportedContentType(f"a creation body must be {OFFSET_CT}")
        grant = Grant.coerce(await _call(self.hooks.authorize_create, request, length, metadata))
        if length > grant.max_length:
            raise TooLarge(f"Upload-Length {length} exceeds this assignment's limit of {grant.max_length} bytes",
                           code="upload.too_large", max_length=grant.max_length)
        info = await run_in_threadpool(self.store.create, length=length, owner=grant.owner,
                                       context=dict(grant.context), metadata=metadata)
        location = str(request.url_for("tus_upload", upload_id=info.id))
        extra = {"Location": location}
        async with self.store.locked(info.id) as holder:
            try:
                if has_body:
                    await self.receive(request, info, holder)
                if info.offset >= info.length:
                    await self.finish(info)
            except EgocrowdError as err:
                return self.problem(err, request, {**extra, **self.upload_headers(info)})
        return Response(status_code=201, headers=self.headers({**extra, **self.upload_headers(info)}))

    async def head(self, request: Request, upload_id: str) -> Response:
        self.check_version(request)
        info = await self.load(request, upload_id)
        h = self.upload_headers(info)
        h["Upload-Length"] = str(info.length)
        if info.metadata:
            h["Upload-Metadata"] = encode_metadata(info.metadata)
        return Response(status_code=200, headers=self.headers(h))

    async def patch(self, request: Request, upload_id: str) -> Response:
        self.check_version(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != OFFSET_CT:
            raise UnsupportedContentType(f"PATCH bodies must be {OFFSET_CT}")
        offset = _parse_int(request.headers.get("upload-offset"), "Upload-Offset")
        await self.load(request, upload_id)
        async with self.store.locked(upload_id) as holder:
            info = self.store.get(upload_id)  # fresh: a previous writer may just have committed
            if info is None:
                raise NotFound("no such upload", code="upload.not_found")
            if offset != info.offset:
                raise Conflict(f"Upload-Offset {offset} does not match the server's {info.offset}",
                               code="upload.offset_mismatch")
            if info.state == "receiving":
                await self.receive(request, info, holder)
            # Also retries a completion that failed transiently (an empty PATCH at the end).
            if info.state == "completing":
                try:
                    await self.finish(info)
                except EgocrowdError as err:
                    return self.problem(err, request, self.upload_headers(info))
        return Response(status_code=204, headers=self.headers(self.upload_headers(info)))

    async def delete(self, request: Request, upload_id: str) -> Response:
        self.check_version(request)
        await self.load(request, upload_id)
        async with self.store.locked(upload_id):
            await run_in_threadpool(self.store.delete, upload_id)
        return Response(status_code=204, headers=self.headers())


def _has_body(request: Request) -> bool:
    cl = request.headers.get("content-length")
    if cl is not None:
        return cl.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _replay_error(err: Mapping[str, Any]) -> EgocrowdError:
    e = EgocrowdError(err.get("message", "upload rejected"), code=err.get("code", "upload.rejected"))
    e.status = int(err.get("status", 422))
    return e


def make_tus_router(store: UploadStore, hooks: TusHooks, *, max_size: int = 8 << 30) -> APIRouter:
    """A router serving the tus protocol; mount it with ``include_router(..., prefix=...)``.

    ``max_size`` is the global ceiling advertised as ``Tus-Max-Size``; per-upload limits come from
    the hooks' :class:`Grant`.
    """
    router = APIRouter()

    def tus() -> _Tus:
        # One handler object per request: ``receive`` keeps per-request state (the hasher).
        return _Tus(store, hooks, max_size)

    def guarded(method: str):
        async def endpoint(request: Request, upload_id: str | None = None) -> Response:
            t = tus()
            try:
                if method == "options":
                    return t.options(request)
                if method == "create":
                    return await t.create(request)
                assert upload_id is not None
                if not store.valid_id(upload_id):
                    raise NotFound("no such upload", code="upload.not_found")
                verb = request.method
                if verb == "POST":  # X-HTTP-Method-Override, for networks that drop PATCH
                    verb = request.headers.get("x-http-method-override", "").upper()
                if verb == "HEAD":
                    return await t.head(request, upload_id)
                if verb == "PATCH":
                    return await t.patch(request, upload_id)
                if verb == "DELETE":
                    return await t.delete(request, upload_id)
                raise BadTusRequest("POST to an upload needs X-HTTP-Method-Override", code="upload.bad_request")
            except EgocrowdError as err:
                if err.status >= 500:
                    log.error("tus %s failed: %s", request.method, err)
                return t.problem(err, request)
            except Exception:
                log.exception("tus %s %s failed", request.method, request.url.path)
                return t.problem(EgocrowdError("internal error while handling the upload",
                                               code="upload.internal"), request)

        return endpoint

    for path in ("", "/"):
        router.add_api_route(path, guarded("options"), methods=["OPTIONS"], include_in_schema=False)
        router.add_api_route(path, guarded("create"), methods=["POST"], name="tus_create" if path == "" else None,
                             include_in_schema=False)
    router.add_api_route("/{upload_id}", guarded("options"), methods=["OPTIONS"], include_in_schema=False)
    router.add_api_route("/{upload_id}", guarded("upload"), methods=["HEAD", "PATCH", "DELETE", "POST"],
                         name="tus_upload", include_in_schema=False)
    return router


# -- maintenance --------------------------------------------------------------------------------


def expire_uploads(store: UploadStore, now: datetime | None = None, *, orphan_grace_s: float = 3600) -> list[str]:
    """Delete expired unfinished uploads (and their bytes); returns their ids.

    Also forgets finished/failed records one ttl after they finished, and sweeps leftovers of
    crashes (``.part``/``.lock``/temp files without a record, older than ``orphan_grace_s``).
    Uploads whose bytes are all here but whose completion has not run (``completing``) are never
    expired: ``recover_completed`` owns them. Busy uploads (locked) are skipped.
    """
    now = now or utcnow()
    removed: list[str] = []
    known: set[str] = set()
    for info in store.iter_infos():
        known.add(info.id)
        stale = info.is_expired(now) or (info.state in ("finished", "failed") and now >= info.expires_at)
        if not stale:
            continue
        fd = store.try_lock_sync(info.id)
        if fd is None:
            continue
        try:
            fresh = store.get(info.id)
            if fresh is not None and (fresh.is_expired(now) or
                                      (fresh.state in ("finished", "failed") and now >= fresh.expires_at)):
                store.delete(info.id)
                removed.append(info.id)
        finally:
            os.close(fd)
    cutoff = time.time() - orphan_grace_s
    for p in store.dir.iterdir():
        stem = p.name.split(".")[1] if p.name.startswith(".") else p.stem
        if stem in known or p.suffix == ".json":
            continue
        try:
            if p.stat().st_mtime < cutoff and store.get(stem) is None:
                p.unlink()
        except FileNotFoundError:
            pass
        except (ValueError, TypeError):
            # A record we cannot read (e.g. written by a newer version) exists: its files are not
            # leftovers. Raising here used to stop this sweep and the housekeeping after it.
            continue
    return removed


async def recover_completed(store: UploadStore, hooks: TusHooks) -> list[str]:
    """Run ``on_complete`` for uploads fully received but never finished (crash, hook error).

    Call at startup. Returns the ids finished now; failures are logged and left for a later try.
    """
    done: list[str] = []
    for info in list(store.iter_infos()):
        if info.state != "completing":
            continue
        t = _Tus(store, hooks, max_size=0)
        try:
            async with store.locked(info.id):
                fresh = store.get(info.id)
                if fresh is None or fresh.state != "completing":
                    continue
                await t.finish(fresh)
                done.append(info.id)
        except EgocrowdError as err:
            log.warning("upload %s rejected on recovery: %s", info.id, err)
        except Exception:
            log.exception("recovering upload %s failed; will retry", info.id)
    return done

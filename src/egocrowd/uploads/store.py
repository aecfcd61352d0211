"""Where unfinished uploads live, so they survive a restart or a SIGKILL: :class:`Uploads`, the
interface the tus server, completion and upkeep use, and :class:`UploadStore`, its local-directory
form (the embedded default; one host). The form several servers share is
:class:`egocrowd.uploads.shared.SharedUploadStore`.

Layout (flat; the upload id is 32 hex characters)::

    <id>.json    UploadInfo, replaced atomically (temp file + fsync + os.replace)
    <id>.part    the bytes received so far (may hold a tail beyond ``offset``: not yet durable,
                 truncated before the next write)
    <id>.lock    flock target serialising writers across processes

Invariant: bytes ``[0, info.offset)`` of ``<id>.part`` were fsynced before ``info.offset`` was
saved, so the offset a client is told after a crash never points past durable data. An upload
exists iff its ``.json`` exists: it is written last on creation and removed first on deletion, and
leftover ``.part``/``.lock`` files without one are swept by ``expire_uploads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from egocrowd.blobs import fsync_dir as _fsync_dir
from egocrowd.clock import utcnow
from egocrowd.errors import Conflict

__all__ = ["FORMAT_VERSION", "UploadInfo", "UploadStore", "Uploads"]

FORMAT_VERSION = 1
log = logging.getLogger(__name__)
_ID_RE = re.compile(r"^[0-9a-f]{32}$")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _parse(s: str | None) -> datetime | None:
    return datetime.fromisoformat(s) if s else None


@dataclass
class UploadInfo:
    """Everything we know about one upload; persisted as ``<id>.json``."""

    id: str
    length: int
    owner: str  # who may HEAD/PATCH/DELETE it (from the Grant); hooks compare against it
    context: dict[str, Any] = field(default_factory=dict)  # from the Grant, e.g. assignment id
    metadata: dict[str, str] = field(default_factory=dict)  # decoded Upload-Metadata
    offset: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    expires_at: datetime = field(default_factory=utcnow)
    completed_at: datetime | None = None  # last byte durably received
    finished_at: datetime | None = None  # on_complete returned successfully
    result: dict[str, str] = field(default_factory=dict)  # on_complete's response headers
    error: dict[str, Any] | None = None  # on_complete refused it (EgocrowdError as a dict)
    # sha256 of the whole upload when one process saw every byte in order (saves a re-read at
    # completion); None otherwise, e.g. after a restart: then hash the data file yourself.
    sha256: str | None = None
    format_version: int = FORMAT_VERSION

    @classmethod
    def new(
        cls,
        *,
        length: int,
        owner: str,
        ttl: timedelta,
        context: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> UploadInfo:
        """A fresh upload with a random id, expiring ``ttl`` from now (every store creates them so)."""
        now = utcnow()
        return cls(
            id=secrets.token_hex(16),
            length=length,
            owner=owner,
            context=dict(context or {}),
            metadata=dict(metadata or {}),
            created_at=now,
            updated_at=now,
            expires_at=now + ttl,
        )

    @property
    def state(self) -> str:
        """``receiving`` → ``completing`` → ``finished`` | ``failed``."""
        if self.error is not None:
            return "failed"
        if self.finished_at is not None:
            return "finished"
        if self.offset >= self.length:
            return "completing"
        return "receiving"

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.state == "receiving" and (now or utcnow()) >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("created_at", "updated_at", "expires_at", "completed_at", "finished_at"):
            d[k] = _iso(d[k])
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> UploadInfo:
        d = dict(d)
        if d.get("format_version", 1) > FORMAT_VERSION:
            raise ValueError(f"upload info format {d['format_version']} is newer than this code")
        for k in ("created_at", "updated_at", "expires_at", "completed_at", "finished_at"):
            d[k] = _parse(d.get(k))
        return cls(**d)


class _Holder:
    """The in-process owner of an upload's lock (one request at a time)."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.pump: asyncio.Task[Any] | None = None  # body reader a newer request may interrupt


def _locked_out() -> Conflict:
    return Conflict("another request is writing this upload", code="upload.locked")


class Uploads(Protocol):
    """What the tus server, completion, upkeep and health need from an upload store; both
    :class:`UploadStore` (one local directory, flock) and
    :class:`egocrowd.uploads.shared.SharedUploadStore` (database rows, object-store parts,
    PostgreSQL advisory locks) implement it.

    Writing a request body: ``open_data`` gives a local file descriptor to write bytes at their
    absolute offsets from ``info.offset`` on; ``write_back(info, fd, end)`` makes ``[info.offset,
    end)`` durable; ``stage``/``publish`` record the new offset only after that (the offset a client
    is told never points past durable bytes). ``data_file`` gives the whole upload as a local file
    for completion, ``drop_data`` forgets the bytes.
    """

    ttl: timedelta
    lock_timeout: float

    def valid_id(self, upload_id: str) -> bool: ...
    def create(
        self, *, length: int, owner: str, context: dict[str, Any] | None = None, metadata: dict[str, str] | None = None
    ) -> UploadInfo: ...
    def get(self, upload_id: str) -> UploadInfo | None: ...
    def save(self, info: UploadInfo) -> None: ...
    def delete(self, upload_id: str) -> None: ...
    def iter_infos(self) -> Iterator[UploadInfo]: ...
    def open_uploads(self, owner: str, now: datetime | None = None) -> list[UploadInfo]: ...
    def touch(self, info: UploadInfo, now: datetime | None = None) -> None: ...
    def running_hash(self, upload_id: str, offset: int) -> Any | None: ...
    def keep_running_hash(self, upload_id: str, offset: int, state: Any | None) -> None: ...
    def open_data(self, info: UploadInfo) -> int: ...
    def write_back(self, info: UploadInfo, fd: int, end: int) -> Any: ...
    def stage(self, info: UploadInfo) -> Any: ...
    def publish(self, upload_id: str, staged: Any, durable: Any = None) -> None: ...
    def discard(self, staged: Any) -> None: ...
    def data_file(self, info: UploadInfo) -> Path: ...
    def drop_data(self, upload_id: str) -> None: ...
    def locked(self, upload_id: str, *, steal: bool = True) -> contextlib.AbstractAsyncContextManager[_Holder]: ...
    def try_lock(self, upload_id: str) -> contextlib.AbstractContextManager[bool]: ...
    def sweep_leftovers(self, known: set[str], grace_s: float) -> int: ...
    def writable(self) -> str: ...
    def sibling(self, *, lock_timeout: float) -> Uploads: ...
    def close(self) -> None: ...


class _InProcess:
    """What both stores share: the per-process lock holders (with "steal" for reconnecting
    phones), the per-process running sha256 states, the sliding expiry."""

    ttl: timedelta
    lock_timeout: float

    def __init__(self, *, ttl: timedelta, lock_timeout: float) -> None:
        self.ttl = ttl
        self.lock_timeout = lock_timeout
        self._holders: dict[str, _Holder] = {}
        # upload id -> (offset, sha256 state over bytes [0, offset)); bounded, in-process only
        self._running: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    @staticmethod
    def valid_id(upload_id: str) -> bool:
        return bool(_ID_RE.match(upload_id))

    def close(self) -> None:
        """Let go of what the store holds open (nothing, unless a subclass says otherwise)."""

    _RUNNING_MAX = 4096

    def running_hash(self, upload_id: str, offset: int) -> Any | None:
        """A sha256 state covering exactly ``[0, offset)``, or None if this process lacks one."""
        if offset == 0:
            return hashlib.sha256()
        entry = self._running.get(upload_id)
        if entry is None or entry[0] != offset:
            return None
        return entry[1].copy()

    def keep_running_hash(self, upload_id: str, offset: int, state: Any | None) -> None:
        if state is None:
            self._running.pop(upload_id, None)
            return
        self._running[upload_id] = (offset, state)
        self._running.move_to_end(upload_id)
        while len(self._running) > self._RUNNING_MAX:
            self._running.popitem(last=False)

    def touch(self, info: UploadInfo, now: datetime | None = None) -> None:
        """Mark activity: the expiry slides forward on every write."""
        now = now or utcnow()
        info.updated_at = now
        info.expires_at = now + self.ttl

    @contextlib.asynccontextmanager
    async def _in_process(self, upload_id: str, steal: bool, deadline: float) -> AsyncIterator[_Holder]:
        """One request per upload in this process. A phone that lost its connection often
        reconnects before the server notices the old TCP connection is dead; that old request would
        otherwise hold the lock until it times out. With ``steal`` the newer request interrupts the
        older one's body reader, which commits what it received and lets go."""
        while (holder := self._holders.get(upload_id)) is not None:
            if steal and holder.pump is not None and not holder.pump.done():
                holder.pump.cancel()
            try:
                await asyncio.wait_for(holder.released.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                raise _locked_out() from None
        mine = _Holder()
        self._holders[upload_id] = mine
        try:
            yield mine
        finally:
            del self._holders[upload_id]
            mine.released.set()


class UploadStore(_InProcess):
    """Upload records and partial bytes in one local directory.

    ``ttl`` is the sliding expiry: an unfinished upload not written to for that long expires.
    ``lock_timeout`` bounds how long a request waits for another one on the same upload.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        ttl: timedelta = timedelta(hours=24),
        lock_timeout: float = 5.0,
    ) -> None:
        super().__init__(ttl=ttl, lock_timeout=lock_timeout)
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"UploadStore({str(self.dir)!r})"

    def sibling(self, *, lock_timeout: float) -> UploadStore:
        """A store on the same directory for another event loop (the worker's upkeep): no
        asyncio state is shared, the flock still serialises it with requests in flight."""
        return UploadStore(self.dir, ttl=self.ttl, lock_timeout=lock_timeout)

    def writable(self) -> str:
        return "ok" if os.access(self.dir, os.W_OK) else f"{self.dir} is not writable"

    # -- paths ----------------------------------------------------------------------------------

    def info_path(self, upload_id: str) -> Path:
        return self.dir / f"{upload_id}.json"

    def data_path(self, upload_id: str) -> Path:
        return self.dir / f"{upload_id}.part"

    def _lock_path(self, upload_id: str) -> Path:
        return self.dir / f"{upload_id}.lock"

    # -- records --------------------------------------------------------------------------------

    def create(
        self,
        *,
        length: int,
        owner: str,
        context: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> UploadInfo:
        info = UploadInfo.new(length=length, owner=owner, ttl=self.ttl, context=context, metadata=metadata)
        upload_id = info.id
        self._lock_path(upload_id).touch()
        fd = os.open(self.data_path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        self.save(info)  # last: the upload exists from here on
        _fsync_dir(self.dir)
        return info

    def get(self, upload_id: str) -> UploadInfo | None:
        if not self.valid_id(upload_id):
            return None
        try:
            with open(self.info_path(upload_id), "rb") as f:
                return UploadInfo.from_json(json.load(f))
        except FileNotFoundError:
            return None

    def save(self, info: UploadInfo) -> None:
        """Atomically replace the record (fsynced: it is the durable truth about the offset)."""
        self.publish(info.id, self.stage(info))

    def stage(self, info: UploadInfo) -> str:
        """Write and fsync the record to a temp file, not yet visible; ``publish`` makes it the
        record. Split so the tus server can stage it while the data's fsync runs, and publish it
        only after that fsync returned (one wait for both, the order kept)."""
        data = json.dumps(info.to_json(), separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{info.id}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            self.discard(tmp)
            raise
        return tmp

    def publish(self, upload_id: str, staged: str, durable: Any = None) -> None:
        try:
            os.replace(staged, self.info_path(upload_id))
        except BaseException:
            self.discard(staged)
            raise

    @staticmethod
    def discard(staged: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)

    def delete(self, upload_id: str) -> None:
        """Forget an upload and its bytes (record first, so it stops existing at once)."""
        self._running.pop(upload_id, None)
        for p in (self.info_path(upload_id), self.data_path(upload_id), self._lock_path(upload_id)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def drop_data(self, upload_id: str) -> None:
        self._running.pop(upload_id, None)
        with contextlib.suppress(FileNotFoundError):
            self.data_path(upload_id).unlink()

    def iter_infos(self) -> Iterator[UploadInfo]:
        """Every upload record; an unreadable one is logged and skipped so upkeep goes on."""
        for p in sorted(self.dir.glob("*.json")):
            try:
                info = self.get(p.stem)
            except (ValueError, TypeError) as err:
                log.error("unreadable upload record %s: %s", p, err)
                continue
            if info is not None:
                yield info

    def open_uploads(self, owner: str, now: datetime | None = None) -> list[UploadInfo]:
        """``owner``'s uploads still receiving bytes (not expired). A scan of the records: fine for
        the thousands one server holds (uploads across servers keep their state elsewhere)."""
        now = now or utcnow()
        return [i for i in self.iter_infos() if i.owner == owner and i.state == "receiving" and not i.is_expired(now)]

    # -- locking ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: str, *, steal: bool = True) -> AsyncIterator[_Holder]:
        """Hold the upload exclusively: one writer per upload, across tasks and processes (see
        ``_in_process`` for ``steal``). Across processes we wait up to ``lock_timeout`` and then
        answer 409 (``upload.locked``); tus clients retry on 409."""
        deadline = time.monotonic() + self.lock_timeout
        async with self._in_process(upload_id, steal, deadline) as mine:
            fd = os.open(self._lock_path(upload_id), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise _locked_out() from None
                        await asyncio.sleep(0.05)
                yield mine
            finally:
                os.close(fd)  # releases the flock

    @contextlib.contextmanager
    def try_lock(self, upload_id: str) -> Iterator[bool]:
        """Non-blocking flock for upkeep: True while held, False if someone else holds it."""
        fd = None if upload_id in self._holders else self._try_flock(upload_id)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                os.close(fd)

    def _try_flock(self, upload_id: str) -> int | None:
        try:
            fd = os.open(self._lock_path(upload_id), os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    # -- bytes ----------------------------------------------------------------------------------

    def open_data(self, info: UploadInfo) -> int:
        fd = os.open(self.data_path(info.id), os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(fd).st_size != info.offset:  # (a no-op truncate still dirties the inode)
            os.ftruncate(fd, info.offset)  # drop a tail that was written but never committed
        return fd

    @staticmethod
    def write_back(info: UploadInfo, fd: int, end: int) -> None:
        # fdatasync: the bytes and the file size (needed to read them back) reach the disk, the
        # mtime does not; nothing relies on it, and it saves a metadata write per PATCH.
        os.fdatasync(fd)

    def data_file(self, info: UploadInfo) -> Path:
        return self.data_path(info.id)

    def sweep_leftovers(self, known: set[str], grace_s: float) -> int:
        """Delete ``.part``/``.lock``/temp files of crashes that have no record, older than ``grace_s``."""
        cutoff = time.time() - grace_s
        n = 0
        for p in self.dir.iterdir():
            stem = p.name.split(".")[1] if p.name.startswith(".") else p.stem
            if stem in known or p.suffix == ".json":
                continue
            try:
                if p.stat().st_mtime < cutoff and self.get(stem) is None:
                    p.unlink()
                    n += 1
            except FileNotFoundError:
                pass
            except (ValueError, TypeError):
                # A record we cannot read (e.g. written by a newer version) exists: its files are not
                # leftovers. Raising here used to stop this sweep and the housekeeping after it.
                continue
        return n

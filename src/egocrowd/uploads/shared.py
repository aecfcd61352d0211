"""Uploads shared by several app servers on several hosts: a tus upload started on one resumes on
any other, and none of them keeps state the others need.

Where things live, and why:

- **The record** is a row of ``shared_uploads`` (PostgreSQL): the :class:`UploadInfo` as JSON plus
  the columns upkeep and the per-worker limits query (owner, state, expiry, offset).
- **The bytes** are plain objects in the object store, one per durable step of a PATCH (every
  checkpoint and the request's end): ``<id>/<start>-<end>-<nonce>``. S3 multipart uploads were
  considered and not taken: every part but the last must hold at least 5 MiB, but a phone on a
  flaky network often commits less before it drops, so small parts would have to be buffered
  somewhere durable anyway; and a multipart upload cannot be read before it is completed. Plain
  objects are durable the moment ``put`` returns, any size, readable at once; completion composes
  them into one local file (the hook then stores it as a blob, as with the local store). The
  nonce keeps a writer that lost its lock from overwriting a part someone else recorded.
- **The offset** a client is told is the row's ``offset``, and a part is listed in the row (in the
  same UPDATE that moves the offset) only after its ``put`` returned: after a SIGKILL mid-PATCH
  the offset never points past durable bytes; unlisted parts are swept with the upload.
- **The lock** is a PostgreSQL session advisory lock held on a connection of its own for the
  whole request: it works across processes and hosts, and a killed server's lock goes with its
  connection. Publishing an offset also checks that the row's offset is where the part starts, so
  a writer that lost its lock (a dropped database connection) cannot corrupt the upload. Within
  one process the "steal" of :class:`~egocrowd.uploads.store.UploadStore` is kept (a reconnecting
  phone interrupts its own stale request).
- **Completion** runs under that lock and re-reads the row first, so two servers racing to complete
  or recover one upload finish it once; the hook is idempotent by upload id besides.

A request's bytes are received into an unlinked local spool file (writes at their absolute
offsets, a sparse file), so the tus server's streaming path is the same for both stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from obstore.store import LocalStore
from sqlalchemy import Connection, Engine

from egocrowd.blobs import fsync_dir
from egocrowd.clock import utcnow
from egocrowd.db.engine import make_engine
from egocrowd.db.models import SharedUpload
from egocrowd.uploads.protocol import no_such_upload
from egocrowd.uploads.store import UploadInfo, _Holder, _InProcess, _locked_out

__all__ = ["SharedUploadStore"]

log = logging.getLogger(__name__)
_T: sa.Table = SharedUpload.__table__  # type: ignore[assignment]
_READ = 8 << 20  # bytes per read when putting a part


def _lock_key(upload_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"egocrowd:upload:{upload_id}".encode()).digest()[:8], "big", signed=True)


def _part_start(key: str) -> int:
    return int(key.rsplit("/", 1)[1].split("-")[0])


def _part_end(key: str) -> int:
    return int(key.rsplit("/", 1)[1].split("-")[1])


def _copy_all(src: int, dst: int, size: int) -> None:
    """``size`` bytes from ``src``'s start to ``dst``'s position, inside the kernel."""
    while size > 0:
        n = os.copy_file_range(src, dst, size)
        if n == 0:
            raise FileNotFoundError("a part file is shorter than its name says")
        size -= n


def _columns(info: UploadInfo) -> dict[str, Any]:
    return {
        "owner": info.owner,
        "state": info.state,
        "offset": info.offset,
        "expires_at": info.expires_at,
        "record": info.to_json(),
    }


class SharedUploadStore(_InProcess):
    """Upload records in the database, bytes in an object store (an obstore store), PostgreSQL
    advisory locks. ``spool_dir`` is local scratch space (request bodies, composed files)."""

    def __init__(
        self,
        engine: Engine,
        objects: Any,
        spool_dir: str | os.PathLike[str],
        *,
        ttl: timedelta = timedelta(hours=24),
        lock_timeout: float = 5.0,
        lock_engine: Engine | None = None,
    ) -> None:
        super().__init__(ttl=ttl, lock_timeout=lock_timeout)
        if engine.dialect.name != "postgresql":
            raise ValueError("shared uploads need PostgreSQL (its advisory locks work across hosts)")
        self.engine = engine
        self.objects = objects
        self.spool = Path(spool_dir)
        self.spool.mkdir(parents=True, exist_ok=True)
        # Locks hold a connection for a whole request: a pool of their own, so long uploads never
        # starve the app's pool (each upload being written holds one connection here).
        self._own_lock_engine = lock_engine is None
        self._lock_engine = lock_engine or make_engine(
            engine.url.render_as_string(hide_password=False), pool_size=4, max_overflow=252, pool_pre_ping=True
        )

    def close(self) -> None:
        """Close the lock connections this store opened (the records' engine is the caller's)."""
        if self._own_lock_engine:
            self._lock_engine.dispose()

    def __repr__(self) -> str:
        return f"SharedUploadStore({self.engine.url.render_as_string()!r})"

    def sibling(self, *, lock_timeout: float) -> SharedUploadStore:
        return SharedUploadStore(
            self.engine,
            self.objects,
            self.spool,
            ttl=self.ttl,
            lock_timeout=lock_timeout,
            lock_engine=self._lock_engine,
        )

    def writable(self) -> str:
        import obstore

        try:
            obstore.put(self.objects, "readiness-probe", b"ok")
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; its kind is the answer
            return f"upload parts are not writable: {type(exc).__name__}"
        return "ok"

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
        with self.engine.begin() as c:
            c.execute(_T.insert().values(id=info.id, parts=[], **_columns(info)))
        return info

    def get(self, upload_id: str) -> UploadInfo | None:
        if not self.valid_id(upload_id):
            return None
        with self.engine.connect() as c:
            record = c.scalar(sa.select(_T.c.record).where(_T.c.id == upload_id))
        return None if record is None else UploadInfo.from_json(record)

    def save(self, info: UploadInfo) -> None:
        with self.engine.begin() as c:
            c.execute(_T.update().where(_T.c.id == info.id).values(**_columns(info)))

    def stage(self, info: UploadInfo) -> UploadInfo:
        return info  # nothing to prepare: publishing is one UPDATE

    def publish(self, upload_id: str, staged: UploadInfo, durable: str | None = None) -> None:
        """Record ``staged`` (its new offset) and the part ``durable`` that brought it there, if the
        row's offset is still where that part starts (else we lost the lock: 409)."""
        with self.engine.begin() as c:
            row = c.execute(sa.select(_T.c.offset, _T.c.parts).where(_T.c.id == upload_id).with_for_update()).first()
            if row is None:
                raise no_such_upload()
            parts = list(row.parts)
            if durable is not None:
                if _part_start(durable) != row.offset:
                    raise _locked_out()
                parts.append(durable)
            c.execute(_T.update().where(_T.c.id == upload_id).values(parts=parts, **_columns(staged)))

    @staticmethod
    def discard(staged: UploadInfo) -> None:
        pass

    def delete(self, upload_id: str) -> None:
        """Forget an upload: the row first (it stops existing at once), then its bytes."""
        with self.engine.begin() as c:
            c.execute(_T.delete().where(_T.c.id == upload_id))
        self.drop_data(upload_id)

    def iter_infos(self) -> Iterator[UploadInfo]:
        with self.engine.connect() as c:
            rows = c.execute(sa.select(_T.c.id, _T.c.record).order_by(_T.c.id)).all()
        for upload_id, record in rows:
            try:
                yield UploadInfo.from_json(record)
            except (ValueError, TypeError) as err:
                log.error("unreadable upload record %s: %s", upload_id, err)

    def open_uploads(self, owner: str, now: datetime | None = None) -> list[UploadInfo]:
        q = sa.select(_T.c.record).where(
            _T.c.owner == owner, _T.c.state == "receiving", _T.c.expires_at > (now or utcnow())
        )
        with self.engine.connect() as c:
            return [UploadInfo.from_json(r) for r in c.scalars(q)]

    # -- bytes ----------------------------------------------------------------------------------

    def open_data(self, info: UploadInfo) -> int:
        fd, path = tempfile.mkstemp(dir=self.spool, prefix=f"{info.id}.", suffix=".body")
        os.unlink(path)  # gone when closed, also after a crash
        return fd

    def write_back(self, info: UploadInfo, fd: int, end: int) -> str | None:
        """Put bytes ``[info.offset, end)`` of the spool file as one part object; its key."""
        import obstore

        start = info.offset
        if end <= start:
            return None

        def chunks() -> Iterator[bytes]:
            at = start
            while at < end:
                data = os.pread(fd, min(_READ, end - at), at)
                if not data:
                    raise OSError(f"spool file of upload {info.id} ends at {at}, expected {end}")
                at += len(data)
                yield data

        key = f"{info.id}/{start:015d}-{end:015d}-{secrets.token_hex(4)}"
        if not isinstance(self.objects, LocalStore):
            obstore.put(self.objects, key, chunks())
            return key
        # A shared volume: the kernel copies, and the part is fsynced (obstore's put is not).
        part = Path(self.objects.prefix or "/") / key
        part.parent.mkdir(parents=True, exist_ok=True)
        tmp = part.with_name(f".{part.name}.tmp")
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            at = start
            while at < end:
                n = os.copy_file_range(fd, out, end - at, at)
                if n == 0:
                    raise OSError(f"spool file of upload {info.id} ends at {at}, expected {end}")
                at += n
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(tmp, part)
        fsync_dir(part.parent)
        return key

    def data_file(self, info: UploadInfo) -> Path:
        """The whole upload as a local file, composed from its parts (kept until ``drop_data``)."""
        import obstore

        path = self.spool / f"{info.id}.data"
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == info.length:
                return path
        with self.engine.connect() as c:
            parts = c.scalar(sa.select(_T.c.parts).where(_T.c.id == info.id))
        if parts is None:
            raise FileNotFoundError(f"upload {info.id} has no record")
        fd, tmp = tempfile.mkstemp(dir=self.spool, prefix=f"{info.id}.", suffix=".compose")
        try:
            with os.fdopen(fd, "wb") as f:
                for key in parts:
                    if _part_start(key) != f.tell():
                        raise FileNotFoundError(f"upload {info.id}: part {key} does not follow byte {f.tell()}")
                    if isinstance(self.objects, LocalStore):  # a volume: the kernel copies
                        with open(Path(self.objects.prefix or "/") / key, "rb") as part:
                            f.flush()
                            _copy_all(part.fileno(), f.fileno(), _part_end(key) - _part_start(key))
                            f.seek(0, os.SEEK_END)
                        continue
                    for chunk in obstore.get(self.objects, key).stream():
                        f.write(chunk)
                    if f.tell() != _part_end(key):
                        raise FileNotFoundError(f"upload {info.id}: part {key} is {f.tell()} bytes short")
                if f.tell() != info.length:
                    raise FileNotFoundError(f"upload {info.id}: parts hold {f.tell()} of {info.length} bytes")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def drop_data(self, upload_id: str) -> None:
        import obstore

        self._running.pop(upload_id, None)
        with contextlib.suppress(FileNotFoundError):
            (self.spool / f"{upload_id}.data").unlink()
        with self.engine.begin() as c:  # the row stops listing them first
            c.execute(_T.update().where(_T.c.id == upload_id).values(parts=[]))
        keys = [m["path"] for page in obstore.list(self.objects, f"{upload_id}/") for m in page]
        if keys:
            obstore.delete(self.objects, keys)

    def sweep_leftovers(self, known: set[str], grace_s: float) -> int:
        """Delete parts of uploads without a row, and stale local spool files, older than ``grace_s``."""
        import obstore

        cutoff = time.time() - grace_s
        n = 0
        for prefix in obstore.list_with_delimiter(self.objects)["common_prefixes"]:
            upload_id = prefix.rstrip("/")
            if upload_id in known or not self.valid_id(upload_id):
                continue
            metas = [m for page in obstore.list(self.objects, f"{upload_id}/") for m in page]
            if metas and max(m["last_modified"].timestamp() for m in metas) < cutoff and self.get(upload_id) is None:
                obstore.delete(self.objects, [m["path"] for m in metas])
                n += 1
        for p in self.spool.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if p.is_file() and p.name.split(".")[0] not in known and p.stat().st_mtime < cutoff:
                    p.unlink()
                    n += 1
        return n

    # -- locking --------------------------------------------------------------------------------

    def _try_advisory(self, upload_id: str) -> Connection | None:
        conn = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if conn.scalar(sa.select(sa.func.pg_try_advisory_lock(_lock_key(upload_id)))):
                return conn
        except BaseException:
            conn.close()
            raise
        conn.close()
        return None

    def _release(self, upload_id: str, conn: Connection) -> None:
        try:
            conn.execute(sa.select(sa.func.pg_advisory_unlock(_lock_key(upload_id))))
        except sa.exc.SQLAlchemyError:
            conn.invalidate()  # a dead connection: PostgreSQL dropped the lock with it
        finally:
            conn.close()

    @contextlib.asynccontextmanager
    async def locked(self, upload_id: str, *, steal: bool = True) -> AsyncIterator[_Holder]:
        """Hold the upload exclusively across processes and hosts; 409 ``upload.locked`` after
        ``lock_timeout`` (tus clients retry)."""
        deadline = time.monotonic() + self.lock_timeout
        async with self._in_process(upload_id, steal, deadline) as mine:
            while (conn := await asyncio.to_thread(self._try_advisory, upload_id)) is None:
                if time.monotonic() >= deadline:
                    raise _locked_out()
                await asyncio.sleep(0.05)
            try:
                yield mine
            finally:
                await asyncio.shield(asyncio.to_thread(self._release, upload_id, conn))

    @contextlib.contextmanager
    def try_lock(self, upload_id: str) -> Iterator[bool]:
        conn = None if upload_id in self._holders else self._try_advisory(upload_id)
        try:
            yield conn is not None
        finally:
            if conn is not None:
                self._release(upload_id, conn)

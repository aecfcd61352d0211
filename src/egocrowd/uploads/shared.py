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
- **On a volume** (file:// parts, a directory every server mounts) nothing is copied: a request's
  bytes are written at their absolute offsets straight into a file of the upload's folder
  (nameless until its first part is durable), and each part is a hard link of that file made
  after ``fdatasync``; its key still names its own bytes. The same process's next PATCH reopens
  the file while its last part is the row's last, so one file grows across PATCHes; when it holds
  every part, completion links it instead of composing. A process only writes into files it
  created, so a writer that lost its lock elsewhere cannot change bytes someone recorded.
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

Elsewhere a request's bytes are received into an unlinked local spool file (writes at their
absolute offsets, a sparse file), so the tus server's streaming path is the same for both stores.
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
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from obstore.store import LocalStore
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects.postgresql import JSONB

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


def _copy_all(src: int, dst: int, size: int, at: int = 0) -> None:
    """``size`` bytes from ``src``'s offset ``at`` to ``dst``'s position, inside the kernel."""
    while size > 0:
        n = os.copy_file_range(src, dst, size, at)
        if n == 0:
            raise FileNotFoundError("a part file is shorter than its name says")
        size -= n
        at += n


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
        # Parts on a volume every server mounts (file://) are files we write in place; see open_data.
        self._volume = Path(objects.prefix or "/") if isinstance(objects, LocalStore) else None
        # upload id -> the last part this process wrote (a name of the file it is growing)
        self._files: OrderedDict[str, str] = OrderedDict()
        # open_data's descriptors -> (a name of their file or None: nameless, whether it is a temp
        # name, to go once the file has a part's name)
        self._names: dict[int, tuple[str | None, bool]] = {}
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

    def _one(self) -> Connection:
        """A connection whose statements commit on their own. Every use here is one statement (the
        offset check included, see ``publish``), so it is one round trip instead of three (BEGIN,
        the statement, COMMIT or the ROLLBACK on return): they add up on every PATCH."""
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def create(
        self,
        *,
        length: int,
        owner: str,
        context: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> UploadInfo:
        info = UploadInfo.new(length=length, owner=owner, ttl=self.ttl, context=context, metadata=metadata)
        with self._one() as c:
            c.execute(_T.insert().values(id=info.id, parts=[], **_columns(info)))
        return info

    def get(self, upload_id: str) -> UploadInfo | None:
        if not self.valid_id(upload_id):
            return None
        with self._one() as c:
            record = c.scalar(sa.select(_T.c.record).where(_T.c.id == upload_id))
        return None if record is None else UploadInfo.from_json(record)

    def save(self, info: UploadInfo) -> None:
        with self._one() as c:
            c.execute(_T.update().where(_T.c.id == info.id).values(**_columns(info)))

    def stage(self, info: UploadInfo) -> UploadInfo:
        return info  # nothing to prepare: publishing is one UPDATE

    def publish(self, upload_id: str, staged: UploadInfo, durable: str | None = None) -> None:
        """Record ``staged`` (its new offset) and the part ``durable`` that brought it there, if the
        row's offset is still where that part starts (else we lost the lock: 409).

        One statement, one round trip: the offset check and the part's listing are the UPDATE's
        own WHERE and SET (the row lock it takes serialises it with any other writer's)."""
        update = _T.update().where(_T.c.id == upload_id)
        values = _columns(staged)
        if durable is not None:
            update = update.where(_T.c.offset == _part_start(durable))
            listed = sa.cast(_T.c.parts, JSONB).op("||")(sa.func.jsonb_build_array(sa.literal(durable, sa.Text)))
            values["parts"] = sa.cast(listed, sa.JSON)
        with self._one() as c:
            if c.execute(update.values(**values).returning(_T.c.id)).first() is not None:
                return
            # nothing updated: gone, or someone else moved the offset (one more read, on failure only)
            if c.scalar(sa.select(_T.c.id).where(_T.c.id == upload_id)) is None:
                raise no_such_upload()
        raise _locked_out()

    @staticmethod
    def discard(staged: UploadInfo) -> None:
        pass

    def delete(self, upload_id: str) -> None:
        """Forget an upload: the row first (it stops existing at once), then its bytes."""
        with self._one() as c:
            c.execute(_T.delete().where(_T.c.id == upload_id))
        self.drop_data(upload_id)

    def iter_infos(self) -> Iterator[UploadInfo]:
        with self._one() as c:
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
        with self._one() as c:
            return [UploadInfo.from_json(r) for r in c.scalars(q)]

    # -- bytes ----------------------------------------------------------------------------------

    def open_data(self, info: UploadInfo) -> int:
        """A file to write this request's bytes in, at their absolute offsets from ``info.offset``.

        On a volume (file:// parts) it is the part file itself: this process's file of the upload
        again when the last listed part is ours (one file grows across PATCHes), else a new one.
        Elsewhere an unlinked local spool file, put as an object by ``write_back``."""
        if self._volume is None:
            fd, path = tempfile.mkstemp(dir=self.spool, prefix=f"{info.id}.", suffix=".body")
            os.unlink(path)  # gone when closed, also after a crash
            return fd
        mine = self._files.get(info.id)
        if mine is not None and _part_end(mine) == info.offset:
            # Ours, and still the last part (offsets only grow, so no one listed one after it).
            # Only this process ever writes into a file it created, one request at a time.
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(self._volume / mine, os.O_RDWR)
                if os.fstat(fd).st_size != info.offset:
                    os.ftruncate(fd, info.offset)  # a tail never recorded
                self._names[fd] = (str(self._volume / mine), False)
                return fd
        folder = self._volume / info.id
        folder.mkdir(parents=True, exist_ok=True)
        try:  # nameless until its first part is durable: a crash before that leaves nothing
            fd = os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600)
            self._names[fd] = (None, False)
        except (OSError, AttributeError):  # no O_TMPFILE here (NFS, not Linux): a temp name
            fd, path = tempfile.mkstemp(dir=folder, prefix=".", suffix=".open")
            self._names[fd] = (path, True)
        return fd

    def write_back(self, info: UploadInfo, fd: int, end: int) -> str | None:
        """Make bytes ``[info.offset, end)`` durable as one part; its key."""
        import obstore

        start = info.offset
        if end <= start:
            return None
        key = f"{info.id}/{start:015d}-{end:015d}-{secrets.token_hex(4)}"
        if self._volume is not None:
            # A shared volume: the part is a name of the file the bytes were written to (at their
            # absolute offsets), given once they are on disk. No copy; the nonce keeps it ours.
            os.fdatasync(fd)
            part = self._volume / key
            name, temp = self._names.get(fd, (None, False))
            folder = os.open(part.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                # with a dir fd, os.link is linkat(AT_SYMLINK_FOLLOW): /proc/self/fd/N is the file
                os.link(name or f"/proc/self/fd/{fd}", part.name, dst_dir_fd=folder)
                os.fsync(folder)
            finally:
                os.close(folder)
            self._names[fd] = (str(part), False)
            if temp and name is not None:  # named as a part now: the temp name goes
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name)
            self._files[info.id] = key
            self._files.move_to_end(info.id)
            while len(self._files) > self._RUNNING_MAX:
                self._files.popitem(last=False)
            return key

        def chunks() -> Iterator[bytes]:
            at = start
            while at < end:
                data = os.pread(fd, min(_READ, end - at), at)
                if not data:
                    raise OSError(f"spool file of upload {info.id} ends at {at}, expected {end}")
                at += len(data)
                yield data

        obstore.put(self.objects, key, chunks())
        return key

    def data_file(self, info: UploadInfo) -> Path:
        """The whole upload as a local file, composed from its parts (kept until ``drop_data``).

        On a volume where one file holds every part (one process received it all) that file is
        linked here: nothing is copied, and its bytes are already on disk."""
        path = self.spool / f"{info.id}.data"
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == info.length:
                return path
        with self._one() as c:
            parts = c.scalar(sa.select(_T.c.parts).where(_T.c.id == info.id))
        if parts is None:
            raise FileNotFoundError(f"upload {info.id} has no record")
        if self._volume is not None and self._link_whole(info, parts, path):
            return path
        fd, tmp = tempfile.mkstemp(dir=self.spool, prefix=f"{info.id}.", suffix=".compose")
        try:
            with os.fdopen(fd, "wb") as f:
                for key in parts:
                    start, end = _part_start(key), _part_end(key)
                    if start != f.tell():
                        raise FileNotFoundError(f"upload {info.id}: part {key} does not follow byte {f.tell()}")
                    self._copy_part(key, start, end, f)
                    if f.tell() != end:
                        raise FileNotFoundError(f"upload {info.id}: part {key} is {f.tell() - start} bytes short")
                if f.tell() != info.length:
                    raise FileNotFoundError(f"upload {info.id}: parts hold {f.tell()} of {info.length} bytes")
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path

    def _link_whole(self, info: UploadInfo, parts: list[str], path: Path) -> bool:
        """Link the one file holding every listed part as ``path``; False if there is no such file."""
        assert self._volume is not None
        try:
            stats = [os.stat(self._volume / key) for key in parts]
        except FileNotFoundError:
            return False  # the copy below says which part is missing
        ends = [0] + [_part_end(k) for k in parts]
        if (
            not stats
            or len({(st.st_dev, st.st_ino) for st in stats}) != 1
            or [_part_start(k) for k in parts] != ends[:-1]
            or ends[-1] != info.length
            or stats[0].st_size != info.length
        ):
            return False
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.link")
        try:
            os.link(self._volume / parts[0], tmp)
        except OSError:
            return False  # the spool is on another filesystem (EXDEV) or links are refused: copy
        os.replace(tmp, path)
        return True

    def _copy_part(self, key: str, start: int, end: int, f: Any) -> None:
        """Append part ``key``'s bytes ``[start, end)`` to the open file ``f``."""
        import obstore

        if self._volume is None:
            for chunk in obstore.get(self.objects, key).stream():
                f.write(chunk)
            return
        with open(self._volume / key, "rb") as part:
            # This version writes a part's bytes at their absolute offsets in a file that may hold
            # other parts; the one before wrote each part as a file of its own bytes alone.
            at = 0 if start > 0 and os.fstat(part.fileno()).st_size == end - start else start
            f.flush()
            _copy_all(part.fileno(), f.fileno(), end - start, at)
            f.seek(0, os.SEEK_END)

    def drop_data(self, upload_id: str) -> None:
        import obstore

        self._running.pop(upload_id, None)
        self._files.pop(upload_id, None)
        with contextlib.suppress(FileNotFoundError):
            (self.spool / f"{upload_id}.data").unlink()
        with self._one() as c:  # the row stops listing them first
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

"""The shared upload store on real PostgreSQL and a real S3 server (moto): records in a table,
bytes as part objects, advisory locks that hold across processes, offsets that stay consistent
when a writer is SIGKILLed between putting a part and recording it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import obstore
import pytest
import sqlalchemy as sa

from egocrowd.blobs import BlobStore, S3BlobStore
from egocrowd.errors import Conflict
from egocrowd.uploads.shared import SharedUploadStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def parts_url(s3) -> str:
    return f"s3://{s3.new_bucket()}/blobs"


def _store(url: str, s3, parts_url: str, spool: Path, lock_timeout: float = 0.5) -> SharedUploadStore:
    blobs = S3BlobStore(parts_url, cache_dir=spool / "cache", endpoint_url=s3.endpoint, region=s3.region)
    return SharedUploadStore(sa.create_engine(url), blobs.objects("uploads"), spool, lock_timeout=lock_timeout)


@pytest.fixture
def stores(pg_schema_url, s3, parts_url, tmp_path):
    """Makes stores (a server each, with its own spool directory); closes them after the test."""
    made: list[SharedUploadStore] = []

    def make(name: str) -> SharedUploadStore:
        made.append(_store(pg_schema_url, s3, parts_url, tmp_path / name))
        return made[-1]

    yield make
    for s in made:
        s.close()
        s.engine.dispose()


@pytest.fixture
def store(stores) -> SharedUploadStore:
    return stores("one")


def _append(store: SharedUploadStore, upload_id: str, data: bytes) -> None:
    """What the tus server does for one PATCH body: spool, make durable, then record."""
    info = store.get(upload_id)
    assert info is not None
    fd = store.open_data(info)
    try:
        os.pwrite(fd, data, info.offset)
        new = store.stage(info)
        end = info.offset + len(data)
        part = store.write_back(info, fd, end)
        new.offset = end
        store.publish(upload_id, new, part)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _child(code: str, *args: str) -> Iterator[subprocess.Popen]:
    """Another process with a store of its own (another server, as far as locks go)."""
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            yield proc
        finally:
            proc.kill()
            proc.wait()


CHILD_STORE = """
    import os, sys, sqlalchemy as sa
    from pathlib import Path
    from egocrowd.blobs import S3BlobStore
    from egocrowd.uploads.shared import SharedUploadStore
    url, parts_url, endpoint, spool, upload_id = sys.argv[1:6]
    blobs = S3BlobStore(parts_url, cache_dir=Path(spool) / "cache", endpoint_url=endpoint, region="us-east-1")
    store = SharedUploadStore(sa.create_engine(url), blobs.objects("uploads"), spool)
"""


def test_bytes_go_to_part_objects_and_compose_in_order(store, tmp_path):
    data = os.urandom(300_000)
    info = store.create(length=len(data), owner="carol", context={"assignment": "A1"})
    for start, end in ((0, 1000), (1000, 250_000), (250_000, len(data))):
        _append(store, info.id, data[start:end])
    info = store.get(info.id)
    assert info.offset == len(data) and info.state == "completing"
    assert store.open_uploads("carol") == []  # complete: no longer receiving
    path = store.data_file(info)
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert len([m for page in obstore.list(store.objects, f"{info.id}/") for m in page]) == 3
    store.drop_data(info.id)
    assert list(obstore.list(store.objects, f"{info.id}/").collect()) == []
    store.delete(info.id)
    assert store.get(info.id) is None


def test_another_server_resumes_where_the_first_left_off(stores, store):
    other = stores("two")  # its own spool directory
    data = os.urandom(10_000)
    info = store.create(length=len(data), owner="bob")
    _append(store, info.id, data[:4000])
    assert [u.id for u in other.open_uploads("bob")] == [info.id]
    _append(other, info.id, data[4000:])
    assert other.data_file(other.get(info.id)).read_bytes() == data


def test_a_lock_held_by_another_process_is_409_until_it_lets_go(store, pg_schema_url, s3, parts_url, tmp_path):
    info = store.create(length=10, owner="alice")
    with _child(
        CHILD_STORE
        + """
    import asyncio
    async def main():
        async with store.locked(upload_id):
            print("held", flush=True)
            await asyncio.sleep(3)
    asyncio.run(main())
    """,
        pg_schema_url,
        parts_url,
        s3.endpoint,
        str(tmp_path / "child"),
        info.id,
    ) as holder:
        assert holder.stdout.readline().strip() == "held"

        async def take() -> None:
            async with store.locked(info.id):
                pass

        with pytest.raises(Conflict) as err:
            asyncio.run(take())
        assert err.value.code == "upload.locked"
        with store.try_lock(info.id) as mine:
            assert not mine  # upkeep skips it too
        holder.wait(30)
        asyncio.run(take())  # released when the holder ended


def test_a_killed_lock_holder_releases_the_lock(store, pg_schema_url, s3, parts_url, tmp_path):
    info = store.create(length=10, owner="alice")
    with _child(
        CHILD_STORE
        + """
    import asyncio, time
    async def main():
        async with store.locked(upload_id):
            print("held", flush=True)
            time.sleep(60)
    asyncio.run(main())
    """,
        pg_schema_url,
        parts_url,
        s3.endpoint,
        str(tmp_path / "child"),
        info.id,
    ) as holder:
        assert holder.stdout.readline().strip() == "held"
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    store.lock_timeout = 5.0  # PostgreSQL notices the dead connection and drops its locks

    async def take() -> None:
        async with store.locked(info.id):
            pass

    asyncio.run(take())


def test_sigkill_between_putting_a_part_and_recording_it_keeps_a_consistent_offset(
    store, pg_schema_url, s3, parts_url, tmp_path
):
    data = os.urandom(50_000)
    info = store.create(length=len(data), owner="alice")
    _append(store, info.id, data[:20_000])
    with _child(
        CHILD_STORE
        + """
    import os, signal
    info = store.get(upload_id)
    fd = store.open_data(info)
    os.pwrite(fd, os.urandom(10_000), info.offset)  # bytes the client will send again differently
    store.write_back(info, fd, info.offset + 10_000)  # durable as a part ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... but never recorded
    """,
        pg_schema_url,
        parts_url,
        s3.endpoint,
        str(tmp_path / "child"),
        info.id,
    ) as writer:
        assert writer.wait(60) == -signal.SIGKILL
    keys = [m["path"] for page in obstore.list(store.objects, f"{info.id}/") for m in page]
    assert len(keys) == 2  # the orphan part is there
    after = store.get(info.id)
    assert after.offset == 20_000  # the client is told to resume from the last recorded byte
    _append(store, info.id, data[20_000:])
    assert store.data_file(store.get(info.id)).read_bytes() == data  # the orphan is not part of it


def test_a_writer_that_lost_its_lock_cannot_record_over_another(store):
    data = os.urandom(2000)
    info = store.create(length=len(data), owner="alice")
    stale = store.get(info.id)
    _append(store, info.id, data[:1000])  # someone else moved the offset meanwhile
    fd = store.open_data(stale)
    try:
        os.pwrite(fd, b"x" * 500, 0)
        part = store.write_back(stale, fd, 500)
        stale.offset = 500
        with pytest.raises(Conflict):
            store.publish(info.id, stale, part)
    finally:
        os.close(fd)
    assert store.get(info.id).offset == 1000


def test_upkeep_sweeps_parts_of_uploads_without_a_record(store):
    from egocrowd.uploads import expire_uploads

    obstore.put(store.objects, "0123456789abcdef0123456789abcdef/000000000000000-000000000000003-aa", b"abc")
    kept = store.create(length=3, owner="alice")
    _append(store, kept.id, b"ab")
    expire_uploads(store, orphan_grace_s=0)
    ids = {p.rstrip("/") for p in obstore.list_with_delimiter(store.objects)["common_prefixes"]}
    assert ids == {kept.id}


def test_parts_can_live_on_a_shared_volume(pg_schema_url, tmp_path):
    """file:// blobs (a volume every server mounts): parts are files under the blob root, outside
    the blob fan-out folders, and compose like objects do."""
    blobs = BlobStore(tmp_path / "volume")
    engine = sa.create_engine(pg_schema_url)
    store = SharedUploadStore(engine, blobs.objects("uploads"), tmp_path / "spool")
    try:
        data = os.urandom(5000)
        info = store.create(length=len(data), owner="dave")
        _append(store, info.id, data[:3000])
        _append(store, info.id, data[3000:])
        assert len(list((tmp_path / "volume" / "uploads" / info.id).iterdir())) == 2
        assert list(blobs.iter_blobs()) == []  # parts are never taken for blobs
        assert store.data_file(store.get(info.id)).read_bytes() == data
    finally:
        store.close()
        engine.dispose()


def test_two_servers_racing_to_recover_an_upload_finish_it_once(stores):
    from egocrowd.uploads import recover_completed

    one, two = stores("one"), stores("two")
    one.lock_timeout = two.lock_timeout = 10.0
    data = os.urandom(4000)
    info = one.create(length=len(data), owner="erin")
    _append(one, info.id, data)  # all bytes here, completion never ran (the server died)
    calls: list[tuple[str, bytes]] = []
    gate = threading.Barrier(2)

    def on_complete(info, path):
        calls.append((info.id, Path(path).read_bytes()))
        time.sleep(0.5)  # both servers are in recovery at once
        return {"Egocrowd-Clip-Id": "1"}

    def recover(store: SharedUploadStore) -> list[str]:
        gate.wait()
        return asyncio.run(recover_completed(store, on_complete))

    with ThreadPoolExecutor(2) as pool:
        done = [f.result() for f in [pool.submit(recover, s) for s in (one, two)]]
    assert sorted(done) == [[], [info.id]]
    assert calls == [(info.id, data)]  # the hook ran once, with every byte
    assert one.get(info.id).state == two.get(info.id).state == "finished"


def test_expiry_deletes_the_row_and_its_parts(store):
    from datetime import timedelta

    from egocrowd.clock import utcnow
    from egocrowd.uploads import expire_uploads

    info = store.create(length=100, owner="frank")
    _append(store, info.id, b"x" * 40)
    stale = store.get(info.id)
    stale.expires_at = utcnow() - timedelta(seconds=1)
    store.save(stale)
    assert info.id in expire_uploads(store)
    assert store.get(info.id) is None
    assert list(obstore.list(store.objects, f"{info.id}/").collect()) == []

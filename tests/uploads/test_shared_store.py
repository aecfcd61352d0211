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


# -- parts on a volume: written in place, linked as parts, linked again at completion -----------------


@pytest.fixture
def volume(pg_schema_url, tmp_path):
    """Makes stores whose parts live on one file:// volume (a server each, own spool directory)."""
    blobs = BlobStore(tmp_path / "volume")
    made: list[SharedUploadStore] = []

    def make(name: str) -> SharedUploadStore:
        made.append(SharedUploadStore(sa.create_engine(pg_schema_url), blobs.objects("uploads"), tmp_path / name))
        return made[-1]

    yield make
    for s in made:
        s.close()
        s.engine.dispose()


def _part_files(store: SharedUploadStore, upload_id: str) -> list[Path]:
    return sorted((Path(store.objects.prefix) / upload_id).iterdir())


def test_on_a_volume_one_server_grows_one_file_and_completion_links_it(volume):
    store = volume("one")
    data = os.urandom(200_000)
    info = store.create(length=len(data), owner="gina")
    for start, end in ((0, 70_000), (70_000, 150_000), (150_000, len(data))):
        _append(store, info.id, data[start:end])
    parts = _part_files(store, info.id)
    assert len(parts) == 3 and len({p.stat().st_ino for p in parts}) == 1  # three names, one file
    path = store.data_file(store.get(info.id))
    assert path.read_bytes() == data
    assert path.stat().st_ino == parts[0].stat().st_ino  # linked, not copied
    store.drop_data(info.id)
    assert list(obstore.list(store.objects, f"{info.id}/").collect()) == []


def test_on_a_volume_a_resuming_server_writes_a_file_of_its_own(volume):
    one, two = volume("one"), volume("two")
    data = os.urandom(30_000)
    info = one.create(length=len(data), owner="hal")
    _append(one, info.id, data[:10_000])
    _append(two, info.id, data[10_000:20_000])  # another server: never writes into one's file
    _append(one, info.id, data[20_000:])  # one's file no longer ends at the offset: a new one
    parts = _part_files(one, info.id)
    assert len(parts) == 3 and len({p.stat().st_ino for p in parts}) == 3
    path = one.data_file(one.get(info.id))
    assert path.read_bytes() == data  # composed from bytes at their offsets in three files
    assert path.stat().st_ino not in {p.stat().st_ino for p in parts}


def test_on_a_volume_a_tail_never_recorded_is_cut_before_the_next_write(volume):
    store = volume("one")
    data = os.urandom(9000)
    info = store.create(length=len(data), owner="ida")
    _append(store, info.id, data[:3000])
    fd = store.open_data(store.get(info.id))
    try:
        os.pwrite(fd, b"z" * 5000, 3000)  # received, then the connection dropped: never committed
    finally:
        os.close(fd)
    _append(store, info.id, data[3000:4000])  # shorter than the tail it replaces
    assert [p.stat().st_size for p in _part_files(store, info.id)] == [4000, 4000]  # one file, no tail
    _append(store, info.id, data[4000:])
    assert store.data_file(store.get(info.id)).read_bytes() == data


def test_on_a_volume_parts_of_the_version_before_still_compose(volume):
    """Parts written before this version hold their own bytes alone (from their file's start)."""
    store = volume("one")
    data = os.urandom(6000)
    info = store.create(length=len(data), owner="jo")
    for start, end in ((0, 2500), (2500, 6000)):
        key = f"{info.id}/{start:015d}-{end:015d}-0000000{start % 7}"
        obstore.put(store.objects, key, data[start:end])
        new = store.get(info.id)
        new.offset = end
        store.publish(info.id, new, key)
    assert store.data_file(store.get(info.id)).read_bytes() == data


CHILD_VOLUME_STORE = """
    import os, sys, signal, sqlalchemy as sa
    from egocrowd.blobs import BlobStore
    from egocrowd.uploads.shared import SharedUploadStore
    url, volume, spool, upload_id, step = sys.argv[1:6]
    store = SharedUploadStore(sa.create_engine(url), BlobStore(volume).objects("uploads"), spool)
    info = store.get(upload_id)
    fd = store.open_data(info)
    os.pwrite(fd, os.urandom(10_000), info.offset)  # bytes the client will send again differently
    if step == "linked":
        store.write_back(info, fd, info.offset + 10_000)  # durable as a part, never recorded
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("step", ["written", "linked"])
def test_on_a_volume_sigkill_before_recording_a_part_keeps_a_consistent_offset(volume, pg_schema_url, tmp_path, step):
    store = volume("one")
    data = os.urandom(50_000)
    info = store.create(length=len(data), owner="kim")
    _append(store, info.id, data[:20_000])
    args = (pg_schema_url, str(tmp_path / "volume"), str(tmp_path / "child"), info.id, step)
    with _child(CHILD_VOLUME_STORE, *args) as writer:
        assert writer.wait(60) == -signal.SIGKILL
    # written only: the file had no name yet, nothing is left; linked: an unlisted part is
    assert len(_part_files(store, info.id)) == (2 if step == "linked" else 1)
    assert store.get(info.id).offset == 20_000
    _append(store, info.id, data[20_000:])
    assert store.data_file(store.get(info.id)).read_bytes() == data
    store.drop_data(info.id)
    assert list(obstore.list(store.objects, f"{info.id}/").collect()) == []


def test_on_a_volume_without_nameless_files_the_temp_name_goes_with_the_first_part(volume, monkeypatch):
    """Where O_TMPFILE is missing (NFS answers EOPNOTSUPP; here: no such flag) the file starts
    under a temp name, replaced by the part's name once that is durable."""
    monkeypatch.delattr(os, "O_TMPFILE")
    store = volume("one")
    data = os.urandom(8000)
    info = store.create(length=len(data), owner="lou")
    fd = store.open_data(info)
    try:
        assert [p.name.endswith(".open") for p in _part_files(store, info.id)] == [True]
    finally:
        os.close(fd)
    _append(store, info.id, data[:5000])  # the first temp file was never committed: a new one
    _append(store, info.id, data[5000:])
    names = [p.name for p in _part_files(store, info.id)]
    assert sum(n.endswith(".open") for n in names) == 1  # the abandoned one, swept with the upload
    assert store.data_file(store.get(info.id)).read_bytes() == data
    store.drop_data(info.id)
    assert not (Path(store.objects.prefix) / info.id).exists() or not list(_part_files(store, info.id))

"""One suite, every blob-store backend: a local directory and a real S3-compatible HTTP server
(moto's, started by the tests)."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta

import httpx
import pytest

from egocrowd.blobs import Blobs, BlobStore, S3BlobStore, open_blob_store
from egocrowd.errors import InvalidInput, NotFound


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path) -> Blobs:
    if request.param == "file":
        return open_blob_store((tmp_path / "blobs").as_uri())
    s3 = request.getfixturevalue("s3")
    return open_blob_store(
        f"s3://{s3.new_bucket()}/some/prefix",
        cache_dir=tmp_path / "cache",
        endpoint_url=s3.endpoint,
        region=s3.region,
    )


def _file(tmp_path, data: bytes, name: str = "src.bin"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_the_url_picks_the_backend(tmp_path, s3):
    assert type(open_blob_store((tmp_path / "a").as_uri())) is BlobStore
    assert type(open_blob_store(tmp_path / "b")) is BlobStore
    s = open_blob_store(f"s3://{s3.new_bucket()}/p", cache_dir=tmp_path / "c", endpoint_url=s3.endpoint)
    assert type(s) is S3BlobStore
    again = open_blob_store(**s.spec())  # what a stage in another process opens
    ref = s.put_bytes(b"shared")
    assert again.read_range(ref.sha256, 0, 6) == b"shared"
    for bad in ("gs://bucket/x", "ftp://host/x"):
        with pytest.raises(InvalidInput) as exc:
            open_blob_store(bad, cache_dir=tmp_path)
        assert exc.value.code == "blobs.unsupported_url"


def test_round_trip_and_dedup(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)  # several copy buffers
    digest = hashlib.sha256(data).hexdigest()
    ref = store.put_file(_file(tmp_path, data))
    assert (ref.sha256, ref.size, ref.existed) == (digest, len(data), False)
    assert store.exists(digest) and store.size(digest) == len(data)
    with store.open(digest) as f:
        assert f.read(10) == data[:10]
        assert f.read() == data[10:]
    again = store.put_bytes(data)
    assert (again.sha256, again.existed) == (digest, True)
    assert [r.sha256 for r in store.iter_blobs()] == [digest]
    u = store.usage()
    assert (u.count, u.bytes) == (1, len(data))


def test_a_big_stream_goes_up_in_parts(store, tmp_path):
    """Above the multipart threshold (8 MiB) the S3 backend uploads in parts; the bytes come back whole."""
    data = os.urandom(17 * 1024 * 1024)
    with open(_file(tmp_path, data), "rb") as f:
        ref = store.put_stream(f, sha256=hashlib.sha256(data).hexdigest())
    assert store.size(ref.sha256) == len(data)
    assert hashlib.sha256(store.local_path(ref.sha256).read_bytes()).hexdigest() == ref.sha256
    assert list(store.scratch_dir.iterdir()) == []  # the spooled copy is gone


def test_a_hash_mismatch_is_refused(store, tmp_path):
    src = _file(tmp_path, b"payload")
    with pytest.raises(InvalidInput) as exc:
        store.put_file(src, sha256="0" * 64)
    assert exc.value.code == "blobs.hash_mismatch"
    with open(src, "rb") as f, pytest.raises(InvalidInput) as exc:
        store.put_stream(f, sha256="0" * 64)
    assert exc.value.code == "blobs.hash_mismatch"
    assert not store.exists("0" * 64)
    assert list(store.iter_blobs()) == []
    assert list(store.scratch_dir.iterdir()) == []
    with pytest.raises(InvalidInput) as bad:
        store.exists("../etc/passwd")
    assert bad.value.code == "blobs.bad_hash"


def test_ranged_reads(store):
    data = bytes(range(256)) * 4096  # 1 MiB
    sha = store.put_bytes(data).sha256
    assert store.read_range(sha, 0, 1) == data[:1]
    assert store.read_range(sha, 1000, 5000) == data[1000:5000]
    assert store.read_range(sha, len(data) - 3, len(data)) == data[-3:]
    pieces = list(store.iter_range(sha, 10, len(data), chunk=64 * 1024))
    assert b"".join(pieces) == data[10:]
    with store.open(sha) as f:  # a seekable file too (the zip writers and the exporters read it so)
        f.seek(500_000)
        assert f.read(4) == data[500_000:500_004]


def test_delete_and_missing(store):
    sha = store.put_bytes(b"bye").sha256
    assert store.delete(sha) is True
    assert store.delete(sha) is False
    assert not store.exists(sha)
    for read in (store.size, store.mtime, store.open, store.local_path):
        with pytest.raises(NotFound) as exc:
            read(sha)
        assert exc.value.code == "blob.not_found"
    assert list(store.iter_blobs()) == []


def test_iteration_lists_every_blob_with_its_time(store):
    before = time.time() - 5
    shas = {store.put_bytes(f"blob {i}".encode()).sha256 for i in range(7)}
    refs = list(store.iter_blobs())
    assert {r.sha256 for r in refs} == shas
    assert all(r.modified is not None and before <= r.modified <= time.time() + 5 for r in refs)
    assert all(abs(store.mtime(r.sha256) - r.modified) < 2 for r in refs)


def test_touch_makes_a_blob_young_again(store):
    sha = store.put_bytes(b"old").sha256
    first = store.mtime(sha)
    time.sleep(1.1)  # S3 keeps whole seconds
    store.touch(sha)
    assert store.mtime(sha) >= first + 1
    assert [r.modified for r in store.iter_blobs()][0] >= first + 1
    assert store.delete(sha) and list(store.iter_blobs()) == []  # the S3 marker goes with it


def test_touching_a_missing_blob_leaves_nothing_behind(store):
    gone = "ab" * 32
    store.touch(gone)
    assert not store.exists(gone) and list(store.iter_blobs()) == []
    listing = getattr(store, "_store", None)
    if listing is not None:  # S3: no marker object either
        import obstore

        assert [m["path"] for page in obstore.list(listing) for m in page] == []


def test_orphan_sweep_by_age(store, db):
    """Unreferenced blobs go once older than the grace; a touch (a dedup hit about to be referenced)
    makes one young again. S3 keeps whole seconds, hence the 2 s steps."""
    from egocrowd.clips import sweep_orphan_blobs

    old = store.put_bytes(b"nobody references me").sha256
    touched = store.put_bytes(b"nor me, but I am about to be").sha256
    time.sleep(2.1)
    young = store.put_bytes(b"nor me, but I am new").sha256
    store.touch(touched)
    now = store.mtime(young) + 0.5
    assert sweep_orphan_blobs(db, store, grace=timedelta(seconds=1.5), now=now) == [old]
    assert not store.exists(old) and store.exists(touched) and store.exists(young)
    assert sorted(sweep_orphan_blobs(db, store, grace=timedelta(seconds=1.5), now=now + 10)) == sorted([touched, young])
    assert list(store.iter_blobs()) == []


def test_local_path_is_the_blob(store, tmp_path):
    data = os.urandom(200_000)
    sha = store.put_bytes(data).sha256
    p = store.local_path(sha)
    assert p.read_bytes() == data
    assert store.local_path(sha) == p


def test_the_s3_cache_downloads_once_and_refetches_a_damaged_copy(s3, tmp_path):
    store = open_blob_store(
        f"s3://{s3.new_bucket()}/c", cache_dir=tmp_path / "cache", endpoint_url=s3.endpoint, region=s3.region
    )
    data = os.urandom(300_000)
    sha = store.put_bytes(data).sha256
    p = store.local_path(sha)
    assert p.is_relative_to(tmp_path / "cache") and p.read_bytes() == data
    # a second use is served from the cache: it still works with the object gone from the bucket
    twin = open_blob_store(**store.spec())
    assert twin.read_range(sha, 0, 3) == data[:3]
    other = store.put_bytes(b"keeps the bucket non-empty").sha256
    import obstore

    obstore.delete(store._store, store._key(sha))
    assert not store.exists(sha)
    assert store.local_path(sha) == p and p.read_bytes() == data
    # a damaged copy is not trusted: re-fetched (here the object is gone, so: not found)
    os.chmod(p, 0o644)
    p.write_bytes(b"x" * len(data))
    with pytest.raises(NotFound):
        store.local_path(sha)
    assert not p.exists()
    # ...and with the object back, the damaged copy is replaced by the real bytes
    store.put_bytes(data)
    os.makedirs(p.parent, exist_ok=True)
    p.write_bytes(b"y" * len(data))
    assert store.local_path(sha).read_bytes() == data
    assert store.local_path(other).read_bytes() == b"keeps the bucket non-empty"
    assert list(store.scratch_dir.iterdir()) == []


def test_the_s3_cache_stays_bounded(s3, tmp_path):
    store = open_blob_store(
        f"s3://{s3.new_bucket()}/c",
        cache_dir=tmp_path / "cache",
        cache_bytes=250_000,
        endpoint_url=s3.endpoint,
        region=s3.region,
    )
    shas = [store.put_bytes(os.urandom(100_000)).sha256 for _ in range(4)]
    paths = [store.local_path(s) for s in shas[:2]]
    for p in paths:  # used long ago: may go
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    store.local_path(shas[2])
    store.local_path(shas[3])
    left = sorted(p.name for p in (tmp_path / "cache").glob("??/??/*"))
    assert left == sorted(shas[2:]) or len(left) * 100_000 <= 250_000
    assert shas[3] in left


def test_signed_urls(store):
    data = b"for a buyer"
    sha = store.put_bytes(data).sha256
    url = store.signed_url(sha, expires=timedelta(seconds=60))
    if isinstance(store, BlobStore):
        assert url is None  # the app serves local bytes itself, through its own signed link
        return
    assert url is not None and "X-Amz-Signature" in url
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == data
    r = httpx.get(url, headers={"Range": "bytes=4-5"})
    assert r.status_code == 206 and r.content == data[4:6]
    tampered = url.replace(sha, hashlib.sha256(b"other").hexdigest())
    assert httpx.get(tampered).status_code in (403, 404)


def test_readiness(store):
    assert store.writable() == "ok"


def test_range_headers_as_the_object_store_response_reads_them():
    from egocrowd.web.blob_response import parse_range

    size = 1000
    assert parse_range(None, size) is None
    assert parse_range("bytes=0-99", size) == (0, 100)
    assert parse_range("bytes=900-", size) == (900, 1000)
    assert parse_range("bytes=990-5000", size) == (990, 1000)  # clipped to the end
    assert parse_range("bytes=-10", size) == (990, 1000)
    assert parse_range("bytes=-5000", size) == (0, 1000)
    assert parse_range("bytes=0-1,5-9", size) is None  # several ranges: the whole file, 200
    assert parse_range("items=0-1", size) is None
    for unsatisfiable in ("bytes=1000-", "bytes=2000-3000", "bytes=-0", "bytes=5-4"):
        assert parse_range(unsatisfiable, size) is False, unsatisfiable

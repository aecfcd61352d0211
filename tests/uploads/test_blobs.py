"""The content-addressed blob store."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egocrowd.blobs import BlobStore, sha256_file
from egocrowd.errors import InvalidInput, NotFound


def test_put_file_hashes_and_places_by_content(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    src = tmp_path / "a.bin"
    data = os.urandom(3 * 1024 * 1024 + 7)  # spans several copy buffers
    src.write_bytes(data)
    ref = store.put_file(src)
    digest = hashlib.sha256(data).hexdigest()
    assert (ref.sha256, ref.size, ref.existed) == (digest, len(data), False)
    assert store.path(digest) == tmp_path / "blobs" / digest[:2] / digest[2:4] / digest
    assert store.exists(digest) and store.size(digest) == len(data)
    with store.open(digest) as f:
        assert f.read() == data
    assert src.exists()  # copied, not consumed
    assert sha256_file(store.path(digest)) == (digest, len(data))


def test_identical_content_is_stored_once(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    first, second = store.put_file(a), store.put_file(b)
    assert first.sha256 == second.sha256
    assert (first.existed, second.existed) == (False, True)
    assert [r.sha256 for r in store.iter_blobs()] == [first.sha256]
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_move_consumes_the_source(tmp_path):
    store = BlobStore(f"file://{tmp_path / 'blobs'}")
    src = tmp_path / "upload.part"
    src.write_bytes(b"moved")
    ref = store.put_file(src, move=True)
    assert not src.exists()
    assert store.path(ref.sha256).read_bytes() == b"moved"
    dup = tmp_path / "again.part"
    dup.write_bytes(b"moved")
    assert store.put_file(dup, move=True).existed and not dup.exists()


def test_expected_hash_is_verified_not_trusted(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    src = tmp_path / "a"
    src.write_bytes(b"payload")
    good = hashlib.sha256(b"payload").hexdigest()
    assert store.put_file(src, sha256=good).sha256 == good
    with pytest.raises(InvalidInput) as exc:
        store.put_file(src, sha256="0" * 64)
    assert exc.value.code == "blobs.hash_mismatch"
    assert not store.exists("0" * 64)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_a_failed_write_leaves_no_blob(tmp_path):
    """A writer dying mid-copy leaves at most a temp file, never a blob under a valid name."""

    class Exploding(io.RawIOBase):
        def __init__(self):
            self.sent = 0

        def readable(self):
            return True

        def readinto(self, b):
            if self.sent > 2 * 1024 * 1024:
                raise OSError("disk vanished")
            b[:] = b"\x01" * len(b)
            self.sent += len(b)
            return len(b)

    store = BlobStore(tmp_path / "blobs")
    with pytest.raises(OSError):
        store.put_stream(Exploding())
    assert list(store.iter_blobs()) == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    # and leftovers a SIGKILL would leave are swept at startup
    (tmp_path / "blobs" / "tmp" / "put-dead").write_bytes(b"half")
    assert store.clean_tmp() == 1


def test_delete_and_missing(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    ref = store.put_bytes(b"x")
    assert store.delete(ref.sha256) is True
    assert store.delete(ref.sha256) is False
    with pytest.raises(NotFound):
        store.open(ref.sha256)
    with pytest.raises(InvalidInput):
        store.path("../../etc/passwd")
    with pytest.raises(InvalidInput):
        BlobStore("s3://bucket/prefix")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=2000), max_size=8))
def test_store_is_a_set_of_contents(tmp_path_factory, items):
    store = BlobStore(tmp_path_factory.mktemp("b"))
    for item in items:
        ref = store.put_bytes(item)
        assert ref.sha256 == hashlib.sha256(item).hexdigest() and ref.size == len(item)
    stored = {r.sha256: r.size for r in store.iter_blobs()}
    assert stored == {hashlib.sha256(i).hexdigest(): len(i) for i in items}
    for item in items:
        with store.open(hashlib.sha256(item).hexdigest()) as f:
            assert f.read() == item


def test_trusted_move_skips_the_reread_but_still_dedups(tmp_path):
    store = BlobStore(tmp_path / "blobs")
    src = tmp_path / "u.part"
    src.write_bytes(b"streamed")
    digest = hashlib.sha256(b"streamed").hexdigest()
    ref = store.put_file(src, sha256=digest, move=True, verify=False)
    assert (ref.sha256, ref.size, ref.existed) == (digest, 8, False) and not src.exists()
    again = tmp_path / "v.part"
    again.write_bytes(b"streamed")
    assert store.put_file(again, sha256=digest, move=True, verify=False).existed
    # verification is the default, even when moving
    bad = tmp_path / "w.part"
    bad.write_bytes(b"other")
    with pytest.raises(InvalidInput):
        store.put_file(bad, sha256=digest, move=True)
    assert bad.exists()

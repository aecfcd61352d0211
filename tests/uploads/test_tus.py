"""The tus endpoint against the real tuspy client and a real uvicorn server."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import os
import socket
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import httpx
import obstore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from egocrowd.settings import Settings
from egocrowd.uploads import UploadStore, expire_uploads, recover_completed
from egocrowd.uploads.protocol import encode_metadata, parse_metadata
from egocrowd.uploads.shared import SharedUploadStore
from egocrowd.uploads.store import utcnow
from egocrowd.web.limits import uvicorn_options
from tests.support.servers import CLIENT_TIMEOUT
from tests.uploads.helpers import AUTH, Proxy, ThreadServer, make_file

TUS = {"Tus-Resumable": "1.0.0"}

# httpx's one-shot calls with the generous timeout of LiveServer.client: its 5 s default mistook a
# loaded 2-core CI machine for a hung server. A call that passes its own timeout keeps it.
http = SimpleNamespace(
    **{
        verb: functools.partial(getattr(httpx, verb), timeout=CLIENT_TIMEOUT)
        for verb in ("head", "patch", "post", "delete", "options")
    }
)


def uploader(endpoint, path, *, token="tok-alice", assignment="A1", **kw):
    c = tus_client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})
    kw.setdefault("chunk_size", 256 << 10)
    return c.uploader(
        str(path), metadata={"assignment": assignment, "filename": path.name, "filetype": "video/mp4"}, **kw
    )


def clip_for(server, url):
    upload_id = url.rstrip("/").rsplit("/", 1)[1]
    return json.loads((server.root / "clips" / f"{upload_id}.json").read_text())


def leftovers(server):
    """Bytes of unfinished uploads still kept: local ``.part`` files, or shared part objects and
    spool files."""
    store = server.store
    if isinstance(store, SharedUploadStore):
        parts = [m["path"] for page in obstore.list(store.objects) for m in page if "/" in m["path"]]
        return sorted(parts + [p.name for p in store.spool.iterdir() if p.is_file()])
    return sorted(p.name for p in store.dir.glob("*.part"))


def test_options_advertises_the_protocol(server):
    r = http.options(server.endpoint)
    assert r.status_code == 204
    assert r.headers["Tus-Version"] == "1.0.0"
    assert set(r.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    }
    assert int(r.headers["Tus-Max-Size"]) == 256 << 20
    assert {"sha1", "md5", "sha256"} <= set(r.headers["Tus-Checksum-Algorithm"].split(","))


def test_full_upload(server, tmp_path):
    src = tmp_path / "clip.mp4"
    digest = make_file(src, 1_000_003)
    up = uploader(server.endpoint, src, upload_checksum=True)
    up.upload()
    clip = clip_for(server, up.url)
    assert clip["sha256"] == digest and clip["size"] == 1_000_003
    assert clip["streamed_sha256"] == digest  # hashed while receiving, checked by the blob store
    assert clip["assignment"] == "A1" and clip["owner"] == "alice"
    assert clip["metadata"]["filename"] == "clip.mp4"
    assert server.hooks.blobs.path(digest).read_bytes() == src.read_bytes()
    assert server.body_bytes() == 1_000_003  # every byte exactly once
    assert leftovers(server) == []
    head = http.head(up.url, headers={**TUS, **AUTH})
    assert head.headers["Upload-Offset"] == "1000003"
    assert head.headers["Egocrowd-Clip-Sha256"] == digest  # the completion result is remembered


def test_dropped_connection_resumes_with_only_the_missing_bytes(server, tmp_path):
    src = tmp_path / "clip.mp4"
    size = 3 << 20
    digest = make_file(src, size, seed=1)
    proxy = Proxy(server.port, cut_after=int(1.5 * (1 << 20)))
    endpoint = f"http://127.0.0.1:{proxy.port}/api/v1/uploads"
    up = uploader(endpoint, src, chunk_size=1 << 20)
    with pytest.raises(TusCommunicationError):
        up.upload()
    assert proxy.tripped.is_set()
    # The server keeps what arrived before the drop, not just whole chunks. The client notices
    # the drop before the server has finished committing it, so wait for the commit.
    deadline = time.monotonic() + 10
    while (offset := int(http.head(up.url, headers={**TUS, **AUTH}).headers["Upload-Offset"])) <= 1 << 20:
        assert time.monotonic() < deadline, "the partial chunk was never committed"
        time.sleep(0.02)
    assert offset < size
    received_before = server.body_bytes()

    resumed = uploader(endpoint, src, chunk_size=1 << 20, url=up.url)
    assert resumed.offset == offset
    resumed.upload()
    assert server.body_bytes() - received_before == size - offset
    clip = clip_for(server, up.url)
    assert clip["sha256"] == digest
    assert clip["streamed_sha256"] == digest  # the running hash survived the partial commit
    assert leftovers(server) == []
    proxy.close()


def test_large_chunks_stream_and_hash_right_with_the_serving_options(tmp_path):
    """Through the HTTP options ``egocrowd serve`` uses (~1 MiB pieces), big PATCHes go to disk and
    to the hash in several batches at once. The streamed sha256 (the platform trusts it instead of
    reading 500 MB again) must be the file's, also when a connection drops mid-chunk with batches
    in flight: the running hash has to cover exactly the committed bytes."""
    size = (20 << 20) + 7
    with ThreadServer(tmp_path / "srv", http_options=uvicorn_options(Settings())) as srv:
        whole = tmp_path / "whole.mp4"
        digest = make_file(whole, size, seed=5)
        up = uploader(srv.endpoint, whole, chunk_size=12 << 20)  # a 12 MiB PATCH, then the rest
        up.upload()
        assert clip_for(srv, up.url)["streamed_sha256"] == clip_for(srv, up.url)["sha256"] == digest

        cut = tmp_path / "cut.mp4"
        digest = make_file(cut, size, seed=6)
        proxy = Proxy(srv.port, cut_after=(9 << 20) + 12345)
        endpoint = f"http://127.0.0.1:{proxy.port}/api/v1/uploads"
        up = uploader(endpoint, cut, chunk_size=16 << 20)
        with pytest.raises(TusCommunicationError):
            up.upload()
        deadline = time.monotonic() + 30
        while (offset := int(http.head(up.url, headers={**TUS, **AUTH}).headers["Upload-Offset"])) < 8 << 20:
            assert time.monotonic() < deadline, "the partial chunk was never committed"
            time.sleep(0.02)
        resumed = uploader(endpoint, cut, chunk_size=16 << 20, url=up.url)
        assert resumed.offset == offset < size
        resumed.upload()
        clip = clip_for(srv, up.url)
        assert clip["sha256"] == digest
        assert clip["streamed_sha256"] == digest  # continued, not re-read: same process
        assert leftovers(srv) == []
        proxy.close()


def test_server_restart_resumes(process_server, tmp_path):
    src = tmp_path / "clip.mp4"
    size = 2 << 20
    digest = make_file(src, size, seed=2)
    process_server.start()
    up = uploader(process_server.endpoint, src, chunk_size=512 << 10)
    up.upload(stop_at=1 << 20)
    process_server.kill()  # SIGKILL: no graceful shutdown
    process_server.start()
    resumed = uploader(process_server.endpoint, src, chunk_size=512 << 10, url=up.url)
    assert resumed.offset == 1 << 20
    resumed.upload()
    assert process_server.body_bytes() == size - (1 << 20)  # the new process got only the rest
    record = json.loads((process_server.root / "clips" / f"{up.url.rsplit('/', 1)[1]}.json").read_text())
    assert record["sha256"] == digest
    # The new process never saw the first MiB: it hashed the file (once) and saved that hash before
    # on_complete ran, so a retry after the hook moved the file away still knows it.
    assert record["streamed_sha256"] == digest


def test_checksum_mismatch_is_460_and_the_chunk_is_discarded(local_server, tmp_path):
    src = tmp_path / "clip.mp4"
    digest = make_file(src, 1 << 20, seed=3)
    proxy = Proxy(local_server.port, flip_at=100_000)  # corrupt one byte of the first PATCH body
    endpoint = f"http://127.0.0.1:{proxy.port}/api/v1/uploads"
    up = uploader(endpoint, src, chunk_size=512 << 10, upload_checksum=True)
    with pytest.raises(TusCommunicationError) as exc:
        up.upload()
    assert exc.value.status_code == 460
    assert json.loads(exc.value.response_content)["code"] == "upload.checksum_mismatch"
    assert up.get_offset() == 0
    assert local_server.store.data_path(up.url.rsplit("/", 1)[1]).stat().st_size == 0

    resumed = uploader(endpoint, src, chunk_size=512 << 10, upload_checksum=True, url=up.url)
    resumed.upload()
    assert clip_for(local_server, up.url)["sha256"] == digest
    proxy.close()


@pytest.mark.parametrize("algo", ["sha1", "md5", "sha256"])
def test_checksum_algorithms(server, algo):
    body = b"x" * 1000
    r = http.post(
        server.endpoint,
        headers={
            **TUS,
            **AUTH,
            "Upload-Length": "2000",
            "Upload-Metadata": "assignment " + base64.b64encode(b"A1").decode(),
        },
    )
    url = r.headers["Location"]
    good = base64.b64encode(hashlib.new(algo, body).digest()).decode()
    bad = base64.b64encode(hashlib.new(algo, b"y" * 1000).digest()).decode()
    patch = {**TUS, **AUTH, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    r = http.patch(url, content=body, headers={**patch, "Upload-Checksum": f"{algo} {bad}"})
    assert r.status_code == 460
    assert r.headers["content-type"] == "application/problem+json"
    r = http.patch(url, content=body, headers={**patch, "Upload-Checksum": f"{algo} {good}"})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "1000"
    r = http.patch(url, content=body, headers={**patch, "Upload-Offset": "1000", "Upload-Checksum": "crc99 AAAA"})
    assert r.status_code == 400


def test_over_limit_upload_length_refused_before_any_byte(local_server, tmp_path):
    src = tmp_path / "big.mp4"
    make_file(src, 600 << 10)  # the SMALL assignment allows 512 KiB
    up_attempt = tus_client.TusClient(local_server.endpoint, headers=AUTH)
    with pytest.raises(TusCommunicationError) as exc:
        up_attempt.uploader(str(src), chunk_size=64 << 10, metadata={"assignment": "SMALL"}).upload()
    assert exc.value.status_code == 413
    # creation-with-upload: the body is on the wire but the local_server never reads it
    r = http.post(
        local_server.endpoint,
        content=src.read_bytes(),
        headers={
            **TUS,
            **AUTH,
            "Upload-Length": str(600 << 10),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Metadata": "assignment " + base64.b64encode(b"SMALL").decode(),
        },
    )
    problem = r.json()
    assert r.status_code == 413 and problem["code"] == "upload.too_large"
    assert problem["max_length"] == 512 << 10 and problem["type"].endswith("/upload.too_large")
    assert r.headers["content-type"] == "application/problem+json"
    assert local_server.body_bytes() == 0
    assert list(local_server.store.dir.iterdir()) == []
    # the global Tus-Max-Size is enforced too
    r = http.post(
        local_server.endpoint,
        headers={
            **TUS,
            **AUTH,
            "Upload-Length": str(1 << 40),
            "Upload-Metadata": "assignment " + base64.b64encode(b"A1").decode(),
        },
    )
    assert r.status_code == 413


def test_someone_elses_assignment_and_upload_are_refused(server, tmp_path):
    src = tmp_path / "clip.mp4"
    make_file(src, 100_000)
    with pytest.raises(TusCommunicationError) as exc:
        uploader(server.endpoint, src, token="tok-bob", assignment="A1").upload()
    assert exc.value.status_code == 403
    with pytest.raises(TusCommunicationError) as exc:
        uploader(server.endpoint, src, token="nope").upload()
    assert exc.value.status_code == 401

    up = uploader(server.endpoint, src, chunk_size=50_000)
    up.upload(stop_at=50_000)
    bob = {**TUS, "Authorization": "Bearer tok-bob"}
    assert http.head(up.url, headers=bob).status_code == 403
    r = http.patch(
        up.url,
        content=b"z" * 10,
        headers={**bob, "Upload-Offset": "50000", "Content-Type": "application/offset+octet-stream"},
    )
    assert r.status_code == 403 and r.json()["code"] == "upload.forbidden"
    assert http.delete(up.url, headers=bob).status_code == 403
    assert up.get_offset() == 50_000
    assert server.asgi.counts["PATCH"] == 50_000  # bob's bytes were never read


def test_expired_uploads_lose_their_bytes(local_server, tmp_path):
    src = tmp_path / "clip.mp4"
    make_file(src, 300_000)
    up = uploader(local_server.endpoint, src, chunk_size=100_000)
    up.upload(stop_at=100_000)
    upload_id = up.url.rsplit("/", 1)[1]
    head = http.head(up.url, headers={**TUS, **AUTH})
    assert "Upload-Expires" in head.headers
    assert expire_uploads(local_server.store, utcnow() + timedelta(minutes=1)) == []  # not yet
    assert expire_uploads(local_server.store, utcnow() + timedelta(hours=2)) == [upload_id]
    assert not local_server.store.data_path(upload_id).exists()
    assert http.head(up.url, headers={**TUS, **AUTH}).status_code == 404
    assert list(local_server.store.dir.iterdir()) == []


def test_expiry_sweeps_crash_leftovers_but_keeps_completed_bytes(local_server, tmp_path):
    orphan = local_server.store.dir / ("ab" * 16 + ".part")  # a create that died before its record
    orphan.write_bytes(b"x" * 10)
    tmp_record = local_server.store.dir / (".cd" + "cd" * 15 + ".abc.tmp")
    tmp_record.write_bytes(b"{")
    fresh_orphan = local_server.store.dir / ("ef" * 16 + ".part")
    fresh_orphan.write_bytes(b"y")
    for p in (orphan, tmp_record):
        os.utime(p, (0, 0))
    # an upload whose bytes all arrived but whose completion never ran is not expired
    local_server.hooks.fail_next_completion = True
    src = tmp_path / "clip.mp4"
    make_file(src, 1000)
    with pytest.raises(TusCommunicationError):
        uploader(local_server.endpoint, src).upload()
    assert expire_uploads(local_server.store, utcnow() + timedelta(days=30)) == []
    assert not orphan.exists() and not tmp_record.exists()
    assert fresh_orphan.exists()  # might be a create in progress: left for the next sweep
    assert len(list(local_server.store.dir.glob("*.part"))) == 2


def test_expired_upload_is_gone_before_the_sweep(server, tmp_path):
    src = tmp_path / "clip.mp4"
    make_file(src, 200_000)
    up = uploader(server.endpoint, src, chunk_size=100_000)
    up.upload(stop_at=100_000)
    # Let a day pass for this upload (rewriting its record is how the server itself persists it).
    info = server.store.get(up.url.rsplit("/", 1)[1])
    info.expires_at = utcnow() - timedelta(seconds=1)
    server.store.save(info)
    r = http.patch(
        up.url,
        content=b"z",
        headers={**TUS, **AUTH, "Upload-Offset": "100000", "Content-Type": "application/offset+octet-stream"},
    )
    assert r.status_code == 410 and r.json()["code"] == "upload.expired"
    assert http.head(up.url, headers={**TUS, **AUTH}).status_code == 410


def test_termination(local_server, tmp_path):
    src = tmp_path / "clip.mp4"
    make_file(src, 200_000)
    up = uploader(local_server.endpoint, src, chunk_size=100_000)
    up.upload(stop_at=100_000)
    assert http.delete(up.url, headers={**TUS, **AUTH}).status_code == 204
    assert http.head(up.url, headers={**TUS, **AUTH}).status_code == 404
    assert list(local_server.store.dir.iterdir()) == []


def test_creation_with_upload_completes_in_one_request(server):
    body = b"\x00\x01" * 5000
    r = http.post(
        server.endpoint,
        content=body,
        headers={
            **TUS,
            **AUTH,
            "Upload-Length": str(len(body)),
            "Content-Type": "application/offset+octet-stream",
            "Upload-Checksum": "sha256 " + base64.b64encode(hashlib.sha256(body).digest()).decode(),
            "Upload-Metadata": "assignment " + base64.b64encode(b"A1").decode() + ",flag",
        },
    )
    assert r.status_code == 201
    assert r.headers["Upload-Offset"] == str(len(body))
    assert r.headers["Egocrowd-Clip-Sha256"] == hashlib.sha256(body).hexdigest()
    head = http.head(r.headers["Location"], headers={**TUS, **AUTH})
    assert head.headers["Upload-Length"] == str(len(body))
    assert "flag" in head.headers["Upload-Metadata"].split(",")


def test_protocol_errors(server):
    meta = "assignment " + base64.b64encode(b"A1").decode()
    r = http.post(server.endpoint, headers={**AUTH, "Upload-Length": "10", "Upload-Metadata": meta})
    assert r.status_code == 412 and r.headers["Tus-Version"] == "1.0.0"
    r = http.post(server.endpoint, headers={**TUS, **AUTH, "Upload-Metadata": meta})
    assert r.status_code == 400
    r = http.post(server.endpoint, headers={**TUS, **AUTH, "Upload-Length": "10", "Upload-Metadata": "a b c"})
    assert r.status_code == 400 and r.json()["code"] == "upload.bad_metadata"
    url = http.post(server.endpoint, headers={**TUS, **AUTH, "Upload-Length": "10", "Upload-Metadata": meta}).headers[
        "Location"
    ]
    ok = {**TUS, **AUTH, "Content-Type": "application/offset+octet-stream"}
    assert (
        http.patch(url, content=b"abc", headers={**ok, "Content-Type": "text/plain", "Upload-Offset": "0"}).status_code
        == 415
    )
    r = http.patch(url, content=b"abc", headers={**ok, "Upload-Offset": "5"})
    assert r.status_code == 409 and r.json()["code"] == "upload.offset_mismatch"
    assert http.patch(url, content=b"x" * 11, headers={**ok, "Upload-Offset": "0"}).status_code == 413
    assert http.head(url, headers={**TUS, **AUTH}).headers["Upload-Offset"] == "0"
    # X-HTTP-Method-Override for networks that only pass GET/POST
    r = http.post(url, content=b"abc", headers={**ok, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "3"
    assert http.head(server.endpoint + "/" + "0" * 32, headers={**TUS, **AUTH}).status_code == 404
    assert http.head(server.endpoint + "/..%2Fetc", headers={**TUS, **AUTH}).status_code == 404


# Over a real HTTP server (the in-process TestClient re-encodes header bytes as UTF-8): Latin-1
# superscript digits pass str.isdigit() but not int(); 5000 digits exceed Python's int-conversion
# limit. Both used to escape as ValueError -> 500 upload.internal.
HOSTILE = [b"\xb2", b"\xb9\xb3", b"1" * 5000]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_upload_length_is_a_400_not_a_500(local_server, value):
    r = http.post(local_server.endpoint, headers={**TUS, "Upload-Length": value})
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["code"] == "upload.bad_request"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_upload_offset_is_a_400_not_a_500(local_server, value):
    r = http.patch(
        f"{local_server.endpoint}/{'a' * 32}",
        content=b"x",
        headers={**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": value},
    )
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.json()["code"] == "upload.bad_request"


def test_completion_is_recovered_after_a_failure(server, tmp_path):
    src = tmp_path / "clip.mp4"
    digest = make_file(src, 300_000, seed=5)
    server.hooks.fail_next_completion = True  # as if the process died inside on_complete
    up = uploader(server.endpoint, src, chunk_size=100_000)
    with pytest.raises(TusCommunicationError) as exc:
        up.upload()
    assert exc.value.status_code == 500
    upload_id = up.url.rsplit("/", 1)[1]
    assert server.store.get(upload_id).state == "completing"
    assert leftovers(server)  # the bytes are kept for the retry
    assert asyncio.run(recover_completed(server.store, server.hooks.on_complete)) == [upload_id]
    assert clip_for(server, up.url)["sha256"] == digest
    assert server.store.get(upload_id).state == "finished"
    assert leftovers(server) == []
    assert asyncio.run(recover_completed(server.store, server.hooks.on_complete)) == []


def test_duplicate_content_is_stored_once(server, tmp_path):
    src = tmp_path / "clip.mp4"
    digest = make_file(src, 200_000, seed=6)
    a = uploader(server.endpoint, src)
    a.upload()
    b = uploader(server.endpoint, src)
    b.upload()
    assert a.url != b.url
    assert clip_for(server, a.url)["duplicate"] is False
    assert clip_for(server, b.url)["duplicate"] is True
    assert [r.sha256 for r in server.hooks.blobs.iter_blobs()] == [digest]


def test_a_reconnecting_client_takes_over_from_its_stale_request(server):
    """A phone that reconnects before the server noticed the old connection died is not locked out.

    The stale request (its body stalls mid-way) is interrupted, keeps what it received, and the
    new request learns the right offset via the usual 409 → HEAD → PATCH dance.
    """
    meta = "assignment " + base64.b64encode(b"A1").decode()
    url = http.post(
        server.endpoint, headers={**TUS, **AUTH, "Upload-Length": "300000", "Upload-Metadata": meta}
    ).headers["Location"]
    patch = {**TUS, **AUTH, "Content-Type": "application/offset+octet-stream"}
    stall = threading.Event()
    stale_result: list = []

    def stalled_body():
        yield b"a" * 100_000
        stall.wait(30)  # the network went quiet; the server still waits for more

    def stale_client():
        try:
            stale_result.append(
                http.patch(url, content=stalled_body(), timeout=60, headers={**patch, "Upload-Offset": "0"}).status_code
            )
        except httpx.HTTPError as e:
            stale_result.append(e)

    t = threading.Thread(target=stale_client)
    t.start()
    deadline = time.monotonic() + 10
    while server.asgi.counts["PATCH"] < 100_000:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    r = http.patch(url, content=b"b" * 200_000, headers={**patch, "Upload-Offset": "0"})
    assert r.status_code == 409 and r.json()["code"] == "upload.offset_mismatch"
    offset = int(http.head(url, headers={**TUS, **AUTH}).headers["Upload-Offset"])
    assert offset == 100_000  # what the stale request had received was kept
    r = http.patch(url, content=b"b" * 200_000, headers={**patch, "Upload-Offset": "100000"})
    assert r.status_code == 204 and r.headers["Upload-Offset"] == "300000"
    stall.set()
    t.join(30)
    assert stale_result and stale_result[0] != 204
    clip = clip_for(server, url)
    assert clip["sha256"] == hashlib.sha256(b"a" * 100_000 + b"b" * 200_000).hexdigest()


def test_a_writer_in_another_process_gets_409_locked(tmp_path):
    """Across processes the lock is an flock: a second writer waits, then is told to retry."""
    with ThreadServer(tmp_path / "srv", lock_timeout=0.3) as srv:
        meta = "assignment " + base64.b64encode(b"A1").decode()
        url = http.post(srv.endpoint, headers={**TUS, **AUTH, "Upload-Length": "10", "Upload-Metadata": meta}).headers[
            "Location"
        ]
        other_process = UploadStore(srv.store.dir)  # its own lock table, like another worker
        patch = {**TUS, **AUTH, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
        with other_process.try_lock(url.rsplit("/", 1)[1]) as mine:
            assert mine
            r = http.patch(url, content=b"0123456789", headers=patch)
            assert r.status_code == 409 and r.json()["code"] == "upload.locked"
        r = http.patch(url, content=b"0123456789", headers=patch)
        assert r.status_code == 204 and r.headers["Upload-Offset"] == "10"


def test_oversized_metadata_is_refused(server):
    meta = "assignment " + base64.b64encode(b"A1").decode() + ",device " + base64.b64encode(b"x" * 20000).decode()
    r = http.post(server.endpoint, headers={**TUS, **AUTH, "Upload-Length": "10", "Upload-Metadata": meta})
    assert r.status_code == 400 and r.json()["code"] == "upload.bad_metadata"


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=","),
            min_size=1,
            max_size=12,
        ),
        st.text(max_size=40),
        max_size=6,
    )
)
def test_metadata_round_trips(metadata):
    assert parse_metadata(encode_metadata(metadata)) == metadata


def test_an_unreadable_record_does_not_stop_upkeep(tmp_path):
    store = UploadStore(tmp_path / "u")
    good = store.create(length=10, owner="alice")
    (store.dir / ("0" * 32 + ".json")).write_text('{"format_version": 99}')
    assert [i.id for i in store.iter_infos()] == [good.id]
    assert expire_uploads(store, utcnow() + timedelta(days=2)) == [good.id]


def _stalled_patch(server, path: str, part: bytes, length: int) -> socket.socket:
    """A PATCH that sends part of its body and then goes quiet (a phone losing its network)."""
    s = socket.create_connection(("127.0.0.1", server.port))
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Upload-Offset: 0\r\nContent-Length: {length}\r\n\r\n"
    )
    s.sendall(head.encode() + part)
    return s


def _response(s: socket.socket) -> tuple[int, str, dict]:
    """Status, content type and JSON body of the answer on a raw connection."""
    s.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536) or b"\r\n\r\n"
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    size = int(headers.get("content-length", 0))
    while len(rest) < size and (more := s.recv(65536)):
        rest += more
    return int(lines[0].split()[1]), headers.get("content-type", ""), json.loads(rest) if rest[:1] == b"{" else {}


def test_racing_writers_get_a_problem_document_never_a_500(server):
    """Issue #16.7: a stalled request holds an upload; several reconnecting writers race to take it
    over. Every request ends in 204 or a 409 problem document: a second takeover landing while the
    interrupted request still flushed its bytes used to escape as CancelledError, a plain-text 500."""
    body = os.urandom(3 << 19)
    meta = "assignment " + base64.b64encode(b"A1").decode()
    patch = {**TUS, **AUTH, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    allowed = {"upload.interrupted", "upload.offset_mismatch", "upload.locked"}
    for _ in range(12):
        url = http.post(
            server.endpoint, headers={**TUS, **AUTH, "Upload-Length": str(len(body)), "Upload-Metadata": meta}
        ).headers["Location"]
        before = server.asgi.counts["PATCH"]
        stalled = _stalled_patch(server, httpx.URL(url).path, body[: 15 << 16], len(body))
        deadline = time.monotonic() + 10
        while server.asgi.counts["PATCH"] < before + (15 << 16):
            assert time.monotonic() < deadline
            time.sleep(0.002)
        barrier = threading.Barrier(3)
        results: list = []

        def writer(url=url, barrier=barrier, results=results):
            barrier.wait()
            r = http.patch(url, content=body, headers=patch, timeout=30)
            results.append(
                (r.status_code, r.headers.get("content-type"), r.json() if r.content[:1] == b"{" else r.text)
            )

        threads = [threading.Thread(target=writer) for _ in range(3)]
        for t in threads:
            t.start()
        with stalled:
            status, ctype, doc = _response(stalled)
        for t in threads:
            t.join(60)
        assert (status, ctype, doc.get("code")) == (409, "application/problem+json", "upload.interrupted")
        assert len(results) == 3
        for status, ctype, doc in results:
            if status != 204:
                assert (status, ctype) == (409, "application/problem+json"), (status, ctype, doc)
                assert doc["code"] in allowed, doc
        head = http.head(url, headers={**TUS, **AUTH})
        assert head.status_code == 200 and int(head.headers["Upload-Offset"]) <= len(body)

"""SIGKILL the server while 10 uploads are in flight; after a restart all of them finish intact."""

from __future__ import annotations

import json
import threading
import time

import pytest
from tusclient import client as tus_client

from tests.uploads.helpers import Proxy, make_file

N = 10
SIZE = 3 << 20


@pytest.mark.slow
def test_sigkill_with_ten_uploads_in_flight(process_server, tmp_path):
    srv = process_server.start()
    # A slow uplink (2 MiB/s per connection) keeps every PATCH body in flight when the kill comes.
    proxy = Proxy(srv.port, rate=2 << 20)
    endpoint = f"http://127.0.0.1:{proxy.port}/api/v1/uploads"
    digests = [make_file(tmp_path / f"c{i}.mp4", SIZE, seed=100 + i) for i in range(N)]
    killed = threading.Event()
    resume_offsets: dict[int, int] = {}
    urls: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        client = tus_client.TusClient(endpoint, headers={"Authorization": "Bearer tok-alice"})
        deadline = time.monotonic() + 90
        while True:
            try:
                up = client.uploader(
                    str(tmp_path / f"c{i}.mp4"),
                    chunk_size=1 << 20,
                    url=urls.get(i),
                    metadata={"assignment": "A1", "filename": f"c{i}.mp4"},
                )
                if killed.is_set() and i not in resume_offsets:
                    resume_offsets[i] = up.offset if up.url else 0
                if up.url is None:
                    urls[i] = up.create_url()
                    up.set_url(urls[i])
                    up.offset = 0
                up.upload()
                return
            except Exception as e:  # connection refused/dropped while the server is down
                if time.monotonic() > deadline:
                    errors.append(e)
                    return
                time.sleep(0.2)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    store_dir = srv.root / "uploads"
    deadline = time.monotonic() + 30
    # Kill once every upload has a durable first chunk and the next one on the wire.
    while True:
        assert time.monotonic() < deadline, "uploads never got going"
        offsets = []
        for p in store_dir.glob("*.json"):
            try:
                offsets.append(json.loads(p.read_text())["offset"])
            except (FileNotFoundError, ValueError):
                pass
        if len(offsets) == N and min(offsets) >= 1 << 20 and srv.body_bytes() > sum(offsets):
            break
        time.sleep(0.02)
    assert max(offsets) < SIZE
    srv.kill()
    killed.set()
    time.sleep(0.5)
    srv.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(urls) == N

    # Every upload resumed: the new process received only what the old one had not made durable.
    assert srv.body_bytes() == sum(SIZE - resume_offsets.get(i, 0) for i in range(N))
    assert sum(resume_offsets.values()) > 0
    clips = {
        json.loads(p.read_text())["upload"]: json.loads(p.read_text()) for p in (srv.root / "clips").glob("*.json")
    }
    assert len(clips) == N
    for i in range(N):
        clip = clips[urls[i].rsplit("/", 1)[1]]
        assert clip["sha256"] == digests[i]
        # The hash the platform trusts instead of re-reading the file: after a kill mid-chunk the
        # new process cannot continue the old one's running hash, so it hashed the file itself.
        assert clip["streamed_sha256"] == digests[i]
        assert (srv.root / "blobs" / clip["sha256"][:2] / clip["sha256"][2:4] / clip["sha256"]).stat().st_size == SIZE
    # No orphaned partials: no .part left, no half-written blob, no unfinished record.
    assert list(store_dir.glob("*.part")) == []
    assert list((srv.root / "blobs" / "tmp").iterdir()) == []
    assert list((srv.root / "clips").glob("*.tmp")) == []
    states = {json.loads(p.read_text())["finished_at"] is not None for p in store_dir.glob("*.json")}
    assert states == {True}
    proxy.close()

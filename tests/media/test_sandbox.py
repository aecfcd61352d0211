"""The media sandbox: uploads open only as allow-listed, self-contained containers, and decoding
runs in spawned, memory-capped processes that respect the limits they inherit."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import av
import numpy as np
import pytest

from egocrowd.blobs import BlobStore
from egocrowd.errors import MediaError
from egocrowd.media import ProbeLimits, call_bounded, probe
from egocrowd.media.analysis import analyze_video
from egocrowd.media.bounded import memory_limit_bytes
from egocrowd.media.opener import open_media, sniff_container
from egocrowd.media.testmedia import external_data_mp4, hls_playlist, write_video


def _same_shard_playlist(store: BlobStore, victim_sha: str, make) -> bytes:
    """A hostile file naming the victim blob by its bare file name, ground (with a nonce) until
    its own sha256 puts it in the victim's folder of the blob store, as an attacker would."""
    for nonce in range(1_000_000):
        data = make(nonce)
        if hashlib.sha256(data).hexdigest()[:4] == victim_sha[:4]:
            return data
    raise AssertionError("no nonce found")  # pragma: no cover


@pytest.mark.parametrize("kind", ["ffconcat", "hls"])
def test_a_playlist_naming_a_neighbouring_blob_is_rejected(qc_media, tmp_path, kind):
    store = BlobStore(tmp_path / "blobs")
    victim = store.put_file(qc_media["good"]).sha256
    name = store.path(victim).name
    if kind == "ffconcat":

        def make(n):
            return f"ffconcat version 1.0\n# {n}\nfile '{name}'\n".encode()
    else:

        def make(n):
            return hls_playlist(name) + f"# {n}\n".encode()

    evil = store.put_bytes(_same_shard_playlist(store, victim, make)).sha256
    evil_path = store.path(evil)
    assert evil_path.parent == store.path(victim).parent and evil_path.stat().st_size < 200

    if kind == "ffconcat":
        # The attack is real: FFmpeg left to itself decodes the other worker's clip.
        with av.open(str(evil_path)) as c:
            assert (c.format.name, c.streams.video[0].codec_context.width) == ("concat", 352)

    for run in (
        lambda: probe(evil_path),
        lambda: call_bounded(probe, evil_path, timeout_s=60),
        lambda: analyze_video(str(evil_path)),
    ):
        with pytest.raises(MediaError) as info:
            run()
        assert info.value.code == "video.unsupported_container"


class _Tripwire:
    """A FIFO standing where a neighbouring blob would be: notes whether anything opens it."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path, self.opened = path, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            try:  # succeeds only while some process has the FIFO open for reading
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue
            self.opened = True
            os.close(fd)  # the reader sees end of file

    def close(self) -> bool:
        self._stop.set()
        self._thread.join()
        return self.opened


def test_nothing_named_inside_a_file_is_ever_opened(qc_media, tmp_path):
    good = qc_media["good"].read_bytes()
    wire = _Tripwire(tmp_path / "neighbour.mp4")
    files = {
        "concat": b"ffconcat version 1.0\nfile 'neighbour.mp4'\n",
        "hls": hls_playlist("neighbour.mp4"),
        "dref": external_data_mp4(good, b"neighbour.mp4"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MediaError) as info:
            probe(tmp_path / name)
        assert info.value.code == "video.unsupported_container", name
    # Below probe's own check: the opener itself never follows the data reference.
    with open_media(tmp_path / "dref") as c:
        assert sum(1 for p in c.demux(video=0) if p.size) == 0
    assert not wire.close()


def test_the_tripwire_trips(tmp_path):
    # The check above would be worthless if a real open went unnoticed.
    wire = _Tripwire(tmp_path / "neighbour.mp4")
    with open(wire.path, "rb") as fh:
        fh.read()
    assert wire.close()


def test_an_external_data_reference_is_followed_by_ffmpeg_alone(qc_media, tmp_path):
    (tmp_path / "neighbour.mp4").write_bytes(qc_media["good"].read_bytes())
    dref = tmp_path / "dref.mp4"
    dref.write_bytes(external_data_mp4(qc_media["good"].read_bytes(), b"neighbour.mp4"))
    # FFmpeg with data references on reads every frame of the neighbour...
    with av.open(str(dref), options={"enable_drefs": "1"}) as c:
        assert sum(1 for p in c.demux(video=0) if p.size) == 240
    # ...our opener reads none of them, and probe names the reason.
    with open_media(dref) as c:
        assert sum(1 for p in c.demux(video=0) if p.size) == 0
    with pytest.raises(MediaError) as info:
        call_bounded(probe, dref, timeout_s=60)
    assert info.value.code == "video.unsupported_container"


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "mov,mp4,m4a,3gp,3g2,mj2"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mov,mp4,m4a,3gp,3g2,mj2"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mov,mp4,m4a,3gp,3g2,mj2"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "matroska,webm"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00", "video.not_video"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "video.not_video"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video.unsupported_container"),
        (b"\xef\xbb\xbf#EXTM3U\n#EXT-X-VERSION:3\n", "video.unsupported_container"),
        (b"<?xml version='1.0'?><MPD>", "video.unsupported_container"),
        (b"FLV\x01\x05\x00\x00\x00\x09", "video.unsupported_container"),
        (b"YUV4MPEG2 W64 H48 F30:1\n", "video.unsupported_container"),
        (b"file 'other.mp4'\n", "video.unsupported_container"),
        (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09", "video.unreadable"),
    ],
)
def test_the_container_comes_from_the_magic_bytes(head, expected):
    if expected.startswith("video."):
        with pytest.raises(MediaError) as info:
            sniff_container(head)
        assert info.value.code == expected
    else:
        assert sniff_container(head) == expected


def test_webm_from_the_capture_page_is_accepted(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(20)]
    path = write_video(tmp_path / "capture.webm", frames, fps=20, codec="libvpx", container_format="webm")
    r = probe(path)
    assert (r.container, r.codec, r.width, r.frame_count) == ("matroska,webm", "vp8", 128, 20)
    assert analyze_video(str(path)).n_frames == 20


@pytest.fixture(scope="module")
def eight_k(tmp_path_factory) -> Path:
    """One real 7680x4320 H.264 frame (more is slow to encode and changes nothing here)."""
    path = tmp_path_factory.mktemp("8k") / "8k.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 7680, 4320, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": "40"}
        frame = av.VideoFrame.from_ndarray(np.full((4320 * 3 // 2, 7680), 90, np.uint8), format="yuv420p")
        for p in [*s.encode(frame), *s.encode()]:
            out.mux(p)
    return path


def test_a_huge_picture_is_rejected_before_any_decode(eight_k):
    # 7680x4320 used to pass at exactly the limit and then be decoded at full size.
    with pytest.raises(MediaError) as info:
        call_bounded(probe, eight_k, timeout_s=60, max_memory_mb=1024)  # no room for a decode
    assert info.value.code == "video.too_large"
    assert "7680x4320" in info.value.message
    with pytest.raises(MediaError) as info:
        call_bounded(analyze_video, str(eight_k), timeout_s=60, max_memory_mb=1024)
    assert info.value.code == "video.too_large"


def test_a_tiny_picture_gets_its_own_code(tmp_path):
    frames = [np.full((32, 48, 3), i * 8, np.uint8) for i in range(30)]
    path = write_video(tmp_path / "tiny.mp4", frames)
    with pytest.raises(MediaError) as info:
        probe(path)
    assert info.value.code == "video.too_small"
    assert probe(path, ProbeLimits(min_side=16)).width == 48


def test_limits_come_from_settings(monkeypatch):
    from egocrowd.settings import Settings

    monkeypatch.setenv("EGOCROWD_MEDIA_MAX_PIXELS", "1000000")
    monkeypatch.setenv("EGOCROWD_MEDIA_MIN_SIDE", "120")
    limits = ProbeLimits.from_settings(Settings())
    assert (limits.max_pixels, limits.min_side) == (1_000_000, 120)
    assert ProbeLimits().max_pixels == Settings.model_fields["media_max_pixels"].default


_UNDER_A_LOWER_LIMIT = """
import resource, sys
limit = 3 * 1024**3
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from egocrowd.media import call_bounded, probe
from egocrowd.media.bounded import memory_limit_bytes
assert memory_limit_bytes(8192) == limit
print(call_bounded(probe, sys.argv[1], timeout_s=120, max_memory_mb=8192).frame_count)
print(call_bounded(memory_limit_bytes, 8192))
"""


def test_a_worker_under_a_lower_inherited_limit_still_decodes(qc_media):
    # Asking for more than the inherited hard limit used to fail every clip as unreadable.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", _UNDER_A_LOWER_LIMIT, str(qc_media["good"])],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["240", str(3 * 1024**3)]


def test_the_cap_is_ours_when_nothing_lower_is_inherited():
    import resource

    if resource.getrlimit(resource.RLIMIT_AS)[1] == resource.RLIM_INFINITY:
        assert memory_limit_bytes(2048) == 2048 * 1024**2
    assert call_bounded(memory_limit_bytes, 2048) <= 2048 * 1024**2


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


def _allocate(n_bytes: int) -> int:
    return len(bytearray(n_bytes))


def test_overruns_are_typed_and_the_pool_recovers(qc_media):
    with pytest.raises(MediaError) as info:
        call_bounded(_sleep, 30, timeout_s=1)
    assert info.value.code == "video.timeout"
    with pytest.raises(MediaError) as info:
        call_bounded(_allocate, 3 * 1024**3, max_memory_mb=1024)
    assert info.value.code == "video.out_of_memory"
    # The killed process was replaced: the next file is read normally.
    assert call_bounded(probe, qc_media["good"]).frame_count == 240


def test_the_sandbox_is_spawned_not_forked():
    # A spawned process is a fresh interpreter started by multiprocessing's spawn_main; a forked
    # one would keep our command line (and half of our threads' state).
    assert call_bounded(os.getpid) != os.getpid()
    assert b"spawn_main" in call_bounded(_command_line)


def _command_line() -> bytes:
    return Path("/proc/self/cmdline").read_bytes()


def test_analysis_applies_the_size_policy_too(qc_media):
    # QC may be handed a file without a fresh probe: it still refuses before decoding.
    with pytest.raises(MediaError) as info:
        analyze_video(str(qc_media["good"]), limits=ProbeLimits(max_width=320))
    assert info.value.code == "video.too_large"


@pytest.mark.parametrize("name", ["ffconcat", "hls_playlist", "polyglot", "external_data", "tiny_picture"])
def test_the_pipeline_stage_turns_refusals_into_rejections(qc_media, name, tmp_path):
    from egocrowd.blobs import BlobStore
    from egocrowd.media.testmedia import REJECTS
    from egocrowd.pipeline.stages import compute_probe

    blobs = BlobStore(tmp_path / "blobs")  # the stage reads the clip from the store, as the runner hands it
    ref = blobs.put_file(qc_media[name])
    result = compute_probe({"blobs": blobs.spec(), "sha256": ref.sha256})
    assert (result.get("rejected"), result.get("code")) == (True, REJECTS[name])

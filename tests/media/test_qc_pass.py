"""The QC decoding pass: the palm model read into onnxruntime scores as OpenCV's import of the same
file does, the focus picture from FFmpeg's scaler measures as OpenCV's does, and the decoding
thread never outlives the pass."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from egocrowd.errors import MediaError
from egocrowd.media.analysis import AnalysisConfig, FrameAnalyzer, analyze_video, sharpness_of
from egocrowd.media.hands import PalmDetector, model_path
from egocrowd.media.opener import open_media

PALM = model_path()


def _frames(path, every: int = 10) -> list[np.ndarray]:
    with open_media(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i % every == 0]


@pytest.mark.skipif(PALM is None, reason="the palm model (mediapipe==0.10.21, installed --no-deps) is not installed")
def test_palm_model_scores_alike_in_onnxruntime_and_opencv(qc_media):
    assert PALM is not None
    detector = PalmDetector(PALM)
    assert detector.runtime == "onnxruntime"
    net = cv2.dnn.readNetFromTFLite(str(PALM))
    names = net.getUnconnectedOutLayersNames()
    scores = {}
    for clip in ("carphone_pristine", "bikes"):
        for rgb in _frames(qc_media[clip])[:6]:
            blob = cv2.dnn.blobFromImage(detector.letterbox(rgb), 1 / 127.5, mean=(127.5, 127.5, 127.5))
            net.setInput(blob)
            ours, theirs = detector.forward(blob), net.forward(names)
            for a in theirs:  # both heads: boxes and scores, same numbers to float rounding
                b = next(o for o in ours if o.shape[-1] == a.shape[-1])
                np.testing.assert_allclose(b.reshape(a.shape), a, atol=2e-3 * max(1.0, float(np.abs(a).max())))
            scores.setdefault(clip, []).append(detector.score(rgb))
    assert min(scores["carphone_pristine"]) > 0.5 > max(scores["bikes"])  # a hand; a street


def test_focus_picture_from_ffmpegs_scaler_measures_like_opencvs(qc_media):
    # bigbuckbunny.mp4 is 1280x720: the 480 px focus picture is scaled down by 2.67.
    with open_media(str(qc_media["bigbuckbunny"])) as c:
        frames = [f for i, f in enumerate(c.decode(video=0)) if i % 15 == 0]
    for frame in frames:
        luma = frame.to_ndarray(format="gray")  # full range; only the ratio of variances matters
        ffmpeg = frame.reformat(width=480, height=270, format="gray", interpolation="AREA").to_ndarray()
        opencv = cv2.resize(luma, (480, 270), interpolation=cv2.INTER_AREA)
        assert sharpness_of(ffmpeg) == pytest.approx(sharpness_of(opencv), rel=0.05)


def test_statistics_computed_a_chunk_at_a_time_match_frame_by_frame(qc_media):
    with open_media(str(qc_media["shaky"])) as c:
        lumas = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    h, w = lumas[0].shape
    analyzer = FrameAnalyzer(w, h)
    for i, luma in enumerate(lumas):
        analyzer.add(i / 30, luma)
    stats = analyzer.finish()
    assert stats.n_frames == len(lumas) > 200  # more than one chunk
    small = [cv2.resize(x, analyzer.small_size, interpolation=cv2.INTER_AREA).astype(np.float64) for x in lumas]
    np.testing.assert_allclose(stats.luma, [s.mean() for s in small])
    np.testing.assert_allclose(stats.dark_frac, [(s <= 35).mean() for s in small])
    np.testing.assert_allclose(stats.bright_frac, [(s >= 245).mean() for s in small])
    np.testing.assert_allclose(stats.diff[1:], [np.abs(b - a).mean() for a, b in zip(small, small[1:])])
    assert np.isnan(stats.diff[0]) and not stats.shift_ok[0] and stats.shift_ok[1:].mean() > 0.9
    assert stats.sharp_t.size == stats.sharp_exposed.size == stats.sharpness.size > 0


def test_decoding_thread_stops_with_the_pass(qc_media, tmp_path):
    def decoders() -> int:
        return sum(t.name == "egocrowd-decode" for t in threading.enumerate())

    assert analyze_video(str(qc_media["good"])).n_frames == 240
    assert decoders() == 0
    with pytest.raises(MediaError) as info:  # the analysis gives up mid-clip: the thread stops too
        analyze_video(str(qc_media["good"]), timeout_s=0)
    assert info.value.code == "video.timeout" and decoders() == 0
    stats = analyze_video(str(qc_media["corrupt"]), AnalysisConfig(decode_threads=1))
    assert stats.decode_errors > 0 and decoders() == 0  # damaged packets counted across the thread

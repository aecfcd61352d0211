"""The evaluation set: deterministic, every condition present, truth boxes inside the frames and
where the conditions say, and writable for people to look at."""

from __future__ import annotations

import json

import numpy as np
import pytest

from egocrowd.media.deid.evalset import CONDITIONS, HEIGHT, MIN_FACE, WIDTH, build_evalset
from egocrowd.media.opener import open_media
from tests.media.deid.evalsets import full_set


@pytest.fixture(scope="module")
def evalset():
    return full_set()


def test_every_condition_is_a_clip_of_720p_frames_with_truth_on_each(evalset):
    assert [(c.category, c.condition) for c in evalset.clips] == [
        (cat, cond) for cat in ("face", "text") for cond in CONDITIONS[cat]
    ]
    for clip in evalset.clips:
        assert len(clip.frames) == len(clip.truth) >= 15
        for frame, truth in zip(clip.frames, clip.truth, strict=True):
            assert frame.shape == (HEIGHT, WIDTH, 3) and frame.dtype == np.uint8
            assert truth, f"{clip.name}: a frame without anything to redact"
            for r in truth:
                x0, y0, x1, y1 = r.box
                assert 0 <= x0 < x1 <= WIDTH and 0 <= y0 < y1 <= HEIGHT, (clip.name, r)
                assert r.category == clip.category


def test_conditions_hold_what_their_names_say(evalset):
    by = {c.condition: c for c in evalset.clips}
    sizes = {name: [r.size for t in c.truth for r in t] for name, c in by.items()}
    assert min(sizes["large"]) >= 80 and max(sizes["large"]) <= 200
    small = [s for s in sizes["small"] if s >= MIN_FACE]
    assert min(small) >= 20 and max(small) <= 40
    assert any(s < MIN_FACE for s in sizes["small"])  # scored apart, so the report has that row
    assert all(4 <= len(t) <= 6 for t in by["several"].truth)
    # the dark clip is dark, the others are not
    assert np.mean(by["dark"].frames[0]) < 40 < np.mean(by["large"].frames[0])
    # a hand or a mug hides 30–50 % of each occluded face, and nothing hides the others
    assert all(0.3 <= r.hidden <= 0.5 for t in by["occluded"].truth for r in t)
    assert all(r.hidden == 0 for c in evalset.clips if c.condition != "occluded" for t in c.truth for r in t)
    # faces move: every object's box changes between the first and the last frame
    for name in ("large", "small", "motion_blur", "several"):
        first = {r.object_id: r.box for r in by[name].truth[0]}
        last = {r.object_id: r.box for r in by[name].truth[-1]}
        assert first.keys() == last.keys() and all(first[k] != last[k] for k in first), name
    # small_text is small: its lines are shorter than the document's
    assert np.median(sizes["small_text"]) < np.median(sizes["document"])


def test_the_same_seed_builds_the_same_clips_whatever_else_is_built(evalset):
    again = build_evalset(conditions=("several", "screen"))
    for clip in again.clips:
        same = next(c for c in evalset.clips if c.name == clip.name)
        assert clip.truth == same.truth
        assert all(np.array_equal(a, b) for a, b in zip(clip.frames, same.frames, strict=True))
    other = build_evalset(("face",), conditions=("several",), seed=10)
    assert other.clips[0].truth != next(c for c in evalset.clips if c.name == "face_several").truth


def test_written_clips_open_and_match_their_truth_file(tmp_path):
    small = build_evalset(("face",), conditions=("small",), seconds=1.0)
    paths = small.write(tmp_path)
    assert sorted(p.name for p in paths) == ["face_small.mp4", "truth.json"]
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["format"] == 1 and (truth["width"], truth["height"]) == (WIDTH, HEIGHT)
    (clip,) = truth["clips"]
    with open_media(tmp_path / clip["file"]) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == clip["frames"] == len(small.clips[0].frames)
    assert frames[0].shape == (HEIGHT, WIDTH, 3)
    # the encoded picture is the in-memory one, up to H.264's loss
    assert np.abs(frames[0].astype(int) - small.clips[0].frames[0].astype(int)).mean() < 4
    rows = {(r[0], r[1]): tuple(r[2:6]) for r in clip["regions"]}
    assert rows == {(i, r.object_id): r.box for i, t in enumerate(small.clips[0].truth) for r in t}

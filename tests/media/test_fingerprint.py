"""Fingerprints: the same footage re-encoded and trimmed matches; different footage does not."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egocrowd.media import Fingerprint, find_duplicates, fingerprint, match_fingerprints
from egocrowd.media.fingerprint import phash64


@pytest.fixture(scope="session")
def prints(qc_media):
    names = ["bikes", "reencoded_duplicate", "good", "dark", "carphone_pristine", "bigbuckbunny", "shaky", "low_res"]
    return {n: fingerprint(qc_media[n]) for n in names}


def test_reencoded_trimmed_rescaled_copy_matches(prints):
    score, offset, matched = match_fingerprints(prints["reencoded_duplicate"], prints["bikes"])
    assert score >= 0.8
    assert offset == pytest.approx(2.0, abs=0.6)  # 50 frames at 25 fps were cut off the start
    # And the other way round: the original contains the re-upload.
    back, back_offset, _ = match_fingerprints(prints["bikes"], prints["reencoded_duplicate"])
    assert back >= 0.8 and back_offset == pytest.approx(-2.0, abs=0.6)


def test_rescaled_copy_of_the_good_clip_matches(prints):
    assert match_fingerprints(prints["low_res"], prints["good"])[0] >= 0.8


@pytest.mark.parametrize(
    "a,b",
    [
        ("good", "bikes"),
        ("carphone_pristine", "bikes"),
        ("bigbuckbunny", "bikes"),
        ("bigbuckbunny", "good"),
        ("reencoded_duplicate", "good"),
    ],
)
def test_unrelated_clips_do_not_match(prints, a, b):
    assert match_fingerprints(prints[a], prints[b])[0] < 0.25
    assert match_fingerprints(prints[b], prints[a])[0] < 0.25


def test_flat_frames_are_not_hashed(prints):
    # A black picture would otherwise match every other black picture.
    assert phash64(np.zeros((90, 160), np.uint8)) is None
    assert len(prints["dark"]) == 0


def test_find_duplicates_ranks_and_accepts_stored_dicts(prints):
    known = {"a": prints["good"].to_dict(), "b": json.loads(json.dumps(prints["bikes"].to_dict()))}
    matches = find_duplicates(prints["reencoded_duplicate"], known)
    assert matches[0].clip_id == "b" and matches[0].score >= 0.8
    assert all(m.clip_id != "a" or m.score < 0.25 for m in matches)
    assert all(m.score < 0.25 for m in find_duplicates(prints["good"], [("x", prints["bikes"])]))
    assert find_duplicates(prints["good"], {}) == []


def test_round_trip(prints):
    fp = prints["good"]
    again = Fingerprint.from_dict(json.loads(json.dumps(fp.to_dict())))
    assert np.array_equal(again.hashes, fp.hashes)
    assert match_fingerprints(again, fp)[0] == 1.0
    with pytest.raises(ValueError):
        Fingerprint.from_dict({**fp.to_dict(), "algo": "md5"})


@settings(max_examples=30, deadline=None)
@given(start=st.integers(0, 30), length=st.integers(8, 40))
def test_any_excerpt_matches_its_source(start, length):
    # Property: a contiguous excerpt of a clip's hashes (a trim) always matches the clip fully.
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, 80, dtype=np.int64).astype(np.uint64)
    times = np.arange(80) * 0.5
    source = Fingerprint(times=times, hashes=hashes)
    sl = slice(start, start + length)
    excerpt = Fingerprint(times=times[sl] - times[start], hashes=hashes[sl])
    score, offset, matched = match_fingerprints(excerpt, source)
    assert score == 1.0 and matched == len(excerpt)
    assert offset == pytest.approx(times[start], abs=0.01)


def test_rotated_phone_video_is_analysed_upright(tmp_path, qc_media):
    # A portrait phone clip stores its pictures turned and tags the stream with a display
    # rotation; players turn them back. Our analysis must see what the player shows: its
    # fingerprint then matches the upright clip's.
    import av
    import cv2

    from egocrowd.media import probe
    from egocrowd.media.testmedia import read_frames

    frames = read_frames(qc_media["good"], limit=120)
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 288, 352, "yuv420p"
        # FFmpeg's display matrix angle is counter-clockwise: a player turns this clip 90 degrees
        # counter-clockwise, so store the pictures turned clockwise.
        s.set_display_rotation(90)
        for f in frames:
            stored = np.ascontiguousarray(cv2.rotate(f, cv2.ROTATE_90_CLOCKWISE))
            for p in s.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    info = probe(path)
    assert (info.width, info.height, info.display_width, info.display_height) == (288, 352, 352, 288)
    upright = fingerprint(qc_media["good"])
    assert match_fingerprints(fingerprint(path), upright)[0] >= 0.8

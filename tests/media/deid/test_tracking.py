"""The tracker on synthetic detection sequences: bridging misses, hysteresis, holding, margins."""

from __future__ import annotations

import pytest

from egocrowd.media.deid.regions import Detection
from egocrowd.media.deid.tracking import Tracker

pytestmark = pytest.mark.fast

W, H = 1280, 720


def tracker(**kw) -> Tracker:
    settings = {"threshold": 0.5, "low_threshold": 0.2, "margin": 0.0, "max_gap": 5, "hold": 0, "grow": 0.0}
    return Tracker("face", "test", W, H, **{**settings, **kw})


def face(x: float, y: float = 300, size: int = 40, score: float = 0.9) -> Detection:
    return Detection("face", (int(x), int(y), int(x) + size, int(y) + size), score)


def covers(box, target) -> bool:
    return box[0] <= target[0] and box[1] <= target[1] and box[2] >= target[2] and box[3] >= target[3]


def test_empty_input_gives_nothing():
    t = tracker()
    for f in range(10):
        t.update(f, [])
    assert t.finish(10) == ([], [])
    assert tracker().finish(0) == ([], [])


def test_a_short_miss_is_bridged_by_interpolation():
    t = tracker()
    for f in range(20):
        if f not in (8, 9, 10):  # the detector loses the face for three frames while it moves right
            t.update(f, [face(100 + 10 * f)])
        else:
            t.update(f, [])
    tracks, uncertain = t.finish(20)
    assert len(tracks) == 1 and uncertain == []
    track = tracks[0]
    assert sorted(track.boxes) == list(range(20))
    assert track.boxes[9][0] == (190, 300, 230, 340)  # halfway between the sightings at 7 and 11
    assert track.boxes[9][1] == 0.0 and track.boxes[7][1] == pytest.approx(0.9)  # made up vs seen


def test_a_long_miss_ends_the_track_and_a_new_one_starts():
    t = tracker(max_gap=3)
    for f in range(12):
        t.update(f, [face(100)] if f < 3 or f >= 8 else [])
    tracks, _ = t.finish(12)
    assert [sorted(tr.boxes) for tr in tracks] == [[0, 1, 2], [8, 9, 10, 11]]
    assert [tr.id for tr in tracks] == [1, 2]


def test_hold_covers_before_the_first_and_after_the_last_sighting_and_grows():
    t = tracker(hold=3, grow=0.1)
    for f in range(20):
        t.update(f, [face(500, size=100)] if 5 <= f <= 10 else [])
    (track,), _ = t.finish(20)
    assert sorted(track.boxes) == list(range(2, 14))
    assert track.boxes[10][0] == (500, 300, 600, 400)
    assert track.boxes[11][0] == (490, 290, 610, 410)  # one frame held: 10% more on each side
    assert track.boxes[13][0] == (470, 270, 630, 430)
    assert track.boxes[2][0] == track.boxes[13][0]


def test_faces_at_the_first_and_last_frame_are_kept_and_held_boxes_stay_inside():
    t = tracker(hold=5, margin=0.3)
    n = 10
    for f in range(n):
        t.update(f, [face(0, 0, score=0.9)] if f in (0, n - 1) else [])
    tracks, _ = t.finish(n)
    frames = sorted(f for tr in tracks for f in tr.boxes)
    assert frames[0] == 0 and frames[-1] == n - 1
    for tr in tracks:
        for box, _ in tr.boxes.values():
            assert 0 <= box[0] < box[2] <= W and 0 <= box[1] < box[3] <= H


def test_margin_widens_each_side_and_is_clipped_to_the_frame():
    t = tracker(margin=0.3)
    t.update(0, [Detection("face", (100, 100, 200, 300), 0.9), Detection("face", (1250, 700, 1280, 720), 0.9)])
    tracks, _ = t.finish(1)
    assert tracks[0].boxes[0][0] == (70, 40, 230, 360)
    assert tracks[1].boxes[0][0] == (1241, 694, 1280, 720)


def test_a_weak_detection_extends_a_track_but_never_starts_one():
    t = tracker()
    t.update(0, [face(100, score=0.9)])
    t.update(1, [face(104, score=0.3)])  # motion blur: weak, but it continues the face
    t.update(2, [face(108, score=0.3), face(900, score=0.3)])  # the second extends nothing
    t.update(3, [face(112, score=0.1)])  # below low_threshold: ignored
    tracks, uncertain = t.finish(4)
    assert len(tracks) == 1
    assert [round(s, 1) for _, s in (tracks[0].boxes[f] for f in range(3))] == [0.9, 0.3, 0.3]
    assert 3 not in tracks[0].boxes  # the 0.1 sighting was ignored and nothing is held (hold=0)
    assert uncertain == []  # a lone weak blip is noise, not doubt


def test_a_weak_thing_that_stays_makes_its_frames_uncertain():
    t = tracker(confirm=3)
    for f in range(10):
        dets = [face(900, score=0.4)] if f in (2, 3, 5) else []  # seen weakly three times, never strongly
        dets += [face(100, score=0.4)] if f in (7, 8) else []  # twice only
        dets += [face(500, score=0.3)] if f in (1, 2, 3, 4) else []  # four times, but faint (< doubt 0.35)
        t.update(f, dets)
    tracks, uncertain = t.finish(10)
    assert tracks == [] and uncertain == [2, 3, 5]


def test_a_face_fading_in_is_covered_from_its_first_weak_sighting():
    t = tracker()
    for f in range(8):
        t.update(f, [face(300 + f, score=0.25 + 0.05 * f)])  # weak until frame 5 (0.5)
    (track,), uncertain = t.finish(8)
    assert sorted(track.boxes) == list(range(8)) and uncertain == []


def test_crossing_faces_stay_covered_on_every_frame():
    t = tracker(max_gap=2)
    truth = {}
    for f in range(30):
        a, b = face(100 + 30 * f, 300), face(1000 - 30 * f, 310)
        truth[f] = [a.box, b.box]
        # where they overlap the detector sees only the nearer face
        overlap = abs((100 + 30 * f) - (1000 - 30 * f)) < 40
        t.update(f, [a] if overlap else [a, b])
    tracks, _ = t.finish(30)
    for f, boxes in truth.items():
        for target in boxes:
            near = [tr.boxes[f][0] for tr in tracks if f in tr.boxes]
            assert any(covers(_pad(b, 12), target) for b in near), (f, target, near)


def _pad(box, px):
    return (box[0] - px, box[1] - px, box[2] + px, box[3] + px)


def test_a_fast_move_keeps_the_same_track():
    t = tracker()
    for f in range(10):
        t.update(f, [face(100 + 35 * f)])  # 35 px a frame for a 40 px face: little overlap
    tracks, _ = t.finish(10)
    assert len(tracks) == 1


def test_sampled_detections_cover_the_frames_in_between():
    t = Tracker("text", "test", W, H, threshold=0.5, low_threshold=0.3, margin=0.0, max_gap=1, hold=1, grow=0.0, step=5)
    for f in range(0, 30, 5):
        t.update(f, [Detection("text", (200, 200, 400, 240), 0.8)] if f < 20 else [])
    (track,), _ = t.finish(30)
    # sampled on 0, 5, 10, 15; it reaches the next sample (19) and one sample further (24)
    assert sorted(track.boxes) == list(range(0, 25))


def test_frames_must_increase_and_thresholds_must_be_ordered():
    t = tracker()
    t.update(3, [])
    with pytest.raises(ValueError):
        t.update(3, [])
    with pytest.raises(ValueError):
        tracker(threshold=0.2, low_threshold=0.5)

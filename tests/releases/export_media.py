"""Real videos and ReleaseSpecs for the exporter tests (tests/releases/test_exporters_*.py).

Every frame carries its own index as a row of black and white blocks (a binary code that survives
H.264), so a test can decode any exported frame and say exactly which source frame it shows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from egocrowd.media.testmedia import write_video
from egocrowd.releases.exporting import ReleaseItem, ReleaseSpec, SpanLabel

BITS = 10  # frame indices up to 1023
CREATED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def coded_frames(n: int, size: tuple[int, int] = (160, 128), seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB frames of a moving textured picture with the frame's index coded in its top row."""
    w, h = size
    rng = np.random.default_rng(seed)
    texture = rng.integers(40, 200, (h, w, 3), dtype=np.uint8)
    block = w // BITS
    out = []
    for i in range(n):
        frame = np.roll(texture, 2 * i, axis=1).copy()
        for bit in range(BITS):
            frame[:block, bit * block : (bit + 1) * block] = 255 if (i >> bit) & 1 else 0
        out.append(frame)
    return out


def read_code(rgb: np.ndarray) -> int:
    """The frame index coded by :func:`coded_frames`, read from a decoded frame (of the same aspect)."""
    block = rgb.shape[1] // BITS
    value = 0
    for bit in range(BITS):
        patch = rgb[block // 4 : block * 3 // 4, bit * block + block // 4 : (bit + 1) * block - block // 4]
        if patch.mean() > 128:
            value |= 1 << bit
    return value


@dataclass(frozen=True)
class Clip:
    path: Path
    times: list[float]  # each source frame's time from the first frame, seconds
    size: tuple[int, int]


def constant_clip(path: Path, n: int, fps: int = 30, size: tuple[int, int] = (160, 128), seed: int = 0) -> Clip:
    write_video(path, coded_frames(n, size, seed), fps=fps, crf=18)
    return Clip(path, [i / fps for i in range(n)], size)


def variable_clip(path: Path, n: int, size: tuple[int, int] = (160, 128), seed: int = 1) -> Clip:
    """A genuinely variable-rate mp4 (what phones record): irregular gaps of 15 to 70 ms."""
    rng = np.random.default_rng(seed)
    gaps = rng.uniform(0.015, 0.070, n - 1)
    times = [0.0, *np.round(np.cumsum(gaps), 3).tolist()]
    write_video(path, coded_frames(n, size, seed), times=times, crf=18)
    return Clip(path, times, size)


def ntsc_clip(path: Path, n: int, size: tuple[int, int] = (160, 128), seed: int = 2) -> Clip:
    """Constant 29.97 frames a second: regular, but not 30."""
    fps = Fraction(30000, 1001)
    write_video(path, coded_frames(n, size, seed), fps=fps, crf=18)
    return Clip(path, [float(i / fps) for i in range(n)], size)


def item(
    clip_id: int,
    clip: Clip,
    *,
    task: str = "fold the shirt",
    spans: tuple[SpanLabel, ...] = (),
    campaign_id: int = 11,
) -> ReleaseItem:
    data = clip.path.read_bytes()
    with av.open(str(clip.path)) as c:
        s = c.streams.video[0]
        rate = float(s.average_rate) if s.average_rate else None
    return ReleaseItem(
        clip_id=clip_id,
        clip_sha256=hashlib.sha256(f"raw-{clip_id}".encode()).hexdigest(),
        media_path=clip.path,
        media_sha256=hashlib.sha256(data).hexdigest(),
        media_size=len(data),
        campaign_id=campaign_id,
        campaign_title="Folding laundry",
        task=task,
        worker=f"w-{clip_id % 3}",
        country="KE",
        recorded_at=CREATED,
        duration_s=clip.times[-1],
        width=clip.size[0],
        height=clip.size[1],
        fps=rate,
        qc={"checks": {"too_dark": "pass"}, "values": {"brightness": 0.5}},
        spans=spans,
        agreement={"alpha": 0.8, "mean_iou": 0.7, "annotators": 3, "round": 1},
        annotators=("a-1", "a-2", "a-3"),
        consent={"version": "2", "sha256": "c" * 64, "scopes": ["commercial", "redistribution"], "language": "en"},
        deid={"detectors": {"faces": "1"}},
    )


def spec(items: list[ReleaseItem], release_id: int = 5) -> ReleaseSpec:
    return ReleaseSpec(
        release_id=release_id,
        name="kitchen-chores",
        version=1,
        title="Kitchen chores",
        description="Egocentric clips of kitchen chores",
        organization="Lab",
        licence={"name": "egocrowd research licence", "terms": "research only", "uses": ["research"]},
        created_at=CREATED,
        items=tuple(items),
    )


class Counter:
    """A progress callback that counts."""

    def __init__(self) -> None:
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n


def clip_with_sound(path: Path, n: int, fps: int = 30, size: tuple[int, int] = (160, 128), seed: int = 3) -> Clip:
    """A constant-rate clip with an AAC sound track, as the de-identification may keep one."""
    frames = coded_frames(n, size, seed)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        tone = (0.2 * np.sin(np.arange(48000 * n // fps) * 2 * np.pi * 440 / 48000)).astype(np.float32)
        for start in range(0, len(tone) - 1024, 1024):
            chunk = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts = 48000, start
            for packet in audio.encode(chunk):
                out.mux(packet)
        for rgb in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode():
                out.mux(packet)
    return Clip(path, [i / fps for i in range(n)], size)

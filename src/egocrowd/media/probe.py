"""Probe a video file: what is it, and is it sane enough to decode?

``probe(path, limits)`` reads the container header and demuxes every packet (no decoding, except the
first frame to prove the stream decodes and to read its rotation). It never decodes the whole file,
so its cost grows with the packet count, not with the pixels.

How it stays safe and bounded, in order:

1. File size and magic bytes are checked before FFmpeg sees the file; the file is opened only
   through ``egocrowd.media.opener.open_media`` (allow-listed containers chosen from the magic
   bytes, no nested opens: a playlist naming another clip is ``video.unsupported_container``).
2. FFmpeg's probing is capped (``probesize`` / ``analyzeduration``).
3. The header's width, height and duration are checked against ``ProbeLimits`` *before* any frame
   is decoded, so a header claiming 100000x100000 or 10 hours is rejected without allocating a
   frame, and so is a picture too small to be a video.
4. The packet demux stops at ``limits.max_packets`` and at a wall-clock deadline.
5. For full isolation (a hostile file that makes FFmpeg itself loop or allocate), run it through
   ``egocrowd.media.bounded.call_bounded``: a spawned, recycled, memory-capped process with a
   deadline. The pipeline does that; tests call both.

Every rejection is a ``MediaError`` with a stable code (see ``REASON_CODES``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from egocrowd.errors import MediaError
from egocrowd.media.opener import open_media
from egocrowd.settings import Settings

PROBE_FORMAT_VERSION = 1

REASON_CODES = {
    "video.empty": "the file is empty",
    "video.not_video": "the file is not a video (an archive, a document, an image or audio only)",
    "video.unreadable": "the file could not be opened or its video stream could not be decoded",
    "video.truncated": "the file is cut short (the upload or the recording stopped early)",
    "video.too_large": "the picture or the file is absurdly large",
    "video.too_small": "the picture is too small to be a usable video",
    "video.unsupported_container": "the file is not MP4/MOV/3GP or Matroska/WebM (a playlist, "
    "a script, or another container)",
    "video.too_long": "the video is absurdly long",
    "video.too_short": "the video is too short to be useful",
    "video.timeout": "reading the file took too long",
    "video.out_of_memory": "reading the file needed too much memory",
}

_ISO_BMFF_TOP = {
    b"ftyp",
    b"moov",
    b"mdat",
    b"free",
    b"skip",
    b"wide",
    b"uuid",
    b"moof",
    b"mfra",
    b"meta",
    b"pdin",
    b"styp",
    b"sidx",
    b"prft",
    b"emsg",
}


def _setting(name: str) -> Any:
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class ProbeLimits:
    """Hard sanity limits (not campaign rules: those are ``QCThresholds``). The size and duration
    limits default to the ``media_*`` settings; ``from_settings`` reads the configured ones."""

    max_file_bytes: int = 8 * 1024**3
    max_width: int = _setting("media_max_width")
    max_height: int = _setting("media_max_height")
    max_pixels: int = _setting("media_max_pixels")
    min_side: int = _setting("media_min_side")
    max_duration_s: float = _setting("media_max_duration_s")
    min_duration_s: float = 0.5
    min_frames: int = 5
    max_packets: int = 2_000_000
    timeout_s: float = 60.0
    # FFmpeg's own probing budget (bytes / microseconds): keeps header reading short on junk.
    probesize: int = 20_000_000
    analyzeduration_us: int = 20_000_000

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ProbeLimits:
        s = settings or Settings()
        return cls(
            max_width=s.media_max_width,
            max_height=s.media_max_height,
            max_pixels=s.media_max_pixels,
            min_side=s.media_min_side,
            max_duration_s=s.media_max_duration_s,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProbeLimits:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown probe limits: {sorted(unknown)}")
        return cls(**data)


@dataclass
class AudioStream:
    codec: str
    sample_rate: int | None
    channels: int | None


@dataclass
class ProbeResult:
    path: str
    size_bytes: int
    container: str
    codec: str
    pix_fmt: str | None
    width: int  # coded width
    height: int
    rotation: int  # degrees clockwise, as the player turns the picture
    display_width: int  # after rotation: what the viewer sees
    display_height: int
    duration_s: float
    frame_count: int
    fps: float  # mean over the packet timestamps
    nominal_fps: float | None
    vfr: bool
    frame_interval_cv: float  # coefficient of variation of frame intervals (0 = perfectly constant)
    bit_rate: int | None
    audio: list[AudioStream] = field(default_factory=list)
    recorded_at: str | None = None
    format_version: int = PROBE_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        data = dict(data)
        data["audio"] = [AudioStream(**a) for a in data.get("audio", [])]
        return cls(**data)


def probe(path: str | os.PathLike[str], limits: ProbeLimits | None = None) -> ProbeResult:
    """Describe the video at ``path`` or raise ``MediaError`` with a stable code."""
    limits = limits or ProbeLimits.from_settings()
    path = Path(path)
    deadline = time.monotonic() + limits.timeout_s
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise MediaError(f"cannot read the file: {exc.strerror}", code="video.unreadable") from exc
    if size == 0:
        raise MediaError("the file is empty", code="video.empty")
    if size > limits.max_file_bytes:
        raise MediaError(f"the file is {size / 1e9:.1f} GB, over the limit", code="video.too_large")
    with open(path, "rb") as fh:
        head = fh.read(64)
    _check_y4m_header(head, limits)  # before the container check: "too large" says more
    truncated_box, track_sizes = _iso_bmff_scan(path, size)
    for w, h in track_sizes:
        # FFmpeg quietly zeroes sizes it finds absurd; the header's own claim is what we judge.
        check_picture_size(w, h, limits)
    try:
        with open_media(
            path, probesize=limits.probesize, analyzeduration_us=limits.analyzeduration_us, timeout_s=limits.timeout_s
        ) as container:
            return _probe_open(container, path, size, limits, deadline, truncated_box)
    except MediaError as exc:
        if truncated_box and exc.code == "video.unreadable":
            raise MediaError(
                "the file is cut short: the upload or the recording stopped early", code="video.truncated"
            ) from exc
        raise


def _probe_open(
    container: Any, path: Path, size: int, limits: ProbeLimits, deadline: float, truncated_box: bool
) -> ProbeResult:
    if not container.streams.video:
        what = "audio only" if container.streams.audio else "no picture"
        raise MediaError(f"the file has no video stream ({what})", code="video.not_video")
    stream = container.streams.video[0]
    cc = stream.codec_context
    width, height = int(cc.width or 0), int(cc.height or 0)
    if width <= 0 or height <= 0:
        raise MediaError("the video stream has no picture size", code="video.unreadable")
    # Header checks before decoding anything: a 100000x100000 header must not allocate a frame.
    check_picture_size(width, height, limits)
    header_duration = _header_duration(container, stream)
    if header_duration is not None and header_duration > limits.max_duration_s:
        raise MediaError(
            f"the video claims to be {header_duration / 3600:.1f} h long, over the "
            f"{limits.max_duration_s / 3600:.1f} h limit",
            code="video.too_long",
        )
    if min(width, height) < limits.min_side:
        raise MediaError(
            f"the picture is only {width}x{height} pixels (at least {limits.min_side} on the short side)",
            code="video.too_small",
        )

    # Demux (no decoding) to count frames and read their timestamps: cheap and exact, and it is how
    # variable frame rate and truncation show up.
    pts: list[int] = []
    keyframe_seen = False
    demux_error: Exception | None = None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 and packet.pts is None:
                continue  # the flush packet
            if packet.pts is not None:
                pts.append(packet.pts)
            keyframe_seen = keyframe_seen or packet.is_keyframe
            if len(pts) > limits.max_packets:
                raise MediaError("the video has too many frames", code="video.too_long")
            if len(pts) % 256 == 0 and time.monotonic() > deadline:
                raise MediaError("reading the file took too long", code="video.timeout")
            if pts and stream.time_base is not None and (pts[-1] - pts[0]) * stream.time_base > limits.max_duration_s:
                raise MediaError("the video is longer than the limit", code="video.too_long")
    except MediaError:
        raise
    except (av.FFmpegError, OSError) as exc:
        demux_error = exc

    if not pts:
        if truncated_box or demux_error is not None:
            raise MediaError("the file is cut short: no complete frame", code="video.truncated")
        raise MediaError("the video has no frames", code="video.empty")

    tb = stream.time_base or Fraction(1, 90000)
    times = sorted(float(p * tb) for p in pts)
    n = len(times)
    intervals = [b - a for a, b in zip(times, times[1:]) if b > a]
    mean_dt = (sum(intervals) / len(intervals)) if intervals else 0.0
    duration = (times[-1] - times[0] + mean_dt) if n > 1 else 0.0
    fps = (1.0 / mean_dt) if mean_dt > 0 else 0.0
    cv = 0.0
    if len(intervals) > 1 and mean_dt > 0:
        var = sum((d - mean_dt) ** 2 for d in intervals) / len(intervals)
        cv = math.sqrt(var) / mean_dt
    # Phones record variable frame rate: call it VFR when intervals wander by more than 10 %
    # (timestamp rounding in a constant-rate file stays far below that).
    vfr = cv > 0.10 or (bool(intervals) and (max(intervals) - min(intervals)) > 0.5 * mean_dt and cv > 0.03)

    # A header that promises more than the packets deliver means the file was cut short.
    promised = header_duration if header_duration is not None else None
    if (
        truncated_box
        or demux_error is not None
        or (promised is not None and promised > 2.0 and duration < 0.9 * promised - 0.5)
    ):
        raise MediaError(
            f"the file is cut short: {duration:.1f} s of {(promised or duration):.1f} s are there",
            code="video.truncated",
        )
    if duration < limits.min_duration_s or n < limits.min_frames:
        raise MediaError(f"the video is only {duration:.2f} s ({n} frames) long", code="video.too_short")
    if not keyframe_seen:
        raise MediaError("the video has no key frame, so it cannot be decoded", code="video.unreadable")

    rotation = _first_frame_rotation(container, stream)
    if rotation % 180:
        display_w, display_h = height, width
    else:
        display_w, display_h = width, height
    nominal = float(stream.average_rate) if stream.average_rate else None
    audio = [
        AudioStream(
            codec=a.codec_context.name,
            sample_rate=a.codec_context.sample_rate or None,
            channels=getattr(a.codec_context, "channels", None) or None,
        )
        for a in container.streams.audio
    ]
    return ProbeResult(
        path=str(path),
        size_bytes=size,
        container=container.format.name,
        codec=cc.name,
        pix_fmt=cc.pix_fmt,
        width=width,
        height=height,
        rotation=rotation,
        display_width=display_w,
        display_height=display_h,
        duration_s=round(duration, 4),
        frame_count=n,
        fps=round(fps, 3),
        nominal_fps=round(nominal, 3) if nominal else None,
        vfr=bool(vfr),
        frame_interval_cv=round(cv, 4),
        bit_rate=container.bit_rate or None,
        audio=audio,
        recorded_at=_recorded_at(container, stream),
    )


def _header_duration(container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / 1_000_000)
    return None


def display_turn(frame: Any) -> int:
    """The clockwise turn (0, 90, 180, 270) a player applies to a decoded frame. FFmpeg's
    display-matrix angle is counter-clockwise; this is the convention of the old ``rotate`` tag
    phones wrote (iPhone portrait = 90). Every decoding pass asks this one function."""
    return int(round(-(getattr(frame, "rotation", 0) or 0))) % 360


def _first_frame_rotation(container: Any, stream: Any) -> int:
    """Decode one frame: proves the stream decodes, and gives the display rotation."""
    container.seek(0, stream=stream)
    try:
        for frame in container.decode(stream):
            return display_turn(frame)
    except (av.FFmpegError, MemoryError) as exc:
        raise MediaError(f"the video stream could not be decoded ({_short(exc)})", code="video.unreadable") from exc
    raise MediaError("no frame of the video could be decoded", code="video.unreadable")


def _recorded_at(container: Any, stream: Any) -> str | None:
    # Phones write these; Apple's key carries the local time zone, so prefer it.
    for meta in (container.metadata, stream.metadata):
        for key in ("com.apple.quicktime.creationdate", "creation_time", "date"):
            value = meta.get(key)
            if value and not value.startswith("1970") and not value.startswith("1904"):
                return str(value)
    return None


def _check_y4m_header(head: bytes, limits: ProbeLimits) -> None:
    # Y4M is not an accepted container, but an absurd size is the better reason to give.
    if not head.startswith(b"YUV4MPEG2 "):
        return
    fields = head.split(b"\n", 1)[0].split(b" ")[1:]
    dims = {f[:1]: f[1:] for f in fields if f[:1] in (b"W", b"H")}
    try:
        w, h = int(dims.get(b"W", b"0")), int(dims.get(b"H", b"0"))
    except ValueError:
        return
    check_picture_size(w, h, limits)


def check_picture_size(w: int, h: int, limits: ProbeLimits) -> None:
    """``video.too_large`` when a picture of ``w`` x ``h`` is over the limits."""
    if w > limits.max_width or h > limits.max_height or w * h > limits.max_pixels:
        raise MediaError(
            f"the picture is {w}x{h} pixels, over the limit ({limits.max_width}x"
            f"{limits.max_height}, {limits.max_pixels / 1e6:.1f} megapixels)",
            code="video.too_large",
        )


def _iso_bmff_scan(path: Path, size: int) -> tuple[bool, list[tuple[int, int]]]:
    """Walk an MP4/MOV's top-level boxes without FFmpeg: (does a box run past the end of the file,
    i.e. a cut-short upload; the picture sizes its track headers claim). Anything that is not
    ISO BMFF gives (False, [])."""
    sizes: list[tuple[int, int]] = []
    try:
        with open(path, "rb") as fh:
            offset = 0
            first = True
            for _ in range(10_000):
                if offset + 8 > size:
                    return False, sizes
                fh.seek(offset)
                header = fh.read(16)
                box_size = int.from_bytes(header[:4], "big")
                kind = header[4:8]
                if first and kind not in (b"ftyp", b"wide", b"free", b"mdat", b"moov", b"skip"):
                    return False, sizes
                first = False
                if kind not in _ISO_BMFF_TOP:
                    return False, sizes  # garbage or something we do not know: FFmpeg judges
                header_len = 8
                if box_size == 1:
                    box_size = int.from_bytes(header[8:16], "big")
                    header_len = 16
                elif box_size == 0:
                    return False, sizes  # "runs to the end of the file"
                if box_size < header_len:
                    return False, sizes
                if offset + box_size > size:
                    return True, sizes
                if kind == b"moov" and box_size <= 256 * 1024 * 1024:
                    fh.seek(offset + header_len)
                    moov = fh.read(box_size - header_len)
                    sizes += _track_sizes(moov)
                    _refuse_external_data(moov)
                offset += box_size
    except OSError:
        return False, sizes
    return False, sizes


def _track_sizes(moov: bytes) -> list[tuple[int, int]]:
    """Width and height from every ``tkhd`` under ``moov/trak`` (16.16 fixed point, last 8 bytes)."""
    out = []
    pos = 0
    while pos + 8 <= len(moov):
        n = int.from_bytes(moov[pos : pos + 4], "big")
        kind = moov[pos + 4 : pos + 8]
        if n < 8 or pos + n > len(moov):
            break
        if kind == b"trak":
            inner = moov[pos + 8 : pos + n]
            ipos = 0
            while ipos + 8 <= len(inner):
                m = int.from_bytes(inner[ipos : ipos + 4], "big")
                if m < 8 or ipos + m > len(inner):
                    break
                if inner[ipos + 4 : ipos + 8] == b"tkhd" and m >= 92:
                    box = inner[ipos : ipos + m]
                    out.append((int.from_bytes(box[-8:-4], "big") >> 16, int.from_bytes(box[-4:], "big") >> 16))
                ipos += m
        pos += n
    return out


def _boxes(buf: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, payload) of each box directly inside ``buf`` (stops at the first malformed one)."""
    pos = 0
    while pos + 8 <= len(buf):
        n = int.from_bytes(buf[pos : pos + 4], "big")
        if n < 8 or pos + n > len(buf):
            return
        yield buf[pos + 4 : pos + 8], buf[pos + 8 : pos + n]
        pos += n


def _refuse_external_data(moov: bytes) -> None:
    """A track whose samples live in another file (a ``dref`` entry without the self-contained
    flag, e.g. a QuickTime alias to a neighbouring blob) is refused. ``open_media`` would not
    follow it either (``enable_drefs=0``); this names the reason."""
    level = [moov]
    for step in (b"trak", b"mdia", b"minf", b"dinf", b"dref"):
        level = [payload for parent in level for kind, payload in _boxes(parent) if kind == step]
    for dref in level:
        # A full box (version + flags), an entry count, then entries that are full boxes too.
        for _kind, entry in _boxes(dref[8:]):
            if len(entry) >= 4 and not entry[3] & 1:
                raise MediaError(
                    "the video's data is in another file; only self-contained videos are accepted",
                    code="video.unsupported_container",
                )


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:160]

"""Video for exporters that need one constant frame rate (LeRobot): inspect a clip's timing,
copy its packets into a concatenated file when it already is what the file needs, or decode,
resample (nearest earlier frame per output tick) and encode it once into that file.

Clips are opened only through :func:`egocrowd.media.opener.open_media` (the platform's
allow-listed demuxers); the concatenated files are ours and written with PyAV directly. FFmpeg's
concat demuxer (what LeRobot itself uses) is never used: it opens files named inside a script,
which the opener refuses on principle.

A file holds episodes of one kind only: packets copied from clips whose H.264 parameter sets,
size, pixel format and time base are identical (one decoder configuration fits them all), or
frames from one x264 encoder. A clip that fits neither the file being written nor the file's
size limit starts the next file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from egocrowd.errors import MediaError
from egocrowd.media.opener import open_media
from egocrowd.releases.exporters._mp4 import JoinedMp4, Track

#: how many frames of a re-encoded clip feed the image statistics (at most), evenly spread
STATS_FRAMES = 8
#: the side the statistics' frames are shrunk to (about, keeping the aspect), as LeRobot does
STATS_SIDE = 150


@dataclass(slots=True)
class ClipTiming:
    """What one demuxing pass (no decoding) tells about a clip's video stream."""

    codec: str
    width: int
    height: int
    pix_fmt: str | None
    time_base: Fraction
    extradata: bytes
    pts: list[int] | np.ndarray  # presentation times of every packet, sorted, in time_base units
    first_dts: int | None
    has_audio: bool = False

    @property
    def frames(self) -> int:
        return len(self.pts)

    def times(self) -> list[float]:
        """Each frame's time in seconds from the clip's first frame, in presentation order."""
        if not len(self.pts):
            return []
        pts = np.asarray(self.pts, dtype=np.int64)
        num, den = self.time_base.numerator, self.time_base.denominator
        return list(((pts - pts[0]) * num / den).tolist())  # each an exact int over den, rounded once

    def ticks_per_frame(self, fps: int) -> int | None:
        """The packet spacing in time-base units when the clip is exactly ``fps`` frames a second."""
        ticks = Fraction(1, fps) / self.time_base
        if ticks.denominator != 1:
            return None
        return int(ticks)

    def copy_reason(self, fps: int, size: tuple[int, int]) -> str | None:
        """Why this clip's packets cannot go into a ``fps`` H.264 file of ``size`` as they are,
        or None when they can."""
        if self.codec != "h264":
            return f"codec {self.codec}, not H.264"
        if self.pix_fmt != "yuv420p":
            return f"pixel format {self.pix_fmt}, not yuv420p"
        if (self.width, self.height) != size:
            return f"size {self.width}x{self.height}, not {size[0]}x{size[1]}"
        if not self.extradata:
            return "no H.264 parameter sets in the container"
        ticks = self.ticks_per_frame(fps)
        if ticks is None or not len(self.pts):
            return f"time base {self.time_base} cannot hold {fps} frames a second exactly"
        steps = np.diff(np.asarray(self.pts, dtype=np.int64))
        if steps.size and not (steps == ticks).all():
            return f"not a constant {fps} frames a second"
        return None

    def signature(self) -> tuple[Any, ...]:
        return ("copy", self.width, self.height, self.pix_fmt, self.time_base, self.extradata)


#: clips up to this size keep their packets in memory between inspecting and copying them (one
#: read of the file); bigger ones are read twice
KEEP_PACKETS_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class ClipRead:
    timing: ClipTiming
    stream: Any  # the clip's video stream (usable while the clip is open)
    packets: list[Any] | None  # the demuxed packets, in file order, when kept
    keyframe: Any | None  # the first keyframe, decoded, when asked for


@contextmanager
def inspect_clip(path: Path, *, keep_packets: bool = False, sample: bool = False) -> Iterator[ClipRead]:
    """Open the clip and demux its first video stream (decoding at most its first keyframe, for
    ``sample``); ``MediaError`` when it will not open. Kept packets are valid inside the block."""
    # Probing decodes a few frames to learn what the demuxer already knows, except the pixel
    # format, which the H.264 parameter sets say (h264_pix_fmt): so probing skips inter frames.
    with open_media(path, decoder_options={"skip_frame": "nonkey"}) as container:
        keep = keep_packets and Path(path).stat().st_size <= KEEP_PACKETS_BYTES
        if not container.streams.video:
            raise MediaError(f"{Path(path).name} has no video stream", code="video.not_video")
        stream = container.streams.video[0]
        cc = stream.codec_context
        keyframe = None
        if keep:
            # the demuxer ends with an empty packet that has no time
            packets = [p for p in container.demux(stream) if p.pts is not None]
            pts = sorted([p.pts for p in packets])
            first_dts = packets[0].dts if packets else None
            if sample:
                key = next((p for p in packets if p.is_keyframe), None)
                keyframe = _decode_one(cc, key) if key is not None else None
        else:
            packets, pts, first_dts = [], [], None
            for packet in container.demux(stream):
                if packet.pts is None:
                    continue
                if first_dts is None:
                    first_dts = packet.dts
                pts.append(packet.pts)
                if sample and keyframe is None and packet.is_keyframe:
                    keyframe = _decode_one(cc, packet)
            pts.sort()
        timing = ClipTiming(
            codec=stream.codec.name,
            width=cc.width,
            height=cc.height,
            pix_fmt=cc.pix_fmt or (h264_pix_fmt(bytes(cc.extradata or b"")) if stream.codec.name == "h264" else None),
            time_base=Fraction(stream.time_base),
            extradata=bytes(cc.extradata or b""),
            pts=pts,
            first_dts=first_dts,
            has_audio=bool(container.streams.audio),
        )
        yield ClipRead(timing, stream, packets if keep else None, keyframe)


def track_timing(track: Track) -> ClipTiming:
    """What :func:`inspect_clip` would say of the clip, from its sample table alone."""
    pts = track.pts()
    return ClipTiming(
        codec="h264",  # read_track takes avc1 only
        width=track.width,
        height=track.height,
        pix_fmt=h264_pix_fmt(track.extradata),
        time_base=track.time_base,
        extradata=track.extradata,
        pts=pts,
        first_dts=-track.shift,
        has_audio=track.has_audio,
    )


def first_keyframe(path: Path) -> Any | None:
    """The clip's first keyframe, decoded (for the image statistics of a joined clip)."""
    with open_media(path, decoder_options={"skip_frame": "nonkey"}) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is not None and packet.is_keyframe:
                return _decode_one(stream.codec_context, packet)
    return None


def _decode_one(cc: Any, packet: Any) -> Any | None:
    """One keyframe decoded on its own (the decoder is drained: nothing else is decoded after it)."""
    try:
        frames = list(cc.decode(packet)) or list(cc.decode(None))
    except av.FFmpegError:
        return None
    return frames[0] if frames else None


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def h264_pix_fmt(avcc: bytes) -> str | None:
    """The pixel format an H.264 stream's first sequence parameter set declares ("yuv420p" for
    8-bit 4:2:0), read from MP4's avcC box; None when it cannot be read. Written here because
    FFmpeg only says it after decoding frames (ISO/IEC 14496-10 7.3.2.1.1, 14496-15 5.3.3.1)."""
    if len(avcc) < 8 or avcc[0] != 1 or avcc[5] & 0x1F == 0:
        return None
    size = int.from_bytes(avcc[6:8], "big")
    nal = avcc[8 : 8 + size]
    if len(nal) < 4 or nal[0] & 0x1F != 7:
        return None
    rbsp = nal[1:].replace(b"\x00\x00\x03", b"\x00\x00")  # emulation prevention bytes
    profile = rbsp[0]
    bits = "".join(f"{b:08b}" for b in rbsp[3:40])
    pos = 0

    def ue() -> int:
        nonlocal pos
        zeros = 0
        while pos < len(bits) and bits[pos] == "0":
            zeros += 1
            pos += 1
        value = int(bits[pos : pos + zeros + 1] or "1", 2) - 1
        pos += zeros + 1
        return value

    try:
        ue()  # seq_parameter_set_id
        chroma, depth_luma, depth_chroma = 1, 0, 0
        if profile in _HIGH_PROFILES:
            chroma = ue()
            if chroma == 3:
                pos += 1  # separate_colour_plane_flag
            depth_luma, depth_chroma = ue(), ue()
    except ValueError:
        return None
    if pos > len(bits):
        return None
    names = {0: "gray", 1: "yuv420p", 2: "yuv422p", 3: "yuv444p"}
    name = names.get(chroma)
    if name is None:
        return None
    depth = 8 + max(depth_luma, depth_chroma)
    return name if depth == 8 else f"{name}{depth}le"


@dataclass(slots=True)
class ImageStats:
    """Per-channel sums over sampled RGB frames (0..1), merged over a whole dataset."""

    count: int = 0  # frames
    pixels: int = 0
    total: np.ndarray = field(default_factory=lambda: np.zeros(3))
    total_sq: np.ndarray = field(default_factory=lambda: np.zeros(3))
    low: np.ndarray = field(default_factory=lambda: np.ones(3))
    high: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def add(self, frame: Any) -> None:
        w, h = frame.width, frame.height
        scale = max(1, max(w, h) // STATS_SIDE)
        small = frame.reformat(width=max(2, w // scale), height=max(2, h // scale), format="rgb24")
        rgb = small.to_ndarray().reshape(-1, 3).astype(np.float64) / 255.0
        self.count += 1
        self.pixels += rgb.shape[0]
        self.total += rgb.sum(axis=0)
        self.total_sq += (rgb * rgb).sum(axis=0)
        self.low = np.minimum(self.low, rgb.min(axis=0))
        self.high = np.maximum(self.high, rgb.max(axis=0))

    def as_lerobot(self) -> dict[str, Any]:
        """LeRobot's per-channel image statistics: shape (3, 1, 1) each, ``count`` shape (1,)."""
        if not self.pixels:
            return {}
        mean = self.total / self.pixels
        std = np.sqrt(np.maximum(self.total_sq / self.pixels - mean * mean, 0.0))

        def col(v: np.ndarray) -> list[list[list[float]]]:
            return [[[float(x)]] for x in v]

        return {"min": col(self.low), "max": col(self.high), "mean": col(mean), "std": col(std), "count": [self.count]}


@dataclass(slots=True)
class Placed:
    """Where one clip went: its frames in the file and each frame's time in the source."""

    frames: int
    source_times: list[float]
    copied: bool
    reason: str | None = None  # why it was re-encoded


class VideoFile:
    """One concatenated mp4 being written: copied packets of one kind, or one encoder's frames."""

    def __init__(
        self, path: Path, fps: int, *, copy_of: ClipTiming | None, size: tuple[int, int], encoder: Mapping[str, Any]
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fps = fps
        self.size = size
        self.frames = 0
        self.bytes = 0  # of video packets written so far
        self.signature: tuple[Any, ...] = copy_of.signature() if copy_of else ("encode", size)
        self._container = av.open(str(path), "w", format="mp4")
        self._last_dts: int | None = None
        self._stream: Any = None
        self._encoder = encoder

    # -- copying ----------------------------------------------------------------------------------
    def fits_copy(self, timing: ClipTiming, fps: int) -> bool:
        """The clip's packets can follow what is in the file with no decoder change and growing dts."""
        if self.signature != timing.signature():
            return False
        if self._last_dts is None or timing.first_dts is None:
            return True
        ticks = timing.ticks_per_frame(fps) or 0
        first = timing.first_dts - timing.pts[0] + self.frames * ticks
        return first > self._last_dts

    def copy(self, path: Path, read: ClipRead) -> Placed:
        """Append the clip's packets, shifted to follow what the file holds; no decoding."""
        timing = read.timing
        ticks = timing.ticks_per_frame(self.fps)
        assert ticks is not None
        offset = self.frames * ticks - timing.pts[0]
        if read.packets is not None:
            self._copy_packets(read.packets, offset, ticks, template=read.stream)
        else:
            with open_media(path) as container:
                source = container.streams.video[0]
                self._copy_packets(
                    (p for p in container.demux(source) if p.pts is not None), offset, ticks, template=source
                )
        self.frames += timing.frames
        return Placed(timing.frames, timing.times(), copied=True)

    def _copy_packets(self, packets: Any, offset: int, ticks: int, template: Any) -> None:
        for packet in packets:
            if self._stream is None:
                self._stream = self._container.add_stream_from_template(template)
                self._stream.time_base = template.time_base
            packet.dts = (packet.dts if packet.dts is not None else packet.pts) + offset
            packet.pts += offset
            packet.duration = ticks
            packet.stream = self._stream
            self._last_dts = packet.dts
            self.bytes += packet.size
            self._container.mux(packet)

    # -- encoding ---------------------------------------------------------------------------------
    def _encoding_stream(self) -> Any:
        if self._stream is None:
            s = self._container.add_stream(self._encoder.get("codec", "libx264"), rate=self.fps)
            s.width, s.height = self.size
            s.pix_fmt = "yuv420p"
            s.codec_context.time_base = Fraction(1, self.fps)
            s.options = {k: str(v) for k, v in self._encoder.items() if k in ("crf", "preset", "g", "tune")}
            self._stream = s
        return self._stream

    def resample(self, path: Path, stats: ImageStats, reason: str | None) -> Placed:
        """Decode the clip and encode one frame per tick of ``fps``: the latest source frame shown
        at or before that tick ("nearest earlier frame"), as a player would show it."""
        stream = self._encoding_stream()
        w, h = self.size
        source_times: list[float] = []
        out_frames = 0
        with open_media(path) as container:
            source = container.streams.video[0]
            source.thread_type = "AUTO"
            tb = Fraction(source.time_base) if source.time_base else Fraction(1, 1000)
            decoded = _decoded(container, source, tb)
            sample_at: set[int] = set()
            held = None  # (frame converted for the encoder, its source time)
            intervals: list[float] = []
            for frame, t in decoded:
                if held is not None:
                    intervals.append(t - held[1])
                    out_frames = self._emit_until(stream, held, t, out_frames, source_times, stats, sample_at)
                picture = frame.reformat(width=w, height=h, format="yuv420p")
                picture.pict_type = av.video.frame.PictureType.NONE  # the encoder places keyframes
                held = (picture, t)
            if held is None:
                return Placed(0, [], copied=False, reason=reason)
            step = float(np.median(intervals)) if intervals else 1.0 / self.fps
            end = held[1] + min(step, 1.0)  # the last frame is shown for one usual frame interval
            out_frames = self._emit_until(stream, held, end, out_frames, source_times, stats, sample_at)
            if out_frames == 0:  # a single frame shorter than a tick: still one frame
                out_frames = self._emit(stream, held, out_frames, source_times, stats, sample_at)
        return Placed(out_frames, source_times, copied=False, reason=reason)

    def _emit_until(
        self, stream: Any, held: Any, until: float, n: int, times: list[float], stats: ImageStats, sample_at: set[int]
    ) -> int:
        # ticks k/fps strictly before ``until`` (with a microsecond of slack for float times)
        while Fraction(n, self.fps) < Fraction(until).limit_denominator(1_000_000) - Fraction(1, 1_000_000):
            n = self._emit(stream, held, n, times, stats, sample_at)
        return n

    def _emit(self, stream: Any, held: Any, n: int, times: list[float], stats: ImageStats, sample_at: set[int]) -> int:
        frame, t = held
        frame.pts = self.frames
        frame.time_base = Fraction(1, self.fps)
        for packet in stream.encode(frame):
            self.bytes += packet.size
            self._container.mux(packet)
        if n % max(1, self.fps) == 0 and len(times) // max(1, self.fps) < STATS_FRAMES:
            stats.add(frame)  # one frame a second, at most STATS_FRAMES a clip
        times.append(t)
        self.frames += 1
        return n + 1

    # -- closing ----------------------------------------------------------------------------------
    def close(self) -> None:
        if self._stream is not None and self.signature[0] == "encode":
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        self._container.close()


class JoinedFile:
    """One concatenated mp4 of whole clips' sample data, copied in the kernel (``_mp4``): the
    plain case of copying, where no packet passes through the process."""

    def __init__(self, path: Path, fps: int, track: Track, timing: ClipTiming):
        self.path = path
        self.fps = fps
        self.frames = 0
        self.signature: tuple[Any, ...] = ("join", *timing.signature()[1:], track.shift)
        self._mp4 = JoinedMp4(path, track)

    @property
    def bytes(self) -> int:
        return self._mp4.data_bytes

    def fits(self, track: Track, timing: ClipTiming) -> bool:
        return self.signature == ("join", *timing.signature()[1:], track.shift)

    def append(self, path: Path, track: Track, timing: ClipTiming) -> Placed:
        ticks = timing.ticks_per_frame(self.fps)
        assert ticks is not None
        try:
            self._mp4.append(track, path, ticks)
        except OSError as exc:
            raise _uncopied(exc) from exc
        self.frames += timing.frames
        return Placed(timing.frames, timing.times(), copied=True)

    def close(self) -> None:
        try:
            self._mp4.close()
        except OSError as exc:
            raise _uncopied(exc) from exc


def _uncopied(exc: OSError) -> MediaError:
    return MediaError(f"{Path(exc.filename or '').name} could not be copied: {exc.strerror}", code="video.unreadable")


def joinable(track: Track, timing: ClipTiming, fps: int) -> bool:
    """Every sample lasts one tick of ``fps`` (the last one may differ: it is rewritten), so the
    joined file's uniform durations keep each frame's time."""
    ticks = timing.ticks_per_frame(fps)
    return ticks is not None and bool((track.durations[:-1] == ticks).all())


def _decoded(container: Any, source: Any, tb: Fraction) -> Iterator[tuple[Any, float]]:
    """Decoded frames with their time in seconds from the first frame; frames whose time does
    not move forward (broken or repeated timestamps) are dropped."""
    first = None
    last = None
    for frame in container.decode(source):
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None:
            continue
        if first is None:
            first = pts
        t = float((pts - first) * tb)
        if last is not None and t <= last:
            continue
        last = t
        yield frame, t


def labels_at(spans: list[tuple[int, int, int]], times_ms: np.ndarray) -> np.ndarray:
    """For each time, the index of the span covering it (the one that started last), or -1.
    ``spans`` are (start_ms, end_ms, index) sorted by start."""
    out = np.full(len(times_ms), -1, dtype=np.int64)
    for start, end, index in spans:  # a later start overwrites an earlier one
        out[(times_ms >= start) & (times_ms < end)] = index
    return out


__all__ = [
    "ClipRead",
    "ClipTiming",
    "ImageStats",
    "JoinedFile",
    "Placed",
    "VideoFile",
    "first_keyframe",
    "h264_pix_fmt",
    "inspect_clip",
    "joinable",
    "labels_at",
    "track_timing",
]

"""One decoding pass -> per-frame statistics (``ClipStats``) that every QC check reads.

The pure part is ``FrameAnalyzer``: feed it grayscale frames (and, when it asks, a colour picture
for the hands detector) and it accumulates small arrays; it knows nothing about files.
``analyze_video`` is the I/O edge: it decodes with PyAV (through ``open_media``, the one safe way
to open an upload) and feeds the analyzer.

Cost per frame is kept to a fraction of a decode: the luma plane is taken without colour
conversion, shrunk to ``small_width`` pixels wide (brightness, frame differences, global motion),
and only sampled frames get more work (sharpness at ``sharp_fps``, perceptual hashes at
``hash_fps``, the palm detector at ``hands_fps``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np
from av.video.reformatter import VideoReformatter

from egocrowd.errors import MediaError
from egocrowd.media.fingerprint import Fingerprint, phash64
from egocrowd.media.opener import open_media
from egocrowd.media.probe import ProbeLimits, check_picture_size, display_turn

ANALYZER_VERSION = 1

# Luma levels (0..255) that define a dark and a blown-out pixel.
DARK_LEVEL = 35
BRIGHT_LEVEL = 245


@dataclass(frozen=True)
class AnalysisConfig:
    small_width: int = 160
    sharp_width: int = 480
    sharp_fps: float = 4.0
    hash_fps: float = 2.0
    hands_fps: float = 0.5
    max_hand_samples: int = 40
    decode_threads: int = 0  # 0 = FFmpeg decides


@dataclass
class ClipStats:
    """Everything the checks need, as plain numbers and numpy arrays (times in seconds)."""

    width: int = 0  # display size (after rotation)
    height: int = 0
    fps: float = 0.0  # mean rate of the decoded frames
    duration_s: float = 0.0
    n_frames: int = 0
    decode_errors: int = 0
    packets: int = 0
    t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    luma: np.ndarray = field(default_factory=lambda: np.zeros(0))  # mean luma per frame
    dark_frac: np.ndarray = field(default_factory=lambda: np.zeros(0))  # pixels <= DARK_LEVEL
    bright_frac: np.ndarray = field(default_factory=lambda: np.zeros(0))  # pixels >= BRIGHT_LEVEL
    diff: np.ndarray = field(default_factory=lambda: np.zeros(0))  # mean |frame - previous|
    shift: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # global motion, x/y as
    shift_ok: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # fraction of width
    sharp_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sharpness: np.ndarray = field(default_factory=lambda: np.zeros(0))
    sharp_exposed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    hash_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    hand_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hand_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hands_detector: str | None = None  # None: no detector installed, hands not measured


def sharpness_of(gray: np.ndarray) -> float:
    """Focus measure: variance of the Laplacian over the variance of the picture.

    Dividing by the picture's own contrast keeps a dim but sharp frame from reading as blurred.
    Sharp footage scores ~0.05-1, defocused or smeared footage below ~0.01."""
    g = gray.astype(np.float32)
    contrast = float(cv2.meanStdDev(g)[1][0, 0]) ** 2  # OpenCV's variance: 6x numpy's speed
    if contrast < 4.0:
        return 0.0  # flat frame: nothing to be sharp about
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    return float(cv2.meanStdDev(lap)[1][0, 0]) ** 2 / contrast


# Frames whose per-frame statistics are computed together, in one numpy pass (a 160x90 chunk
# is 1.8 MB; the memory stays flat however long the clip is).
_CHUNK = 128


class FrameAnalyzer:
    """Accumulates ``ClipStats`` from frames fed in display order.

    ``add`` takes a full-size luma plane; ``analyze_video`` instead hands over pictures the
    decoder's scaler already shrank (``add_small``), asking ``wants_sharp``/``wants_colour`` first
    so that only sampled frames are scaled to the larger sizes. Per frame only the small picture
    is kept and its motion measured; brightness, exposure and frame differences are computed a
    chunk of frames at a time."""

    def __init__(
        self,
        width: int,
        height: int,
        config: AnalysisConfig | None = None,
        hand_scorer: Callable[[np.ndarray], float] | None = None,
        hands_detector_name: str | None = None,
        expected_duration_s: float = 0.0,
    ) -> None:
        self.config = config or AnalysisConfig()
        self.width, self.height = width, height
        sw = min(self.config.small_width, width)
        self.small_size = (sw, max(8, int(round(sw * height / width))))
        shw = min(self.config.sharp_width, width)
        self.sharp_size = (shw, max(8, int(round(shw * height / width))))
        self._window = cv2.createHanningWindow(self.small_size, cv2.CV_32F)
        self._prev: np.ndarray | None = None
        self._next_sharp = self._next_hash = self._next_hand = 0.0
        self.hand_scorer = hand_scorer
        self.hands_detector_name = hands_detector_name if hand_scorer else None
        hand_fps = self.config.hands_fps
        if expected_duration_s > 0 and self.config.max_hand_samples:
            # Long clips: spread a fixed budget of detector runs over the whole clip.
            hand_fps = min(hand_fps, self.config.max_hand_samples / expected_duration_s)
        self._hand_step = 1.0 / hand_fps if hand_fps > 0 else float("inf")
        self._chunk = np.empty((_CHUNK, self.small_size[1], self.small_size[0]), np.uint8)
        self._in_chunk = 0
        self._last_small: np.ndarray | None = None  # the frame before the chunk, for its difference
        self._t: list[float] = []
        self._frame_stats: list[np.ndarray] = []  # per chunk: (n, 5) mean, dark, bright, diff, std
        self._shift: list[tuple[float, float]] = []
        self._response: list[float] = []
        self._sharp_i: list[int] = []
        self._sharp: list[float] = []
        self._hash_t: list[float] = []
        self._hashes: list[int] = []
        self._hand_t: list[float] = []
        self._hand: list[float] = []

    @property
    def n_seen(self) -> int:
        return len(self._t)

    def wants_colour(self, t: float) -> bool:
        return self.hand_scorer is not None and t >= self._next_hand

    def wants_sharp(self, t: float) -> bool:
        return t >= self._next_sharp

    def shrink(self, luma: np.ndarray) -> np.ndarray:
        """``luma`` at ``small_size`` (any orientation: the target follows the picture's shape)."""
        h, w = luma.shape[:2]
        size = self.small_size if (w >= h) == (self.width >= self.height) else self.small_size[::-1]
        # Large frames: skip pixels first (a free strided view), then area-average the rest; the
        # statistics do not need the full-resolution average and this is 10x cheaper.
        step = max(1, max(w, h) // (2 * max(size)))
        src = luma[::step, ::step] if step > 1 else luma
        return cv2.resize(src, size, interpolation=cv2.INTER_AREA)

    def add(self, t: float, luma: np.ndarray, rgb: np.ndarray | None = None) -> None:
        """Feed one frame: full-size luma plane (uint8, display orientation) at time ``t``."""
        mid = None
        if self.wants_sharp(t):
            mid = (
                luma
                if luma.shape[1] == self.sharp_size[0]
                else cv2.resize(luma, self.sharp_size, interpolation=cv2.INTER_AREA)
            )
        self.add_small(t, self.shrink(luma), mid, rgb)

    def add_small(
        self, t: float, small: np.ndarray, mid: np.ndarray | None = None, rgb: np.ndarray | None = None
    ) -> None:
        """Feed one frame already shrunk: ``small`` at ``small_size``; ``mid`` at ``sharp_size``
        when ``wants_sharp(t)``; ``rgb`` (any size) when ``wants_colour(t)``."""
        i = len(self._t)
        self._t.append(t)
        self._chunk[self._in_chunk] = small
        self._in_chunk += 1
        small_f = small.astype(np.float32)
        if self._prev is None:
            self._shift.append((0.0, 0.0))
            self._response.append(0.0)
        else:
            # OpenCV's phaseCorrelate overwrites its inputs when their size is DFT-friendly: give
            # it a copy of the current frame (the previous one is discarded right after).
            (dx, dy), response = cv2.phaseCorrelate(self._prev, small_f.copy(), self._window)
            self._shift.append((dx / self.small_size[0], dy / self.small_size[0]))
            self._response.append(response)
        self._prev = small_f
        if mid is not None and self.wants_sharp(t):
            self._next_sharp = t + 1.0 / self.config.sharp_fps
            self._sharp_i.append(i)
            self._sharp.append(sharpness_of(mid))
        if t >= self._next_hash:
            self._next_hash = t + 1.0 / self.config.hash_fps
            h = phash64(small)
            if h is not None:
                self._hash_t.append(t)
                self._hashes.append(h)
        if rgb is not None and self.hand_scorer is not None and t >= self._next_hand:
            self._next_hand = t + self._hand_step
            self._hand_t.append(t)
            self._hand.append(float(self.hand_scorer(rgb)))
        if self._in_chunk == _CHUNK:
            self._flush()

    def _flush(self) -> None:
        n = self._in_chunk
        if not n:
            return
        frames = self._chunk[:n]
        size = frames[0].size
        stats = np.empty((n, 5))
        stats[:, 1] = np.count_nonzero(frames <= DARK_LEVEL, axis=(1, 2)) / size
        stats[:, 2] = np.count_nonzero(frames >= BRIGHT_LEVEL, axis=(1, 2)) / size
        # Mean, spread and the mean absolute difference to the previous frame: OpenCV's SIMD
        # reductions over one frame beat numpy's over the whole chunk (which widens to float64).
        prev = self._last_small
        for k, frame in enumerate(frames):
            mean, std = cv2.meanStdDev(frame)
            stats[k, 0], stats[k, 4] = mean[0, 0], std[0, 0]
            stats[k, 3] = cv2.norm(frame, prev, cv2.NORM_L1) / size if prev is not None else np.nan
            prev = frame
        self._frame_stats.append(stats)
        self._last_small = frames[-1].copy()
        self._in_chunk = 0

    def finish(self) -> ClipStats:
        self._flush()
        t = np.asarray(self._t, dtype=np.float64)
        n = len(t)
        if n > 1:
            dts = np.diff(t)
            dts = dts[dts > 0]
            mean_dt = float(dts.mean()) if dts.size else 0.0
        else:
            mean_dt = 0.0
        per_frame = np.concatenate(self._frame_stats) if self._frame_stats else np.zeros((0, 5))
        mean, dark, bright, diff, std = per_frame.T
        # A weak correlation peak means the frames share little (flat, dark, a cut): the shift
        # is noise, so the shake check ignores it. (The first frame has no previous one.)
        shift_ok = (np.asarray(self._response) > 0.1) & (std > 6.0)
        shift_ok[:1] = False
        exposed = (mean / 255.0 > 0.15) & (mean / 255.0 < 0.9) & (dark < 0.6) & (bright < 0.6)
        sharp_i = np.asarray(self._sharp_i, dtype=np.intp)
        return ClipStats(
            width=self.width,
            height=self.height,
            fps=(1.0 / mean_dt) if mean_dt > 0 else 0.0,
            duration_s=float(t[-1] - t[0] + mean_dt) if n else 0.0,
            n_frames=n,
            t=t,
            luma=mean.copy(),
            dark_frac=dark.copy(),
            bright_frac=bright.copy(),
            diff=diff.copy(),
            shift=np.asarray(self._shift, dtype=np.float64).reshape(-1, 2),
            shift_ok=shift_ok,
            sharp_t=t[sharp_i],
            sharpness=np.asarray(self._sharp, dtype=np.float64),
            sharp_exposed=exposed[sharp_i],
            hash_t=np.asarray(self._hash_t),
            hashes=np.asarray(self._hashes, dtype=np.uint64),
            hand_t=np.asarray(self._hand_t),
            hand_score=np.asarray(self._hand),
            hands_detector=self.hands_detector_name,
        )


_PLANAR_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def upright(image: np.ndarray, turn: int) -> np.ndarray:
    """``image`` turned ``turn`` degrees clockwise (probe.display_turn), as a player shows it."""
    return cv2.rotate(image, _ROTATE[turn]) if turn else image


def _luma_plane(frame: Any) -> np.ndarray:
    if frame.format.name in _PLANAR_8BIT:
        # Zero-copy view of the Y plane: no colour conversion (the biggest saving of the pass).
        plane = frame.planes[0]
        buf = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        return buf[: frame.height, : frame.width]
    gray: np.ndarray = frame.to_ndarray(format="gray")
    return gray


# Decoded frames handed over a few at a time (one hand-over per frame costs more in thread wake-ups
# than it saves), at most _DECODE_AHEAD batches waiting: enough to keep FFmpeg's frame threads busy
# while a sampled frame gets its extra work, and only a few frames of memory (4K: ~12 MB each).
_BATCH = 4
_DECODE_AHEAD = 3
_END = object()


def _decode_ahead(container: Any, stream: Any, counts: list[int]) -> Generator[Any, None, None]:
    """The stream's frames, decoded in a thread of their own while the caller analyses earlier ones
    (PyAV releases the GIL in demuxing and decoding, so decoding and analysis overlap instead of
    taking turns). ``counts`` receives [packets, packets that failed to decode]. Closing the
    generator stops the thread and waits for it: the container must not close under it."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=_DECODE_AHEAD)
    stop = threading.Event()

    def decode() -> None:
        batch: list[Any] = []
        try:
            for packet in container.demux(stream):
                if stop.is_set():
                    return
                if packet.size:
                    counts[0] += 1
                try:
                    batch.extend(packet.decode())
                except av.FFmpegError:
                    # A damaged packet: FFmpeg conceals what it can; we count it for the report.
                    counts[1] += 1
                    continue
                if len(batch) >= _BATCH:
                    ready.put(batch)
                    batch = []
            if batch:
                ready.put(batch)
        except BaseException as exc:  # MemoryError under the sandbox's cap: re-raised by the reader
            ready.put(exc)
        finally:
            ready.put(_END)

    worker = threading.Thread(target=decode, name="egocrowd-decode", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a put() on a full queue, then let the thread see stop
            try:
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def _sharp_plane(
    frame: Any, plane: np.ndarray, size: tuple[int, int], turn: int, scaler: VideoReformatter
) -> np.ndarray:
    """The luma of ``frame`` at ``size`` (display orientation), for the focus measure."""
    w, h = size[::-1] if turn % 180 else size
    if plane.shape[1] == w:
        return plane
    if frame.format.name in _PLANAR_8BIT:
        # FFmpeg's scaler, area-averaging, in the frame's own pixel format: the luma stays as coded
        # (converting to "gray" would stretch it to full range) and it costs a quarter of
        # cv2.resize's INTER_AREA at this non-integer ratio.
        return _luma_plane(scaler.reformat(frame, width=w, height=h, format=frame.format.name, interpolation="AREA"))
    return cv2.resize(plane, (w, h), interpolation=cv2.INTER_AREA)


def analyze_video(
    path: str,
    config: AnalysisConfig | None = None,
    *,
    hand_scorer: Callable[[np.ndarray], float] | None = None,
    hands_detector_name: str | None = None,
    timeout_s: float = 300.0,
    expected_duration_s: float = 0.0,
    max_decode_error_frac: float = 0.5,
    on_progress: Callable[[float], None] | None = None,
    limits: ProbeLimits | None = None,
) -> ClipStats:
    """Decode ``path`` once and return its ``ClipStats``. Raises ``MediaError`` on unreadable input,
    on a picture over ``limits`` (default: the settings) or when decoding overruns ``timeout_s``."""
    config = config or AnalysisConfig()
    deadline = time.monotonic() + timeout_s
    with open_media(path) as container:
        if not container.streams.video:
            raise MediaError("the file has no video stream", code="video.not_video")
        stream = container.streams.video[0]
        # The size policy again, before the full decode: a caller may hand us any file.
        limits = limits or ProbeLimits.from_settings()
        check_picture_size(stream.codec_context.width, stream.codec_context.height, limits)
        stream.thread_type = "AUTO"
        if config.decode_threads:
            stream.codec_context.thread_count = config.decode_threads
        analyzer: FrameAnalyzer | None = None
        turn = 0
        tb = float(stream.time_base) if stream.time_base is not None else None  # not a Fraction per frame
        t0: float | None = None
        last_t = -1.0
        hand_size: tuple[int, int] | None = None
        scaler = VideoReformatter()  # keeps one swscale context for every sampled frame
        counts = [0, 0]  # packets, packets that failed to decode
        frames = _decode_ahead(container, stream, counts)
        try:
            for frame in frames:
                if analyzer is None:
                    turn = display_turn(frame)
                    w, h = (frame.height, frame.width) if turn % 180 else (frame.width, frame.height)
                    analyzer = FrameAnalyzer(w, h, config, hand_scorer, hands_detector_name, expected_duration_s)
                    scale = 256 / max(w, h)  # the detector wants 192; a little margin for area
                    hand_size = (max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2))
                if frame.pts is not None and tb is not None:
                    t = frame.pts * tb
                else:
                    t = last_t + (1 / 30 if last_t >= 0 else 0)
                if t0 is None:
                    t0 = t
                t -= t0
                if t <= last_t:  # repeated or reordered timestamp: keep time monotonic
                    t = last_t + 1e-4
                last_t = t
                # Statistics are taken in the stored orientation and only the small results are
                # turned upright: rotating a full-size plane costs more than the analysis.
                plane = _luma_plane(frame)
                small = upright(analyzer.shrink(plane), turn)
                mid = None
                if analyzer.wants_sharp(t):
                    mid = upright(_sharp_plane(frame, plane, analyzer.sharp_size, turn, scaler), turn)
                rgb = None
                if analyzer.wants_colour(t):
                    assert hand_size is not None
                    rgb = frame.reformat(width=hand_size[0], height=hand_size[1], format="rgb24").to_ndarray()
                    rgb = upright(rgb, turn)
                analyzer.add_small(t, small, mid, rgb)
                if analyzer.n_seen % 64 == 0:
                    if time.monotonic() > deadline:
                        raise MediaError(f"analysing the video took longer than {timeout_s:g} s", code="video.timeout")
                    if on_progress and expected_duration_s > 0:
                        on_progress(min(1.0, t / expected_duration_s))
        finally:
            frames.close()  # stops and joins the decoding thread
        if analyzer is None:
            raise MediaError("no frame of the video could be decoded", code="video.unreadable")
        stats = analyzer.finish()
        stats.packets, stats.decode_errors = counts
    if stats.packets and stats.decode_errors / max(1, stats.packets) > max_decode_error_frac:
        raise MediaError(
            f"{stats.decode_errors} of {stats.packets} frames could not be decoded", code="video.unreadable"
        )
    return stats


def fingerprint(source: Any) -> Fingerprint:
    """Fingerprint of a clip: a path (decodes it), ``ClipStats``, or a finished ``QCReport``."""
    if isinstance(source, Fingerprint):
        return source
    if isinstance(source, Mapping) and "h" in source:
        return Fingerprint.from_dict(source)
    if hasattr(source, "fingerprint") and isinstance(source.fingerprint, Mapping):
        return Fingerprint.from_dict(source.fingerprint)
    if not isinstance(source, ClipStats):
        source = analyze_video(str(source))
    return Fingerprint(times=source.hash_t.copy(), hashes=source.hashes.copy())

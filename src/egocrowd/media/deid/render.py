"""Render the de-identified copy of a clip: ``deidentify_clip(src, dst, ...)``.

Two decoding passes over the raw clip (opened only through :mod:`egocrowd.media.opener`):

1. every displayed frame goes to the plan builder (detectors + tracking → a :class:`RedactionPlan`).
   Skipped when ``reuse_plan`` is given: a re-render after a reviewer's correction re-uses the
   automatic plan of the last render instead of detecting again;
2. the reviewer's edits are applied to the plan, then every frame is decoded again, its boxes are
   redacted and it is encoded as H.264 (yuv420p, MP4 with ``+faststart`` so browsers seek it).

Frames are handled as *displayed*: a phone's rotation flag is applied before detection (the plan's
boxes are in displayed coordinates) and the output is written upright, without a rotation flag.
Each output frame keeps its raw frame's timestamp (phones record variable frame rate), so a frame
index of the plan, a time in the raw clip and a time in the derived clip all agree. yuv420p needs an
even width and height: an odd side is padded by one replicated pixel (``summary["padded"]``).

Sound follows the campaign's policy (drop, keep re-encoded as AAC, or mute speech found by the
voice-activity detector) and container metadata is reduced to what ``metadata.derived_metadata``
allows. Runs inside ``call_bounded`` (a sandbox process); nothing here touches the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any, Literal

import av
import cv2
import numpy as np

from egocrowd.errors import DeidError, MediaError
from egocrowd.media.analysis import upright
from egocrowd.media.deid.regions import Box, RedactionPlan, Track
from egocrowd.media.opener import open_media
from egocrowd.media.probe import check_picture_size, display_turn

#: version of what this module writes (bump when the output for the same inputs changes)
RENDER_VERSION = "1"

FaceMode = Literal["blur", "fill"]
AudioPolicy = Literal["drop", "keep", "mute_speech"]

#: H.264 settings of the derived video (stored with every result)
ENCODER: dict[str, Any] = {
    "codec": "libx264",
    "pix_fmt": "yuv420p",
    "crf": 20,
    "preset": "veryfast",
    "movflags": "+faststart",
    "audio_codec": "aac",
    "audio_bit_rate": 128_000,
}

#: reviewer-added tracks get ids from here on (edit id added): never clashing with detector tracks
REVIEWER_TRACK_BASE = 1_000_000
#: a reviewer's region is a track whose source is "reviewer:<edit id>" (clips.redaction.reviewer_edit reads it)
REVIEWER_SOURCE = "reviewer"

# Blur that cannot be undone: the region is shrunk to at most this many cells on its long side (the
# detail is gone, not hidden), smoothed back up and covered with noise so no gradient is left to invert.
_BLUR_CELLS = 6
_NOISE_SIGMA = 12.0


# --- the plan: reviewer edits -----------------------------------------------------------------------
def apply_edits(plan: RedactionPlan, edits: Sequence[dict[str, Any]]) -> RedactionPlan:
    """The plan with a reviewer's corrections (withdrawn edits are not passed in):

    - ``add``: a new track (source ``"reviewer:<edit id>"``, category ``"manual"``) covering ``box``
      (fractions of the frame) from ``frame_start`` to ``frame_end`` inclusive; its id is
      ``REVIEWER_TRACK_BASE + edit id`` so it stays the same on every re-render;
    - ``false`` / ``keep``: the track ``track_id`` is not redacted."""
    drop = {int(e["track_id"]) for e in edits if e["kind"] in ("false", "keep") and e.get("track_id") is not None}
    tracks = [t for t in plan.tracks if t.id not in drop]
    for e in edits:
        if e["kind"] != "add" or not e.get("box"):
            continue
        box = _fraction_box(e["box"], plan.width, plan.height)
        first, last = max(0, int(e["frame_start"])), min(plan.frames - 1, int(e["frame_end"]))
        if box is None or last < first:
            continue
        tracks.append(
            Track(
                REVIEWER_TRACK_BASE + int(e["id"]),
                "manual",
                f"{REVIEWER_SOURCE}:{int(e['id'])}",
                {f: (box, 1.0) for f in range(first, last + 1)},
            )
        )
    return RedactionPlan(plan.width, plan.height, plan.frames, tracks)


def _fraction_box(frac: Sequence[float], width: int, height: int) -> Box | None:
    x0, y0, x1, y1 = (float(v) for v in frac)
    box = (
        max(0, int(np.floor(min(x0, x1) * width))),
        max(0, int(np.floor(min(y0, y1) * height))),
        min(width, int(np.ceil(max(x0, x1) * width))),
        min(height, int(np.ceil(max(y0, y1) * height))),
    )
    return box if box[2] > box[0] and box[3] > box[1] else None


# --- redaction --------------------------------------------------------------------------------------
def redact(rgb: np.ndarray, boxes: Sequence[Box], mode: FaceMode, rng: np.random.Generator) -> None:
    """Redact ``boxes`` of ``rgb`` in place: ``fill`` paints a solid block, ``blur`` keeps only a
    few cells of average colour per region, smoothed and covered with noise."""
    h, w = rgb.shape[:2]
    for x0, y0, x1, y1 in boxes:
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        bw, bh = x1 - x0, y1 - y0
        if bw <= 0 or bh <= 0:
            continue
        region = rgb[y0:y1, x0:x1]
        if mode == "fill":
            region[:] = 0
            continue
        scale = _BLUR_CELLS / max(bw, bh)
        cells = cv2.resize(region, (max(1, round(bw * scale)), max(1, round(bh * scale))), interpolation=cv2.INTER_AREA)
        smooth = cv2.resize(cells, (bw, bh), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        smooth += np.asarray(rng.normal(0.0, _NOISE_SIGMA, smooth.shape), dtype=np.float32)
        k = max(3, (min(bw, bh) // 4) | 1)
        region[:] = np.clip(cv2.blur(smooth, (k, k)), 0, 255).astype(np.uint8)


# --- decoding ---------------------------------------------------------------------------------------
class _Video:
    """One decoding pass over the raw clip's first video stream: upright RGB frames with their
    timestamps (``pts`` in ``time_base``)."""

    def __init__(self, container: Any, limits: Any = None) -> None:
        if not container.streams.video:
            raise MediaError("the file has no video stream", code="video.not_video")
        self.stream = container.streams.video[0]
        if limits is not None:
            check_picture_size(self.stream.codec_context.width, self.stream.codec_context.height, limits)
        self.stream.thread_type = "AUTO"
        self.container = container
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.rate = Fraction(rate) if rate else Fraction(30)

    def frames(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(index, pts, upright RGB) in display order; pts made strictly increasing."""
        last = None
        turn = None
        step = max(1, int(round(1 / (self.rate * self.time_base))))
        index = 0
        for packet in self.container.demux(self.stream):
            try:
                decoded = packet.decode()
            except av.FFmpegError:  # a damaged packet (QC counted those): FFmpeg conceals the rest
                continue
            for frame in decoded:
                if turn is None:
                    turn = display_turn(frame)
                pts = frame.pts if frame.pts is not None else (last + step if last is not None else 0)
                if last is not None and pts <= last:  # repeated or reordered: keep time moving forward
                    pts = last + 1
                last = pts
                yield index, pts, upright(frame.to_ndarray(format="rgb24"), turn)
                index += 1


def _read_audio(src: str) -> tuple[np.ndarray, int, str, float] | None:
    """All of the first audio stream as float32 (channels, samples), its rate, layout and start (s)."""
    with open_media(src) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or 48000
        channels = min(2, stream.codec_context.channels or 1)
        layout = "stereo" if channels == 2 else "mono"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks: list[np.ndarray] = []
        start: float | None = None
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                continue
            for frame in decoded:
                if start is None and frame.pts is not None and frame.time_base is not None:
                    start = float(frame.pts * frame.time_base)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        return None
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    return samples, rate, layout, max(0.0, start or 0.0)


# --- the render -------------------------------------------------------------------------------------
def deidentify_clip(
    src: str,
    dst: str,
    *,
    plan_config: dict[str, Any],
    face_mode: FaceMode = "blur",
    audio: AudioPolicy = "drop",
    recording_time: Literal["date", "full"] = "date",
    edits: Sequence[dict[str, Any]] = (),
    reuse_plan: dict[str, Any] | None = None,
    limits: Any = None,
    encoder: dict[str, Any] | None = None,
    vad_model: str | None = None,
) -> dict[str, Any]:
    """Write the de-identified copy of ``src`` to ``dst`` (an MP4) and return what was done.

    ``plan_config``: :class:`egocrowd.media.deid.plan.PlanConfig` as a dict. Raises ``DeidError``
    (``deid.model_missing``, ``deid.detector_failed``, ``deid.encode_failed``) when it cannot be done
    and ``MediaError`` when the file cannot be read. Returns a JSON-able dict: ``plan`` (applied),
    ``auto_plan`` (before edits), ``params`` (everything that decides the output) and ``summary``."""
    enc = {**ENCODER, **(encoder or {})}
    params: dict[str, Any] = {
        "render_version": RENDER_VERSION,
        "face_mode": face_mode,
        "text_mode": face_mode,
        "audio": audio,
        "recording_time": recording_time,
        "encoder": enc,
    }
    summary: dict[str, Any] = {}

    # pass 1: the automatic plan
    t0 = time.perf_counter()
    if reuse_plan is not None:
        auto_plan = RedactionPlan.from_dict(reuse_plan["plan"])
        params["detection"] = reuse_plan.get("params", {})
        stats = dict(reuse_plan.get("stats", {}))
        summary["plan_reused"] = True
        summary["fps_pass1"] = None
    else:
        auto_plan, stats, params["detection"] = _detect(src, plan_config, limits)
        summary["plan_reused"] = False
        summary["fps_pass1"] = round(auto_plan.frames / max(time.perf_counter() - t0, 1e-9), 1)
    plan = apply_edits(auto_plan, edits)

    # sound and metadata decided before the encode
    sound = _prepare_audio(src, audio, vad_model, params, summary) if audio != "drop" else None
    if audio == "drop":
        summary["audio"] = "drop"
    with open_media(src) as container:
        source_tags = {str(k): str(v) for k, v in (container.metadata or {}).items()}
        stream_tags = [{str(k): str(v) for k, v in (st.metadata or {}).items()} for st in container.streams]
    tags, removed = _metadata(source_tags, stream_tags, recording_time)
    summary["metadata_removed"] = removed
    params["metadata"] = {"written": sorted(tags)}

    # pass 2: redact and encode
    t1 = time.perf_counter()
    frame_times = _encode(src, dst, plan, face_mode, sound, tags, enc, limits, summary)
    seconds = time.perf_counter() - t1
    summary["fps_pass2"] = round(len(frame_times) / max(seconds, 1e-9), 1)
    summary["frames"] = len(frame_times)
    summary["frame_times"] = frame_times
    summary["seconds"] = round(frame_times[-1] - frame_times[0], 3) if len(frame_times) > 1 else 0.0
    summary["tracks"] = _count_tracks(plan)
    summary["auto_tracks"] = _count_tracks(auto_plan)
    summary["edits_applied"] = len(edits)
    summary["uncertain_fraction"] = float(stats.get("uncertain_fraction", 0.0))
    summary["uncertain_frames"] = len(stats.get("uncertain_frames", ()))
    summary["detector_seconds"] = stats.get("seconds", {})
    summary["frames_redacted"] = sum(1 for f in range(plan.frames) if plan.boxes_at(f))
    return {
        "plan": plan.to_dict(),
        "auto_plan": auto_plan.to_dict(),
        "auto_stats": _jsonable(stats),
        "params": params,
        "summary": summary,
    }


def _count_tracks(plan: RedactionPlan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in plan.tracks:
        counts[t.category] = counts.get(t.category, 0) + 1
    return counts


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _detect(src: str, plan_config: dict[str, Any], limits: Any) -> tuple[RedactionPlan, dict[str, Any], dict[str, Any]]:
    from egocrowd.media.deid.plan import PlanBuilder, PlanConfig

    config = PlanConfig(**plan_config)
    builder: Any = None
    n = 0
    with open_media(src) as container:
        video = _Video(container, limits)
        for index, _pts, rgb in video.frames():
            if builder is None:
                builder = _guard(PlanBuilder, config, rgb.shape[1], rgb.shape[0])
            _guard(builder.add, index, rgb)
            n = index + 1
    if builder is None:
        raise MediaError("no frame of the video could be decoded", code="video.unreadable")
    plan, stats = _guard(builder.finish, n)
    return plan, _jsonable(stats), _jsonable(builder.params)


def _guard(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """A detector that crashes is a visible failure of the clip's de-identification, not a retry."""
    try:
        return fn(*args, **kwargs)
    except (DeidError, MemoryError):
        raise
    except Exception as exc:
        raise DeidError(f"a detector failed: {type(exc).__name__}: {exc}"[:300], code="deid.detector_failed") from exc


def _prepare_audio(
    src: str, policy: AudioPolicy, vad_model: str | None, params: dict[str, Any], summary: dict[str, Any]
) -> tuple[np.ndarray, int, str, float] | None:
    from egocrowd.media.deid.audio import redact_audio

    sound = _read_audio(src)
    if sound is None:
        summary["audio"] = "none in the source"
        return None
    samples, rate, layout, start = sound
    kept, info = _guard(redact_audio, samples, rate, policy, model=vad_model)
    summary.update({k: v for k, v in info.items() if k not in ("vad", "vad_version", "vad_params")})
    if "vad" in info:
        params["vad"] = {"name": info["vad"], "version": info["vad_version"], "params": info["vad_params"]}
    if kept is None:
        return None
    return np.ascontiguousarray(kept, dtype=np.float32), rate, layout, start


def _metadata(
    source_tags: dict[str, str], stream_tags: list[dict[str, str]], recording_time: str
) -> tuple[dict[str, str], list[str]]:
    from egocrowd.media.deid.metadata import derived_metadata, removed_tags

    return dict(derived_metadata(source_tags, recording_time)), removed_tags(source_tags, stream_tags)  # type: ignore[arg-type]


def _encode(
    src: str,
    dst: str,
    plan: RedactionPlan,
    face_mode: FaceMode,
    sound: tuple[np.ndarray, int, str, float] | None,
    tags: dict[str, str],
    enc: dict[str, Any],
    limits: Any,
    summary: dict[str, Any],
) -> list[float]:
    rng = np.random.default_rng(0)  # the same inputs give the same bytes (and the same blob)
    frame_times: list[float] = []
    try:
        out = av.open(str(dst), "w", format="mp4", options={"movflags": enc["movflags"]})
    except (av.FFmpegError, OSError) as exc:
        raise DeidError(f"cannot write the derived video: {exc}", code="deid.encode_failed") from exc
    try:
        with open_media(src) as container:
            video = _Video(container, limits)
            vstream: Any = None
            astream: Any = None
            audio_pos = 0
            pad = (0, 0)
            for index, pts, rgb in video.frames():
                if vstream is None:
                    h, w = rgb.shape[:2]
                    pad = (w % 2, h % 2)
                    summary["size"] = [w + pad[0], h + pad[1]]
                    summary["padded"] = list(pad)
                    vstream = _video_stream(out, w + pad[0], h + pad[1], video, enc)
                    if sound is not None:
                        astream = _audio_stream(out, sound, enc)
                    out.metadata.update(tags)
                boxes = [b for b, _ in plan.boxes_at(index)]
                if boxes:
                    redact(rgb, boxes, face_mode, rng)
                if pad != (0, 0):
                    rgb = cv2.copyMakeBorder(rgb, 0, pad[1], 0, pad[0], cv2.BORDER_REPLICATE)
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts, frame.time_base = pts, video.time_base
                frame_times.append(round(float(pts * video.time_base), 3))
                out.mux(vstream.encode(frame))
                if astream is not None and sound is not None:
                    # interleave: sound up to half a second past this frame
                    audio_pos = _mux_audio(out, astream, sound, audio_pos, float(pts * video.time_base) + 0.5)
            if vstream is None:
                raise MediaError("no frame of the video could be decoded", code="video.unreadable")
            out.mux(vstream.encode(None))
            if astream is not None and sound is not None:
                _mux_audio(out, astream, sound, audio_pos, float("inf"))
                out.mux(astream.encode(None))
        out.close()
    except av.FFmpegError as exc:
        _close_quietly(out)
        raise DeidError(f"the derived video could not be encoded: {exc}"[:300], code="deid.encode_failed") from exc
    except BaseException:
        _close_quietly(out)
        raise
    return frame_times


def _close_quietly(out: Any) -> None:
    try:
        out.close()
    except Exception:  # noqa: BLE001 - already failing: the caller removes the file
        pass


def _video_stream(out: Any, width: int, height: int, video: _Video, enc: dict[str, Any]) -> Any:
    stream = out.add_stream(enc["codec"], rate=video.rate.limit_denominator(100000))
    stream.width, stream.height, stream.pix_fmt = width, height, enc["pix_fmt"]
    # the raw clip's own time base: every frame keeps its exact timestamp (variable frame rate)
    stream.codec_context.time_base = video.time_base
    stream.time_base = video.time_base
    stream.options = {"crf": str(enc["crf"]), "preset": str(enc["preset"])}
    return stream


def _audio_stream(out: Any, sound: tuple[np.ndarray, int, str, float], enc: dict[str, Any]) -> Any:
    _samples, rate, layout, _start = sound
    stream = out.add_stream(enc["audio_codec"], rate=rate)
    stream.layout = layout
    stream.bit_rate = int(enc["audio_bit_rate"])
    return stream


def _mux_audio(out: Any, stream: Any, sound: tuple[np.ndarray, int, str, float], pos: int, until_s: float) -> int:
    samples, rate, layout, start = sound
    total = samples.shape[1]
    end = total if until_s == float("inf") else min(total, max(pos, int((until_s - start) * rate)))
    chunk = 1024
    offset = int(round(start * rate))
    while pos < end:
        n = min(chunk, end - pos)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples[:, pos : pos + n]), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = rate, offset + pos, Fraction(1, rate)
        out.mux(stream.encode(frame))
        pos += n
    return pos


__all__ = ["ENCODER", "RENDER_VERSION", "REVIEWER_TRACK_BASE", "apply_edits", "deidentify_clip", "redact"]

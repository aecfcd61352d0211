"""Sound: the campaign's policy is ``drop`` (default: the derived clip has no audio), ``keep`` or
``mute_speech`` (voices are silenced, the rest of the sound stays: tools, water, a door).

Speech is found with silero-vad (MIT), the ONNX model that ships inside the ``silero-vad`` wheel,
run with onnxruntime. The wheel is installed with ``--no-deps`` and never imported (its package
imports torch); we read the model file. The model takes 16 kHz audio in 512-sample windows (32 ms)
with the previous window's last 64 samples in front, and carries a [2, 1, 128] recurrent state from
window to window; it gives one speech probability per window. Turning probabilities into spans
(threshold with hysteresis, minimum speech, minimum silence, padding) is done here.

Speed (2 vCPU, onnxruntime 1.32, one thread, measured with a 60 s mix of espeak-ng speech, tone and
silence at 22.05 kHz): 0.17 s per minute of sound (resampling 0.02 s of it); the first call also
loads the model (about 1 s with the scipy import).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Sequence
from math import gcd
from pathlib import Path
from typing import Any, Literal

import numpy as np

from egocrowd.errors import DeidError
from egocrowd.media.deid.regions import packaged_file

#: stored with every result: the detector and the revision of (model generation, our span logic)
VAD_NAME = "silero-vad"
VAD_VERSION = "6.1"

AudioMode = Literal["drop", "keep", "mute_speech"]

_RATE = 16000
_WINDOW = 512
_CONTEXT = 64
_MODEL_FILE = ("data", "silero_vad.onnx")


def model_path(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        return Path(explicit) if Path(explicit).is_file() else None
    return packaged_file("silero_vad", *_MODEL_FILE)


@functools.lru_cache(maxsize=2)
def _session(path: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a tiny recurrent net, one window at a time: threads only add overhead
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


_lock = threading.Lock()


def _load(model: str | Path | None) -> Any:
    path = model_path(model)
    if path is None:
        raise DeidError(
            "The silero-vad voice model is missing: install silero-vad (--no-deps) or set EGOCROWD_VAD_MODEL.",
            code="deid.model_missing",
        )
    with _lock:
        return _session(str(path))


def to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """float32 mono at 16 kHz: channels averaged, then a polyphase resampler (anti-aliased).
    Integer PCM (s16, s32) is scaled to [-1, 1] first."""
    from scipy.signal import resample_poly

    raw = np.asarray(samples)
    x = raw.astype(np.float32)
    if np.issubdtype(raw.dtype, np.integer):
        x /= float(np.iinfo(raw.dtype).max) + 1.0
    if x.ndim == 2:
        x = x.mean(axis=0)
    elif x.ndim != 1:
        raise ValueError(f"samples must be (n,) or (channels, n), not {x.shape}")
    if rate != _RATE:
        g = gcd(int(rate), _RATE)
        x = resample_poly(x, _RATE // g, int(rate) // g).astype(np.float32)
    return x


def speech_probabilities(samples: np.ndarray, rate: int, *, model: str | Path | None = None) -> np.ndarray:
    """One speech probability per 32 ms window of the sound (window i starts at i × 0.032 s)."""
    sess = _load(model)
    x = to_mono_16k(samples, rate)
    n = int(np.ceil(len(x) / _WINDOW)) if len(x) else 0
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    padded = np.zeros(_CONTEXT + n * _WINDOW, dtype=np.float32)
    padded[_CONTEXT : _CONTEXT + len(x)] = x
    state = np.zeros((2, 1, 128), dtype=np.float32)
    sr = np.array(_RATE, dtype=np.int64)
    probs = np.empty(n, dtype=np.float32)
    for i in range(n):
        # the window plus the 64 samples before it (zeros before the first window)
        chunk = padded[i * _WINDOW : (i + 1) * _WINDOW + _CONTEXT][None, :]
        out, state = sess.run(None, {"input": chunk, "state": state, "sr": sr})
        probs[i] = out[0, 0]
    return probs


def spans_from_probabilities(
    probs: Sequence[float] | np.ndarray,
    window_s: float,
    duration_s: float,
    *,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
    pad_s: float = 0.1,
) -> list[tuple[float, float]]:
    """Speech spans in seconds from per-window probabilities.

    Speech starts at a window at or above ``threshold`` and ends only after ``min_silence_s`` of
    windows below a lower threshold (``threshold - 0.15``: hysteresis, so a probability hovering at
    the threshold does not flicker). Spans shorter than ``min_speech_s`` are dropped; the rest are
    widened by ``pad_s`` each side and merged where they then touch (muting errs on the safe side).
    """
    low = max(threshold - 0.15, 0.01)
    raw: list[tuple[float, float]] = []
    start: float | None = None
    quiet_since: float | None = None
    for i, p in enumerate(probs):
        t = i * window_s
        if start is None:
            if p >= threshold:
                start, quiet_since = t, None
            continue
        if p >= low:
            quiet_since = None  # still speaking (or in the hysteresis band)
            continue
        if quiet_since is None:
            quiet_since = t
        if t + window_s - quiet_since >= min_silence_s:
            raw.append((start, quiet_since))
            start, quiet_since = None, None
    if start is not None:
        raw.append((start, quiet_since if quiet_since is not None else duration_s))

    spans: list[tuple[float, float]] = []
    for s, e in raw:
        e = min(e, duration_s)
        if e - s < min_speech_s:
            continue
        s, e = max(0.0, s - pad_s), min(duration_s, e + pad_s)
        if spans and s <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], e))
        else:
            spans.append((s, e))
    return [(round(s, 3), round(e, 3)) for s, e in spans]


def speech_spans(
    samples: np.ndarray,
    rate: int,
    *,
    threshold: float = 0.5,
    min_speech_s: float = 0.25,
    min_silence_s: float = 0.1,
    pad_s: float = 0.1,
    model: str | None = None,
) -> list[tuple[float, float]]:
    """Where someone speaks, as ``[(start_s, end_s), ...]`` in seconds from the first sample.
    ``samples``: float32 in [-1, 1] (or integer PCM), mono ``(n,)`` or ``(channels, n)``, at any
    ``rate``. With PyAV, decode through ``av.AudioResampler(format="fltp")`` and concatenate the
    frames' ``to_ndarray()`` along the last axis: planar frames give ``(channels, n)``."""
    n = np.asarray(samples).shape[-1]
    probs = speech_probabilities(samples, rate, model=model)
    return spans_from_probabilities(
        probs,
        _WINDOW / _RATE,
        n / rate,
        threshold=threshold,
        min_speech_s=min_speech_s,
        min_silence_s=min_silence_s,
        pad_s=pad_s,
    )


def mute_spans(
    samples: np.ndarray, rate: int, spans: Iterable[tuple[float, float]], *, fade_s: float = 0.01
) -> np.ndarray:
    """A copy (same shape and dtype) with every span set to exact zeros; the sound fades out over
    ``fade_s`` just before a span and back in just after it (no clicks), so the spans themselves are
    fully silent."""
    original = np.asarray(samples)
    out = original.astype(np.float32, copy=True)
    n = out.shape[-1]
    fade = max(1, int(round(fade_s * rate)))
    for s, e in spans:
        a, b = max(0, int(np.floor(s * rate))), min(n, int(np.ceil(e * rate)))
        if b <= a:
            continue
        out[..., a:b] = 0.0
        lead = out[..., max(0, a - fade) : a]
        lead *= np.linspace(1.0, 0.0, lead.shape[-1] + 1, dtype=np.float32)[1:]
        tail = out[..., b : min(n, b + fade)]
        tail *= np.linspace(0.0, 1.0, tail.shape[-1] + 1, dtype=np.float32)[1:]
    if np.issubdtype(original.dtype, np.integer):
        return np.round(out).astype(original.dtype)
    return out.astype(original.dtype, copy=False)


def vad_params(
    threshold: float = 0.5, min_speech_s: float = 0.25, min_silence_s: float = 0.1, pad_s: float = 0.1
) -> dict[str, Any]:
    return {"threshold": threshold, "min_speech_s": min_speech_s, "min_silence_s": min_silence_s, "pad_s": pad_s}


def redact_audio(
    samples: np.ndarray, rate: int, mode: AudioMode, *, model: str | None = None, **params: float
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """Apply a campaign's sound policy: ``(samples to encode or None to drop the track, summary)``.
    The summary (for Derivative.summary) names the mode, and for ``mute_speech`` the detector, its
    version, parameters and the muted spans."""
    if mode == "drop":
        return None, {"audio": "drop"}
    if mode == "keep":
        return samples, {"audio": "keep"}
    if mode != "mute_speech":
        raise ValueError(f"unknown audio mode {mode!r}")
    p = vad_params(**params)
    spans = speech_spans(samples, rate, model=model, **p)
    summary = {
        "audio": "mute_speech",
        "vad": VAD_NAME,
        "vad_version": VAD_VERSION,
        "vad_params": p,
        "speech_spans": [list(s) for s in spans],
        "speech_s": round(sum(e - s for s, e in spans), 3),
    }
    return mute_spans(samples, rate, spans), summary

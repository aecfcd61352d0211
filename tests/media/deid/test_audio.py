"""Speech spans with silero-vad on real synthetic speech (espeak-ng), and muting them."""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from egocrowd.errors import DeidError
from egocrowd.media.deid import audio
from egocrowd.media.deid.audio import (
    VAD_NAME,
    VAD_VERSION,
    mute_spans,
    redact_audio,
    spans_from_probabilities,
    speech_spans,
)

ESPEAK = shutil.which("espeak-ng")
needs_espeak = pytest.mark.skipif(
    ESPEAK is None and os.environ.get("CI", "").lower() not in {"1", "true"},
    reason="espeak-ng is not installed (apt-get install espeak-ng); CI installs it and runs these",
)
SENTENCES = ("The delivery van is parked outside the house.", "Please call me back at nine tomorrow morning.")


def _speak(text: str, folder: Path) -> tuple[np.ndarray, int]:
    if ESPEAK is None:
        pytest.fail("espeak-ng is required under CI (.ci/run installs it)")
    path = folder / f"{len(list(folder.iterdir()))}.wav"
    subprocess.run([ESPEAK, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    with wave.open(str(path)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    return pcm.astype(np.float32) / 32768.0, rate


def _voiced(x: np.ndarray, rate: int) -> tuple[float, float]:
    loud = np.nonzero(np.abs(x) > 0.01)[0]
    return loud[0] / rate, loud[-1] / rate


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """silence, sentence one, silence, a 440 Hz tone, silence, sentence two, silence, over faint noise;
    returns (samples, rate, speech intervals, tone interval) in seconds."""
    folder = tmp_path_factory.mktemp("speech")
    (a, rate), (b, rate_b) = (_speak(s, folder) for s in SENTENCES)
    assert rate == rate_b
    parts: list[np.ndarray] = []
    speech, tone = [], (0.0, 0.0)

    def at() -> float:
        return sum(len(p) for p in parts) / rate

    def gap(seconds: float) -> None:
        parts.append(np.zeros(int(seconds * rate), np.float32))

    gap(0.7)
    v0, v1 = _voiced(a, rate)
    speech.append((at() + v0, at() + v1))
    parts.append(a)
    gap(1.5)
    tone = (at(), at() + 1.0)
    parts.append(0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32))
    gap(1.2)
    v0, v1 = _voiced(b, rate)
    speech.append((at() + v0, at() + v1))
    parts.append(b)
    gap(0.7)
    x = np.concatenate(parts)
    x += np.random.default_rng(7).normal(0, 0.003, len(x)).astype(np.float32)
    return x, rate, speech, tone


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@needs_espeak
def test_spans_cover_the_speech_and_not_the_tone(scene):
    x, rate, speech, tone = scene
    spans = speech_spans(x, rate)
    assert len(spans) == 2, spans
    for (s, e), (v0, v1) in zip(spans, speech, strict=True):
        assert abs(s - v0) <= 0.3 and abs(e - v1) <= 0.3, (spans, speech)
        assert s <= v0 + 0.05 and e >= v1 - 0.05, "the spans cover the whole of the speech"
    assert all(_overlap(sp, tone) == 0 for sp in spans)
    # stereo at 48 kHz (what phones record) gives the same spans within a window or two
    from scipy.signal import resample_poly

    x48 = resample_poly(x, 320, 147).astype(np.float32)
    stereo = np.stack([x48, 0.5 * x48])
    for (s, e), (s2, e2) in zip(spans, speech_spans(stereo, 48000), strict=True):
        assert abs(s - s2) <= 0.07 and abs(e - e2) <= 0.07
    # under loud noise (white, 5 dB below the speech) the speech is still found, the tone still not
    voiced = np.concatenate([x[int(a * rate) : int(b * rate)] for a, b in speech])
    level = np.sqrt(np.mean(voiced**2) / 10 ** (5 / 10))
    noisy = x + np.random.default_rng(3).normal(0, level, len(x)).astype(np.float32)
    noisy_spans = speech_spans(noisy, rate)
    assert len(noisy_spans) == 2, noisy_spans
    for (s, e), (v0, v1) in zip(noisy_spans, speech, strict=True):
        assert abs(s - v0) <= 0.3 and abs(e - v1) <= 0.3, (noisy_spans, speech)
    assert all(_overlap(sp, tone) == 0 for sp in noisy_spans)
    # and as 16-bit PCM
    assert speech_spans(np.round(x * 32767).astype(np.int16), rate) == spans


@needs_espeak
def test_mute_speech_silences_exactly_the_spans(scene):
    x, rate, speech, tone = scene
    muted, summary = redact_audio(x, rate, "mute_speech")
    assert muted is not None and muted.shape == x.shape
    spans = summary["speech_spans"]
    assert summary["vad"] == VAD_NAME and summary["vad_version"] == VAD_VERSION
    assert summary["vad_params"]["threshold"] == 0.5
    inside = np.zeros(len(x), bool)
    for s, e in spans:
        inside[int(np.floor(s * rate)) : int(np.ceil(e * rate))] = True
    assert not muted[inside].any()
    # outside the spans (beyond the 10 ms fades) the sound is untouched: the tone is still there
    fade = int(0.01 * rate)
    near = np.convolve(inside, np.ones(2 * fade + 1), mode="same") > 0
    assert np.array_equal(muted[~near], x[~near])
    t0 = int(tone[0] * rate)
    assert np.abs(muted[t0 : t0 + rate]).max() > 0.25
    for v0, v1 in speech:
        assert np.abs(muted[int(v0 * rate) : int(v1 * rate)]).max() == 0.0
    # a second pass finds no speech left
    assert speech_spans(muted, rate) == []


def test_no_speech_in_silence_tone_or_noise():
    rate = 16000
    t = np.arange(3 * rate) / rate
    assert speech_spans(np.zeros(3 * rate, np.float32), rate) == []
    assert speech_spans((0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate) == []
    noise = np.random.default_rng(1).normal(0, 0.05, 3 * rate).astype(np.float32)
    assert speech_spans(noise, rate) == []
    assert speech_spans(np.zeros(0, np.float32), rate) == []


def test_span_state_machine():
    w = 0.032
    probs = [0.0] * 10 + [0.9] * 20 + [0.4] * 3 + [0.9] * 10 + [0.0] * 30 + [0.8] * 5 + [0.0] * 20
    # the 0.4s sit in the hysteresis band (above 0.35): one span; the 5-window burst (0.16 s) is too short
    assert spans_from_probabilities(probs, w, len(probs) * w, pad_s=0.0) == [(0.32, 1.376)]
    assert spans_from_probabilities(probs, w, len(probs) * w, pad_s=0.0, min_speech_s=0.1) == [
        (0.32, 1.376),
        (2.336, 2.496),
    ]
    # a pause shorter than min_silence does not split; padding merges spans that then touch
    probs = [0.9] * 10 + [0.0] * 2 + [0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 40
    assert spans_from_probabilities(probs, w, len(probs) * w, pad_s=0.0, min_silence_s=0.1) == [
        (0.0, 0.704),
        (1.024, 1.344),
    ]
    assert spans_from_probabilities(probs, w, len(probs) * w, pad_s=0.2, min_silence_s=0.1) == [(0.0, 1.544)]
    # speech until the end is closed at the end
    assert spans_from_probabilities([0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9], w, 0.3) == [(0.0, 0.3)]


def test_mute_spans_shapes_and_fades():
    rate = 1000
    x = np.ones((2, 1000), np.float32)
    out = mute_spans(x, rate, [(0.2, 0.3), (0.9, 2.0)])
    assert out.shape == x.shape and x.min() == 1.0  # a copy
    assert not out[:, 200:300].any() and not out[:, 900:].any()
    assert np.all(np.diff(out[0, 190:200]) < 0) and np.all(np.diff(out[0, 300:310]) > 0)
    assert np.array_equal(out[:, :189], x[:, :189]) and np.array_equal(out[:, 311:889], x[:, 311:889])
    # integer PCM stays integer PCM
    pcm = np.full(1000, 20000, np.int16)
    muted = mute_spans(pcm, rate, [(0.5, 0.6)])
    assert muted.dtype == np.int16 and not muted[500:600].any() and muted[0] == 20000 and 0 < muted[495] < 20000


def test_drop_and_keep_modes():
    x = np.ones(100, np.float32)
    assert redact_audio(x, 16000, "drop") == (None, {"audio": "drop"})
    kept, summary = redact_audio(x, 16000, "keep")
    assert kept is x and summary == {"audio": "keep"}
    with pytest.raises(ValueError):
        redact_audio(x, 16000, "loud")  # type: ignore[arg-type]


def test_missing_model(tmp_path):
    with pytest.raises(DeidError) as err:
        speech_spans(np.zeros(16000, np.float32), 16000, model=str(tmp_path / "nope.onnx"))
    assert err.value.code == "deid.model_missing"
    assert audio.model_path() is not None  # the packaged one is found

"""Perceptual fingerprints of clips, to catch the same footage uploaded twice.

A fingerprint is a list of 64-bit DCT hashes (pHash) of frames sampled at ``hash_fps``, each with
its time. pHash compares the low spatial frequencies of a 32x32 thumbnail against their median, so
it survives re-encoding, a new bitrate, rescaling and brightness changes. Trimming is handled by
matching frames as a set and then requiring the matches to agree on one time offset (the trim);
that agreement is also what keeps unrelated clips of similar scenes from matching.

Flat frames (a lens cap, a white wall) carry no information and are not hashed: they would make
every dark clip a "duplicate" of every other.

Stored form (``Fingerprint.to_dict``) is JSON: ``{"format_version", "algo", "t": [...],
"h": ["16 hex digits", ...]}``; the lead stores it per clip and hands earlier ones back to
``run_qc(known_fingerprints=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

FINGERPRINT_FORMAT_VERSION = 1
ALGO = "phash64-dct32"
MIN_STD = 8.0  # luma standard deviation under which a frame counts as flat
MAX_BIT_DISTANCE = 12  # of 64 bits: re-encodes land at 0-8, unrelated frames around 32
OFFSET_TOLERANCE_S = 0.75


def phash64(gray: np.ndarray) -> int | None:
    """64-bit perceptual hash of a grayscale picture, or None for a flat one."""
    if float(gray.std()) < MIN_STD:
        return None
    thumb = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(thumb)[:8, :8].flatten()
    ac = low[1:]  # the DC term only says how bright the frame is
    bits = np.concatenate([[0], (ac > np.median(ac)).astype(np.uint8)])
    return int("".join("1" if b else "0" for b in bits), 2)


@dataclass
class Fingerprint:
    times: np.ndarray  # seconds
    hashes: np.ndarray  # uint64
    format_version: int = FINGERPRINT_FORMAT_VERSION
    algo: str = ALGO

    def __len__(self) -> int:
        return int(self.hashes.size)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "algo": self.algo,
            "t": [round(float(t), 3) for t in self.times],
            "h": [f"{int(h):016x}" for h in self.hashes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        if data.get("algo", ALGO) != ALGO:
            raise ValueError(f"unknown fingerprint algorithm {data.get('algo')!r}")
        return cls(
            times=np.asarray(data["t"], dtype=np.float64),
            hashes=np.asarray([int(h, 16) for h in data["h"]], dtype=np.uint64),
            format_version=int(data.get("format_version", FINGERPRINT_FORMAT_VERSION)),
        )


def _popcount64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    count = np.zeros(x.shape, dtype=np.uint8)
    for shift in range(0, 64, 8):
        count += _BYTE_POP[((x >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.uint8)]
    return count


_BYTE_POP = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True)
class Match:
    clip_id: Any
    score: float  # share of the new clip's hashed frames found in the other clip, in order
    offset_s: float  # where the new clip starts inside the other one (negative: before)
    matched: int
    compared: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "clip_id": self.clip_id,
            "score": round(self.score, 4),
            "offset_s": round(self.offset_s, 3),
            "matched": self.matched,
            "compared": self.compared,
        }


def match_fingerprints(
    new: Fingerprint, other: Fingerprint, *, max_distance: int = MAX_BIT_DISTANCE
) -> tuple[float, float, int]:
    """(score, offset_s, matched frames) of ``new`` against ``other``.

    Each new frame is paired with its nearest hashes in ``other``; the most popular time offset
    among close pairs is taken as the trim, and a frame counts when it has a close hash at that
    offset. Score = counted frames / the frames of ``new`` that could overlap ``other``."""
    if len(new) == 0 or len(other) == 0:
        return 0.0, 0.0, 0
    dist = _popcount64(new.hashes[:, None] ^ other.hashes[None, :])  # (n_new, n_other)
    close = dist <= max_distance
    if not close.any():
        return 0.0, 0.0, 0
    offsets = (other.times[None, :] - new.times[:, None])[close]
    # Vote for the offset in bins of the tolerance; refine with the median of the winning bin.
    bins = np.round(offsets / OFFSET_TOLERANCE_S).astype(np.int64)
    values, counts = np.unique(bins, return_counts=True)
    best = values[np.argmax(counts)]
    offset = float(np.median(offsets[bins == best]))
    aligned = close & (np.abs(other.times[None, :] - new.times[:, None] - offset) <= OFFSET_TOLERANCE_S)
    matched = int(aligned.any(axis=1).sum())
    # Only frames of the new clip that fall inside the other clip's span can match (trim-robust
    # both ways: a short excerpt of a long clip and a long clip containing a short one).
    lo, hi = other.times.min() - offset, other.times.max() - offset
    inside = (new.times >= lo - OFFSET_TOLERANCE_S) & (new.times <= hi + OFFSET_TOLERANCE_S)
    compared = max(int(inside.sum()), 1)
    # An overlap of a couple of frames proves nothing: demand at least 4 compared frames.
    if compared < 4:
        return 0.0, offset, matched
    return min(1.0, matched / compared), offset, matched


def find_duplicates(
    new: Fingerprint,
    known: Mapping[Any, Any] | Iterable[tuple[Any, Any]],
    *,
    min_score: float = 0.0,
    max_distance: int = MAX_BIT_DISTANCE,
) -> list[Match]:
    """Matches of ``new`` against earlier clips' fingerprints (dicts or ``Fingerprint``s), best
    first. ``known`` is ``{clip_id: fingerprint}`` or ``[(clip_id, fingerprint), ...]``."""
    items = known.items() if isinstance(known, Mapping) else known
    out = []
    for clip_id, fp in items:
        other = fp if isinstance(fp, Fingerprint) else Fingerprint.from_dict(fp)
        score, offset, matched = match_fingerprints(new, other, max_distance=max_distance)
        if score > min_score or (min_score == 0.0 and score > 0):
            lo, hi = other.times.min() - offset, other.times.max() - offset
            compared = int(((new.times >= lo - OFFSET_TOLERANCE_S) & (new.times <= hi + OFFSET_TOLERANCE_S)).sum())
            out.append(Match(clip_id, score, offset, matched, compared))
    out.sort(key=lambda m: m.score, reverse=True)
    return out

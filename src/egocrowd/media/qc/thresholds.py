"""QC thresholds: sensible defaults for head-mounted phone footage, overridable per campaign.

A campaign stores a partial dict (``{"min_duration_s": 20, "hands_fail_below": 0.6}``);
``QCThresholds.from_dict`` fills in the rest and rejects unknown keys so a typo cannot silently
disable a check. The full thresholds are copied into every report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from egocrowd.errors import InvalidInput

ORIENTATIONS = ("landscape", "portrait", "any")
MOUNTS = ("head_mounted", "chest_mounted", "handheld", "any")


@dataclass(frozen=True)
class QCThresholds:
    # duration (seconds)
    min_duration_s: float = 10.0
    max_duration_s: float = 600.0
    # resolution: the short side of the displayed picture, in pixels
    min_short_side: int = 480
    warn_short_side: int = 720
    min_long_side: int = 0
    # the displayed picture's shape and the camera mount the campaign asks for (see ORIENTATIONS, MOUNTS)
    orientation: str = "any"
    camera_placement: str = "any"
    # frame rate (frames per second, mean over the clip)
    min_fps: float = 24.0
    warn_fps: float = 29.0
    # exposure (luma as coded, video range 16-235): a frame is dark when its mean luma is below
    # dark_luma or most of its pixels are near black; overexposed when overexposed_pixels of its
    # pixels are blown out or its mean luma is above overexposed_luma
    dark_luma: float = 45.0
    overexposed_pixels: float = 0.4
    overexposed_luma: float = 205.0
    dark_fail_frac: float = 0.30
    dark_warn_frac: float = 0.10
    bright_fail_frac: float = 0.30
    bright_warn_frac: float = 0.10
    # blur: a sampled, well exposed frame is blurred below this focus measure (Laplacian/contrast)
    blur_sharpness: float = 0.04
    blur_fail_frac: float = 0.50
    blur_warn_frac: float = 0.25
    # frozen / duplicated frames: a frame (in moving footage) whose change from the previous one
    # is below frozen_diff gray levels or below frozen_relative x the local median change
    frozen_diff: float = 0.25
    frozen_relative: float = 0.3
    frozen_fail_frac: float = 0.20
    frozen_warn_frac: float = 0.05
    # camera shake: RMS of the jerky part of the camera motion, in % of the frame width per frame
    shake_warn_pct: float = 1.2
    shake_fail_pct: float = 2.5
    # idle: motion (mean |diff|, smoothed over 1 s) below idle_motion for this many seconds
    idle_motion: float = 1.0
    idle_warn_s: float = 5.0
    idle_fail_s: float = 10.0
    # near-duplicate: share of this clip's frames found, in order, in an earlier clip
    duplicate_fail_score: float = 0.5
    duplicate_warn_score: float = 0.25
    # hands: share of sampled frames with a palm detected at this confidence
    hand_score: float = 0.5
    hands_fail_below: float = 0.5
    hands_warn_below: float = 0.8
    # file integrity: share of packets that failed to decode
    decode_error_warn_frac: float = 0.0
    decode_error_fail_frac: float = 0.02
    # checks a campaign switches off by name
    disabled: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> QCThresholds:
        data = dict(data or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidInput(
                f"unknown QC thresholds: {', '.join(unknown)}", code="campaign.bad_requirements", unknown=unknown
            )
        clean: dict[str, Any] = {}
        for key, value in data.items():
            default = getattr(cls, key)
            try:
                if key == "disabled":
                    clean[key] = tuple(str(v) for v in value)
                elif isinstance(default, str):
                    clean[key] = str(value)
                elif isinstance(default, bool):
                    clean[key] = bool(value)
                elif isinstance(default, int):
                    clean[key] = int(value)
                else:
                    clean[key] = float(value)
                    if not math.isfinite(clean[key]):  # NaN passes every range check; inf is not JSON
                        raise ValueError(value)
            except (TypeError, ValueError, OverflowError) as exc:
                raise InvalidInput(
                    f"QC threshold {key} must be a number, not {value!r}", code="campaign.bad_requirements"
                ) from exc
        out = cls(**clean)
        out.validate()
        return out

    def validate(self) -> None:
        if self.min_duration_s > self.max_duration_s:
            raise InvalidInput("min_duration_s is above max_duration_s", code="campaign.bad_requirements")
        for key, allowed in (("orientation", ORIENTATIONS), ("camera_placement", MOUNTS)):
            if getattr(self, key) not in allowed:
                raise InvalidInput(f"{key} must be one of {', '.join(allowed)}", code="campaign.bad_requirements")
        for key in (
            "dark_fail_frac",
            "bright_fail_frac",
            "blur_fail_frac",
            "frozen_fail_frac",
            "hands_fail_below",
            "duplicate_fail_score",
        ):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise InvalidInput(f"{key} must be between 0 and 1", code="campaign.bad_requirements")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["disabled"] = list(self.disabled)
        return d

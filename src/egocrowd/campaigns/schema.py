"""What a campaign is made of, validated field by field. Shared by the API, the pages and the CLI."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from egocrowd.errors import EgocrowdError
from egocrowd.inputs import InputModel

Term = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


def _normalise_countries(v):
    """ "ke, ug" (a form) or ["ke"] → ["KE", "UG"]; anything else is left for the type check."""
    if isinstance(v, str):
        v = [t for t in re.split(r"[\s,;]+", v) if t]
    if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
        return v  # let the type check refuse it (422), never crash (500)
    return sorted({c.strip().upper() for c in v})


class _Strict(InputModel):
    pass


class CaptureRequirements(_Strict):
    min_duration_s: float = Field(20, ge=1, le=3600)
    max_duration_s: float = Field(90, ge=1, le=3600)
    min_width: int = Field(640, ge=64, le=8192)
    min_height: int = Field(360, ge=64, le=8192)
    min_fps: float = Field(24, ge=1, le=240)
    orientation: Literal["landscape", "portrait", "any"] = "landscape"
    camera_placement: Literal["head_mounted", "chest_mounted", "handheld", "any"] = "head_mounted"
    hands_in_view: bool = True
    max_upload_mb: int = Field(500, ge=1, le=8192)
    qc: dict[str, Any] = Field(
        default_factory=dict,
        max_length=60,
        description='QC threshold overrides (see docs/qc.md), e.g. {"dark_fail_frac": 0.2}',
    )

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_duration_s < self.min_duration_s:
            raise ValueError("max_duration_s must be at least min_duration_s")
        return self

    @field_validator("qc")
    @classmethod
    def _known_thresholds(cls, v: dict[str, Any]) -> dict[str, Any]:
        # lazy: importing egocrowd.media loads PyAV and OpenCV (~350 ms measured), which neither the
        # web server nor the worker's main process needs to start
        from egocrowd.media.qc.thresholds import QCThresholds

        try:  # unknown names or out-of-range values are refused now, not when the first clip arrives
            QCThresholds.from_dict(v)
        except EgocrowdError as exc:
            raise ValueError(exc.message) from None
        return v


class Taxonomy(_Strict):
    """A closed vocabulary in the style of EPIC-KITCHENS: labels are (verb, noun) class pairs, never
    free text, so "open door" cannot drift into "push button"."""

    verbs: list[Term] = Field(min_length=1, max_length=300)
    nouns: list[Term] = Field(min_length=1, max_length=1000)

    @field_validator("verbs", "nouns", mode="before")
    @classmethod
    def _normalise(cls, v):
        if isinstance(v, str):  # "open, close" from a form
            v = [t for t in re.split(r"[\s,;]+", v) if t]
        if not isinstance(v, list):
            return v  # let the type check refuse it (422), never crash (500)
        return [t.strip().lower() if isinstance(t, str) else t for t in v]

    @field_validator("verbs", "nouns")
    @classmethod
    def _unique(cls, v):
        dupes = sorted({t for t in v if v.count(t) > 1})
        if dupes:
            raise ValueError(f"duplicate terms: {', '.join(dupes)}")
        return v


class DataUse(_Strict):
    train: bool = True
    commercial: bool = False
    redistribute: bool = False
    keep_face: bool = Field(
        False, description="Keep the wearer's own face visible (not blurred) when it appears, e.g. in a mirror"
    )
    audio: bool = Field(False, description="Keep the sound recorded with the video")


class CampaignIn(_Strict):
    title: str = Field(min_length=3, max_length=200)
    instructions: str = Field(min_length=10, max_length=20000)
    requirements: CaptureRequirements = Field(default_factory=CaptureRequirements)
    taxonomy: Taxonomy
    target_clips: int = Field(ge=1, le=1_000_000)
    pay_cents: int = Field(ge=1, le=1_000_000, description="Pay per accepted clip, in cents")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    expected_minutes: float = Field(ge=0.5, le=600, description="Honest time a worker spends per clip")
    allowed_countries: list[Country] = Field(
        default_factory=list, max_length=250, description="ISO 3166 alpha-2; empty means everywhere"
    )
    data_use: DataUse = Field(default_factory=DataUse)
    buyer_name: str = Field(min_length=2, max_length=200, description="Who buys the data (shown to workers)")
    consent_version: str = Field(min_length=1, max_length=40)

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _countries(cls, v):
        return _normalise_countries(v)


class CampaignPatch(_Strict):
    """Any subset of the fields. Drafts may change everything; open or paused campaigns only what
    cannot change the deal a worker already accepted (see service.EDITABLE_WHEN_LIVE)."""

    title: str | None = Field(None, min_length=3, max_length=200)
    instructions: str | None = Field(None, min_length=10, max_length=20000)
    requirements: CaptureRequirements | None = None
    taxonomy: Taxonomy | None = None
    target_clips: int | None = Field(None, ge=1, le=1_000_000)
    pay_cents: int | None = Field(None, ge=1, le=1_000_000)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    expected_minutes: float | None = Field(None, ge=0.5, le=600)
    allowed_countries: list[Country] | None = None
    data_use: DataUse | None = None
    buyer_name: str | None = Field(None, min_length=2, max_length=200)
    consent_version: str | None = Field(None, min_length=1, max_length=40)

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _countries(cls, v):
        return v if v is None else _normalise_countries(v)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data):
        # Absent means "leave as is"; an explicit null would empty a required column (a 500).
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return data

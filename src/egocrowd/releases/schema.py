"""What a requester sends to preview or cut a release: the selection filters, the licence, the formats
(docs/releases.md, "Cutting a release"). Strict input models: unknown fields, NUL characters and
non-finite numbers are refused before anything is read."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from egocrowd.db.models import MAX_ID
from egocrowd.inputs import InputModel

ClipId = Annotated[int, Field(ge=1, le=MAX_ID)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
Label = Annotated[str, StringConstraints(min_length=3, max_length=121, pattern=r"^\S+ \S.*$")]
#: a release's series name: lower-case letters, digits and dashes ("jar-opening")
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$")]
QcKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,59}$")]
#: what a buyer may do under a licence; "commercial" and "redistribution" need the matching consent scope
Use = Literal["training", "research", "commercial", "redistribution"]


class Range(InputModel):
    """Inclusive bounds on one number; either may be left out."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not be above max")
        return self


class SelectionIn(InputModel):
    """Which accepted clips of the lab's campaigns go in. Every filter given must hold; an empty
    selection takes every eligible clip of the lab. ``clip_ids`` picks exactly those clips (the
    other filters are not applied to them), and every one must be eligible."""

    campaign_ids: list[ClipId] = Field(default_factory=list, max_length=200)
    labels: list[Label] = Field(
        default_factory=list, max_length=200, description='consensus action labels, "verb noun": any one matches'
    )
    countries: list[Country] = Field(default_factory=list, max_length=250, description="the workers' countries")
    recorded_from: date | None = Field(None, description="clips that arrived on or after this day (UTC)")
    recorded_to: date | None = Field(None, description="clips that arrived on or before this day (UTC)")
    min_duration_s: float | None = Field(None, ge=0, le=86_400)
    max_duration_s: float | None = Field(None, ge=0, le=86_400)
    qc: dict[QcKey, Range] = Field(
        default_factory=dict,
        max_length=30,
        description="bounds on QC figures: a value of the QC report's clip (fps, width, height, duration_s...) "
        "or a check's measured value (too_dark, hands_visible...)",
    )
    min_alpha: float | None = Field(
        None, ge=-1, le=1, description="minimum annotation agreement (Krippendorff's alpha)"
    )
    clip_ids: list[ClipId] = Field(default_factory=list, max_length=20_000)

    @model_validator(mode="after")
    def _ordered(self) -> SelectionIn:
        if self.recorded_from and self.recorded_to and self.recorded_from > self.recorded_to:
            raise ValueError("recorded_from must not be after recorded_to")
        lo, hi = self.min_duration_s, self.max_duration_s
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("min_duration_s must not be above max_duration_s")
        return self


class LicenceIn(InputModel):
    name: str = Field(min_length=1, max_length=100, description='e.g. "egocrowd research licence 1.0"')
    terms: str = Field("", max_length=50_000, description="the licence text buyers agree to")
    uses: list[Use] = Field(min_length=1, max_length=4)
    expires_at: datetime | None = Field(None, description="after this, no buyer may download under it")

    @model_validator(mode="after")
    def _unique(self) -> LicenceIn:
        self.uses = sorted(set(self.uses))
        return self


def _training() -> list[Use]:
    return ["training"]


class PreviewIn(InputModel):
    organization_id: ClipId | None = Field(None, description="admins: the lab; others: their own lab")
    selection: SelectionIn = Field(default_factory=SelectionIn)
    licence_uses: list[Use] = Field(default_factory=_training, max_length=4)


class ReleaseIn(InputModel):
    organization_id: ClipId | None = Field(None, description="admins: the lab; others: their own lab")
    name: Slug = Field(description="the series: every cut under one name is its next version")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20_000)
    selection: SelectionIn = Field(default_factory=SelectionIn)
    licence: LicenceIn
    formats: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")], dict[str, Any]] | None = Field(
        None,
        max_length=20,
        description='exporter or describer name → its options (e.g. {"lerobot": {"fps": 30}}); '
        "default: every registered one with its defaults",
    )


def selection_dict(sel: SelectionIn) -> dict[str, Any]:
    """The filters as stored with the release (only those given)."""
    return sel.model_dump(mode="json", exclude_defaults=True)


__all__ = ["LicenceIn", "PreviewIn", "Range", "ReleaseIn", "SelectionIn", "Use", "selection_dict"]

"""What a campaign is made of, validated field by field. Shared by the API, the pages and the CLI."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator, model_validator

from egocrowd import i18n
from egocrowd.clock import utcnow
from egocrowd.errors import EgocrowdError
from egocrowd.i18n import N_
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


def _future_deadline(v: datetime | None) -> datetime | None:
    """A deadline is a moment to come, in UTC (a form's naive "2027-01-31T18:00" is read as UTC)."""
    if v is None:
        return v
    if v.tzinfo is None:
        v = v.replace(tzinfo=UTC)
    if v <= utcnow():
        raise ValueError("the deadline must be in the future")
    return v.astimezone(UTC)


Deadline = Field(None, description="No new claims after this moment (UTC); the campaign then closes itself")
PerWorker = Field(None, ge=1, le=1_000_000, description="How many slots one worker may hold over the campaign's life")
#: training (#15, docs/training.md): what a worker needs to claim
NeedsQualification = Field(
    None, pattern=r"^[a-z0-9][a-z0-9-]{1,39}$", description="A training qualification's slug workers must hold"
)
_MIN_LEVEL = "The lowest recording level (1-5) workers need (campaigns.levels); 0: none"


class _Strict(InputModel):
    pass


class CaptureRequirements(_Strict):
    """What a lab asks of every clip. Each field is checked twice: on the phone before upload where a
    browser can measure it (static/capture.js), and by QC on the server, which decides
    (pipeline.stages.qc_thresholds_for; the table in docs/qc.md). A field nothing can check does
    not belong here. Titles and descriptions are the lab's form (labels and hints): a field removed
    here leaves the form with it."""

    min_duration_s: float = Field(
        20,
        ge=1,
        le=3600,
        title=N_("Shortest clip (seconds)"),
        description=N_("Shorter clips are sent back to the worker."),
    )
    max_duration_s: float = Field(
        90,
        ge=1,
        le=3600,
        title=N_("Longest clip (seconds)"),
        description=N_("Longer clips are sent back to the worker."),
    )
    min_width: int = Field(
        640,
        ge=64,
        le=8192,
        title=N_("Smallest width (pixels)"),
        description=N_("Measured on the picture as it is shown."),
    )
    min_height: int = Field(
        360,
        ge=64,
        le=8192,
        title=N_("Smallest height (pixels)"),
        description=N_("Measured on the picture as it is shown."),
    )
    min_fps: float = Field(
        24, ge=1, le=240, title=N_("Lowest frame rate (frames per second)"), description=N_("Most phones record 30.")
    )
    orientation: Literal["landscape", "portrait", "any"] = Field(
        "landscape", title=N_("Orientation"), description=N_("Landscape: wider than tall, as the picture is shown.")
    )
    camera_placement: Literal["head_mounted", "chest_mounted", "handheld", "any"] = Field(
        "head_mounted", title=N_("Where the phone is worn"), description=N_("The checklist workers see follows this.")
    )
    hands_in_view: bool = Field(
        True,
        title=N_("Both hands must be in view"),
        description=N_("QC checks that hands are seen in most of the clip."),
    )
    max_upload_mb: int = Field(
        500,
        ge=1,
        le=8192,
        title=N_("Largest file (MB)"),
        description=N_("Bigger uploads are refused before they start."),
    )
    qc: dict[str, Any] = Field(
        default_factory=dict,
        max_length=60,
        description='QC threshold overrides (see docs/qc.md), e.g. {"dark_fail_frac": 0.2}',
    )

    @field_validator("max_duration_s")
    @classmethod
    def _bounds(cls, v: float, info: ValidationInfo) -> float:
        # on the field (not the model), so a form can show the error next to it
        low = info.data.get("min_duration_s")
        if low is not None and v < low:
            raise ValueError("max_duration_s must be at least min_duration_s")
        return v

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
    """What buyers may do with the clips (shown to workers; each use beyond training needs the
    matching consent scope, see egocrowd.consent.scopes)."""

    train: bool = Field(True, description=N_("Train robot-learning and AI models on the clips"))
    commercial: bool = Field(False, description=N_("Use the clips commercially (in products or paid work)"))
    redistribute: bool = Field(False, description=N_("Pass the clips on to others (publish or sell the data set)"))
    keep_face: bool = Field(
        False, description=N_("Keep the wearer's own face visible (not blurred) when it appears, e.g. in a mirror")
    )
    audio: bool = Field(False, description=N_("Keep the sound recorded with the video"))


class PrivacySettings(_Strict):
    """How the campaign's clips are de-identified before anyone but an admin sees them
    (media.deid; docs/deid.md). The defaults are the strictest."""

    face_mode: Literal["blur", "fill"] = Field(
        "blur",
        title=N_("Faces"),
        description=N_("Blur: a strong blur that cannot be undone. Fill: a solid block of colour."),
    )
    blur_text: bool = Field(
        True, title=N_("Blur readable text"), description=N_("Screens, letters, labels and addresses seen in the clip.")
    )
    audio: Literal["drop", "keep", "mute_speech"] = Field(
        "drop",
        title=N_("Sound"),
        description=N_(
            "Drop it, keep it, or keep it with speech muted. Keeping sound needs the data use 'audio' "
            '("Keep the sound recorded with the video").'
        ),
    )
    recording_time: Literal["date", "full"] = Field(
        "date", title=N_("Recording time kept"), description=N_("Only the date, or the full time of day.")
    )


class ReviewSettings(_Strict):
    """Who accepts the campaign's clips (labels.review; docs/review.md). A clip that passed QC and
    de-identification is reviewed by a person with probability ``sample_fraction``, otherwise accepted
    at once; one nobody decides within ``auto_accept_days`` is accepted (as on MTurk)."""

    reviewers: Literal["platform", "requester", "both"] = Field(
        "platform",
        title=N_("Who reviews clips"),
        description=N_("Platform reviewers, your own team, or whichever of the two gets there first."),
    )
    sample_fraction: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        title=N_("Share of clips reviewed"),
        description=N_(
            "0 to 1: 1 reviews every clip, 0.2 one in five; the rest are accepted when they pass the checks."
        ),
    )
    auto_accept_days: int = Field(
        3,
        ge=1,
        le=30,
        title=N_("Auto-accept after (days)"),
        description=N_("A clip nobody has decided on by then is accepted, so workers are never kept waiting."),
    )
    pay_cents: int = Field(
        0,
        ge=0,
        le=1_000_000,
        title=N_("Pay per review decision"),
        description=N_(
            "In cents, paid to a platform reviewer for each clip, appeal or label fix they decide (your own team is not paid)."
        ),
    )
    redaction_pay_cents: int = Field(
        0,
        ge=0,
        le=1_000_000,
        title=N_("Pay per redaction review"),
        description=N_(
            "In cents, paid to a platform reviewer who checks and corrects the blurring of one of your clips (once per clip)."
        ),
    )


class AnnotationSettings(_Strict):
    """Action labels on the campaign's accepted clips (labels.tasks, labels.consensus; docs/labels.md):
    ``per_clip`` annotators mark spans from the taxonomy; gold clips are mixed in at ``gold_rate``;
    clips whose agreement (Krippendorff's alpha) falls below ``min_agreement`` go to a reviewer."""

    enabled: bool = Field(
        False,
        title=N_("Ask for action labels"),
        description=N_("Annotators mark what happens, and when, in each accepted clip."),
    )
    per_clip: int = Field(
        3,
        ge=1,
        le=9,
        title=N_("Annotators per clip"),
        description=N_("Each clip is labelled by this many different people."),
    )
    gold_rate: float = Field(
        0.1,
        ge=0.0,
        le=0.5,
        title=N_("Share of gold clips"),
        description=N_(
            "How often an annotator gets a clip with known answers (never marked as such), to measure their reliability."
        ),
    )
    min_agreement: float = Field(
        0.6,
        ge=0.0,
        le=1.0,
        title=N_("Least agreement"),
        description=N_("Clips whose annotators agree less than this (Krippendorff's alpha, 0 to 1) go to a reviewer."),
    )
    pay_cents: int = Field(
        0,
        ge=0,
        le=1_000_000,
        title=N_("Pay per labelled clip"),
        description=N_("In cents, paid to each annotator for an accepted answer."),
    )


class PaySettings(_Strict):
    """Pay rules beyond the piece rate (pay.rates; docs/pay.md "Fair pay")."""

    auto_top_up: bool = Field(
        False,
        title=N_("Top up pay automatically"),
        description=N_(
            "When the measured median working time shows the pay is under the floor, pay "
            "the difference to everyone already paid without asking the lab first."
        ),
    )


class CampaignText(_Strict):
    """The title and instructions in one more language, written by the lab (never machine-made)."""

    title: str = Field(min_length=3, max_length=200)
    instructions: str = Field(min_length=10, max_length=20000)


def _shipped_languages(v):
    """Translations are keyed by a language egocrowd ships ("fr", "sw"), nothing else."""
    if isinstance(v, dict):
        unknown = sorted(str(k) for k in v if k not in i18n.LANGUAGES)
        if unknown:
            raise ValueError(f"no such language: {', '.join(unknown)}; use one of {', '.join(sorted(i18n.LANGUAGES))}")
    return v


Translations: Any = Field(
    default_factory=dict,
    max_length=len(i18n.LANGUAGES),
    description='The title and instructions in other languages, by language code: {"fr": {"title": …, '
    '"instructions": …}}; workers read the one in their language, else the main text',
)


class CampaignIn(_Strict):
    title: str = Field(min_length=3, max_length=200)
    instructions: str = Field(min_length=10, max_length=20000)
    translations: dict[str, CampaignText] = Translations
    requirements: CaptureRequirements = Field(default_factory=CaptureRequirements)
    taxonomy: Taxonomy
    target_clips: int = Field(
        ge=0, le=1_000_000, description="Recording slots; 0: the campaign only evaluates robots (#19)"
    )
    pay_cents: int = Field(ge=1, le=1_000_000, description="Pay per accepted clip, in cents")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    expected_minutes: float = Field(ge=0.5, le=600, description="Honest time a worker spends per clip")
    allowed_countries: list[Country] = Field(
        default_factory=list, max_length=250, description="ISO 3166 alpha-2; empty means everywhere"
    )
    data_use: DataUse = Field(default_factory=DataUse)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    annotation: AnnotationSettings = Field(default_factory=AnnotationSettings)
    pay_policy: PaySettings = Field(default_factory=PaySettings)
    buyer_name: str = Field(min_length=2, max_length=200, description="Who buys the data (shown to workers)")
    consent_version: str = Field(min_length=1, max_length=40)
    deadline_at: datetime | None = Deadline
    max_clips_per_worker: int | None = PerWorker
    required_qualification: str | None = NeedsQualification
    min_level: int = Field(0, ge=0, le=5, description=_MIN_LEVEL)

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _countries(cls, v):
        return _normalise_countries(v)

    _deadline = field_validator("deadline_at")(_future_deadline)
    _languages = field_validator("translations", mode="before")(_shipped_languages)

    @model_validator(mode="after")
    def _sound_needs_consent(self):
        check_sound(self.privacy, self.data_use)
        return self


def check_sound(privacy: PrivacySettings, data_use: DataUse) -> None:
    """Sound may leave the raw store only when the workers' consent covers it (data use 'audio')."""
    if privacy.audio != "drop" and not data_use.audio:
        raise ValueError(
            "keeping sound needs the data use 'audio' (\"Keep the sound recorded with the video\"): "
            "the workers' consent must cover it"
        )


class CampaignPatch(_Strict):
    """Any subset of the fields. Drafts may change everything; open or paused campaigns only what
    cannot change the deal a worker already accepted (see service.EDITABLE_WHEN_LIVE)."""

    title: str | None = Field(None, min_length=3, max_length=200)
    instructions: str | None = Field(None, min_length=10, max_length=20000)
    translations: dict[str, CampaignText] | None = Field(
        None, max_length=len(i18n.LANGUAGES), description="Replaces every translation ({} removes them all)"
    )
    requirements: CaptureRequirements | None = None
    taxonomy: Taxonomy | None = None
    target_clips: int | None = Field(None, ge=0, le=1_000_000)
    pay_cents: int | None = Field(None, ge=1, le=1_000_000)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    expected_minutes: float | None = Field(None, ge=0.5, le=600)
    allowed_countries: list[Country] | None = None
    data_use: DataUse | None = None
    privacy: PrivacySettings | None = None
    review: ReviewSettings | None = None
    annotation: AnnotationSettings | None = None
    pay_policy: PaySettings | None = None
    buyer_name: str | None = Field(None, min_length=2, max_length=200)
    consent_version: str | None = Field(None, min_length=1, max_length=40)
    deadline_at: datetime | None = Deadline  # null: no deadline
    max_clips_per_worker: int | None = PerWorker  # null: no limit
    required_qualification: str | None = NeedsQualification  # null: none
    min_level: int | None = Field(None, ge=0, le=5, description=_MIN_LEVEL)

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _countries(cls, v):
        return v if v is None else _normalise_countries(v)

    _deadline = field_validator("deadline_at")(_future_deadline)
    _languages = field_validator("translations", mode="before")(_shipped_languages)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data):
        # Absent means "leave as is"; an explicit null would empty a required column (a 500).
        # Only the optional settings take null, meaning "none".
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None and k not in _NULLABLE)
            if nulls:
                raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return data


_NULLABLE = {"deadline_at", "max_clips_per_worker", "required_qualification"}

"""How our objects look on the wire (JSON): one pydantic model per resource, read straight from the
ORM rows (``Model.model_validate(row)``), so /api/docs documents exactly what the API sends."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    computed_field,
    field_validator,
)

from egocrowd import clips
from egocrowd.campaigns.schema import AnnotationSettings, PaySettings, PrivacySettings, ReviewSettings
from egocrowd.campaigns.service import hourly_rate_cents
from egocrowd.db.models import (
    AssignmentStatus,
    CampaignStatus,
    ClipStatus,
    ConsentStatus,
    JobStatus,
    OrgRole,
    ReviewKind,
    ReviewState,
    Role,
)

T = TypeVar("T")

#: Timestamps as Python writes them (``isoformat()``): the API's format since version 1 (pydantic's
#: own would write UTC as "Z" and change every timestamp clients already parse).
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[T]):
    items: list[T]


def page_of(model: type[_Out], rows) -> dict:
    """A page of ``rows`` as ``model`` (built inside the transaction: rows may load relations)."""
    return {"items": [model.model_validate(r) for r in rows]}


#: An organization, read from its row: sent as its name.
OrgName = Annotated[str, BeforeValidator(lambda org: getattr(org, "name", org))]


class UserOut(_Out):
    id: int
    email: str
    display_name: str
    role: Role
    organization: OrgName | None
    country: str | None
    created_at: Timestamp
    email_verified_at: Timestamp | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def email_verified(self) -> bool:
        """False until the address was confirmed through the emailed link (no slots until then)."""
        return self.email_verified_at is not None


class NotificationOut(_Out):
    id: int
    kind: str
    subject: str
    body: str
    link: str | None
    created_at: Timestamp
    read_at: Timestamp | None


class PayOut(BaseModel):
    per_clip_cents: int
    currency: str
    expected_minutes: float
    hourly_rate_cents: int


class CampaignOut(_Out):
    id: int
    title: str
    status: CampaignStatus
    instructions: str
    translations: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="The title and instructions in other languages, by language code"
    )
    organization: OrgName
    requirements: dict[str, Any]
    taxonomy: dict[str, Any]
    target_clips: int
    slots_taken: int
    allowed_countries: list[str]
    data_use: dict[str, bool]
    privacy: dict[str, Any] = Field(description="De-identification settings, defaults filled in")
    review: dict[str, Any] = Field(description="Who accepts clips, sampling, auto-accept; defaults filled in")
    annotation: dict[str, Any] = Field(description="Action labels asked for; defaults filled in")
    pay_policy: dict[str, Any] = Field(description="Pay rules beyond the piece rate (auto_top_up); defaults filled in")
    buyer_name: str
    consent_version: str
    deadline_at: Timestamp | None
    max_clips_per_worker: int | None
    required_qualification: str | None = Field(description="A training qualification workers must hold to claim")
    min_level: int = Field(description="The lowest recording level workers need to claim (0: none)")
    created_at: Timestamp
    updated_at: Timestamp
    # read from the row, sent inside ``pay``
    pay_cents: int = Field(exclude=True)
    currency: str = Field(exclude=True)
    expected_minutes: float = Field(exclude=True)

    @field_validator("privacy", mode="before")
    @classmethod
    def _privacy_defaults(cls, v: Any) -> dict[str, Any]:
        return PrivacySettings.model_validate(v or {}).model_dump()

    @field_validator("review", mode="before")
    @classmethod
    def _review_defaults(cls, v: Any) -> dict[str, Any]:
        return ReviewSettings.model_validate(v or {}).model_dump()

    @field_validator("annotation", mode="before")
    @classmethod
    def _annotation_defaults(cls, v: Any) -> dict[str, Any]:
        return AnnotationSettings.model_validate(v or {}).model_dump()

    @field_validator("pay_policy", mode="before")
    @classmethod
    def _pay_policy_defaults(cls, v: Any) -> dict[str, Any]:
        return PaySettings.model_validate(v or {}).model_dump()

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot type a decorated property (pydantic docs)
    @property
    def slots_left(self) -> int:
        return self.target_clips - self.slots_taken

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot type a decorated property (pydantic docs)
    @property
    def pay(self) -> PayOut:
        return PayOut(
            per_clip_cents=self.pay_cents,
            currency=self.currency,
            expected_minutes=self.expected_minutes,
            hourly_rate_cents=hourly_rate_cents(self),
        )


class ProgressOut(BaseModel):
    campaign_id: int
    status: CampaignStatus
    target: int
    slots_taken: int
    slots_left: int
    active: int
    submitted: int
    accepted: int = Field(description="Accepted clips, counted against the target")
    rejected: int
    expired: int
    released: int
    accepted_left: int = Field(description="Accepted clips the target still wants")
    awaiting_decision: int = Field(description="Clips that passed QC and wait for acceptance")
    clips_declined: int = Field(description="Clips a reviewer rejected")


class AssignmentOut(_Out):
    id: int
    campaign_id: int
    campaign_title: str = Field(validation_alias=AliasPath("campaign", "title"))
    worker_id: int
    status: AssignmentStatus
    claimed_at: Timestamp
    lease_expires_at: Timestamp
    submitted_at: Timestamp | None
    closed_at: Timestamp | None


class DocumentOut(_Out):
    """A consent document as listed (the text itself only when one document is asked for)."""

    version: str
    title: str
    sha256: str
    scopes: list[dict[str, Any]]
    created_at: Timestamp
    family: str
    revision: int
    language: str
    status: ConsentStatus
    organization_id: int | None  # None: the platform's own document
    published_at: Timestamp | None


class DocumentTextOut(DocumentOut):
    body: str


class DiffOut(BaseModel):
    """What changed from one text to another, as ``diff -u`` prints it."""

    old: str
    new: str
    unified_diff: str


class ConsentOut(_Out):
    id: int
    user_id: int
    version: str = Field(validation_alias=AliasPath("document", "version"))
    document_sha256: str
    scopes: list[str]
    language: str  # the language of the text signed (BCP 47)
    signed_at: Timestamp
    withdrawn_at: Timestamp | None

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot type a decorated property (pydantic docs)
    @property
    def active(self) -> bool:
        return self.withdrawn_at is None


class TokenOut(_Out):
    id: int
    name: str
    prefix: str
    created_at: Timestamp
    revoked_at: datetime | None = Field(exclude=True)
    expires_at: Timestamp | None  # None: never expires
    last_used_at: Timestamp | None  # to the minute

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot type a decorated property (pydantic docs)
    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class SessionOut(_Out):
    """A live browser session; ``current`` marks the one making the request."""

    id: int
    created_at: Timestamp
    last_seen_at: Timestamp  # to the minute
    expires_at: Timestamp
    user_agent: str | None
    current: bool = False

    @classmethod
    def of(cls, row: Any, current_id: int | None) -> SessionOut:
        return cls.model_validate(row).model_copy(update={"current": row.id == current_id})


class IssuedTokenOut(TokenOut):
    """A new token: shown once, with its owner."""

    token: str
    user: UserOut


class EventOut(_Out):
    id: int
    at: Timestamp
    actor_id: int | None
    action: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any]


class FeedbackOut(BaseModel):
    status: str
    name: str | None
    message: str
    advice: str


class ClipOut(_Out):
    id: int
    campaign_id: int
    assignment_id: int | None
    worker_id: int
    sha256: str
    size: int
    original_name: str
    client_meta: dict[str, str]
    duplicate_of: int | None
    status: ClipStatus
    reason_code: str | None
    probe: dict[str, Any] | None
    qc_report: dict[str, Any] | None
    created_at: Timestamp
    updated_at: Timestamp

    @computed_field  # type: ignore[prop-decorator]  # mypy cannot type a decorated property (pydantic docs)
    @property
    def feedback(self) -> list[FeedbackOut]:
        """The worker's feedback, by the same rule the clips page uses (it reads status, reason, report)."""
        return [FeedbackOut(**f) for f in clips.feedback(self)]


class ReviewItemOut(_Out):
    """One decision owed in the review queue (labels.review; docs/review.md)."""

    id: int
    kind: ReviewKind
    clip_id: int
    campaign_id: int
    audience: str = Field(description="Who may decide: platform, requester or both")
    state: ReviewState
    created_at: Timestamp
    due_at: Timestamp | None = Field(description="Acceptance: accepted automatically after this moment")
    disputes: str | None = Field(description="Appeals: what the worker disputes (qc or rejection)")
    request_comment: str = Field(description="Appeals: the worker's comment")
    decision: str | None
    reason: str | None
    comment: str
    decided_at: Timestamp | None


class QCStatsOut(BaseModel):
    campaign_id: int
    clips: int
    by_status: dict[str, int]
    pass_rate: float | None
    top_failures: list[dict[str, Any]]


# --- the admin console ----------------------------------------------------------------------------
class AdminUserOut(UserOut):
    """An account as an admin sees it in lists."""

    organization_id: int | None
    org_role: OrgRole | None
    is_active: bool


class UserFactsOut(_Out):
    consents_signed: int
    consents_active: int
    assignments: int
    clips: int
    sessions_live: int
    last_login: Timestamp | None


class AdminUserDetailOut(AdminUserOut):
    facts: UserFactsOut


class OrganizationOut(_Out):
    id: int
    name: str
    may_author_consent: bool
    created_at: Timestamp


class MemberOut(_Out):
    id: int
    email: str
    display_name: str
    org_role: OrgRole | None
    is_active: bool


class OrganizationDetailOut(OrganizationOut):
    members: list[MemberOut]


class JobOut(_Out):
    id: int
    clip_id: int
    stage: str
    status: JobStatus
    attempts: int
    stage_version: str | None
    last_error: str | None
    lease_expires_at: Timestamp | None
    created_at: Timestamp
    finished_at: Timestamp | None


class QueueDepthOut(BaseModel):
    stage: str
    status: str
    jobs: int


class HealthOut(BaseModel):
    """The numbers of the admin's health page (bytes are bytes)."""

    queue: list[QueueDepthOut]
    stuck: list[JobOut]
    uploads_open: int
    uploads_bytes: int
    blobs: int
    blobs_bytes: int
    disk_total_bytes: int
    disk_free_bytes: int
    database_bytes: int | None


class OverviewOut(BaseModel):
    users: dict[str, dict[str, int]]  # role → {"active": n, "suspended": n}
    campaigns: dict[str, int]  # status → count
    clips: dict[str, int]
    jobs: dict[str, int]


class PutBackOut(BaseModel):
    job_ids: list[int]


# --- annotation (#10: labels.tasks, labels.consensus) ---------------------------------------------
class SpanOut(_Out):
    start_ms: int
    end_ms: int
    verb: str
    noun: str


class AnnotationTaskOut(BaseModel):
    """An annotation task as its annotator reads it: what to label, never whether it is a gold clip."""

    id: int
    clip_id: int
    campaign_id: int
    status: str
    claimed_at: Timestamp
    lease_expires_at: Timestamp
    submitted_at: Timestamp | None
    flags: list[str]
    duration_ms: int | None
    fps: float | None
    video_url: str
    taxonomy: dict[str, list[str]]
    spans: list[SpanOut]


class QualificationOut(_Out):
    id: int
    user_id: int
    skill: str
    campaign_id: int | None
    granted_by: int | None
    granted_at: Timestamp
    revoked_at: Timestamp | None
    note: str


class ClipSpansOut(BaseModel):
    """A clip's reference (gold) or reviewed spans."""

    clip_id: int
    kind: str
    spans: list[SpanOut]

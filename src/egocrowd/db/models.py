"""All tables. Each capability package owns the logic; the tables live together so that one
migration history describes one schema. Enumerations are stored as short strings (portable across
SQLite and PostgreSQL) and checked by the ORM."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from egocrowd.clock import utcnow


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone on its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def _enum(cls: type[enum.Enum]) -> sa.Enum:
    return sa.Enum(
        cls,
        native_enum=False,
        length=20,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
        create_constraint=False,
    )


class Role(str, enum.Enum):
    worker = "worker"
    reviewer = "reviewer"
    requester = "requester"
    admin = "admin"


class CampaignStatus(str, enum.Enum):
    draft = "draft"
    open = "open"
    paused = "paused"
    closed = "closed"


class AssignmentStatus(str, enum.Enum):
    active = "active"  # leased to a worker, nothing submitted yet
    submitted = "submitted"  # a clip arrived
    accepted = "accepted"
    rejected = "rejected"
    expired = "expired"  # the lease ran out; the slot went back to the campaign
    released = "released"  # given back by the worker (or on consent withdrawal)


class ClipStatus(str, enum.Enum):
    processing = "processing"  # stored; pipeline stages (probe, qc, ...) still to run
    qc_passed = "qc_passed"
    qc_failed = "qc_failed"  # the worker sees why, and may record again while the lease runs
    rejected = "rejected"  # unusable file (unreadable, not a video, absurd): reason code kept
    error = "error"  # a stage failed repeatedly; the cause is on its job
    accepted = "accepted"  # a person (or the auto-accept rule) accepted it: pay and releases rely on this
    declined = "declined"  # a reviewer rejected it: reason_code "review.<reason>" (labels.review.REJECT_REASONS)
    withdrawn = "withdrawn"  # its worker withdrew consent, or an admin removed it for cause (releases.withdrawals)


class DeidStatus(str, enum.Enum):
    """Where a clip stands on de-identification (None on a clip that never needed it)."""

    pending = "pending"  # the deidentify stage is queued or running
    clean = "clean"  # derived media is ready and the detectors were confident
    review = "review"  # derived media is ready, and a person must look at it (low confidence, or asked)
    failed = "failed"  # could not be de-identified (``deid_reason``): nothing derived is served


class RedactionKind(str, enum.Enum):
    """A reviewer's correction to the automatic redaction."""

    add = "add"  # a missed region: a box over a frame range, redacted like a detection
    false = "false"  # a detected track that is not private (a poster, a pattern): left unredacted
    keep = "keep"  # the wearer's own face (e.g. in a mirror), kept only when their consent allows it


class LabelStatus(str, enum.Enum):
    """Where an accepted clip stands on action labels (None: its campaign asks for none)."""

    annotating = "annotating"  # annotation tasks are open until k answers are in
    review = "review"  # the annotators disagreed (or an audit sent spans back): a reviewer fixes them
    done = "done"  # consensus spans stored


class ReviewKind(str, enum.Enum):
    """What a person in the review queue is asked to decide (labels.review)."""

    acceptance = "acceptance"  # accept or reject a QC-passed, de-identified clip
    appeal = "appeal"  # a worker disputes a QC failure or a rejection (once per clip)
    spans = "spans"  # annotators disagreed: a reviewer fixes the consensus spans


class ReviewState(str, enum.Enum):
    open = "open"
    done = "done"
    cancelled = "cancelled"  # made moot (the clip's worker deleted their account, the campaign closed...)


class AnnotationTaskStatus(str, enum.Enum):
    active = "active"  # leased to an annotator until lease_expires_at
    submitted = "submitted"
    expired = "expired"  # the lease ran out: the slot is free for someone else
    released = "released"  # given back by the annotator


class BattleStatus(str, enum.Enum):
    active = "active"  # leased to an evaluator until lease_expires_at
    judged = "judged"  # the evaluator said which policy did better, or that they tied
    expired = "expired"  # the lease ran out
    released = "released"  # given back by the evaluator


class SpanKind(str, enum.Enum):
    answer = "answer"  # one annotator's span (task_id says which task)
    consensus = "consensus"  # the aggregate of the answers (confidence, support)
    gold = "gold"  # a reviewer's reference span on a gold clip
    review = "review"  # a reviewer's fix of the consensus on a clip in the spans review


class OrgRole(str, enum.Enum):
    """A requester's role inside their lab (organization)."""

    owner = "owner"  # everything, including the team and its API tokens
    editor = "editor"  # campaigns: create, edit, open, pause, close
    viewer = "viewer"  # read-only: progress, QC, spend


class ConsentStatus(str, enum.Enum):
    draft = "draft"  # editable, signable by nobody
    published = "published"  # frozen text; what workers sign
    retired = "retired"  # superseded or withdrawn from use; existing signatures keep pointing at it


class JobStatus(str, enum.Enum):
    pending = "pending"
    running = "running"  # leased by a worker process until lease_expires_at
    done = "done"
    error = "error"  # gave up after max attempts; last_error says why


class ReleaseStatus(str, enum.Enum):
    """A release is built once (releases.builder), then never changes."""

    building = "building"  # being exported; nothing of it is served yet
    published = "published"  # complete: manifest, root hash, files; immutable from here on
    failed = "failed"  # the build stopped (error says why); nothing of it is served


class AccessState(str, enum.Enum):
    """A buyer organization's access to a release (releases.buyers)."""

    requested = "requested"
    granted = "granted"
    refused = "refused"
    revoked = "revoked"


class PayoutBatchStatus(str, enum.Enum):
    open = "open"  # being put together; payouts may still be added or removed
    exported = "exported"  # the provider's file was written; money is in transit
    sent = "sent"  # the provider confirmed (its reference recorded); money left the platform
    cancelled = "cancelled"  # given up before sending; every payout's money went back to its worker


class TopUpState(str, enum.Enum):
    proposed = "proposed"  # the measured median rate is under the floor; the lab is asked
    accepted = "accepted"  # the lab (or the campaign's auto_top_up setting) agreed; paying
    declined = "declined"  # the lab refused (recorded, shown to workers)
    paid = "paid"  # every worker already paid on the campaign got their top-up


#: The largest row id: every id column is a 32-bit INTEGER (SERIAL on PostgreSQL). Inputs naming an id
#: are bounded by it, so a bigger number is a 422, never a driver error.
MAX_ID = 2**31 - 1

#: Assignment states that hold one of the campaign's slots.
SLOT_HOLDING = (AssignmentStatus.active, AssignmentStatus.submitted, AssignmentStatus.accepted)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: sa.JSON, list[Any]: sa.JSON}


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    #: the admin lets this lab author consent documents for its own campaigns
    may_author_consent: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(100))
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    role: Mapped[Role] = mapped_column(_enum(Role))
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    country: Mapped[str | None] = mapped_column(sa.String(2))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: role inside the organization (requesters); None for everyone else
    org_role: Mapped[OrgRole | None] = mapped_column(_enum(OrgRole))
    email_verified_at: Mapped[datetime | None]
    #: the account was deleted at the person's request: the row stays (ids in the ledger and the
    #: audit log point at it) with every personal field blanked
    deleted_at: Mapped[datetime | None]
    #: the language pages and mail speak to this person (egocrowd.i18n); None: the browser's
    language: Mapped[str | None] = mapped_column(sa.String(16))
    #: IANA time zone times are shown in ("Africa/Lagos"); None: the browser's
    time_zone: Mapped[str | None] = mapped_column(sa.String(64))

    organization: Mapped[Organization | None] = relationship()


class AccountToken(Base):
    """A one-time secret sent by email: verifying an address, resetting a password. Only its
    sha256 is stored; it works once, before ``expires_at``."""

    __tablename__ = "account_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(20))  # "verify_email" | "reset_password"
    email: Mapped[str] = mapped_column(sa.String(254))  # the address it was sent to
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class Notification(Base):
    """A message to one person, shown in the app (and emailed when mail is set up)."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(40))  # "qc.result", "campaign.closed", "consent.new_version", ...
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    link: Mapped[str | None] = mapped_column(sa.String(300))  # a path on this site
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]
    #: None while an email is still owed (or mail is off); set once sent, or "skipped"
    emailed_at: Mapped[datetime | None]

    __table_args__ = (sa.Index("ix_notifications_user_unread", "user_id", "read_at"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: never (tokens issued before expiry existed)
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class LoginSession(Base):
    """A browser session. The cookie carries a random secret; only its sha256 is stored here, so a
    leaked table cannot be replayed. Logging out, a password change, suspension... set revoked_at."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    user_agent: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class LoginThrottle(Base):
    """Log-in attempts counted per account and per client address (``key`` is a sha256 of either),
    in a fixed window, so that every app process sees the same counts."""

    __tablename__ = "login_throttles"
    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    window_start: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)


class ConsentDocument(Base):
    __tablename__ = "consent_documents"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(sa.String(40), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: [{"id": "face_visible", "label": "...", "required": false}, ...]
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: one document through its versions and languages: ("egocrowd-worker", 3, "fr")
    family: Mapped[str] = mapped_column(sa.String(60), index=True)
    revision: Mapped[int] = mapped_column(default=1)
    language: Mapped[str] = mapped_column(sa.String(16), default="en")
    status: Mapped[ConsentStatus] = mapped_column(_enum(ConsentStatus), default=ConsentStatus.published)
    #: None: the platform's own; otherwise the lab that wrote it (usable only by its campaigns)
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id"))
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    published_at: Mapped[datetime | None]


class ConsentRecord(Base):
    __tablename__ = "consent_records"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    document_id: Mapped[int] = mapped_column(sa.ForeignKey("consent_documents.id"))
    document_sha256: Mapped[str] = mapped_column(sa.String(64))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]
    #: the language of the text the person read and signed (its document's; kept on the signature
    #: so the record stands on its own)
    language: Mapped[str] = mapped_column(sa.String(16), default="en")

    document: Mapped[ConsentDocument] = relationship()


class Campaign(Base):
    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    created_by: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(sa.String(200))
    instructions: Mapped[str] = mapped_column(sa.Text)
    #: the lab's own versions of the title and instructions in other languages:
    #: {"fr": {"title": "...", "instructions": "..."}}; workers read theirs, else the main text
    translations: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requirements: Mapped[dict[str, Any]] = mapped_column(default=dict)
    taxonomy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    target_clips: Mapped[int]
    #: Slots held by active, submitted or accepted assignments. Changed only by conditional
    #: UPDATEs in egocrowd.campaigns.assignments, so it can never pass target_clips.
    slots_taken: Mapped[int] = mapped_column(default=0)
    pay_cents: Mapped[int]
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    expected_minutes: Mapped[float]
    allowed_countries: Mapped[list[Any]] = mapped_column(default=list)
    data_use: Mapped[dict[str, Any]] = mapped_column(default=dict)
    buyer_name: Mapped[str] = mapped_column(sa.String(200))
    consent_version: Mapped[str] = mapped_column(sa.String(40))
    #: no new claims after this moment (None: open-ended)
    deadline_at: Mapped[datetime | None]
    #: how many slots one worker may hold in this campaign over its life (None: no limit)
    max_clips_per_worker: Mapped[int | None]
    #: training (#15): the qualification (its slug) a worker must hold to claim, and the lowest
    #: recording level (campaigns.levels; 0: none) — claims check both (campaigns.assignments)
    required_qualification: Mapped[str | None] = mapped_column(sa.String(40))
    min_level: Mapped[int] = mapped_column(default=0, server_default="0")
    #: how its clips are de-identified (campaigns.schema.PrivacySettings; {} means the defaults)
    privacy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: who accepts its clips, how many are sampled, auto-accept (campaigns.schema.ReviewSettings)
    review: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: action labels on accepted clips: k, gold rate, agreement bar (campaigns.schema.AnnotationSettings)
    annotation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: pay rules beyond the piece rate: {"auto_top_up": bool, ...} (campaigns.schema / pay.rates)
    pay_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[CampaignStatus] = mapped_column(_enum(CampaignStatus), default=CampaignStatus.draft, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    organization: Mapped[Organization] = relationship()

    __table_args__ = (sa.CheckConstraint("slots_taken >= 0 AND slots_taken <= target_clips", name="ck_campaign_slots"),)


class Assignment(Base):
    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    worker_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    status: Mapped[AssignmentStatus] = mapped_column(_enum(AssignmentStatus), default=AssignmentStatus.active)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    #: idle time the capture page saw between claim and submit (tab hidden, no input), in seconds;
    #: working time = submitted_at - claimed_at - idle_seconds (pay.rates)
    idle_seconds: Mapped[int | None]

    campaign: Mapped[Campaign] = relationship()
    worker: Mapped[User] = relationship()

    __table_args__ = (sa.Index("ix_assignments_status_lease", "status", "lease_expires_at"),)


class AuditEvent(Base):
    """Append-only: the migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)  # the admin's "by whom"
    action: Mapped[str] = mapped_column(sa.String(60), index=True)
    entity_type: Mapped[str] = mapped_column(sa.String(40))
    entity_id: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: the hash chain (docs/provenance.md), set once when the event's transaction commits: its place
    #: in the one order of the log (1, 2, 3... no gaps; unique, so two writers cannot fork it), the
    #: previous event's hash and this one's. None only on a row written around the app (verify reports it)
    seq: Mapped[int | None] = mapped_column(sa.BigInteger, unique=True, index=True)
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64))
    hash: Mapped[str | None] = mapped_column(sa.String(64))

    __table_args__ = (sa.Index("ix_audit_entity", "entity_type", "entity_id"),)


class Clip(Base):
    """One uploaded (or ingested) video. Its bytes live in the blob store under ``sha256``."""

    __tablename__ = "clips"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("assignments.id"), index=True)
    worker_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    #: tus upload id or "ingest:<sha256>": makes finishing an upload idempotent after a crash
    source_ref: Mapped[str] = mapped_column(sa.String(100), unique=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    original_name: Mapped[str] = mapped_column(sa.String(200))
    client_meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    duplicate_of: Mapped[int | None] = mapped_column(sa.ForeignKey("clips.id"))
    status: Mapped[ClipStatus] = mapped_column(_enum(ClipStatus), default=ClipStatus.processing, index=True)
    reason_code: Mapped[str | None] = mapped_column(sa.String(60))
    probe: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    qc_report: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    fingerprint: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: de-identification: None until the clip needs it; ``deid_reason`` is a stable code when failed
    #: or sent to review; ``derived_id`` is the derivative everyone but an admin gets
    deid_status: Mapped[DeidStatus | None] = mapped_column(_enum(DeidStatus), index=True)
    deid_reason: Mapped[str | None] = mapped_column(sa.String(60))
    derived_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("derivatives.id", use_alter=True, name="fk_clips_derived_id")
    )
    #: acceptance (labels.review): when the clip became ``accepted`` (or ``declined``)
    decided_at: Mapped[datetime | None]
    #: action labels (labels.tasks, labels.consensus): None when the campaign asks for none
    label_status: Mapped[LabelStatus | None] = mapped_column(_enum(LabelStatus), index=True)
    #: agreement of the latest aggregation: {"alpha": .., "mean_iou": .., "annotators": n, "round": r}
    agreement: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: a gold clip: reviewer-made reference spans (SpanKind.gold) exist; mixed into annotators' work unmarked
    is_gold: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    #: who first marked the clip's redaction reviewed, and when (clips.redaction; pay.redaction pays them)
    redaction_reviewed_by: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", name="fk_clips_redaction_reviewed_by"), index=True
    )
    redaction_reviewed_at: Mapped[datetime | None]
    #: the signature that covered the upload (consent.require_cover): releases check its scopes and
    #: withdrawal; None only on clips ingested without one
    consent_record_id: Mapped[int | None] = mapped_column(sa.ForeignKey("consent_records.id"), index=True)

    campaign: Mapped[Campaign] = relationship()
    assignment: Mapped[Assignment | None] = relationship()
    derived: Mapped[Derivative | None] = relationship(foreign_keys=[derived_id], post_update=True)


class Derivative(Base):
    """Media made from a clip's raw bytes (derived, never overwritten): today the de-identified video.

    Every render is a new row, so a re-render after a reviewer's correction keeps the old one for the
    record. ``params`` names the detectors with their versions and thresholds and the policies applied;
    ``regions`` are the redacted tracks (media.deid.RedactionPlan.to_dict); ``summary`` holds counts and
    the reasons a person should look (low-confidence frames, muted speech, metadata removed)."""

    __tablename__ = "derivatives"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))  # "deid"
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    source_sha256: Mapped[str] = mapped_column(sa.String(64))  # the raw blob it was made from
    mime_type: Mapped[str] = mapped_column(sa.String(60), default="video/mp4")
    format_version: Mapped[int] = mapped_column(default=1)
    stage_version: Mapped[str] = mapped_column(sa.String(40))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    regions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))  # None: the pipeline

    clip: Mapped[Clip] = relationship(foreign_keys=[clip_id])


class RedactionEdit(Base):
    """A reviewer's correction, applied by every later render of the clip until withdrawn.

    ``add``: ``box`` = [x0, y0, x1, y1] as fractions of the frame, over frames ``frame_start`` to
    ``frame_end`` (inclusive). ``false`` and ``keep``: ``track_id`` names a track of the derivative
    ``derivative_id`` (its frame range is copied into ``frame_start``/``frame_end``)."""

    __tablename__ = "redaction_edits"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    derivative_id: Mapped[int | None] = mapped_column(sa.ForeignKey("derivatives.id"))
    kind: Mapped[RedactionKind] = mapped_column(_enum(RedactionKind))
    frame_start: Mapped[int]
    frame_end: Mapped[int]
    box: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    track_id: Mapped[int | None]
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    created_by: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]


#: Who may decide a review item (``ReviewItem.audience``, and a campaign's ``review.reviewers``):
#: platform reviewers, the campaign's own lab, or whichever of the two gets there first.
AUDIENCE_PLATFORM, AUDIENCE_REQUESTER, AUDIENCE_BOTH = "platform", "requester", "both"
REVIEW_AUDIENCES = (AUDIENCE_PLATFORM, AUDIENCE_REQUESTER, AUDIENCE_BOTH)
#: the audiences whose items platform reviewers decide, and those a campaign's lab decides
PLATFORM_DECIDES = (AUDIENCE_PLATFORM, AUDIENCE_BOTH)
REQUESTER_DECIDES = (AUDIENCE_REQUESTER, AUDIENCE_BOTH)


class ReviewItem(Base):
    """One decision a person owes: accept a clip, rule on an appeal, fix disagreeing spans.

    Decided once: the decision is a conditional UPDATE (``WHERE state = 'open'``), so two reviewers
    deciding at the same moment get one success and one ``review.already_decided``. ``audience``
    says who may decide (``platform`` reviewers, the campaign's ``requester``, or ``both``);
    ``excluded_user_id`` may not (on an appeal: the person who rejected the clip)."""

    __tablename__ = "review_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ReviewKind] = mapped_column(_enum(ReviewKind))
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    audience: Mapped[str] = mapped_column(sa.String(20))  # one of REVIEW_AUDIENCES
    state: Mapped[ReviewState] = mapped_column(_enum(ReviewState), default=ReviewState.open)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: acceptance: accepted automatically after this moment without a decision (None: never)
    due_at: Mapped[datetime | None]
    excluded_user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    #: appeals: the worker who asked, their comment, and what they dispute ("qc" or "rejection")
    requested_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    request_comment: Mapped[str] = mapped_column(sa.Text, default="")
    disputes: Mapped[str | None] = mapped_column(sa.String(20))
    #: the decision: "accept" | "reject" | "auto_accept" | "uphold" | "overturn" | "fixed" | "cancel"
    decision: Mapped[str | None] = mapped_column(sa.String(20))
    reason: Mapped[str | None] = mapped_column(sa.String(60))
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    decided_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))  # None: automatic
    decided_at: Mapped[datetime | None]

    clip: Mapped[Clip] = relationship()
    campaign: Mapped[Campaign] = relationship()

    __table_args__ = (
        sa.Index("ix_review_items_queue", "state", "kind", "created_at"),
        # at most one open item of a kind per clip, and one appeal per clip ever
        sa.Index(
            "uq_review_items_open",
            "clip_id",
            "kind",
            unique=True,
            sqlite_where=sa.text("state = 'open'"),
            postgresql_where=sa.text("state = 'open'"),
        ),
        sa.Index(
            "uq_review_items_appeal",
            "clip_id",
            unique=True,
            sqlite_where=sa.text("kind = 'appeal'"),
            postgresql_where=sa.text("kind = 'appeal'"),
        ),
    )


class Qualification(Base):
    """A person may do a kind of work (``skill``: "annotate"), on one campaign or (None) on all."""

    __tablename__ = "qualifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    skill: Mapped[str] = mapped_column(sa.String(40))
    campaign_id: Mapped[int | None] = mapped_column(sa.ForeignKey("campaigns.id"))
    granted_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))  # None: earned (a test)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(sa.String(500), default="")


class AnnotationTask(Base):
    """One annotator's job on one clip: mark the actions seen, as spans from the campaign's taxonomy.

    Like an assignment it is leased; ``k`` of them (campaign.annotation.per_clip) per clip and round.
    ``is_gold``: the clip is a gold clip mixed in; the annotator is never told. ``round`` goes up
    when a label audit sends a clip's spans back for re-annotation."""

    __tablename__ = "annotation_tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    round: Mapped[int] = mapped_column(default=1)
    is_gold: Mapped[bool] = mapped_column(default=False)
    status: Mapped[AnnotationTaskStatus] = mapped_column(
        _enum(AnnotationTaskStatus), default=AnnotationTaskStatus.active
    )
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime]
    submitted_at: Mapped[datetime | None]
    #: warnings about the answer: ["too_fast"] when submitted far faster than the clip plays
    flags: Mapped[list[Any]] = mapped_column(default=list)
    #: a gold task's score against the reference: {"score": .., "mistakes": [...]}
    score: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: idle time the annotation page saw between claim and submit, in seconds (pay.rates)
    idle_seconds: Mapped[int | None]

    clip: Mapped[Clip] = relationship()
    annotator: Mapped[User] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("clip_id", "annotator_id", "round", name="uq_annotation_task_once"),
        sa.Index("ix_annotation_tasks_status_lease", "status", "lease_expires_at"),
    )


class Span(Base):
    """A labelled stretch of a clip: ``start_ms`` to ``end_ms`` (milliseconds of the clip's time,
    exact integers), one verb and one noun from the campaign's taxonomy. Never edited: a newer
    aggregation or fix sets ``superseded_at`` on the old rows and adds new ones."""

    __tablename__ = "spans"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"))
    kind: Mapped[SpanKind] = mapped_column(_enum(SpanKind))
    task_id: Mapped[int | None] = mapped_column(sa.ForeignKey("annotation_tasks.id"), index=True)
    #: answers: the annotator; gold and review: the reviewer; consensus: None
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    round: Mapped[int] = mapped_column(default=1)
    start_ms: Mapped[int]
    end_ms: Mapped[int]
    verb: Mapped[str] = mapped_column(sa.String(60))
    noun: Mapped[str] = mapped_column(sa.String(60))
    #: consensus: the probability of its label and boundaries (0..1) and how many annotators marked it
    confidence: Mapped[float | None]
    support: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[datetime | None]

    __table_args__ = (
        sa.Index("ix_spans_clip_kind", "clip_id", "kind"),
        sa.CheckConstraint("start_ms >= 0 AND end_ms > start_ms", name="ck_span_order"),
    )


class LabelFlag(Base):
    """A systematic confusion found by a label audit (labels.audits): ``given`` was labelled where
    ``expected`` was meant, in ``rate`` of ``total`` cases — by one annotator, or (annotator None)
    across the campaign. ``basis``: compared with "gold" or with the "consensus". Labels are
    written "verb noun"."""

    __tablename__ = "label_flags"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    annotator_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    basis: Mapped[str] = mapped_column(sa.String(20))
    expected: Mapped[str] = mapped_column(sa.String(121))
    given: Mapped[str] = mapped_column(sa.String(121))
    count: Mapped[int]
    total: Mapped[int]
    rate: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: spans sent back for re-annotation because of it
    spans_reopened: Mapped[int] = mapped_column(default=0)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class Job(Base):
    """One pipeline stage of one clip. Taken under a lease, so a killed worker loses nothing."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    stage: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), default=JobStatus.pending)
    attempts: Mapped[int] = mapped_column(default=0)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(80))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    stage_version: Mapped[str | None] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    clip: Mapped[Clip] = relationship()

    __table_args__ = (
        sa.UniqueConstraint("clip_id", "stage", name="uq_job_clip_stage"),
        sa.Index("ix_jobs_ready", "status", "run_after"),
    )


class LedgerAccountKind(str, enum.Enum):
    """Whose money an account holds (egocrowd.pay.ledger; docs/pay.md). Positive balance: held."""

    worker_earnings = "worker_earnings"  # owed to a worker (user), not yet paid out
    campaign_budget = "campaign_budget"  # a campaign's funds, spent by paying for its work
    lab_funding = "lab_funding"  # an organization's deposits: the outside world, negative as money comes in
    platform_fees = "platform_fees"  # the platform's fees
    payouts_in_transit = "payouts_in_transit"  # in a payout batch, not yet confirmed sent
    paid_out = "paid_out"  # left the platform to a worker's payout method


class LedgerTransactionKind(str, enum.Enum):
    deposit = "deposit"
    clip_accepted = "clip_accepted"
    annotation_accepted = "annotation_accepted"
    review_work = "review_work"
    evaluation_work = "evaluation_work"  # a verdict in a blind A/B battle (egocrowd.evaluations)
    session_work = "session_work"  # an accepted long field session, per hour (pay.sessions)
    redaction_review = "redaction_review"  # a clip's redaction reviewed by a platform reviewer (pay.redaction)
    bonus = "bonus"
    top_up = "top_up"
    reversal = "reversal"
    payout = "payout"
    adjustment = "adjustment"


class LedgerAccount(Base):
    """One currency, one owner. ``balance`` is a cache of SUM(entries.amount), written only by
    egocrowd.pay.ledger.post in the transaction that writes the entries (pay.ledger.verify checks it);
    every reading of a balance is computed from the entries."""

    __tablename__ = "ledger_accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[LedgerAccountKind] = mapped_column(_enum(LedgerAccountKind))
    currency: Mapped[str] = mapped_column(sa.String(3))
    #: "user:7", "campaign:3", "organization:2" or "platform": one account per kind, currency, owner
    owner_key: Mapped[str] = mapped_column(sa.String(40))
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    campaign_id: Mapped[int | None] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    balance: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("kind", "currency", "owner_key", name="uq_ledger_account_owner"),)


class LedgerTransaction(Base):
    """Append-only (the migration installs triggers refusing UPDATE and DELETE). Its entries sum to
    zero per currency. ``idempotency_key`` makes a retried posting return this row instead of paying
    twice; ``content_sha256`` tells a true retry from a different posting reusing the key."""

    __tablename__ = "ledger_transactions"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[LedgerTransactionKind] = mapped_column(_enum(LedgerTransactionKind), index=True)
    idempotency_key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.String(500))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))  # None: the platform itself
    #: the database's clock (egocrowd.clock.db_now)
    at: Mapped[datetime] = mapped_column(index=True)
    reverses_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_transactions.id"), unique=True)
    #: an admin let a balance go below zero with this posting (actor and reason say who and why)
    allow_negative: Mapped[bool] = mapped_column(default=False)
    #: what it pays for: {"clip_id": 5, "campaign_id": 2, ...}
    refs: Mapped[dict[str, Any]] = mapped_column(default=dict)

    entries: Mapped[list[LedgerEntry]] = relationship(back_populates="transaction", order_by="LedgerEntry.id")


class LedgerEntry(Base):
    """One leg: ``amount`` minor units of the account's currency, signed (positive: into the account).
    Append-only, like its transaction."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(sa.BigInteger)

    transaction: Mapped[LedgerTransaction] = relationship(back_populates="entries")

    __table_args__ = (
        # statements and balances read one account's entries in order: index-only with amount in it
        sa.Index("ix_ledger_entries_account", "account_id", "id", "amount"),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_entry_nonzero"),
    )


class AuditCheckpoint(Base):
    """A signed statement that the audit log's event ``seq`` has hash ``hash`` (so the whole chain up
    to it): Ed25519 over the canonical encoding (docs/provenance.md). Append-only, like the log."""

    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    hash: Mapped[str] = mapped_column(sa.String(64))
    #: the database's clock when it was signed
    at: Mapped[datetime] = mapped_column()
    #: why: "periodic", "release:<id>", "manual"...
    reason: Mapped[str] = mapped_column(sa.String(100))
    #: sha256 of the raw public key, hex: which published key verifies it
    key_id: Mapped[str] = mapped_column(sa.String(64))
    signature: Mapped[str] = mapped_column(sa.String(128))  # hex, 64 bytes


# --- pay: floors, measured rates, top-ups, exchange rates, payouts (egocrowd.pay; docs/pay.md) ---------


class PayFloor(Base):
    """The least an hour of work may pay in a country (``country`` "*": everywhere without its own
    row), with where the figure comes from. Admin-edited; every change is an audit event."""

    __tablename__ = "pay_floors"
    id: Mapped[int] = mapped_column(primary_key=True)
    country: Mapped[str] = mapped_column(sa.String(2), unique=True)
    currency: Mapped[str] = mapped_column(sa.String(3))
    hourly_minor: Mapped[int] = mapped_column(sa.BigInteger)
    source: Mapped[str] = mapped_column(sa.String(500))
    updated_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TopUp(Base):
    """A proposal (then a payment) raising a campaign's pay to its floor once the measured median
    working time shows underpay: ``per_task_minor`` to each of ``tasks`` already paid."""

    __tablename__ = "top_ups"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), index=True)
    state: Mapped[TopUpState] = mapped_column(_enum(TopUpState), default=TopUpState.proposed)
    currency: Mapped[str] = mapped_column(sa.String(3))
    median_seconds: Mapped[int]
    hourly_minor: Mapped[int] = mapped_column(sa.BigInteger)  # the measured effective rate
    floor_minor: Mapped[int] = mapped_column(sa.BigInteger)  # the highest floor among allowed countries
    per_task_minor: Mapped[int] = mapped_column(sa.BigInteger)
    tasks: Mapped[int]
    total_minor: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))  # None: automatic
    decided_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]


class ExchangeRate(Base):
    """An admin-set rate: 1 ``base`` = ``rate`` ``quote`` (a decimal string, exact). Rows are never
    edited; the newest per pair is the one in use. Shown to workers beside their pay, for reference."""

    __tablename__ = "exchange_rates"
    id: Mapped[int] = mapped_column(primary_key=True)
    base: Mapped[str] = mapped_column(sa.String(3))
    quote: Mapped[str] = mapped_column(sa.String(3))
    rate: Mapped[str] = mapped_column(sa.String(40))
    source: Mapped[str] = mapped_column(sa.String(300), default="")
    set_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.Index("ix_exchange_rates_pair", "base", "quote", "set_at"),)


class PayoutMethod(Base):
    """Where a worker wants their money: a provider ("paypal", "wise", "mpesa"...) and an account
    reference there. Removing one keeps the row (payouts point at it)."""

    __tablename__ = "payout_methods"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(40))
    account_ref: Mapped[str] = mapped_column(sa.String(200))
    currency: Mapped[str] = mapped_column(sa.String(3))
    is_default: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]


class PayoutBatch(Base):
    """Payouts an admin sends together through one provider in one currency. Its status changes
    only by conditional UPDATEs, so two admins acting on one batch get one success and one conflict."""

    __tablename__ = "payout_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(40))
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[PayoutBatchStatus] = mapped_column(_enum(PayoutBatchStatus), default=PayoutBatchStatus.open)
    minimum_minor: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    exported_at: Mapped[datetime | None]
    #: the provider file written (a blob), so the same bytes can be downloaded again
    export_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    sent_at: Mapped[datetime | None]
    sent_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    provider_reference: Mapped[str | None] = mapped_column(sa.String(200))


class Payout(Base):
    """One worker's money in a batch; ``transaction_id`` moved it from their earnings to payouts in
    transit, ``sent_transaction_id`` out of the platform (or back, if the batch was cancelled)."""

    __tablename__ = "payouts"
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(sa.ForeignKey("payout_batches.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    method_id: Mapped[int] = mapped_column(sa.ForeignKey("payout_methods.id"))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    transaction_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_transactions.id"))
    sent_transaction_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_transactions.id"))
    provider_reference: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("batch_id", "user_id", name="uq_payout_batch_user"),)


class PayAppeal(Base):
    """A worker disputes the reversal of a clip's pay, once per reversal, with a comment; an admin
    upholds it (nothing moves) or overturns it (``repay_transaction_id`` reverses the reversal: the
    pay comes back). Decided once, by a conditional UPDATE on ``state`` (egocrowd.pay.appeals)."""

    __tablename__ = "pay_appeals"
    id: Mapped[int] = mapped_column(primary_key=True)
    reversal_id: Mapped[int] = mapped_column(sa.ForeignKey("ledger_transactions.id"), unique=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    comment: Mapped[str] = mapped_column(sa.Text)
    #: "open" | "upheld" | "overturned"
    state: Mapped[str] = mapped_column(sa.String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    decision_comment: Mapped[str] = mapped_column(sa.Text, default="")
    repay_transaction_id: Mapped[int | None] = mapped_column(sa.ForeignKey("ledger_transactions.id"))


# --- releases: datasets, buyers, withdrawals (egocrowd.releases; docs/releases.md) ----------------------


class Release(Base):
    """One immutable version of a dataset: accepted clips chosen by ``selection``, exported in
    ``formats``, under ``licence``. Versions of one ``name`` in one organization form a series;
    ``previous_id`` is the one before, and ``changes`` what was added and withdrawn since it.
    Once ``published``, nothing in the row or its files changes (``root_hash`` is sha256 over the
    manifest, which lists every file's path, size and sha256)."""

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))  # a slug: "jar-opening"
    version: Mapped[int]
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    previous_id: Mapped[int | None] = mapped_column(sa.ForeignKey("releases.id"))
    #: the filters as given: campaign ids, labels, countries, dates, QC values, agreement
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: {"name": .., "terms": .., "uses": ["training", "commercial", "redistribution"], "expires_at": iso | None}
    licence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: exporter (or describer) name -> {"version": its format version, **options}, e.g.
    #: {"lerobot": {"version": "v3.0", "fps": 30}, "webdataset": {"version": 1}} (releases.exporting)
    formats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[ReleaseStatus] = mapped_column(_enum(ReleaseStatus), default=ReleaseStatus.building, index=True)
    #: the manifest blob and the root hash over it (set when published)
    manifest_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    root_hash: Mapped[str | None] = mapped_column(sa.String(64))
    #: {"added": [clip sha256...], "withdrawn": [clip sha256...]} since ``previous_id``
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: composition for the catalog and the data card: hours, clips, countries, labels, QC, agreement, pay
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: the build: done/total steps while building, the problem when failed
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    #: a builder process holds the build until then (a killed builder's release is picked up again)
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    format_version: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]

    organization: Mapped[Organization] = relationship()

    __table_args__ = (sa.UniqueConstraint("organization_id", "name", "version", name="uq_release_version"),)


class ReleaseClip(Base):
    """A clip in a release, with the hashes it was released under and the release files that carry
    its bytes (``files``: paths in the manifest), which a withdrawal notice lists."""

    __tablename__ = "release_clips"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(sa.ForeignKey("releases.id"), index=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), index=True)
    clip_sha256: Mapped[str] = mapped_column(sa.String(64))  # the raw upload
    media_sha256: Mapped[str] = mapped_column(sa.String(64))  # the de-identified video released
    consent_record_id: Mapped[int | None] = mapped_column(sa.ForeignKey("consent_records.id"))
    files: Mapped[list[Any]] = mapped_column(default=list)

    __table_args__ = (sa.UniqueConstraint("release_id", "clip_id", name="uq_release_clip"),)


class ReleaseFile(Base):
    """One file of a published release, stored as a blob under its sha256."""

    __tablename__ = "release_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(sa.ForeignKey("releases.id"), index=True)
    path: Mapped[str] = mapped_column(sa.String(500))  # "lerobot/meta/info.json"
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    format: Mapped[str] = mapped_column(sa.String(40))  # the exporter that wrote it ("manifest" for the manifest)

    __table_args__ = (sa.UniqueConstraint("release_id", "path", name="uq_release_file_path"),)


class ReleaseAccess(Base):
    """A buyer organization's access to a release: requested by one of its members, decided by the
    release's owner. Downloads need ``granted`` and an unexpired licence."""

    __tablename__ = "release_access"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(sa.ForeignKey("releases.id"), index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    state: Mapped[AccessState] = mapped_column(_enum(AccessState), default=AccessState.requested)
    requested_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    message: Mapped[str] = mapped_column(sa.Text, default="")  # what the buyer means to do with it
    decided_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    decided_at: Mapped[datetime | None]
    note: Mapped[str] = mapped_column(sa.Text, default="")
    #: the licence ends for this buyer then (None: the release licence's own expiry, or never)
    expires_at: Mapped[datetime | None]

    __table_args__ = (sa.UniqueConstraint("release_id", "organization_id", name="uq_release_access"),)


class ReleaseDownload(Base):
    """Every download of a release file, by whom, for which buyer (None: the owner's own staff or an admin)."""

    __tablename__ = "release_downloads"
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(sa.ForeignKey("releases.id"), index=True)
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    path: Mapped[str] = mapped_column(sa.String(500))
    sha256: Mapped[str] = mapped_column(sa.String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Withdrawal(Base):
    """A clip taken out of every later release: its worker withdrew consent, or an admin removed it
    for cause. After ``purge_after`` its raw and derived media are deleted; this row stays as the
    tombstone (the hashes of what was deleted)."""

    __tablename__ = "withdrawals"
    id: Mapped[int] = mapped_column(primary_key=True)
    clip_id: Mapped[int] = mapped_column(sa.ForeignKey("clips.id"), unique=True)
    reason: Mapped[str] = mapped_column(sa.String(40))  # "consent_withdrawn" | "removed"
    comment: Mapped[str] = mapped_column(sa.Text, default="")
    clip_sha256: Mapped[str] = mapped_column(sa.String(64))
    #: every blob of the clip (raw, derivatives) to delete, and deleted: [sha256...]
    media: Mapped[list[Any]] = mapped_column(default=list)
    #: when consent was withdrawn (or the removal decided): the clock the notices are measured from
    withdrawn_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))  # None: the worker's own withdrawal
    purge_after: Mapped[datetime]
    purged_at: Mapped[datetime | None]


class WithdrawalNotice(Base):
    """Told to a buyer who downloaded a release that contains a withdrawn clip: the files affected (by
    path and sha256). The buyer must acknowledge it."""

    __tablename__ = "withdrawal_notices"
    id: Mapped[int] = mapped_column(primary_key=True)
    withdrawal_id: Mapped[int] = mapped_column(sa.ForeignKey("withdrawals.id"), index=True)
    release_id: Mapped[int] = mapped_column(sa.ForeignKey("releases.id"), index=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    files: Mapped[list[Any]] = mapped_column(default=list)  # [{"path": .., "sha256": ..}]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))

    __table_args__ = (
        sa.UniqueConstraint("withdrawal_id", "release_id", "organization_id", name="uq_withdrawal_notice"),
    )


# --- training (#15): qualifications with practice and a test ---------------------------------------
class TrainingQualification(Base):
    """What a worker can earn by passing a test (``slug`` is the ``Qualification.skill`` it grants),
    with practice items beforehand. ``kind``: the work it teaches, "record" or "annotate"; earning the
    "annotate" qualification opens annotation work. Made by a lab (``organization_id``) or an admin
    (None: the platform's)."""

    __tablename__ = "training_qualifications"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(40), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    kind: Mapped[str] = mapped_column(sa.String(20))
    organization_id: Mapped[int | None] = mapped_column(sa.ForeignKey("organizations.id"), index=True)
    pass_mark: Mapped[int]  # percent of the test's points, 1..100
    test_items: Mapped[int]  # how many items one test draws
    max_attempts: Mapped[int]  # tests one worker may start in any window of ``cooldown_hours``
    cooldown_hours: Mapped[int]
    sample_clip_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clips.id"))  # a good recording
    created_by: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived_at: Mapped[datetime | None]


class TrainingItem(Base):
    """One practice or test item: an annotation item on a gold clip (``clip_id``), or a recording
    item (no clip: the worker records one; QC judges it)."""

    __tablename__ = "training_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    qualification_id: Mapped[int] = mapped_column(sa.ForeignKey("training_qualifications.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(20))  # "annotate" | "record"
    use: Mapped[str] = mapped_column(sa.String(10))  # "practice" | "test"
    clip_id: Mapped[int | None] = mapped_column(sa.ForeignKey("clips.id"))
    prompt: Mapped[str] = mapped_column(sa.Text, default="")  # the lab's words for this item
    position: Mapped[int] = mapped_column(default=0)

    clip: Mapped[Clip | None] = relationship()


class TrainingAttempt(Base):
    """A worker's practice on one item, or one test. ``items``: the item ids drawn (a test);
    ``result``: per item their answer, the right one and the score (practice: the same for one item)."""

    __tablename__ = "training_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    qualification_id: Mapped[int] = mapped_column(sa.ForeignKey("training_qualifications.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    mode: Mapped[str] = mapped_column(sa.String(10))  # "practice" | "test"
    items: Mapped[list[Any]] = mapped_column(default=list)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    score: Mapped[float | None]  # 0..100
    passed: Mapped[bool | None]

    qualification: Mapped[TrainingQualification] = relationship()


class Evaluation(Base):
    """A campaign's robot evaluation (issue #19, egocrowd.evaluations): the lab's policies judged in
    blind A/B battles by the campaign's workers. The campaign gives the budget, status, consent and
    qualification rules; this row the battle rules."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(sa.ForeignKey("campaigns.id"), unique=True)
    #: what evaluators are asked to try (the protocol): [{"task": "...", "prompt": "..."}]
    tasks: Mapped[list[Any]] = mapped_column(default=list)
    environments: Mapped[list[Any]] = mapped_column(default=list)
    pay_cents: Mapped[int] = mapped_column(default=0)  # per verdict, in the campaign's currency
    #: per hour of an accepted field session (pay.sessions), in the campaign's currency; 0: unpaid
    session_hour_cents: Mapped[int] = mapped_column(default=0, server_default="0")
    #: the most hours one session is paid for, whatever its log says (a forged duration)
    session_max_hours: Mapped[int] = mapped_column(default=2, server_default="2")
    gold_rate: Mapped[float] = mapped_column(default=0.1)
    #: pairs whose better policy the lab knows: [{"better": policy id, "worse": policy id}]
    gold: Mapped[list[Any]] = mapped_column(default=list)
    lease_minutes: Mapped[int] = mapped_column(default=30)
    max_open: Mapped[int] = mapped_column(default=1)
    #: stop scheduling once every adjacent pair of the ranking is settled (the sequential test)
    alpha: Mapped[float] = mapped_column(default=0.05)
    created_by: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    campaign: Mapped[Campaign] = relationship()


class EvalPolicy(Base):
    """A policy under evaluation: a remote endpoint (``http`` or ``websocket``, egocrowd.bench's
    adapters) or a physical robot known by name. Evaluators never see ``name``."""

    __tablename__ = "eval_policies"
    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluations.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[str] = mapped_column(sa.String(20))  # "http" | "websocket" | "physical"
    endpoint: Mapped[str | None] = mapped_column(sa.String(500))
    retired_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.UniqueConstraint("evaluation_id", "name", name="uq_eval_policies_evaluation_id_name"),)


class Battle(Base):
    """One blind A/B comparison: an evaluator gives one instruction to two anonymised policies and
    says which did better (``a``, ``b``) or that they tied, with a reason. Leased like other work;
    ``is_gold``: a pair whose better policy the lab knows, mixed in unmarked to check evaluators."""

    __tablename__ = "battles"
    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluations.id"), index=True)
    policy_a_id: Mapped[int] = mapped_column(sa.ForeignKey("eval_policies.id"))
    policy_b_id: Mapped[int] = mapped_column(sa.ForeignKey("eval_policies.id"))
    evaluator_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    status: Mapped[BattleStatus] = mapped_column(_enum(BattleStatus), default=BattleStatus.active)
    is_gold: Mapped[bool] = mapped_column(default=False)
    task: Mapped[str | None] = mapped_column(sa.String(200))  # from the evaluation's tasks, suggested
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_expires_at: Mapped[datetime]
    judged_at: Mapped[datetime | None]
    instruction: Mapped[str | None] = mapped_column(sa.Text)  # what the evaluator asked
    person: Mapped[str | None] = mapped_column(sa.String(100))  # who gave it, in a household
    environment: Mapped[str | None] = mapped_column(sa.String(100))
    verdict: Mapped[str | None] = mapped_column(sa.String(4))  # "a" | "b" | "tie"
    reason: Mapped[str | None] = mapped_column(sa.Text)
    # per slot ("a", "b"): the simulated run the evaluator watched, or the mark that a physical robot
    # ran; never a policy's name (egocrowd.evaluations.serving)
    rollouts: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    # what the lab's robot operator types to learn which policy to load for a slot, without the
    # evaluator learning it (``<code>-A``, ``<code>-B``)
    operator_code: Mapped[str | None] = mapped_column(sa.String(16), index=True)

    __table_args__ = (
        sa.CheckConstraint("policy_a_id <> policy_b_id", name="ck_battles_two_policies"),
        sa.CheckConstraint("verdict IS NULL OR verdict IN ('a', 'b', 'tie')", name="ck_battles_verdict"),
    )


class SharedUpload(Base):
    """An unfinished (or recently finished) tus upload when several servers share uploads
    (``egocrowd.uploads.shared``): the record here, the bytes as parts in the object store."""

    __tablename__ = "shared_uploads"
    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(100), index=True)
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    offset: Mapped[int] = mapped_column(sa.BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    record: Mapped[dict[str, Any]] = mapped_column(sa.JSON)  # UploadInfo.to_json()
    parts: Mapped[list[str]] = mapped_column(sa.JSON, default=list)  # object keys, in offset order


class FieldSession(Base):
    """A long session a worker logged on the phone (issue #19, egocrowd.evaluations.sessions): one
    egocrowd.bench log (one session) uploaded with tus. ``accepted`` logs passed the bench readers and
    are scored; a ``rejected`` one keeps its raw bytes (``blob_sha256``) and the reader's words (with
    the line) so the worker can fix and send it again and an admin can look at it."""

    __tablename__ = "field_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(sa.ForeignKey("evaluations.id"), index=True)
    worker_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    upload_id: Mapped[str] = mapped_column(sa.String(64), unique=True)  # the tus upload: finishing is idempotent
    session_id: Mapped[str | None] = mapped_column(sa.String(200))  # the log header's, when it could be read
    status: Mapped[str] = mapped_column(sa.String(10))  # "accepted" | "rejected"
    policy_id: Mapped[int | None] = mapped_column(sa.ForeignKey("eval_policies.id"))
    environment: Mapped[str | None] = mapped_column(sa.String(100))
    people: Mapped[list[Any]] = mapped_column(default=list)  # pseudonymous labels ("P1"), never names
    events: Mapped[int] = mapped_column(default=0)
    duration_s: Mapped[float | None]
    blob_sha256: Mapped[str] = mapped_column(sa.String(64))
    size_bytes: Mapped[int]
    error: Mapped[str | None] = mapped_column(sa.Text)
    error_line: Mapped[int | None]
    started_at: Mapped[datetime | None]  # the phone's clock, from the header
    #: what the session earns (pay.sessions), fixed when it was accepted: the rate and cap of then
    pay_cents: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint("status IN ('accepted', 'rejected')", name="ck_field_sessions_status"),)

"""Each clip's lineage (#13): where it came from and everything done to it, as W3C PROV.

One walk over what the platform stores about a clip gives an ordered list of :class:`Step`:
the consent signature it was recorded under, the upload, every pipeline stage with its version,
each de-identification render with its detectors and parameters, every annotator's answer, the
aggregation, the acceptance, every published release that contains it, and a withdrawal. Two
renderings share it: :func:`prov_document` (PROV-JSON through the ``prov`` package, for the API and
for releases) and the timeline on the clip page.

People appear only as pseudonyms (:func:`pseudonym`): a keyed hash of their account id, the same
everywhere this platform shows them, meaningless without the platform's secret. Each step that has
an audit event carries the event's place in the hash chain (``seq`` and ``hash``), so the lineage
can be checked against the tamper-evident log (docs/provenance.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import __version__, audit
from egocrowd.clips.media import find_clip
from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    Assignment,
    AuditEvent,
    Clip,
    ConsentRecord,
    Derivative,
    Job,
    Release,
    ReleaseClip,
    ReleaseStatus,
    ReviewItem,
    ReviewKind,
    Span,
    SpanKind,
    User,
    Withdrawal,
)
from egocrowd.i18n import N_, Text, Verbatim, say
from egocrowd.labels import review

#: The namespace of egocrowd's own PROV terms (identifiers and attributes).
NAMESPACE = "https://egocrowd.org/ns/prov#"
PREFIX = "ego"
#: Bumped when the shape of the lineage changes (stored with every PROV document).
FORMAT_VERSION = 1

#: a review's kind and decision in people's words (the same words as the review pages)
REVIEW_KINDS = {"acceptance": N_("Acceptance"), "appeal": N_("Appeal"), "spans": N_("Fix labels")}
DECISIONS = review.DECISION_WORDS


def pseudonym(secret: str, kind: str, ident: int) -> str:
    """A stable stand-in for a person: ``kind`` ("worker", "annotator", "reviewer"...) and 12 hex
    digits of HMAC-SHA256 over their account id. The kind is not in the hash: one person is the same
    pseudonym whether they recorded or annotated."""
    digest = hmac.new(secret.encode(), f"user:{ident}".encode(), hashlib.sha256).hexdigest()[:12]
    return f"{kind}-{digest}"


@dataclass(frozen=True, slots=True)
class Entity:
    """A thing with an identity: a signature, a file (by sha256), a set of labels, a release."""

    id: str
    kind: str  # "consent" | "media" | "report" | "labels" | "release"
    label: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    derived_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """Something that happened to the clip, by someone (a pseudonym) or by the platform."""

    id: str
    kind: str  # "consent" | "upload" | "stage" | "deid" | "annotation" | "aggregation" | "review" | "acceptance" | "release" | "withdrawal"
    title: Text  # shown in the reader's language; English in the PROV document
    started_at: datetime | None
    ended_at: datetime | None
    agent: str  # a pseudonym, or "egocrowd" (the platform's software)
    used: tuple[str, ...] = ()
    generated: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @property
    def at(self) -> datetime | None:
        return self.ended_at or self.started_at


@dataclass(frozen=True, slots=True)
class Lineage:
    clip_id: int
    entities: tuple[Entity, ...]
    steps: tuple[Step, ...]  # in time order
    agents: Mapping[str, str]  # id -> "person" | "software" | "organization"


SOFTWARE = "egocrowd"


def _chain(event: AuditEvent | None) -> dict[str, Any]:
    if event is None or event.seq is None:
        return {}
    return {"audit_seq": event.seq, "audit_hash": event.hash}


def clip_lineage(session: Session, clip: Clip, *, secret: str) -> Lineage:
    """Everything stored about ``clip``'s origin and handling, as steps in time order."""
    entities: dict[str, Entity] = {}
    steps: list[Step] = []
    agents: dict[str, str] = {SOFTWARE: "software"}
    events = audit.events_for(session, "clip", clip.id)

    def first(action: str) -> AuditEvent | None:
        return next((e for e in events if e.action == action), None)

    def person(kind: str, user_id: int | None) -> str:
        if user_id is None:
            return SOFTWARE
        name = pseudonym(secret, kind, user_id)
        agents[name] = "person"
        return name

    worker = person("worker", clip.worker_id)
    raw = f"media-{clip.sha256}"
    entities[raw] = Entity(raw, "media", "the uploaded video", {"sha256": clip.sha256, "size": clip.size})

    # -- consent and upload ------------------------------------------------------------------------
    used_at_upload = []
    record = session.get(ConsentRecord, clip.consent_record_id) if clip.consent_record_id else None
    if record is not None:
        cid = f"consent-{record.id}"
        doc = record.document
        entities[cid] = Entity(
            cid,
            "consent",
            f"consent {doc.version} as signed",
            {
                "version": doc.version,
                "document_sha256": record.document_sha256,
                "language": doc.language,
                "scopes": list(record.scopes or []),
                "withdrawn": record.withdrawn_at is not None,
            },
        )
        steps.append(
            Step(
                "sign-consent",
                "consent",
                say(N_("Signed consent {version}"), version=Verbatim(doc.version)),
                record.signed_at,
                record.signed_at,
                worker,
                generated=(cid,),
            )
        )
        used_at_upload.append(cid)
    assignment = session.get(Assignment, clip.assignment_id) if clip.assignment_id else None
    steps.append(
        Step(
            "upload",
            "upload",
            say(N_("Recorded and uploaded")),
            assignment.claimed_at if assignment else clip.created_at,
            clip.created_at,
            worker,
            used=tuple(used_at_upload),
            generated=(raw,),
            attributes={
                "campaign_id": clip.campaign_id,
                "source": clip.source_ref.split(":")[0],
                **_chain(first("clip.uploaded")),
            },
        )
    )

    # -- pipeline stages ---------------------------------------------------------------------------
    reports = {"probe": clip.probe, "qc": clip.qc_report}
    for job in session.scalars(sa.select(Job).where(Job.clip_id == clip.id).order_by(Job.created_at, Job.id)):
        if job.stage == "deidentify":
            continue  # each render is its own step below, with its detectors
        generated: tuple[str, ...] = ()
        if reports.get(job.stage):
            rid = f"{job.stage}-report"
            entities[rid] = Entity(rid, "report", f"{job.stage} report", {"stage_version": job.stage_version})
            generated = (rid,)
        steps.append(
            Step(
                f"stage-{job.stage}",
                "stage",
                say(N_("Pipeline stage: {stage}"), stage=Verbatim(job.stage)),
                job.created_at,
                job.finished_at,
                SOFTWARE,
                used=(raw,),
                generated=generated,
                attributes={
                    "stage": job.stage,
                    "stage_version": job.stage_version,
                    "status": job.status.value,
                    "attempts": job.attempts,
                },
            )
        )
    deid_events = [e for e in events if e.action == "clip.deidentified"]
    for d in session.scalars(sa.select(Derivative).where(Derivative.clip_id == clip.id).order_by(Derivative.id)):
        did = f"media-{d.sha256}"
        entities[did] = Entity(
            did,
            "media",
            "the de-identified video",
            {"sha256": d.sha256, "size": d.size, "format_version": d.format_version},
            derived_from=(f"media-{d.source_sha256}",),
        )
        event = next((e for e in deid_events if (e.payload or {}).get("derivative_id") == d.id), None)
        steps.append(
            Step(
                f"deid-{d.id}",
                "deid",
                say(
                    N_("De-identified (re-rendered after a reviewer's corrections)")
                    if d.created_by
                    else N_("De-identified")
                ),
                d.created_at,
                d.created_at,
                person("reviewer", d.created_by) if d.created_by else SOFTWARE,
                used=(f"media-{d.source_sha256}",),
                generated=(did,),
                attributes={
                    "stage_version": d.stage_version,
                    "params": dict(d.params or {}),
                    "current": d.id == clip.derived_id,
                    **_chain(event),
                },
            )
        )

    # -- acceptance --------------------------------------------------------------------------------
    for item in session.scalars(
        sa.select(ReviewItem)
        .where(ReviewItem.clip_id == clip.id, ReviewItem.decided_at.is_not(None))
        .order_by(ReviewItem.id)
    ):
        if item.kind is ReviewKind.spans:
            continue  # span fixes are part of the labels, below
        steps.append(
            Step(
                f"review-{item.id}",
                "review",
                say(
                    N_("{kind} review: {decision}"),
                    kind=REVIEW_KINDS.get(item.kind.value, Verbatim(item.kind.value)),
                    decision=DECISIONS.get(item.decision or "", Verbatim(item.decision or "")),
                ),
                item.created_at,
                item.decided_at,
                person("reviewer", item.decided_by),
                used=(f"media-{clip.derived.sha256}",) if clip.derived else (raw,),
                attributes={"kind": item.kind.value, "decision": item.decision, "reason": item.reason},
            )
        )
    accepted = first("clip.accepted")
    if accepted is not None:
        steps.append(
            Step(
                "acceptance",
                "acceptance",
                say(N_("Accepted")),
                accepted.at,
                accepted.at,
                person("reviewer", accepted.actor_id),
                used=(f"media-{clip.derived.sha256}",) if clip.derived else (raw,),
                attributes={"how": (accepted.payload or {}).get("how"), **_chain(accepted)},
            )
        )

    # -- labels ------------------------------------------------------------------------------------
    answers = []
    # every answer's span count in one query (the clip page draws this on each visit)
    spans_per_task = dict(
        session.execute(
            sa.select(Span.task_id, sa.func.count())
            .where(Span.clip_id == clip.id, Span.task_id.is_not(None))
            .group_by(Span.task_id)
        ).all()
    )
    for task in session.scalars(
        sa.select(AnnotationTask)
        .where(AnnotationTask.clip_id == clip.id, AnnotationTask.status == AnnotationTaskStatus.submitted)
        .order_by(AnnotationTask.id)
    ):
        aid = f"answer-{task.id}"
        annotator = person("annotator", task.annotator_id)
        n = spans_per_task.get(task.id, 0)
        entities[aid] = Entity(aid, "labels", f"{annotator}'s spans", {"spans": n, "round": task.round})
        answers.append(aid)
        steps.append(
            Step(
                f"annotation-{task.id}",
                "annotation",
                say(N_("Annotated")),
                task.claimed_at,
                task.submitted_at,
                annotator,
                used=(f"media-{clip.derived.sha256}",) if clip.derived else (),
                generated=(aid,),
                attributes={"round": task.round, "gold": task.is_gold},
            )
        )
    aggregated = [e for e in events if e.action in ("clip.labels_aggregated", "clip.spans_fixed")]
    if aggregated:
        last = aggregated[-1]
        consensus = session.scalar(
            sa.select(sa.func.count())
            .select_from(Span)
            .where(
                Span.clip_id == clip.id,
                Span.kind.in_((SpanKind.consensus, SpanKind.review)),
                Span.superseded_at.is_(None),
            )
        )
        entities["labels"] = Entity(
            "labels",
            "labels",
            "the clip's action labels",
            {"spans": consensus, **{k: v for k, v in (clip.agreement or {}).items() if k in ("alpha", "mean_iou")}},
            derived_from=tuple(answers),
        )
        for e in aggregated:
            fixed = e.action == "clip.spans_fixed"
            steps.append(
                Step(
                    f"labels-{e.id or 'pending'}",
                    "aggregation",
                    say(N_("Labels fixed by a reviewer") if fixed else N_("Labels aggregated")),
                    e.at,
                    e.at,
                    person("reviewer", e.actor_id) if fixed else SOFTWARE,
                    used=tuple(answers),
                    generated=("labels",) if e is last else (),
                    attributes=_chain(e),
                )
            )

    # -- releases and withdrawal -------------------------------------------------------------------
    for rc, release in session.execute(
        sa.select(ReleaseClip, Release)
        .join(Release, Release.id == ReleaseClip.release_id)
        .where(ReleaseClip.clip_id == clip.id, Release.status == ReleaseStatus.published)
        .order_by(Release.published_at, Release.id)
    ):
        rid = f"release-{release.id}"
        org = f"org-{release.organization_id}"
        agents[org] = "organization"
        entities[rid] = Entity(
            rid,
            "release",
            f"{release.name} v{release.version}",
            {"root_hash": release.root_hash, "files": list(rc.files or [])},
            derived_from=(f"media-{rc.media_sha256}",),
        )
        steps.append(
            Step(
                f"publish-{release.id}",
                "release",
                say(
                    N_("Published in release {name} v{version}"),
                    name=Verbatim(release.name),
                    version=Verbatim(str(release.version)),
                ),
                release.created_at,
                release.published_at,
                org,
                used=(f"media-{rc.media_sha256}",),
                generated=(rid,),
                attributes={"release_id": release.id},
            )
        )
    withdrawal = session.scalar(sa.select(Withdrawal).where(Withdrawal.clip_id == clip.id))
    if withdrawal is not None:
        steps.append(
            Step(
                "withdrawal",
                "withdrawal",
                say(
                    N_("Withdrawn: consent withdrawn")
                    if withdrawal.reason == "consent_withdrawn"
                    else N_("Removed for cause")
                ),
                withdrawal.withdrawn_at,
                withdrawal.withdrawn_at,
                worker if withdrawal.by is None else person("admin", withdrawal.by),
                used=(raw,),
                attributes={"reason": withdrawal.reason, "media_deleted_at": withdrawal.purged_at},
            )
        )

    # in the order things were done: a stage queued with the upload finishes after it
    steps.sort(key=lambda st: st.at or clip.created_at)
    return Lineage(clip.id, tuple(entities.values()), tuple(steps), agents)


def visible_lineage(session: Session, user: User, clip_id: int, *, secret: str) -> tuple[Clip, Lineage]:
    """The lineage of a clip ``user`` may see (its worker, its lab, reviewers, admins), else 404."""
    clip = find_clip(session, user, clip_id)
    return clip, clip_lineage(session, clip, secret=secret)


def prov_document(lineage: Lineage, *, clip_sha256: str) -> dict[str, Any]:
    """The lineage as a PROV-JSON document (W3C PROV through the ``prov`` package)."""
    from prov.model import PROV, ProvDocument  # imported here: pages that never ask pay nothing

    doc = ProvDocument()
    doc.add_namespace(PREFIX, NAMESPACE)
    doc.add_namespace("clip", f"{NAMESPACE}clip/{clip_sha256}/")

    def q(local: str) -> str:
        return f"clip:{local}"

    def attrs(values: Mapping[str, Any], **fixed: Any) -> Any:
        # PROV attribute values are literals: nested structures become their JSON text
        out: dict[str, Any] = {k.replace("__", ":"): v for k, v in fixed.items()}
        for k, v in values.items():
            if v is None:
                continue
            out[f"{PREFIX}:{k}"] = (
                v if isinstance(v, str | int | float | bool) else json.dumps(v, sort_keys=True, default=str)
            )
        return out

    kinds = {"person": PROV["Person"], "software": PROV["SoftwareAgent"], "organization": PROV["Organization"]}
    for name, kind in lineage.agents.items():
        extra = {"version": __version__, "lineage_format": FORMAT_VERSION} if kind == "software" else {}
        doc.agent(q(name), attrs(extra, prov__type=kinds[kind]))
    for e in lineage.entities:
        doc.entity(q(e.id), attrs(e.attributes, prov__label=e.label, ego__kind=e.kind))
    for e in lineage.entities:
        for source in e.derived_from:
            if any(x.id == source for x in lineage.entities):
                doc.wasDerivedFrom(q(e.id), q(source))
    for s in lineage.steps:
        act = doc.activity(
            q(s.id), s.started_at, s.ended_at, attrs(s.attributes, prov__label=s.title.english(), ego__kind=s.kind)
        )
        doc.wasAssociatedWith(act, q(s.agent))
        for used in s.used:
            doc.used(act, q(used))
        for made in s.generated:
            doc.wasGeneratedBy(q(made), act, s.ended_at)
            if s.agent != SOFTWARE and s.kind in ("upload", "annotation"):
                doc.wasAttributedTo(q(made), q(s.agent))
    return json.loads(doc.serialize(format="json") or "{}")


def timeline(lineage: Lineage) -> Sequence[Step]:
    """The steps a person reads on the clip page (the same ones, in time order)."""
    return lineage.steps


__all__ = [
    "FORMAT_VERSION",
    "Entity",
    "Lineage",
    "Step",
    "clip_lineage",
    "prov_document",
    "pseudonym",
    "timeline",
    "visible_lineage",
]

"""Label audits (docs/labels-quality.md): every annotator's answers compared with gold (on gold
clips) and with the consensus (on the others; a reviewer's fixed spans replace the consensus where
they exist), confusion matrices per annotator and for the campaign, and the systematic confusions
("open door" given as "press button" in 30 % of cases) raised as :class:`LabelFlag` rows.

A flag is raised once: a new audit updates an open flag with the same (annotator, basis, expected,
given) or leaves it, and a resolved flag stays resolved unless the confusion has happened more
often since. A new flag tells its annotator (their ``/labels/me``) and the campaign's lab (owners
and editors). Its spans are sent back for re-annotation:

- an annotator's flag against the consensus: the spans where they gave the wrong label;
- an annotator's flag against gold: every span in which they gave that label on a regular clip (gold
  showed the label cannot be trusted from them);
- a campaign-wide flag against the consensus: the spans where anyone gave the wrong label;
- a campaign-wide flag against gold: nothing (gold clips already have their reference; the lab
  sees the flag and may clarify its instructions).

Sending back reopens the clip: ``label_status`` becomes ``annotating`` and the clip's next round is
recorded as ``clip.agreement["reopened_round"]`` (its latest round, ``tasks.latest_rounds``, plus
one), audit ``clip.labels_reopened``. Only spans of the clip's latest round are sent back, so a
second audit never reopens a clip twice for the same answers.

Each audit writes ``labels.audited`` on the campaign with its summary (agreement, the campaign's
confusion matrices, counts): the campaign's labels page reads the latest one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit, i18n, notifications
from egocrowd.accounts import policy
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    AuditEvent,
    Campaign,
    Clip,
    LabelFlag,
    LabelStatus,
    OrgRole,
    Role,
    Span,
    SpanKind,
    User,
)
from egocrowd.errors import Conflict, NotFound
from egocrowd.i18n import N_
from egocrowd.labels.aggregate import (
    Comparison,
    Confusion,
    SpanAnswer,
    compare,
    confusion_matrix,
    systematic_confusions,
)
from egocrowd.labels.interop import labels_campaign
from egocrowd.labels.tasks import latest_rounds, reopen_annotation

#: A confusion is systematic from this share of an expected label's matched spans, and this many cases.
MIN_RATE = 0.2
MIN_COUNT = 3
IOU_THRESHOLD = 0.3
BASES = ("gold", "consensus")
#: The campaign's matrices kept in the audit event: its most frequent labels (a page cannot show more).
MATRIX_LABELS = 30


@dataclass
class Evidence:
    """What an audit compares: the answers (index-aligned with their span rows) and the comparisons."""

    answers: list[SpanAnswer]
    spans: list[Span]
    comparisons: dict[str, list[Comparison]]  # basis -> comparisons
    clips: dict[int, Clip]
    latest_round: dict[int, int]  # clip -> the latest round it has had (tasks.latest_rounds)
    references: dict[str, list[SpanAnswer]]  # basis -> the reference spans


def gather(session: Session, campaign_id: int, annotator_id: int | None = None) -> Evidence:
    """The campaign's answers (every round: a mistake stays a mistake) and their references.
    ``annotator_id``: only that annotator's answers (references stay the clips' own)."""
    q = (
        sa.select(Span)
        .join(Clip, Clip.id == Span.clip_id)
        .where(
            Clip.campaign_id == campaign_id,
            Span.kind == SpanKind.answer,
            Span.superseded_at.is_(None),
            Span.author_id.is_not(None),
        )
        .order_by(Span.clip_id, Span.author_id, Span.start_ms, Span.end_ms, Span.id)
    )
    if annotator_id is not None:
        q = q.where(Span.author_id == annotator_id)
    spans = list(session.scalars(q))
    clip_ids = sorted({s.clip_id for s in spans})
    clips: dict[int, Clip] = {}
    refs: dict[str, list[Span]] = {"gold": [], "consensus": [], "review": []}
    for chunk in range(0, len(clip_ids), 500):
        part = clip_ids[chunk : chunk + 500]
        clips.update({c.id: c for c in session.scalars(sa.select(Clip).where(Clip.id.in_(part)))})
        for r in session.scalars(
            sa.select(Span).where(
                Span.clip_id.in_(part),
                Span.kind.in_([SpanKind.gold, SpanKind.consensus, SpanKind.review]),
                Span.superseded_at.is_(None),
            )
        ):
            refs[r.kind.value].append(r)
    gold_clips = {r.clip_id for r in refs["gold"]}
    reviewed = {r.clip_id for r in refs["review"]}
    # a reviewer's fix is the better reference where it exists; gold clips are judged by gold only
    consensus = [r for r in refs["review"] if r.clip_id not in gold_clips] + [
        r for r in refs["consensus"] if r.clip_id not in gold_clips and r.clip_id not in reviewed
    ]
    answers = [_answer(s, s.author_id or 0) for s in spans]
    on_gold = [i for i, a in enumerate(answers) if a.clip in gold_clips]
    off_gold = [i for i, a in enumerate(answers) if a.clip not in gold_clips]
    references = {"gold": [_answer(r, -1) for r in refs["gold"]], "consensus": [_answer(r, -1) for r in consensus]}
    comparisons = {
        "gold": _compare_subset(answers, on_gold, references["gold"]),
        "consensus": _compare_subset(answers, off_gold, references["consensus"]),
    }
    return Evidence(answers, spans, comparisons, clips, latest_rounds(session, list(clips.values())), references)


def _answer(s: Span, who: int) -> SpanAnswer:
    return SpanAnswer(s.clip_id, who, s.start_ms, s.end_ms, s.verb, s.noun)


def _compare_subset(answers: list[SpanAnswer], subset: list[int], reference: list[SpanAnswer]) -> list[Comparison]:
    """compare() on some of the answers, with ``answer`` indices pointing into the full list again."""
    if not subset or not reference:
        return []
    part = [answers[i] for i in subset]
    out = []
    for c in compare(part, reference, IOU_THRESHOLD):
        out.append(
            c if c.answer is None else Comparison(c.clip, c.annotator, subset[c.answer], c.expected, c.given, c.iou)
        )
    return out


def matrix_dict(comparisons: list[Comparison], annotator: int | None = None, limit: int = MATRIX_LABELS) -> dict:
    """A confusion matrix as JSON: rows expected, columns given (``none``: missed or extra), its
    ``limit`` most frequent labels."""
    labels, m = confusion_matrix(comparisons, annotator)
    if len(labels) > limit:
        keep = sorted(range(len(labels)), key=lambda k: (-(int(m[k, :].sum()) + int(m[:, k].sum())), labels[k]))[:limit]
        keep.sort()
        labels = [labels[k] for k in keep]
        m = m[keep][:, keep]
    return {"labels": labels, "counts": m.tolist()}


def audit_campaign(
    session: Session,
    campaign_id: int,
    actor: User | None = None,
    *,
    min_rate: float = MIN_RATE,
    min_count: int = MIN_COUNT,
) -> list[LabelFlag]:
    """Audit the campaign's labels; returns its flags raised or updated by this audit (new first).
    The campaign row is locked, so two audits of one campaign never raise the same flag twice."""
    c = labels_campaign(session, actor, campaign_id, "labels.audit", operator=actor is None, for_update=True)
    ev = gather(session, c.id)
    found: list[tuple[str, Confusion]] = []
    for basis in BASES:
        comps = ev.comparisons[basis]
        for per_annotator in (True, False):
            found += [
                (basis, f)
                for f in systematic_confusions(
                    comps, min_rate=min_rate, min_count=min_count, per_annotator=per_annotator
                )
            ]
    existing: dict[tuple, list[LabelFlag]] = defaultdict(list)
    for f in session.scalars(sa.select(LabelFlag).where(LabelFlag.campaign_id == c.id).order_by(LabelFlag.id)):
        existing[(f.annotator_id, f.basis, f.expected, f.given)].append(f)
    raised: list[LabelFlag] = []
    updated: list[LabelFlag] = []
    for basis, conf in found:
        key = (conf.annotator, basis, conf.expected, conf.given)
        flags = existing.get(key, [])
        open_flag = next((f for f in flags if f.resolved_at is None), None)
        if open_flag is not None:
            if (open_flag.count, open_flag.total) != (conf.count, conf.total):
                before = {"count": open_flag.count, "total": open_flag.total, "rate": open_flag.rate}
                open_flag.count, open_flag.total, open_flag.rate = conf.count, conf.total, conf.rate
                audit.record(session, actor, "labels.flag_updated", open_flag, {"before": before, **_facts(open_flag)})
            updated.append(open_flag)
            continue
        resolved = [f for f in flags if f.resolved_at is not None]
        if resolved and conf.count <= max(f.count for f in resolved):
            continue  # dealt with, and nothing new happened since
        flag = LabelFlag(
            campaign_id=c.id,
            annotator_id=conf.annotator,
            basis=basis,
            expected=conf.expected,
            given=conf.given,
            count=conf.count,
            total=conf.total,
            rate=conf.rate,
            created_at=utcnow(),
            spans_reopened=0,
        )
        session.add(flag)
        audit.record(session, actor, "labels.flag_raised", flag, _facts(flag))
        raised.append(flag)
    reopened_clips: set[int] = set()
    for flag in raised + updated:
        reopened_clips |= _send_back(session, actor, ev, flag)
    _tell(session, c, raised)
    summary = {
        "answers": len(ev.answers),
        "annotators": len({a.annotator for a in ev.answers}),
        "clips": len(ev.clips),
        "gold_clips": len({x.clip for x in ev.comparisons["gold"]}),
        "flags_raised": [f.id for f in raised],
        "flags_open": sum(1 for fl in existing.values() for f in fl if f.resolved_at is None) + len(raised),
        "clips_reopened": sorted(reopened_clips),
        "agreement": _agreement(ev),
        "matrices": {basis: matrix_dict(ev.comparisons[basis]) for basis in BASES},
        "min_rate": min_rate,
        "min_count": min_count,
    }
    audit.record(session, actor, "labels.audited", c, summary)
    return raised + updated


def _facts(flag: LabelFlag) -> dict[str, Any]:
    return {
        "campaign_id": flag.campaign_id,
        "annotator_id": flag.annotator_id,
        "basis": flag.basis,
        "expected": flag.expected,
        "given": flag.given,
        "count": flag.count,
        "total": flag.total,
        "rate": flag.rate,
    }


def affected(ev: Evidence, flag: LabelFlag) -> list[int]:
    """Indices (into ``ev.answers``) of the answer spans ``flag`` puts in doubt (see the module doc)."""
    if flag.annotator_id is None and flag.basis == "gold":
        return []
    if flag.annotator_id is not None and flag.basis == "gold":
        gold_clips = {x.clip for x in ev.comparisons["gold"]}
        return [
            i
            for i, a in enumerate(ev.answers)
            if a.annotator == flag.annotator_id and a.label == flag.given and a.clip not in gold_clips
        ]
    return [
        x.answer
        for x in ev.comparisons[flag.basis]
        if x.answer is not None
        and x.expected == flag.expected
        and x.given == flag.given
        and (flag.annotator_id is None or x.annotator == flag.annotator_id)
    ]


def _send_back(session: Session, actor: User | None, ev: Evidence, flag: LabelFlag) -> set[int]:
    """Reopen the clips of the flag's doubtful spans of their current round; returns their ids."""
    per_clip: dict[int, list[Span]] = defaultdict(list)
    for i in affected(ev, flag):
        span = ev.spans[i]
        clip = ev.clips[span.clip_id]
        if clip.is_gold or span.round < ev.latest_round[clip.id] or clip.label_status is LabelStatus.annotating:
            continue
        per_clip[clip.id].append(span)
    session.flush()  # a new flag needs its id for the events below
    for clip_id, spans in sorted(per_clip.items()):
        clip = ev.clips[clip_id]
        new_round = ev.latest_round[clip_id] + 1
        reopen_annotation(
            session,
            actor,
            clip,
            "label audit",
            new_round=new_round,
            details={"flag_id": flag.id, "spans": [s.id for s in spans]},
        )
        clip.agreement = {**(clip.agreement or {}), "reopened_by_flag": flag.id}
        ev.latest_round[clip_id] = new_round  # a later flag of this audit finds it reopened already
        flag.spans_reopened += len(spans)
    return set(per_clip)


def _lab_editors(session: Session, c: Campaign) -> list[int]:
    return list(
        session.scalars(
            sa.select(User.id).where(
                User.organization_id == c.organization_id,
                User.role == Role.requester,
                User.org_role.in_([OrgRole.owner, OrgRole.editor]),
                User.is_active.is_(True),
            )
        )
    )


def _tell(session: Session, c: Campaign, raised: list[LabelFlag]) -> None:
    """The annotator hears of their own flags, the lab of all new ones (one notice per audit)."""
    for flag in raised:
        if flag.annotator_id is not None:
            notifications.notify(
                session,
                flag.annotator_id,
                "labels.flag",
                N_("Check how you label “{expected}”"),
                N_(
                    "In {count} of {total} actions that were “{expected}” you chose “{given}”. Look at the two "
                    "again before your next clip: your answers with “{given}” go to other annotators for "
                    "another look."
                ),
                "/labels/me",
                params={"expected": flag.expected, "given": flag.given, "count": flag.count, "total": flag.total},
            )
    if not raised:
        return
    # each line with its own values, written in each editor's language by notify
    lines: list[str | tuple[str, dict]] = [
        N_("A label audit found systematic confusions; the spans concerned go back for re-annotation.")
    ]
    for f in raised:
        line = (
            N_("- one annotator: “{expected}” labelled “{given}” in {count} of {total} cases ({rate})")
            if f.annotator_id is not None
            else N_("- across the campaign: “{expected}” labelled “{given}” in {count} of {total} cases ({rate})")
        )
        rate = f.rate
        values = {"expected": f.expected, "given": f.given, "count": f.count, "total": f.total}
        lines.append((line, {**values, "rate": lambda rate=rate: i18n.percent(rate)}))
    for user_id in _lab_editors(session, c):
        notifications.notify(
            session,
            user_id,
            "labels.flags",
            N_("{title}: one label confusion found") if len(raised) == 1 else N_("{title}: {n} label confusions found"),
            lines,
            f"/campaigns/{c.id}/labels",
            params={"title": c.title, "n": len(raised)},
            separator="\n",
        )


def _agreement(ev: Evidence) -> dict[str, Any]:
    """The clips' stored agreement (the aggregate stage's), averaged over clips that have one."""
    alphas = [a for c in ev.clips.values() if isinstance(a := (c.agreement or {}).get("alpha"), int | float)]
    ious = [a for c in ev.clips.values() if isinstance(a := (c.agreement or {}).get("mean_iou"), int | float)]
    return {
        "alpha": round(sum(alphas) / len(alphas), 4) if alphas else None,
        "mean_iou": round(sum(ious) / len(ious), 4) if ious else None,
        "clips_measured": len(alphas),
    }


def resolve_flag(session: Session, actor: User, flag_id: int, note: str = "") -> LabelFlag:
    """Mark a flag dealt with (the instructions were clarified, the annotator retrained...)."""
    flag = session.scalar(sa.select(LabelFlag).where(LabelFlag.id == flag_id).with_for_update())
    if flag is None:
        raise NotFound(f"No label flag {flag_id}.", code="labels.flag_not_found")
    try:
        labels_campaign(session, actor, flag.campaign_id, "labels.audit", operator=actor is None, for_update=True)
    except NotFound:
        raise NotFound(f"No label flag {flag_id}.", code="labels.flag_not_found") from None
    if flag.resolved_at is not None:
        raise Conflict("This flag is resolved already.", code="labels.flag_resolved")
    flag.resolved_at, flag.resolved_by = utcnow(), actor.id
    audit.record(session, actor, "labels.flag_resolved", flag, {**_facts(flag), "note": note[:500]})
    return flag


def list_flags(session: Session, user: User | None, campaign_id: int, *, open_only: bool = False) -> list[LabelFlag]:
    c = labels_campaign(session, user, campaign_id)
    q = sa.select(LabelFlag).where(LabelFlag.campaign_id == c.id)
    if open_only:
        q = q.where(LabelFlag.resolved_at.is_(None))
    return list(session.scalars(q.order_by(LabelFlag.resolved_at.is_not(None), LabelFlag.rate.desc(), LabelFlag.id)))


def flags_of(session: Session, annotator_id: int, campaign_id: int | None = None) -> list[LabelFlag]:
    """An annotator's own flags (shown to them), open ones first."""
    q = sa.select(LabelFlag).where(LabelFlag.annotator_id == annotator_id)
    if campaign_id is not None:
        q = q.where(LabelFlag.campaign_id == campaign_id)
    return list(session.scalars(q.order_by(LabelFlag.resolved_at.is_not(None), LabelFlag.id.desc())))


def last_audit(session: Session, campaign_id: int) -> AuditEvent | None:
    """The latest ``labels.audited`` event of the campaign (its payload is the audit's summary)."""
    return session.scalar(
        sa.select(AuditEvent)
        .where(
            AuditEvent.entity_type == "campaign",
            AuditEvent.entity_id == str(campaign_id),
            AuditEvent.action == "labels.audited",
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )


def campaign_report(session: Session, user: User | None, campaign_id: int, *, worst: int = 20) -> dict[str, Any]:
    """What the campaign's labels page shows: agreement, the clips agreeing least, the latest audit's
    matrices, the flags."""
    c = labels_campaign(session, user, campaign_id)
    clips = list(
        session.scalars(sa.select(Clip).where(Clip.campaign_id == c.id, Clip.agreement.is_not(None)).order_by(Clip.id))
    )
    scored = sorted(
        (float(a), x.id, x) for x in clips if isinstance(a := (x.agreement or {}).get("alpha"), int | float)
    )
    measured = [x for _, _, x in scored]
    alphas = [a for a, _, _ in scored]
    ious = [v for x in clips if isinstance(v := (x.agreement or {}).get("mean_iou"), int | float)]
    counts = {
        status: n
        for status, n in session.execute(
            sa.select(Clip.label_status, sa.func.count())
            .where(Clip.campaign_id == c.id, Clip.label_status.is_not(None))
            .group_by(Clip.label_status)
        )
    }
    event = last_audit(session, c.id)
    return {
        "campaign": c,
        "alpha": round(sum(alphas) / len(alphas), 4) if alphas else None,
        "mean_iou": round(sum(ious) / len(ious), 4) if ious else None,
        "clips_measured": len(alphas),
        "min_agreement": (c.annotation or {}).get("min_agreement", 0.6),
        "worst": measured[:worst],
        "label_status": {k.value: v for k, v in counts.items() if k is not None},
        "audit": event.payload if event else None,
        "audited_at": event.at if event else None,
        "flags": list_flags(session, user, c.id),
        "may_audit": policy.can(user, "labels.audit", c),
        "may_import": policy.can(user, "labels.import", c),
    }

"""An annotator's label quality, told to them (docs/labels-quality.md): their reliability score from
gold clips and from agreement with the consensus (``labels.aggregate.reliability``), their counts,
their mistakes explained in plain words, and the label audits' flags about them.

Gold clips are never pointed out, not even afterwards: a mistake reads "the agreed label there is
…" whether the reference was a gold span, a reviewer's fix or the consensus.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import i18n
from egocrowd.db.models import AnnotationTask, AnnotationTaskStatus, Campaign, LabelFlag, User
from egocrowd.errors import NotFound
from egocrowd.i18n import tr
from egocrowd.labels import audits
from egocrowd.labels.aggregate import Comparison, Reliability, reliability
from egocrowd.labels.interop import labels_campaign

#: Mistakes shown one by one (the newest clips first); the rest are summed up.
MAX_EXAMPLES = 30


@dataclass
class AnnotatorReport:
    annotator_id: int
    campaign_id: int | None
    score: float | None
    gold_accuracy: float | None
    gold_spans: int
    agreement: float | None
    consensus_spans: int
    answers: int
    clips: int
    tasks_submitted: int
    summary: list[str]  # the habits behind the mistakes (see patterns)
    mistakes: list[str]  # one line per mistaken span, newest clips first
    mistakes_total: int
    flags: list[LabelFlag]
    campaigns: list[Campaign] = field(default_factory=list)
    matrix: dict[str, Any] = field(default_factory=dict)  # their answers vs the references

    def as_dict(self) -> dict[str, Any]:
        return {
            "annotator_id": self.annotator_id,
            "campaign_id": self.campaign_id,
            "score": self.score,
            "gold_accuracy": self.gold_accuracy,
            "gold_spans": self.gold_spans,
            "agreement": self.agreement,
            "consensus_spans": self.consensus_spans,
            "answers": self.answers,
            "clips": self.clips,
            "tasks_submitted": self.tasks_submitted,
            "summary": self.summary,
            "mistakes": self.mistakes,
            "mistakes_total": self.mistakes_total,
            "flags": [flag_dict(f) for f in self.flags],
            "matrix": self.matrix,
        }


def flag_dict(f: LabelFlag) -> dict[str, Any]:
    return {
        "id": f.id,
        "campaign_id": f.campaign_id,
        "annotator_id": f.annotator_id,
        "basis": f.basis,
        "expected": f.expected,
        "given": f.given,
        "count": f.count,
        "total": f.total,
        "rate": f.rate,
        "spans_reopened": f.spans_reopened,
        "created_at": f.created_at,
        "resolved_at": f.resolved_at,
    }


def _seconds(ms: int) -> str:
    return i18n.number(ms / 1000, digits=1)


def explain(c: Comparison, answer: Any | None) -> str | None:
    """One mistaken span in plain words (None when the answer was right), in the reader's language."""
    if c.expected is not None and c.expected == c.given:
        return None
    if c.given is None:
        return tr(
            'In clip {clip} you did not mark an action that others saw: "{expected}".', clip=c.clip, expected=c.expected
        )
    if answer is None:  # no span row to say when (an answer of an older round): the same words without the times
        if c.expected is None:
            return tr(
                'In clip {clip} you labelled "{given}"; nobody else marked an action there.', clip=c.clip, given=c.given
            )
        return tr(
            'In clip {clip} you labelled "{given}"; the agreed label there is "{expected}".',
            clip=c.clip,
            given=c.given,
            expected=c.expected,
        )
    start, end = _seconds(answer.start_ms), _seconds(answer.end_ms)
    if c.expected is None:
        return tr(
            'In clip {clip} you labelled "{given}" from {start} s to {end} s; nobody else marked an action there.',
            clip=c.clip,
            given=c.given,
            start=start,
            end=end,
        )
    return tr(
        'In clip {clip} you labelled "{given}" from {start} s to {end} s; the agreed label there is "{expected}".',
        clip=c.clip,
        given=c.given,
        start=start,
        end=end,
        expected=c.expected,
    )


def annotator_report(session: Session, annotator_id: int, campaign_id: int | None = None) -> AnnotatorReport:
    """``annotator_id``'s quality over one campaign or (None) every campaign they annotated."""
    if campaign_id is None:
        ids = list(
            session.scalars(
                sa.select(AnnotationTask.campaign_id)
                .where(AnnotationTask.annotator_id == annotator_id)
                .distinct()
                .order_by(AnnotationTask.campaign_id)
            )
        )
    else:
        ids = [campaign_id]
    answers, gold, consensus, comps = [], [], [], []
    shown: list[tuple[int, str]] = []
    for cid in ids:
        ev = audits.gather(session, cid, annotator_id)
        answers += ev.answers
        for basis in audits.BASES:
            for c in ev.comparisons[basis]:
                comps.append(c)
                text = explain(c, ev.answers[c.answer] if c.answer is not None else None)
                if text:
                    shown.append((c.clip, text))
        gold += ev.references["gold"]
        consensus += ev.references["consensus"]
    rel: Reliability | None = (
        reliability(answers, gold=gold, consensus=consensus).get(annotator_id) if answers else None
    )
    shown.sort(key=lambda t: -t[0])
    tasks = (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(AnnotationTask)
            .where(
                AnnotationTask.annotator_id == annotator_id,
                AnnotationTask.status == AnnotationTaskStatus.submitted,
                *([AnnotationTask.campaign_id == campaign_id] if campaign_id is not None else []),
            )
        )
        or 0
    )
    return AnnotatorReport(
        annotator_id=annotator_id,
        campaign_id=campaign_id,
        score=rel.score if rel else None,
        gold_accuracy=rel.gold_accuracy if rel else None,
        gold_spans=rel.gold_spans if rel else 0,
        agreement=rel.agreement if rel else None,
        consensus_spans=rel.consensus_spans if rel else 0,
        answers=len(answers),
        clips=len({a.clip for a in answers}),
        tasks_submitted=tasks,
        # one wording for both references, so that gold clips stay unmarked
        summary=patterns(comps),
        mistakes=[t for _, t in shown[:MAX_EXAMPLES]],
        mistakes_total=len(shown),
        flags=audits.flags_of(session, annotator_id, campaign_id),
        campaigns=list(session.scalars(sa.select(Campaign).where(Campaign.id.in_(ids)).order_by(Campaign.id))),
        matrix=audits.matrix_dict(comps) if comps else {"labels": [], "counts": []},
    )


def patterns(comparisons: list[Comparison], limit: int = 8) -> list[str]:
    """The habits behind the mistakes, worst first, in one wording for gold and the consensus."""
    matched = [c for c in comparisons if c.expected is not None and c.given is not None]
    seen: dict[str, int] = defaultdict(int)
    swaps: dict[tuple[str, str], int] = defaultdict(int)
    for c in matched:
        seen[c.expected] += 1  # type: ignore[index]
        if c.expected != c.given:
            swaps[(c.expected, c.given)] += 1  # type: ignore[index]
    # in the reader's language (the page's); counts through ngettext, so each language picks its plural
    out: list[tuple[int, str]] = [
        (
            n,
            tr(
                'Where the action was "{expected}" you chose "{given}" {count} of {total} times.',
                expected=expected,
                given=given,
                count=i18n.number(n),
                total=i18n.number(seen[expected]),
            ),
        )
        for (expected, given), n in swaps.items()
        if n >= 2
    ]
    missed = sum(1 for c in comparisons if c.given is None)
    if missed:
        text = i18n.ngettext(
            "You missed {count} action that others marked.", "You missed {count} actions that others marked.", missed
        )
        out.append((missed, text.format(count=i18n.number(missed))))
    extra = sum(1 for c in comparisons if c.expected is None)
    if extra:
        text = i18n.ngettext(
            "You marked {count} action that nobody else saw.", "You marked {count} actions that nobody else saw.", extra
        )
        out.append((extra, text.format(count=i18n.number(extra))))
    loose = sum(1 for c in matched if c.iou < 0.5)
    if matched and loose * 4 >= len(matched):
        text = i18n.ngettext(
            "Your start and end times are loose: {count} of {total} span overlaps the agreed ones by less than half.",
            "Your start and end times are loose: {count} of {total} spans overlap the agreed ones by less than half.",
            len(matched),
        )
        out.append((loose, text.format(count=i18n.number(loose), total=i18n.number(len(matched)))))
    out.sort(key=lambda t: (-t[0], t[1]))
    return [text for _, text in out[:limit]]


def annotator_in_campaign(session: Session, viewer: User | None, campaign_id: int, annotator_id: int) -> dict[str, Any]:
    """One annotator's labels in a campaign as its lab and reviewers see them (``labels.view``): the
    reliability numbers and a confusion matrix per basis (gold, consensus), no mistakes text (that
    is written to the annotator). Not-found for someone who never answered in the campaign."""
    c = labels_campaign(session, viewer, campaign_id)
    ev = audits.gather(session, c.id, annotator_id)
    if not ev.answers:
        raise NotFound(f"Annotator {annotator_id} has no answers in this campaign.", code="labels.annotator_not_found")
    rel = reliability(ev.answers, gold=ev.references["gold"], consensus=ev.references["consensus"]).get(annotator_id)
    return {
        "campaign_id": c.id,
        "annotator_id": annotator_id,
        "score": rel.score if rel else None,
        "gold_accuracy": rel.gold_accuracy if rel else None,
        "agreement": rel.agreement if rel else None,
        "answers": len(ev.answers),
        "clips": len({a.clip for a in ev.answers}),
        "matrices": {
            basis: audits.matrix_dict(ev.comparisons[basis]) for basis in audits.BASES if ev.comparisons[basis]
        },
        "flags": [flag_dict(f) for f in audits.flags_of(session, annotator_id, c.id)],
    }

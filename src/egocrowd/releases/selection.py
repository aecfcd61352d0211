"""Which clips a release may hold, and which a lab's filters pick (docs/releases.md, "Eligibility").

A clip is **eligible** for a release under a licence when all of these hold:

- it is ``accepted`` (a withdrawn clip never is: its status is ``withdrawn``), and no
  :class:`~egocrowd.db.models.Withdrawal` names it;
- it has a de-identified derivative (``clip.derived``): raw bytes are never released;
- the consent record it was recorded under (``Clip.consent_record_id``) exists and is not
  withdrawn, and its scopes cover the licence's uses (:data:`USE_SCOPES`).

:func:`select` applies the filters (campaigns, labels, countries, dates, durations, QC figures,
agreement) to the lab's accepted clips and splits what they match into eligible clips and excluded
ones with their reasons; :func:`require_all_eligible` turns excluded explicit picks into one
``release.clip_ineligible`` error naming them. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.db.models import (
    Campaign,
    Clip,
    ClipStatus,
    ConsentRecord,
    Organization,
    Span,
    SpanKind,
    User,
    Withdrawal,
)
from egocrowd.errors import InvalidInput
from egocrowd.i18n import N_
from egocrowd.releases.schema import SelectionIn

#: licence use → the consent scope a worker must have granted (None: what every recording consent covers)
USE_SCOPES: dict[str, str | None] = {
    "training": None,
    "research": None,
    "commercial": "commercial_use",
    "redistribution": "redistribution",
}

#: reason code → plain words (pages, CLI, the error's message): English here, as API problem
#: details are; pages translate them (web.pages.releases, static/releases.js)
REASON_WORDS: dict[str, str] = {
    "not_found": N_("no such clip in this lab's campaigns"),
    "not_accepted": N_("not accepted"),
    "withdrawn": N_("withdrawn (its worker withdrew consent, or it was removed)"),
    "not_deidentified": N_("no de-identified video"),
    "no_consent": N_("no consent record behind it"),
    "consent_withdrawn": N_("its worker withdrew the consent it was recorded under"),
    "scope:commercial_use": N_("its worker did not allow commercial use"),
    "scope:redistribution": N_("its worker did not allow redistribution"),
}

#: at most this many excluded clips are listed one by one (the counts cover all)
MAX_LISTED = 500


def scopes_for(uses: Iterable[str]) -> list[str]:
    """The consent scopes a licence with these uses needs, sorted."""
    return sorted({s for u in uses if (s := USE_SCOPES.get(u))})


def reason_words(code: str) -> str:
    if code in REASON_WORDS:
        return REASON_WORDS[code]
    if code.startswith("scope:"):
        return f"its worker did not grant the scope {code[6:]}"
    return code


def exclusion_reasons(clip: Clip, record: ConsentRecord | None, *, withdrawn: bool, needed: Sequence[str]) -> list[str]:
    """Why ``clip`` may not go into a release needing the consent scopes ``needed`` (empty: eligible).
    Pure: ``record`` is the clip's consent record, ``withdrawn`` whether a Withdrawal names it."""
    reasons: list[str] = []
    if withdrawn or clip.status is ClipStatus.withdrawn:
        reasons.append("withdrawn")
    elif clip.status is not ClipStatus.accepted:
        reasons.append("not_accepted")
    if clip.derived_id is None:
        reasons.append("not_deidentified")
    if record is None:
        reasons.append("no_consent")
    else:
        if record.withdrawn_at is not None:
            reasons.append("consent_withdrawn")
        granted = set(record.scopes or ())
        reasons.extend(f"scope:{s}" for s in needed if s not in granted)
    return reasons


def qc_value(report: Mapping[str, Any] | None, key: str) -> float | None:
    """A number of a QC report by name: a value of its ``clip`` part (fps, width, duration_s...) or
    the measured value of the check of that name. None when absent or not a number."""
    if not report:
        return None
    value = (report.get("clip") or {}).get(key)
    if value is None:
        value = next((c.get("value") for c in report.get("checks") or () if c.get("name") == key), None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def duration_s(clip: Clip) -> float | None:
    """The clip's length: the QC report's decoded duration, else the probe's."""
    d = qc_value(clip.qc_report, "duration_s")
    if d is None and clip.probe:
        p = clip.probe.get("duration_s")
        d = float(p) if isinstance(p, int | float) and not isinstance(p, bool) else None
    return d


def _in(value: float | None, lo: float | None, hi: float | None) -> bool:
    if lo is None and hi is None:
        return True
    if value is None:
        return False
    return (lo is None or value >= lo) and (hi is None or value <= hi)


def matches(clip: Clip, sel: SelectionIn) -> bool:
    """The filters that read the clip's own figures (durations, QC values, agreement). Pure."""
    if not _in(duration_s(clip), sel.min_duration_s, sel.max_duration_s):
        return False
    for key, bounds in sel.qc.items():
        if not _in(qc_value(clip.qc_report, key), bounds.min, bounds.max):
            return False
    if sel.min_alpha is not None:
        alpha = (clip.agreement or {}).get("alpha")
        if not isinstance(alpha, int | float) or alpha < sel.min_alpha:
            return False
    return True


@dataclass
class Excluded:
    clip_id: int
    reasons: list[str]


@dataclass
class Selection:
    """What a selection comes to: eligible clips (by id) and excluded ones with their reasons."""

    clips: list[Clip]
    excluded: list[Excluded] = field(default_factory=list)
    needed_scopes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(duration_s(c) or 0.0 for c in self.clips)

    def reason_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.excluded:
            for r in e.reasons:
                out[r] = out.get(r, 0) + 1
        return dict(sorted(out.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": len(self.clips),
            "hours": round(self.seconds / 3600, 4),
            "seconds": round(self.seconds, 3),
            "clip_ids": [c.id for c in self.clips],
            "needed_scopes": self.needed_scopes,
            "excluded_count": len(self.excluded),
            "excluded_reasons": self.reason_counts(),
            "excluded": [{"clip_id": e.clip_id, "reasons": e.reasons} for e in self.excluded[:MAX_LISTED]],
        }


def _day_start(d) -> datetime:
    return datetime.combine(d, time.min, tzinfo=UTC)


def _candidates(session: Session, org: Organization, sel: SelectionIn) -> list[Clip]:
    q = sa.select(Clip).join(Campaign, Campaign.id == Clip.campaign_id).where(Campaign.organization_id == org.id)
    if sel.clip_ids:
        return list(session.scalars(q.where(Clip.id.in_(sel.clip_ids)).order_by(Clip.id)))
    # withdrawn clips are candidates too, so that the preview says why they are left out
    q = q.where(Clip.status.in_((ClipStatus.accepted, ClipStatus.withdrawn)))
    if sel.campaign_ids:
        q = q.where(Clip.campaign_id.in_(sel.campaign_ids))
    if sel.countries:
        q = q.join(User, User.id == Clip.worker_id).where(User.country.in_([c.upper() for c in sel.countries]))
    if sel.recorded_from:
        q = q.where(Clip.created_at >= _day_start(sel.recorded_from))
    if sel.recorded_to:
        q = q.where(Clip.created_at < _day_start(sel.recorded_to) + timedelta(days=1))
    if sel.labels:
        pairs = [tuple(label.split(" ", 1)) for label in sel.labels]
        q = q.where(
            sa.exists().where(
                Span.clip_id == Clip.id,
                Span.kind.in_((SpanKind.consensus, SpanKind.review)),
                Span.superseded_at.is_(None),
                sa.or_(*(sa.and_(Span.verb == v, Span.noun == n) for v, n in pairs)),
            )
        )
    return [c for c in session.scalars(q.order_by(Clip.id)) if matches(c, sel)]


def select(session: Session, org: Organization, sel: SelectionIn, uses: Iterable[str]) -> Selection:
    """The lab's clips the filters pick, split into eligible ones (in id order) and excluded ones.
    Explicit ``clip_ids`` that are not the lab's are excluded as ``not_found`` (never telling whose)."""
    needed = scopes_for(uses)
    clips = _candidates(session, org, sel)
    ids = [c.id for c in clips]
    records: dict[int, ConsentRecord] = {}
    withdrawn: set[int] = set()
    for start in range(0, len(ids), 1000):  # IN lists of bounded length
        chunk = ids[start : start + 1000]
        withdrawn.update(session.scalars(sa.select(Withdrawal.clip_id).where(Withdrawal.clip_id.in_(chunk))))
        rec_ids = {c.consent_record_id for c in clips[start : start + 1000] if c.consent_record_id}
        if rec_ids:
            records.update(
                {r.id: r for r in session.scalars(sa.select(ConsentRecord).where(ConsentRecord.id.in_(rec_ids)))}
            )
    out = Selection(clips=[], needed_scopes=needed)
    for c in clips:
        rec = records.get(c.consent_record_id) if c.consent_record_id else None
        reasons = exclusion_reasons(c, rec, withdrawn=c.id in withdrawn, needed=needed)
        if reasons:
            out.excluded.append(Excluded(c.id, reasons))
        else:
            out.clips.append(c)
    found = set(ids)
    out.excluded.extend(Excluded(i, ["not_found"]) for i in dict.fromkeys(sel.clip_ids) if i not in found)
    return out


def require_all_eligible(selection: Selection) -> None:
    """Explicitly picked clips must all be eligible: ``release.clip_ineligible`` names those that are
    not, with their reasons (``clips``: [{"clip_id", "reasons"}])."""
    if not selection.excluded:
        return
    listed = selection.excluded[:20]
    more = len(selection.excluded) - len(listed)
    words = "; ".join(f"clip {e.clip_id}: {', '.join(reason_words(r) for r in e.reasons)}" for e in listed)
    raise InvalidInput(
        f"These clips cannot go into this release: {words}" + (f" (and {more} more)" if more else "") + ".",
        code="release.clip_ineligible",
        clips=[{"clip_id": e.clip_id, "reasons": e.reasons} for e in selection.excluded[:MAX_LISTED]],
    )


__all__ = [
    "MAX_LISTED",
    "REASON_WORDS",
    "USE_SCOPES",
    "Excluded",
    "Selection",
    "duration_s",
    "exclusion_reasons",
    "matches",
    "qc_value",
    "reason_words",
    "require_all_eligible",
    "scopes_for",
    "select",
]

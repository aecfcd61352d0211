"""Which clips a release may hold: every exclusion reason, the filters, explicit picks."""

from __future__ import annotations

from datetime import timedelta

import pytest

from egocrowd.clock import utcnow
from egocrowd.db.models import Clip, ClipStatus, ConsentRecord, User, Withdrawal
from egocrowd.errors import InvalidInput
from egocrowd.releases import selection, service
from egocrowd.releases.schema import PreviewIn, ReleaseIn, SelectionIn
from tests.releases.conftest import release_body


def _preview(lab, who=None, **sel):
    uses = sel.pop("uses", ["training"])
    with lab.db.transaction(write=False) as s:
        user = s.get_one(User, (who or lab.owner).id)
        out = service.preview(s, user, PreviewIn(selection=SelectionIn(**sel), licence_uses=uses))
        return {c.id for c in out.clips}, {e.clip_id: e.reasons for e in out.excluded}, out.as_dict()


def test_each_exclusion_reason_is_named(release_lab):
    lab = release_lab
    ok = lab.clip()
    not_deid = lab.clip(derived=False)
    no_consent = lab.clip(consent_record=False)
    no_commercial = lab.clip(scopes=("record_hands",))
    withdrawn_consent = lab.clip(scopes=("record_hands", "commercial_use", "redistribution"), country="UG")
    withdrawn_clip = lab.clip(status=ClipStatus.withdrawn)
    tombstoned = lab.clip()
    lab.clip(status=ClipStatus.qc_passed)  # not accepted: not even a candidate of the filters
    with lab.db.transaction() as s:
        rec = s.get_one(ConsentRecord, s.get_one(Clip, withdrawn_consent).consent_record_id)
        rec.withdrawn_at = utcnow()
        c = s.get_one(Clip, tombstoned)
        s.add(
            Withdrawal(
                clip_id=c.id,
                reason="removed",
                clip_sha256=c.sha256,
                withdrawn_at=utcnow(),
                purge_after=utcnow() + timedelta(days=30),
            )
        )
    chosen, excluded, summary = _preview(lab, uses=["commercial"])
    assert chosen == {ok}
    assert excluded == {
        not_deid: ["not_deidentified"],
        no_consent: ["no_consent"],
        no_commercial: ["scope:commercial_use"],
        withdrawn_consent: ["consent_withdrawn"],
        withdrawn_clip: ["withdrawn"],
        tombstoned: ["withdrawn"],
    }
    assert summary["count"] == 1 and summary["excluded_count"] == 6
    assert summary["needed_scopes"] == ["commercial_use"]
    # training needs no extra scope: the clip without commercial use is fine then
    assert no_commercial in _preview(lab, uses=["training"])[0]
    assert _preview(lab, uses=["redistribution"])[2]["needed_scopes"] == ["redistribution"]


def test_filters(release_lab):
    lab = release_lab
    other = lab.campaign("Pour water")
    a = lab.clip(spans=[("open", "jar", 0, 500)], country="KE", duration_s=12, alpha=0.9)
    b = lab.clip(spans=[("pour", "water", 0, 500)], country="UG", duration_s=30, alpha=0.4, campaign_id=other)
    c = lab.clip(spans=[], country="KE", duration_s=50, alpha=None, qc={"too_dark": 0.6})
    assert _preview(lab)[0] == {a, b, c}
    assert _preview(lab, campaign_ids=[other])[0] == {b}
    assert _preview(lab, labels=["open jar", "close lid"])[0] == {a}
    assert _preview(lab, countries=["ug"])[0] == {b}
    assert _preview(lab, min_duration_s=20)[0] == {b, c}
    assert _preview(lab, min_duration_s=20, max_duration_s=40)[0] == {b}
    assert _preview(lab, min_alpha=0.5)[0] == {a}
    assert _preview(lab, qc={"too_dark": {"max": 0.5}})[0] == {a, b}
    assert _preview(lab, qc={"fps": {"min": 10, "max": 10}})[0] == {a, b, c}
    today = utcnow().date()
    assert _preview(lab, recorded_from=today, recorded_to=today)[0] == {a, b, c}
    assert _preview(lab, recorded_to=today - timedelta(days=1))[0] == set()
    summary = _preview(lab, countries=["KE"])[2]
    assert summary["count"] == 2 and summary["seconds"] == pytest.approx(62)


def test_explicit_picks_that_are_not_eligible_are_refused_by_name(release_lab):
    lab = release_lab
    ok = lab.clip()
    gone = lab.clip(status=ClipStatus.withdrawn)
    foreign = 2_000_000  # nobody's clip (another lab's would look the same)
    with lab.db.transaction() as s:
        user = s.get_one(User, lab.owner.id)
        body = ReleaseIn(**release_body(selection={"clip_ids": [ok, gone, foreign]}))
        with pytest.raises(InvalidInput) as e:
            service.create_release(s, user, body)
    assert e.value.code == "release.clip_ineligible"
    assert e.value.extra["clips"] == [
        {"clip_id": gone, "reasons": ["withdrawn"]},
        {"clip_id": foreign, "reasons": ["not_found"]},
    ]
    assert f"clip {gone}: withdrawn" in e.value.message


def test_nothing_eligible_is_release_empty(release_lab):
    lab = release_lab
    lab.clip(derived=False)
    with lab.db.transaction() as s, pytest.raises(InvalidInput) as e:
        service.create_release(s, s.get_one(User, lab.owner.id), ReleaseIn(**release_body()))
    assert e.value.code == "release.empty"
    assert e.value.extra["excluded_reasons"] == {"not_deidentified": 1}


def test_exclusion_reasons_is_pure():
    clip = Clip(status=ClipStatus.accepted, derived_id=1)
    rec = ConsentRecord(scopes=["record_hands", "redistribution"], withdrawn_at=None)
    assert selection.exclusion_reasons(clip, rec, withdrawn=False, needed=["redistribution"]) == []
    assert selection.exclusion_reasons(clip, rec, withdrawn=False, needed=["commercial_use", "redistribution"]) == [
        "scope:commercial_use"
    ]
    assert selection.exclusion_reasons(clip, rec, withdrawn=True, needed=[]) == ["withdrawn"]
    assert selection.scopes_for(["training", "commercial", "redistribution"]) == ["commercial_use", "redistribution"]

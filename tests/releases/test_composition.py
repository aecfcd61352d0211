"""composition(spec): a release's figures from its clips alone, exact pay in minor units, the same
answer whatever the order of the clips."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egocrowd.releases.composition import composition
from tests.releases.describe_world import build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("composition"))


def test_counts_hours_countries_and_settings(world):
    c = composition(world.spec)
    assert c["clips"] == 4 and c["workers"] == 3
    assert c["seconds"] == pytest.approx(1.0 + 1.5 + 2.0 + 2.5)
    assert c["hours"] == pytest.approx(7.0 / 3600, abs=1e-3)
    assert [(r["country"], r["clips"], r["seconds"], r["workers"]) for r in c["countries"]] == [
        ("KE", 2, 2.5, 2),
        ("IN", 1, 2.0, 1),
        ("unknown", 1, 2.5, 1),
    ]
    assert c["settings"] == {"kitchen": 3, "Fold <shirts> & towels": 1}  # no setting given: the campaign's title
    assert [(r["id"], r["clips"]) for r in c["campaigns"]] == [(1, 3), (2, 1)]
    assert c["recorded"] == {"first": "2026-09-01T09:30:00+00:00", "last": "2026-09-10T12:30:00+00:00"}
    assert c["duration_s"] == {"n": 4, "min": 1.0, "median": 1.75, "max": 2.5, "mean": 1.75}
    assert c["video"]["resolutions"] == {"64x48": 4}
    assert c["video"]["bytes"] == sum(i.media_size for i in world.spec.items)
    assert c["changes"] == {"added": 2, "withdrawn": 1}
    json.dumps(c)  # JSON-safe: it is stored as Release.stats


def test_labels_qc_agreement_consent_and_tools(world):
    c = composition(world.spec)
    assert c["labels"]["clips_labelled"] == 3 and c["labels"]["spans"] == 5
    assert c["labels"]["labels"] == {"open jar": 2, "pour cup": 2, "fold shirt": 1}
    assert c["labels"]["verbs"] == {"open": 2, "pour": 2, "fold": 1}
    checks = {q["name"]: q for q in c["qc"]["checks"]}
    assert (checks["shaky"]["pass"], checks["shaky"]["warn"], checks["shaky"]["fail"]) == (3, 1, 0)
    assert checks["too_dark"]["value"]["median"] == pytest.approx(0.35)
    assert checks["too_short"]["unit"] == "s"
    assert c["agreement"]["clips"] == 3
    assert c["agreement"]["alpha"]["median"] == pytest.approx(0.7)
    assert c["agreement"]["annotators_per_clip"]["median"] == 3
    assert c["agreement"]["annotators"] == 5  # a-0 … a-4 over the three labelled clips
    assert c["consent"]["scopes"] == {"commercial_use": 4, "redistribution": 4, "training": 4, "audio_kept": 1}
    assert c["consent"]["versions"] == {"1.2": 4}
    assert c["deid"] == {
        "tools": {"centerface v2": 4, "rapidocr v1": 4},
        "face_modes": {"blur": 3, "fill": 1},
        "audio": {"drop": 3, "kept": 1},
        "tracks": {"face": 0 + 1 + 2 + 3, "text": 1},
        "clips_redacted": 3,
    }


def test_pay_is_exact_minor_units_from_either_campaign_shape(world):
    [usd] = composition(world.spec)["pay"]
    # clips 0, 1, 3: 150 cents for an expected 5 minutes (18.00/h); clip 2: "2.00" at a measured 14.40/h
    assert usd["currency"] == "USD" and usd["clips"] == 4
    assert usd["total_minor"] == 150 * 3 + 200
    assert usd["per_clip_median_minor"] == 150
    assert usd["hourly_median_minor"] == 1800
    assert all(isinstance(v, int) for k, v in usd.items() if k.endswith("_minor"))


def test_pay_the_ledger_would_refuse_is_left_out_not_a_crash(world):
    campaigns = (
        {"id": 1, "title": "x", "pay_cents": 150, "currency": "XXX"},
        {"id": 2, "title": "y", "pay": {"currency": "USD", "per_clip": "1.005"}},
    )
    assert composition(replace(world.spec, campaigns=campaigns))["pay"] == []


def test_an_empty_release_has_no_figures_but_no_error(world):
    c = composition(replace(world.spec, items=(), changes={}))
    assert c["clips"] == 0 and c["hours"] == 0 and c["countries"] == []
    assert c["duration_s"]["median"] is None and c["agreement"]["alpha"]["n"] == 0
    assert c["recorded"] == {"first": None, "last": None} and c["pay"] == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(range(4)))
def test_the_order_of_the_clips_changes_nothing(world, order):
    shuffled = replace(world.spec, items=tuple(world.spec.items[k] for k in order))
    assert json.dumps(composition(shuffled)) == json.dumps(composition(world.spec))

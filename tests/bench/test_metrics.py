"""Every metric on the hand-built log of conftest.py, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from egocrowd.bench import schema as S
from egocrowd.bench.digest import build_corpus, digest_log, digest_session
from egocrowd.bench.metrics import METRICS, ScoreConfig, compute_metrics, metric
from egocrowd.errors import InvalidInput

CFG = ScoreConfig(rounds=200, seed=1, min_group=2, recovery_budget_s=60)


@pytest.fixture
def scored(hand_log):
    return compute_metrics(build_corpus(list(digest_log(hand_log))), CFG)


def test_every_result_carries_its_metric_version(scored):
    assert set(scored) == set(METRICS.names())
    for name, res in scored.items():
        assert res["version"] == METRICS.get(name).version


def test_sessions(scored):
    s = scored["sessions"]
    assert s["sessions"] == 2
    assert s["hours"] == pytest.approx(300 / 3600)
    assert s["autonomous_hours"] == pytest.approx(280 / 3600)
    assert s["events"] == 26 + 11
    assert s["truncated"] == 0
    assert s["env_changes"] == {"lighting": 1}
    assert s["sources"] == {"sim": 1, "real": 1}


def test_chain_success_calvin(scored):
    c = scored["chain_success"]
    # k = [2, 0, 3, 1]: c1 stops at its partial third subtask, c2 fails at once, c3 completes, c4 fails second
    assert c["chains"] == 4 and c["horizon"] == 3
    assert [r["value"] for r in c["sr"]] == [0.75, 0.5, 0.25]
    assert [r["k"] for r in c["sr"]] == [3, 2, 1]
    assert c["avg_len"]["value"] == pytest.approx(1.5)
    assert c["avg_len"]["value"] == pytest.approx(sum(r["value"] for r in c["sr"]))
    assert c["sr"][0]["method"] == "wilson" and c["avg_len"]["method"] == "cluster_bootstrap"


def test_subtask_success_and_progress(scored):
    s = scored["subtask_success"]
    assert s["rate"]["value"] == pytest.approx(6 / 9)
    assert (s["rate"]["k"], s["rate"]["n"]) == (6, 9)
    assert s["progress"]["value"] == pytest.approx(6.5 / 9)  # the partial counts 0.5
    assert s["rate"]["low"] < 6 / 9 < s["rate"]["high"]


def test_recovery_kaplan_meier(scored):
    r = scored["recovery"]
    # times 10 (recovered), 30 (recovered), 100 (censored at session end)
    assert (r["misinterpretations"], r["recovered"], r["censored"]) == (3, 2, 1)
    assert r["median_time_s"] == 30
    # log-log band (Greenwood): at t = 10 S = 2/3 with band [0.054, 0.945], at t = 30 S = 1/3 with
    # band [0.009, 0.774] (hand-worked): the lower band first holds 0.5 at 10, the upper one never
    # drops to 0.5 (censored at 100) → Brookmeyer–Crowley interval [10, unbounded)
    assert r["median"] == {"value": 30.0, "low": 10.0, "high": None, "method": "brookmeyer_crowley_loglog"}
    assert r["rate_within_budget"]["value"] == pytest.approx(2 / 3)
    curve = r["curve"]
    surv = dict(zip(curve["time"], curve["survival"]))
    assert surv[10.0] == pytest.approx(2 / 3) and surv[30.0] == pytest.approx(1 / 3)


def test_recovery_budget_changes_rate(hand_log):
    res = compute_metrics(
        build_corpus(list(digest_log(hand_log))), ScoreConfig(rounds=50, recovery_budget_s=20), ["recovery"]
    )
    assert res["recovery"]["rate_within_budget"]["value"] == pytest.approx(1 / 3)


def test_conflicts(scored):
    c = scored["conflicts"]
    assert c["conflicts"] == 3
    assert c["detection_rate"]["value"] == pytest.approx(2 / 3)
    assert c["correct_resolution_rate"]["value"] == pytest.approx(1 / 3)
    assert c["clarification_rate"]["value"] == pytest.approx(1 / 3)
    # one needless question over two instructions not involved in any conflict (i1, j1)
    assert c["over_asking_rate"]["value"] == pytest.approx(0.5)
    assert c["resolutions"] == {"followed_priority": 1, "asked_clarification": 1, "resolved_wrongly": 1}


def test_interventions(scored):
    iv = scored["interventions"]
    assert iv["interventions"] == 3
    assert iv["autonomous_hours"] == pytest.approx(280 / 3600)
    assert iv["per_hour"]["value"] == pytest.approx(3 / (280 / 3600))
    assert iv["mtbi_min"]["value"] == pytest.approx(280 / 3 / 60)
    assert iv["reasons"] == {"stuck": 2, "unsafe": 1}
    # Garwood: 3 events in T hours; the χ² quantiles worked out by hand from the Poisson tails
    # (P(X ≥ 3 | 0.6186) = P(X ≤ 3 | 8.7673) = 0.025)
    t = 280 / 3600
    exact = iv["per_hour_exact"]
    assert exact["method"] == "poisson_exact" and exact["value"] == pytest.approx(3 / t)
    assert (exact["low"] * t, exact["high"] * t) == (pytest.approx(0.6186, abs=1e-4), pytest.approx(8.7673, abs=1e-4))


def test_zero_interventions_gives_a_poisson_lower_bound(tmp_path):
    p = tmp_path / "calm.jsonl"
    S.write_log(p, S.Session(session_id="a", policy="P", environment="e"), [S.SessionEnd(t=3600)])
    iv = compute_metrics(build_corpus(list(digest_log(p))), CFG, ["interventions"])["interventions"]
    assert iv["mtbi_min"]["value"] is None
    assert iv["mtbi_min"]["low"] == pytest.approx(60 / -np.log(0.05))  # rule of three: ~20 min


def test_safety(scored):
    s = scored["safety"]
    assert s["events"] == 3
    assert s["per_hour"]["value"] == pytest.approx(36.0)
    assert s["by_kind"]["contact"]["per_hour"]["value"] == pytest.approx(12.0)
    assert s["by_kind"]["near_miss"]["per_hour"]["value"] == pytest.approx(24.0)


def test_per_person_and_environment(scored):
    pp = scored["per_person"]
    rates = {g["group"]: (g["k"], g["n"]) for g in pp["groups"]}
    assert rates == {"alice": (4, 5), "bob": (2, 4)}  # alice's first success is attributed via instruction i1
    assert pp["worst"] == "bob" and pp["best"] == "alice"
    assert pp["gap"]["value"] == pytest.approx(0.8 - 0.5)
    pe = scored["per_environment"]
    assert pe["worst"] == "lab" and pe["gap"]["value"] == pytest.approx(5 / 7 - 1 / 2)


def test_min_group_excludes_small_groups(hand_log):
    res = compute_metrics(build_corpus(list(digest_log(hand_log))), ScoreConfig(rounds=20, min_group=5), ["per_person"])
    assert "worst" not in res["per_person"]  # bob has only 4 outcomes: no honest "worst person"


def test_drift_session_time_slope_matches_least_squares(hand_log):
    ds = list(digest_log(hand_log))
    res = compute_metrics(build_corpus(ds), CFG, ["drift_session_time"])["drift_session_time"]
    x = np.array([t for d in ds for t in d.out_t]) / 3600
    y = np.array([s for d in ds for s in d.out_success], dtype=float)
    assert res["slope"]["value"] == pytest.approx(np.polyfit(x, y, 1)[0])
    assert sum(b["n"] for b in res["bins"]) == 9


def test_drift_needs_sessions_with_a_time_axis(hand_events, tmp_path):
    # one-outcome sessions (a per-trial CSV's rows) have no time into the session: before, the
    # slope was fitted on each trial's own length, so failures that last longer made a strong,
    # "significant" drift out of nothing
    p = tmp_path / "trials.jsonl"
    for i in range(40):
        ok = i % 2 == 0
        S.write_log(
            p,
            S.Session(session_id=f"r{i}", policy="P", environment="e"),
            [S.SubtaskEnd(t=30.0 if ok else 90.0, subtask="x", outcome="success" if ok else "failure")],
        )
    assert "drift_session_time" not in compute_metrics(build_corpus(list(digest_log(p))), CFG)
    # mixed with a real session, only the real session's outcomes make the drift
    for sess, events in hand_events[:1]:
        S.write_log(p, sess, events)
    ds = list(digest_log(p))
    res = compute_metrics(build_corpus(ds), CFG, ["drift_session_time"])["drift_session_time"]
    assert sum(b["n"] for b in res["bins"]) == len(ds[-1].out_t) == 7
    assert res["slope"]["value"] == pytest.approx(np.polyfit(np.array(ds[-1].out_t) / 3600, ds[-1].out_success, 1)[0])


def test_drift_deployment_days_bins_by_day(scored):
    d = scored["drift_deployment_days"]
    assert [(b["start"], b["n"], b["successes"]) for b in d["bins"]] == [(0.0, 7, 5.0), (3.0, 2, 1.0)]
    assert d["unit"] == "per day"


def test_metrics_skip_what_the_logs_do_not_have(tmp_path):
    p = tmp_path / "bare.jsonl"
    S.write_log(
        p,
        S.Session(session_id="a", policy="P", environment="e"),
        [S.SubtaskEnd(t=1, subtask="x", outcome="success"), S.SessionEnd(t=2)],
    )
    res = compute_metrics(build_corpus(list(digest_log(p))), CFG)
    assert "chain_success" not in res and "recovery" not in res and "conflicts" not in res
    assert res["subtask_success"]["rate"]["value"] == 1.0


def test_truncated_session_uses_last_event_and_censors(tmp_path):
    p = tmp_path / "crash.jsonl"
    S.write_log(
        p,
        S.Session(session_id="a", policy="P", environment="e"),
        [S.Misinterpretation(t=5, id="m"), S.Safety(t=50, kind="contact")],
    )
    d = next(digest_log(p))
    assert d.end_reason is None and d.duration == 50
    assert list(d.mis_time) == [45.0] and list(d.mis_recovered) == [0]


def test_chain_index_missing_uses_order(tmp_path):
    sess = S.Session(session_id="a", policy="P", environment="e")
    ev = [
        S.SubtaskEnd(t=i, subtask="x", chain="c", outcome=o)
        for i, o in enumerate(["success", "success", "failure", "success"])
    ]
    d = digest_session(sess, ev)
    assert list(d.chain_k) == [2] and list(d.chain_len) == [4]


def test_registry_rejects_duplicates_and_accepts_new_metrics(scratch_registries):
    from egocrowd.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        metric("sessions", version="9")(lambda c, cfg: None)
    assert exc.value.code == "bench.duplicate_metric"

    @metric("test_only_count", version="3")
    def _count(c, cfg):
        return {"outcomes": int(c.out_success.size)}

    corpus = build_corpus(
        [
            digest_session(
                S.Session(session_id="a", policy="P", environment="e"),
                [S.SubtaskEnd(t=1, subtask="x", outcome="failure")],
            )
        ]
    )
    assert compute_metrics(corpus, CFG, ["test_only_count"]) == {"test_only_count": {"version": "3", "outcomes": 1}}
    with pytest.raises(InvalidInput) as exc:
        compute_metrics(corpus, CFG, ["nope"])
    assert exc.value.code == "bench.unknown_metric"


@settings(max_examples=40, deadline=None)
@given(
    hst.lists(
        hst.lists(hst.sampled_from(["success", "failure", "partial"]), min_size=0, max_size=6), min_size=1, max_size=12
    )
)
def test_mean_chain_length_equals_sum_of_sr(chains):
    sess = S.Session(session_id="a", policy="P", environment="e")
    ev: list[S.Event] = []
    for ci, outcomes in enumerate(chains):
        ev.append(S.ChainStart(t=0, chain=f"c{ci}", length=6))
        for j, o in enumerate(outcomes, 1):
            ev.append(
                S.SubtaskEnd(
                    t=j, subtask="x", chain=f"c{ci}", index=j, outcome=o, progress=0.5 if o == "partial" else None
                )
            )
    res = compute_metrics(build_corpus([digest_session(sess, ev)]), ScoreConfig(rounds=10), ["chain_success"])[
        "chain_success"
    ]
    assert res["avg_len"]["value"] == pytest.approx(sum(r["value"] for r in res["sr"]))
    expected_k = []
    for outcomes in chains:
        k = 0
        while k < len(outcomes) and outcomes[k] == "success":
            k += 1
        expected_k.append(k)
    assert res["avg_len"]["value"] == pytest.approx(np.mean(expected_k))


def test_cli_metric_choices_come_from_the_registry(tmp_path, scratch_registries):
    from click.testing import CliRunner

    from egocrowd.bench.cli import bench

    log = tmp_path / "empty.jsonl"
    log.write_text("")
    bad = CliRunner().invoke(bench, ["score", str(log), "--metric", "nope"])
    assert bad.exit_code == 2 and "bench.unknown_metric" in bad.output and "subtask_success" in bad.output
    metric("test_cli_metric", version="1")(lambda c, cfg: None)
    listed = CliRunner().invoke(bench, ["metrics"])
    assert "test_cli_metric" in listed.output


# ------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"rounds": 0}, "bench.bad_config"),
        ({"time_bins": 0}, "bench.bad_config"),
        ({"confidence": 1.0}, "bench.bad_confidence"),
        ({"min_group": -1}, "bench.bad_config"),
    ],
)
def test_score_config_validates(kw, code):
    with pytest.raises(InvalidInput) as exc:
        ScoreConfig(**kw)
    assert exc.value.code == code

"""Review tests: bootstrap rounds that must be dropped or kept, and the sequential test's error rate.

Expected values are worked out by hand in the comments.
"""

from __future__ import annotations

import numpy as np
import pytest

from egocrowd.bench import schema as S
from egocrowd.bench import stats as st
from egocrowd.bench.digest import build_corpus, digest_session
from egocrowd.bench.metrics import ScoreConfig, compute_metrics
from egocrowd.bench.sequential import SequentialTest


def _session(i: int, events: list[S.Event], duration: float = 3600.0) -> tuple[S.Session, list[S.Event]]:
    return S.Session(session_id=f"s{i}", policy="P", environment="e"), [*events, S.SessionEnd(t=duration)]


def _corpus(sessions):
    return build_corpus([digest_session(s, e) for s, e in sessions])


def test_weighted_km_is_undefined_when_a_round_draws_no_item():
    # a bootstrap round that drew only sessions without misinterpretations has no KM estimate at
    # all; it must be NaN (dropped), not S = 1 ("nobody recovered")
    out = st.km_survival_at(np.array([5.0, 7.0]), np.array([True, True]), np.array([[0.0, 0.0], [1.0, 1.0]]), 60.0)
    assert np.isnan(out[0])
    assert out[1] == 0.0


def test_recovery_interval_ignores_rounds_without_misinterpretations():
    # 3 sessions, only s0 has a misinterpretation, recovered after 5 s (< 60 s budget).
    # Every round that draws s0 gives rate 1; the (2/3)^3 ≈ 30 % of rounds without s0 are
    # undefined. So the interval is exactly [1, 1]; before the fix it was [0, 1].
    sessions = [_session(0, [S.Misinterpretation(t=10, id="m"), S.Recovery(t=15, misinterpretation="m")]),
                _session(1, [S.Instruction(t=1, id="i", person="a")]), _session(2, [S.Instruction(t=1, id="i", person="a")])]
    res = compute_metrics(_corpus(sessions), ScoreConfig(rounds=400), ["recovery"])["recovery"]["rate_within_budget"]
    assert res["value"] == 1.0
    assert res["low"] == 1.0 and res["high"] == 1.0


def test_mtbi_upper_bound_is_unbounded_when_many_rounds_see_no_intervention():
    # 10 one-hour sessions, one intervention in s0: MTBI = 600 min. A round misses s0 with
    # probability 0.9^10 ≈ 0.35 > 2.5 %, and then MTBI = ∞, so the 97.5 % percentile is ∞:
    # no finite upper bound may be reported (dropping those rounds made it look finite).
    sessions = [_session(0, [S.Intervention(t=100, reason="x")])] + [_session(i, []) for i in range(1, 10)]
    res = compute_metrics(_corpus(sessions), ScoreConfig(rounds=400), ["interventions"])["interventions"]
    mtbi = res["mtbi_min"]
    assert mtbi["value"] == 600.0
    assert mtbi["high"] is None
    assert mtbi["low"] is not None and 0 < mtbi["low"] <= 600.0


def test_percentile_ci_keeps_infinite_rounds_when_asked():
    s = np.array([1.0, 2.0, np.inf, np.inf, np.nan])
    # NaN is dropped; [1, 2, inf, inf]: 2.5 % → 1.075, 97.5 % lies between two infinities → inf
    lo, hi = st.percentile_ci(s, 0.95, keep_inf=True)
    assert lo == pytest.approx(1.075) and hi == np.inf
    # default: infinite rounds are undefined and dropped → [1, 2]
    assert st.percentile_ci(s, 0.95) == pytest.approx((1.025, 1.975))


def test_gap_rounds_missing_an_eligible_group_are_dropped():
    # persons a and b are each in their own sessions: a always succeeds (s0, s1), b always fails
    # (s2, s3), 5 outcomes per session. Gap = 1 − 0 = 1 whenever both groups are drawn; a round
    # with only a's (or only b's) sessions has no gap (undefined, dropped), not gap 0.
    def sess(i, person, ok):
        return _session(i, [S.SubtaskEnd(t=j + 1, subtask="x", person=person, outcome="success" if ok else "failure")
                            for j in range(5)])

    c = _corpus([sess(0, "a", True), sess(1, "a", True), sess(2, "b", False), sess(3, "b", False)])
    gap = compute_metrics(c, ScoreConfig(rounds=400), ["per_person"])["per_person"]["gap"]
    assert gap["value"] == 1.0
    assert gap["low"] == 1.0 and gap["high"] == 1.0


def _rejections(p_a: float, p_b: float, reps: int, n: int, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    a_wins = b_wins = 0
    for _ in range(reps):
        t = SequentialTest(alpha=0.05)
        xs, ys = rng.random(n) < p_a, rng.random(n) < p_b
        for x, y in zip(xs.tolist(), ys.tolist()):
            if t.update(float(x), float(y)) != "continue":
                break
        a_wins += t.decision == "A"
        b_wins += t.decision == "B"
    return a_wins, b_wins


def test_sequential_type_one_error_under_continuous_monitoring():
    # H0 true (same success rate); the test looks after every pair for 200 pairs. Ville's
    # inequality bounds the rejection rate by alpha = 0.05 whatever the stopping time. With 600
    # replications the binomial SE at 0.05 is 0.009, so 0.05 + 0.03 is a > 3-SE tolerance.
    # (test_sequential.py checks p = 0.55 at alpha = 0.1; here a lopsided rate.)
    a, b = _rejections(0.85, 0.85, reps=600, n=200, seed=12)
    assert (a + b) / 600 <= 0.05 + 0.03, (a, b)


def test_sequential_type_one_error_with_skewed_progress_outcomes():
    # a harder null: A gives continuous progress ~ Beta(1, 4) (mean 0.2, skewed), B gives 0/1
    # success with p = 0.2. E[d] = 0 but d is skewed and heteroskedastic; the betting wealth is
    # still a martingale, so the monitored rejection rate must stay ≤ alpha (+ 3 SE).
    rng = np.random.default_rng(13)
    rejected = 0
    for _ in range(600):
        t = SequentialTest(alpha=0.05)
        xs, ys = rng.beta(1, 4, 200), (rng.random(200) < 0.2).astype(float)
        for x, y in zip(xs.tolist(), ys.tolist()):
            if t.update(x, y) != "continue":
                rejected += 1
                break
    assert rejected / 600 <= 0.05 + 0.03


def test_sequential_test_has_power_and_picks_the_right_side():
    a, b = _rejections(0.8, 0.3, reps=100, n=200, seed=5)
    assert a >= 90 and b == 0
    a, b = _rejections(0.3, 0.8, reps=100, n=200, seed=6)
    assert b >= 90 and a == 0


def test_paired_interval_uses_the_configured_rounds():
    # `--rounds` is documented as the bootstrap rounds of every interval; compare() used a fixed
    # 1000 for the interval of the mean difference. With 1 round the "interval" is one resample.
    d = np.array([0.1, -0.3, 0.5, 0.2, 0.0, 0.4])
    one = st.paired_test(d, boot_rounds=1)
    assert one["low"] == one["high"]
    many = st.paired_test(d, boot_rounds=2000)
    assert many["low"] < many["high"]
    # exact: |Σ ± d_i| ≥ 0.9 in 20 of the 2^6 sign patterns (10 of 32, doubled by the 0 entry)
    assert many["p_value"] == one["p_value"] == 20 / 64

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from scipy import stats as sps
from scipy.optimize import brentq

from egocrowd.bench import schema as S
from egocrowd.bench import stats as st
from egocrowd.bench.digest import build_corpus, digest_session
from egocrowd.bench.metrics import ScoreConfig, compute_metrics
from egocrowd.errors import InvalidInput


def test_wilson_matches_newcombe_1998():
    # Newcombe (1998), Stat Med 17:857, example 81/263: Wilson 0.2553 to 0.3662
    lo, hi = st.wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_wilson_edges():
    assert all(math.isnan(x) for x in st.wilson(0, 0))
    lo, hi = st.wilson(0, 10)
    assert lo == 0 and 0.2 < hi < 0.35  # zero successes still give an informative upper bound
    assert st.wilson(10, 10)[1] == 1.0
    with pytest.raises(InvalidInput):
        st.wilson(1, 2, confidence=1.5)


def test_wilson_coverage_is_close_to_nominal():
    rng = np.random.default_rng(7)
    p, n, reps = 0.3, 60, 3000
    k = rng.binomial(n, p, size=reps)
    covered = np.mean([lo <= p <= hi for lo, hi in (st.wilson(x, n) for x in k)])
    assert 0.93 <= covered <= 0.97


def test_cluster_bootstrap_coverage_for_a_clustered_rate():
    """Sessions with their own success probability: the session bootstrap keeps ~95% coverage
    where a naive per-episode interval would be too narrow."""
    rng = np.random.default_rng(11)
    true_mean, covered, naive_covered, reps = 0.6, 0, 0, 150
    for r in range(reps):
        p_sess = rng.beta(6, 4, size=40)  # mean 0.6, strong between-session spread
        n = rng.integers(5, 30, size=40)
        k = rng.binomial(n, p_sess)
        boot = st.bootstrap_sums(np.stack([k, n], axis=1), st.ratio, rounds=300, seed=r)
        lo, hi = st.percentile_ci(boot)
        # the estimand: the episode-weighted rate, whose expectation is ~the population mean
        covered += lo <= true_mean <= hi
        nlo, nhi = st.wilson(k.sum(), n.sum())
        naive_covered += nlo <= true_mean <= nhi
    assert 0.88 <= covered / reps <= 0.99
    assert naive_covered < covered  # clustering matters


def test_bootstrap_is_seeded_and_chunk_independent_of_memory():
    data = np.stack([np.arange(50.0), np.ones(50)], axis=1)
    a = st.bootstrap_sums(data, st.ratio, rounds=300, seed=3)
    b = st.bootstrap_sums(data, st.ratio, rounds=300, seed=3)
    c = st.bootstrap_sums(data, st.ratio, rounds=300, seed=4)
    assert a.shape == (300,) and np.array_equal(a, b) and not np.array_equal(a, c)
    counts = np.concatenate(list(st.resample_counts(50, 300, seed=3)))
    assert counts.shape == (300, 50) and (counts.sum(axis=1) == 50).all()


def test_weighted_km_matches_scipy_with_ties_and_censoring():
    rng = np.random.default_rng(5)
    t = rng.integers(1, 15, size=60).astype(float)  # many ties
    e = rng.random(60) < 0.7
    ref = sps.ecdf(sps.CensoredData(uncensored=t[e], right=t[~e])).sf
    for budget in (0.5, 3, 7.5, 14, 100):
        assert st.km_survival_at(t, e, np.ones((1, 60)), budget)[0] == pytest.approx(float(ref.evaluate(budget)))
    # integer weights are the same as replicating items
    w = rng.integers(0, 3, size=60)
    rep_t, rep_e = np.repeat(t, w), np.repeat(e, w)
    ref2 = sps.ecdf(sps.CensoredData(uncensored=rep_t[rep_e], right=rep_t[~rep_e])).sf
    assert st.km_survival_at(t, e, w[None, :], 7)[0] == pytest.approx(float(ref2.evaluate(7)))


@pytest.mark.parametrize("ties", [True, False])
def test_weighted_km_for_many_weight_sets_is_each_replicated_sample_in_scipy(ties):
    rng = np.random.default_rng(8)
    n = 80
    t = rng.integers(1, 20, size=n).astype(float) if ties else rng.random(n) * 20
    e = rng.random(n) < 0.6
    w = rng.integers(0, 4, size=(6, n)).astype(float)
    w[1] = 0  # a round that drew no item: no estimate
    order = np.argsort(t, kind="stable")
    for budget in (0.5, 6.5, 13.0, 40.0):
        got = st.km_survival_at(t, e, w, budget)
        assert np.array_equal(got, st.km_survival_at(t[order], e[order], w[:, order], budget), equal_nan=True)
        assert np.isnan(got[1])
        for r in (0, 2, 3, 4, 5):
            rep_t, rep_e = np.repeat(t, w[r].astype(int)), np.repeat(e, w[r].astype(int))
            ref = sps.ecdf(sps.CensoredData(uncensored=rep_t[rep_e], right=rep_t[~rep_e])).sf
            assert got[r] == pytest.approx(float(ref.evaluate(budget)), abs=1e-12)


def test_kaplan_meier_curve_hand_values():
    c = st.kaplan_meier(np.array([5, 3, 8, 1, 1, 2.0]), np.array([1, 1, 0, 1, 0, 0]))
    s = dict(zip(c.time, c.survival))
    assert s[1.0] == pytest.approx(5 / 6) and s[3.0] == pytest.approx(5 / 9) and s[5.0] == pytest.approx(5 / 18)
    assert c.median == 5.0 and (c.events, c.censored) == (3, 3)
    assert all(lo <= v <= hi for lo, v, hi in zip(c.lower, c.survival, c.upper))
    none = st.kaplan_meier(np.array([4.0]), np.array([0]))
    assert none.median is None and none.survival == [1.0]


def test_ols_slope_from_sums():
    x = np.array([0, 1, 2, 3, 4.0])
    y = np.array([1, 1, 0, 1, 0.0])
    sums = st.ols_sums(x, y, np.array([0, 0, 1, 1, 1]), 2)
    assert st.ols_slope(sums.sum(axis=0)[None])[0] == pytest.approx(np.polyfit(x, y, 1)[0])
    assert np.isnan(st.ols_slope(st.ols_sums(np.ones(3), y[:3], np.zeros(3, int), 1))[0])  # x constant


def test_change_points():
    n = np.full(10, 20.0)
    k = np.array([18, 19, 18, 17, 19, 5, 4, 6, 5, 4.0])
    assert st.change_points(k, n) == [5]
    assert st.change_points(np.full(10, 10.0), n) == []
    assert st.change_points(np.array([]), np.array([])) == []


def test_bin_rates():
    b = st.bin_rates(np.array([0, 0.1, 0.9, 1.0]), np.array([1, 0, 1, 1.0]), 2)
    assert [(x["n"], x["rate"]) for x in b] == [(2, 0.5), (2, 1.0)]


def test_paired_test_exact_sign_flip():
    # 10 positive differences: only the all-plus and all-minus sign patterns are as extreme
    res = st.paired_test(np.arange(1, 11) / 100)
    assert res["p_value"] == pytest.approx(2 / 1024)
    assert res["low"] > 0
    assert st.paired_test(np.zeros(5))["p_value"] == 1.0
    with pytest.raises(InvalidInput):
        st.paired_test(np.array([0.1]))


def test_sign_flip_matches_scipy_exact_and_monte_carlo_is_close():
    rng = np.random.default_rng(2)
    d = rng.normal(0.1, 0.5, size=12)
    ref = sps.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=np.inf, vectorized=True, axis=-1
    ).pvalue
    assert st.sign_flip_pvalue(d) == pytest.approx(ref)
    mc = st.sign_flip_pvalue(d, exact_max=0, rounds=20000, seed=1)
    assert mc == pytest.approx(ref, abs=0.015)


@settings(max_examples=25, deadline=None)
@given(
    hst.lists(hst.tuples(hst.integers(0, 20), hst.integers(1, 20)), min_size=1, max_size=30), hst.integers(0, 2**32 - 1)
)
def test_same_seed_same_bootstrap(cells, seed):
    data = np.array([[min(k, n), n] for k, n in cells], dtype=float)
    a = st.bootstrap_sums(data, st.ratio, rounds=50, seed=seed)
    assert np.array_equal(a, st.bootstrap_sums(data, st.ratio, rounds=50, seed=seed))
    lo, hi = st.percentile_ci(a)
    assert 0 <= lo <= hi <= 1


def test_gather_and_matrix_paths_agree_and_counts_match_the_draws():
    rng = np.random.default_rng(0)
    data = rng.random((300, 4))
    ident = lambda tot: tot  # noqa: E731
    a = st.bootstrap_sums(data, ident, rounds=40, seed=9, gather_max_cols=8)
    b = st.bootstrap_sums(data, ident, rounds=40, seed=9, gather_max_cols=0)
    c = np.concatenate(list(st.resample_counts(300, 40, seed=9))) @ data
    assert np.allclose(a, b) and np.allclose(a, c)


def test_a_batch_of_bootstraps_equals_each_alone_and_fills_in_when_it_closes():
    rng = np.random.default_rng(2)
    data = rng.random((500, 2))
    other = rng.random((500, 3))
    small = rng.random((40, 2))  # other clusters: a pass of its own inside the same batch
    got: dict[str, np.ndarray] = {}
    with st.BootstrapBatch():
        st.bootstrap_later(data, st.ratio, lambda b: got.__setitem__("ratio", b), rounds=300, seed=5)
        st.bootstrap_later(other, lambda t: t[:, 1:], lambda b: got.__setitem__("cols", b), rounds=300, seed=5)
        st.bootstrap_later(small, st.ratio, lambda b: got.__setitem__("small", b), rounds=300, seed=5)
        st.bootstrap_later(data, st.ratio, lambda b: got.__setitem__("seed6", b), rounds=300, seed=6)
        assert got == {}  # nothing drawn before the batch closes
    # side by side in one product the sums may round in another order: equal to the last bits
    same = lambda a, b: np.allclose(a, b, rtol=1e-12, atol=0)  # noqa: E731
    assert same(got["ratio"], st.bootstrap_sums(data, st.ratio, rounds=300, seed=5))
    assert same(got["cols"], st.bootstrap_sums(other, lambda t: t[:, 1:], rounds=300, seed=5))
    assert np.array_equal(got["small"], st.bootstrap_sums(small, st.ratio, rounds=300, seed=5))
    assert np.array_equal(got["seed6"], st.bootstrap_sums(data, st.ratio, rounds=300, seed=6))
    st.bootstrap_later(data, st.ratio, lambda b: got.__setitem__("now", b), rounds=300, seed=5)
    assert same(got["now"], got["ratio"])  # no batch open: at once


def test_counts_are_the_draws_counted_round_by_round():
    idx = next(st._resample_indices(70, 30, 4, chunk=30))
    counts = np.concatenate(list(st.resample_counts(70, 30, 4, chunk=7)))
    assert counts.shape == (30, 70)
    assert np.array_equal(counts[0], np.bincount(idx[0], minlength=70))


# ---------------------------------------- bootstrap rounds that must be dropped, or kept


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
    sessions = [
        _session(0, [S.Misinterpretation(t=10, id="m"), S.Recovery(t=15, misinterpretation="m")]),
        _session(1, [S.Instruction(t=1, id="i", person="a")]),
        _session(2, [S.Instruction(t=1, id="i", person="a")]),
    ]
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
        return _session(
            i,
            [
                S.SubtaskEnd(t=j + 1, subtask="x", person=person, outcome="success" if ok else "failure")
                for j in range(5)
            ],
        )

    c = _corpus([sess(0, "a", True), sess(1, "a", True), sess(2, "b", False), sess(3, "b", False)])
    gap = compute_metrics(c, ScoreConfig(rounds=400), ["per_person"])["per_person"]["gap"]
    assert gap["value"] == 1.0
    assert gap["low"] == 1.0 and gap["high"] == 1.0


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


# ------------------------------------------------- exact tests and intervals (issue #19)


def test_mcnemar_exact_by_hand_beside_the_sign_flip_test():
    # 5 pairs where only A succeeded, 1 where only B did, 2 concordant: the exact McNemar p is
    # the two-sided binomial tail 2·P(X ≤ 1 | 6, ½) = 2·(1 + 6)/64
    d = np.array([1, 0, 1, 1, -1, 1, 0, 1.0])
    res = st.paired_test(d)
    assert res["mcnemar"] == {"a_only": 5, "b_only": 1, "p_value": pytest.approx(14 / 64)}
    # a larger, lopsided table: 30 vs 12 discordant pairs among 100
    d = np.array([1.0] * 30 + [-1.0] * 12 + [0.0] * 58)
    tail = sum(math.comb(42, i) for i in range(13)) / 2**42
    assert st.paired_test(d)["mcnemar"]["p_value"] == pytest.approx(2 * tail, rel=1e-9)
    assert st.mcnemar_exact(0, 0) == 1.0
    # not 0/1 outcomes (means over several trials): no McNemar
    assert st.paired_test(np.array([0.5, 1.0, -0.25]))["mcnemar"] is None


def test_poisson_exact_is_garwood():
    # k = 0: the upper end is −ln(α/2)/T in closed form (χ² with 2 df)
    assert st.poisson_exact(0, 10) == (0.0, pytest.approx(-math.log(0.025) / 10))
    # k = 5 in T = 2: the ends are the rates whose Poisson tails hold α/2 (found by root search)
    lo, hi = st.poisson_exact(5, 2.0)
    ref_lo = brentq(lambda m: sps.poisson.sf(4, m) - 0.025, 1e-9, 50) / 2
    ref_hi = brentq(lambda m: sps.poisson.cdf(5, m) - 0.025, 1e-9, 50) / 2
    assert (lo, hi) == (pytest.approx(ref_lo, rel=1e-7), pytest.approx(ref_hi, rel=1e-7))
    assert (round(2 * lo, 4), round(2 * hi, 4)) == (1.6235, 11.6683)  # the usual table for k = 5
    assert all(math.isnan(x) for x in st.poisson_exact(3, 0))


def _greenwood_loglog(t, observed, z=1.959963984540054):
    """Reference KM with Greenwood variance and log-log band, by hand (no scipy)."""
    out, s, v = [], 1.0, 0.0
    for u in sorted(set(t)):
        n = sum(1 for x in t if x >= u)
        d = sum(1 for x, o in zip(t, observed) if x == u and o)
        if d:
            s *= 1 - d / n
            v += d / (n * (n - d)) if n > d else math.inf
        se = math.sqrt(v) / abs(math.log(s)) if 0 < s < 1 else math.nan
        lo = s ** math.exp(z * se) if se == se else math.nan
        hi = s ** math.exp(-z * se) if se == se else math.nan
        out.append((u, s, lo, hi))
    return out


def test_kaplan_meier_median_interval_is_brookmeyer_crowley():
    t = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12.0]
    observed = [1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0]
    ref = _greenwood_loglog(t, observed)

    def first(col):
        return next((u for u, *vals in ref if vals[col] <= 0.5), None)  # NaN compares False

    curve = st.kaplan_meier(np.array(t), np.array(observed, dtype=bool))
    assert curve.median == first(0) == 8.0
    assert (curve.median_low, curve.median_high) == (first(1), first(2))
    assert curve.median_low < curve.median <= curve.median_high
    # everyone recovers quickly but there are few: the upper end is unbounded, as in R's survfit
    few = st.kaplan_meier(np.array([1.0, 2.0, 3.0]), np.array([True, True, True]))
    assert few.median == 2.0 and few.median_low == 1.0 and few.median_high is None

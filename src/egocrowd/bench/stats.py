"""Statistics for egocrowd.bench: intervals, the cluster bootstrap, survival, drift, paired tests.

Pure functions over numpy arrays; every random procedure takes an explicit ``seed``.

* Rates: Wilson score interval (:func:`wilson`); event counts per exposure (interventions per
  hour): Poisson-exact (Garwood) interval (:func:`poisson_exact`).
* Everything else: percentile bootstrap that resamples whole **sessions** (episodes inside a session
  are not independent). Most statistics are functions of per-session sums, so a bootstrap round is
  one matrix product ``counts @ per_session`` (:func:`bootstrap_sums`) instead of a Python loop.
* Time to recover: Kaplan–Meier via ``scipy.stats.ecdf`` (right-censored), with a Brookmeyer–Crowley
  interval for the median (the times whose log-log band holds 0.5); the bootstrap uses a
  vectorised weighted KM (:func:`km_survival_at`), checked against scipy in the tests.
* Drift: OLS slope from sufficient statistics; change points by exact optimal partitioning of
  binned Bernoulli outcomes with a BIC penalty (:func:`change_points`).
* Paired comparison: sign-flip permutation test on per-pair differences (exact for n ≤ 16), and
  for paired 0/1 outcomes the exact McNemar test on the discordant pairs (:func:`mcnemar_exact`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy import stats as sps

from egocrowd.errors import InvalidInput

DEFAULT_ROUNDS = 1000
DEFAULT_CONFIDENCE = 0.95


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be in (0, 1); got {confidence}", code="bench.bad_confidence")
    return float(sps.norm.ppf(0.5 + confidence / 2))


def wilson(successes: float, n: float, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a binomial rate; (nan, nan) when n == 0.

    (p̂ + z²/2n ± z·sqrt(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes <= 0 else max((centre - half) / denom, 0.0)  # exact at the edges, not 1 − 1e-16
    hi = 1.0 if successes >= n else min((centre + half) / denom, 1.0)
    return (float(lo), float(hi))


def poisson_exact(events: float, exposure: float, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Garwood's exact interval for a Poisson rate: events / exposure; (nan, nan) without exposure.

    lower = χ²(α/2; 2k) / 2T (0 when k = 0), upper = χ²(1 − α/2; 2k + 2) / 2T.
    """
    if exposure <= 0:
        return (float("nan"), float("nan"))
    _z(confidence)  # same check of the level as every other interval
    a = 1 - confidence
    lo = 0.0 if events <= 0 else float(sps.chi2.ppf(a / 2, 2 * events)) / 2
    hi = float(sps.chi2.ppf(1 - a / 2, 2 * events + 2)) / 2
    return (lo / exposure, hi / exposure)


# ------------------------------------------------------------------------------------ bootstrap


def _resample_indices(
    n_clusters: int, rounds: int, seed: int | np.random.Generator, chunk: int
) -> Iterator[np.ndarray]:
    """(≤chunk, n_clusters) int32 arrays of the clusters drawn in each bootstrap round."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < rounds:
        c = min(chunk, rounds - done)
        yield rng.integers(0, n_clusters, size=(c, n_clusters), dtype=np.int32)
        done += c


def _chunk(n_clusters: int) -> int:
    return int(max(1, min(256, 4_000_000 // max(n_clusters, 1))))  # ≤ ~16 MB of indices per chunk


def resample_counts(
    n_clusters: int, rounds: int, seed: int | np.random.Generator, *, chunk: int | None = None
) -> Iterator[np.ndarray]:
    """Yield (≤chunk, n_clusters) arrays: how often each cluster is drawn in each bootstrap round.

    Same draws as :func:`bootstrap_sums` with the same seed. Chunks bound memory whatever the
    number of rounds.
    """
    for idx in _resample_indices(n_clusters, rounds, seed, chunk or _chunk(n_clusters)):
        counts = np.empty(idx.shape)
        # round by round: one round's counts stay in cache while they are made (one bincount over
        # the whole chunk, each round offset to its own row, took twice as long at 10,000 sessions)
        for r, drawn in enumerate(idx):
            counts[r] = np.bincount(drawn, minlength=n_clusters)
        yield counts


def bootstrap_sums(
    per_cluster: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
    gather_max_cols: int = 8,
) -> np.ndarray:
    """Cluster bootstrap of a statistic of column totals.

    ``per_cluster``: (clusters, m) sums per cluster. ``statistic``: maps (r, m) totals to (r,) or
    (r, k) values. Returns the (rounds, ...) bootstrap distribution. The totals of a round are
    ``counts @ per_cluster`` (counts: how often each cluster was drawn, see :func:`resample_counts`;
    ``gather_max_cols`` is accepted and ignored: the column-by-column gather it chose is gone).
    Several bootstraps over the same draws cost one pass in a :class:`BootstrapBatch`.
    """
    out: list[np.ndarray] = []
    _Request(_columns(per_cluster), statistic, out.append).run(rounds, seed)
    return out[0]


def _columns(per_cluster: np.ndarray) -> np.ndarray:
    a = np.asarray(per_cluster, dtype=float)
    return a[:, None] if a.ndim == 1 else a


@dataclass
class _Request:
    per_cluster: np.ndarray
    statistic: Callable[[np.ndarray], np.ndarray]
    done: Callable[[np.ndarray], Any]

    def run(self, rounds: int, seed: int) -> None:
        _run_together([self], rounds, seed)


def _run_together(requests: list[_Request], rounds: int, seed: int) -> None:
    """Bootstraps of the same clusters over the same draws: each chunk of draws costs one product
    with every request's columns side by side, whatever the number of statistics."""
    both = np.concatenate([r.per_cluster for r in requests], axis=1) if len(requests) > 1 else requests[0].per_cluster
    edges = np.cumsum([0] + [r.per_cluster.shape[1] for r in requests])
    parts: list[list[np.ndarray]] = [[] for _ in requests]
    for counts in resample_counts(both.shape[0], rounds, seed):
        totals = counts @ both
        with np.errstate(divide="ignore", invalid="ignore"):
            for i, r in enumerate(requests):
                parts[i].append(r.statistic(totals[:, edges[i] : edges[i + 1]]))
    for r, p in zip(requests, parts):
        r.done(np.concatenate(p, axis=0))


_batch: ContextVar[BootstrapBatch | None] = ContextVar("egocrowd_bootstrap_batch", default=None)


class BootstrapBatch:
    """Bootstraps asked for while the batch is open run together when it closes.

    The metrics of one corpus resample the same sessions with the same seed; drawn once for all of
    them, and with their columns in one matrix product per chunk of draws, a further metric costs
    little. Inside ``with BootstrapBatch():`` :func:`bootstrap_later` defers; outside it runs at once.
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple[int, int, int], list[_Request]] = {}

    def __enter__(self) -> BootstrapBatch:
        self._token = _batch.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _batch.reset(self._token)
        if exc[0] is None:
            self.run()

    def add(self, request: _Request, rounds: int, seed: int) -> None:
        self._waiting.setdefault((request.per_cluster.shape[0], rounds, seed), []).append(request)

    def run(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for (_, rounds, seed), requests in waiting.items():
            _run_together(requests, rounds, seed)


def bootstrap_later(
    per_cluster: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    done: Callable[[np.ndarray], Any],
    *,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = 0,
) -> None:
    """:func:`bootstrap_sums`, its distribution handed to ``done``: when the open
    :class:`BootstrapBatch` closes (same draws, one pass), or at once when none is open."""
    request = _Request(_columns(per_cluster), statistic, done)
    batch = _batch.get()
    if batch is None:
        request.run(rounds, seed)
    else:
        batch.add(request, rounds, int(seed))


def percentile_ci(
    samples: np.ndarray, confidence: float = DEFAULT_CONFIDENCE, *, keep_inf: bool = False
) -> tuple[float, float]:
    """Percentile interval, ignoring rounds where the statistic is undefined (NaN, and ±inf
    unless ``keep_inf``: for e.g. MTBI a round without interventions is a genuine +inf, and
    dropping it would make the upper bound look finite)."""
    s = np.asarray(samples, dtype=float)
    s = s[~np.isnan(s)] if keep_inf else s[np.isfinite(s)]
    if s.size == 0:
        return (float("nan"), float("nan"))
    a = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        q = np.quantile(s, [a, 1 - a])
    if np.isnan(q).any():  # interpolating between two equal infinities gives inf − inf = NaN
        srt = np.sort(s)
        q = np.where(np.isnan(q), srt[np.floor(np.array([a, 1 - a]) * (s.size - 1)).astype(int)], q)
    lo, hi = q
    return (float(lo), float(hi))


def ratio(totals: np.ndarray) -> np.ndarray:
    """Statistic for :func:`bootstrap_sums`: column 0 / column 1."""
    return totals[:, 0] / totals[:, 1]


# ------------------------------------------------------------------------------------- survival


@dataclass(frozen=True)
class KMCurve:
    time: list[float]
    survival: list[float]
    lower: list[float]
    upper: list[float]
    n: int
    events: int
    censored: int
    median: float | None  # None when the curve never drops to 0.5
    # Brookmeyer–Crowley interval of the median: None = unbounded (the band never reaches 0.5)
    median_low: float | None = None
    median_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Its fields as they are (``dataclasses.asdict`` deep-copied every point of the curve: a
        quarter of a second for 25,000 misinterpretations)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def kaplan_meier(durations: np.ndarray, observed: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> KMCurve:
    """Kaplan–Meier survival ("still not recovered") with log-log pointwise intervals (scipy)."""
    durations = np.asarray(durations, dtype=float)
    observed = np.asarray(observed, dtype=bool)
    n = int(durations.size)
    if n == 0:
        return KMCurve([], [], [], [], 0, 0, 0, None)
    if not observed.any():
        return KMCurve([0.0], [1.0], [1.0], [1.0], n, 0, n, None)
    data = sps.CensoredData(uncensored=durations[observed], right=durations[~observed])
    res = sps.ecdf(data).sf
    with warnings.catch_warnings():  # undefined where S(t) is 0 or 1; we clamp those below
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = res.confidence_interval(confidence_level=confidence, method="log-log")
    t = res.quantiles
    s = res.probabilities
    # scipy-stubs type the interval's bounds as floats; they are EmpiricalDistributionFunctions
    lo = np.nan_to_num(ci.low.probabilities, nan=0.0)  # type: ignore[attr-defined]
    hi = np.nan_to_num(ci.high.probabilities, nan=1.0)  # type: ignore[attr-defined]
    below = np.nonzero(s <= 0.5)[0]
    median = float(t[below[0]]) if below.size else None
    return KMCurve(
        time=[0.0, *map(float, t)],
        survival=[1.0, *map(float, s)],
        lower=[1.0, *map(float, lo)],
        upper=[1.0, *map(float, hi)],
        n=n,
        events=int(observed.sum()),
        censored=int((~observed).sum()),
        median=median,
        median_low=_first_at_or_below(t, ci.low.probabilities, 0.5),  # type: ignore[attr-defined]
        median_high=_first_at_or_below(t, ci.high.probabilities, 0.5),  # type: ignore[attr-defined]
    )


def _first_at_or_below(t: np.ndarray, band: np.ndarray, level: float) -> float | None:
    """First time the band is <= level. Brookmeyer–Crowley: the median's interval is the set of t
    whose pointwise band holds 0.5, so its ends are where the lower and the upper band first
    reach 0.5. Undefined band values (S = 0 or 1) never count, as in R's survfit; a band that
    never reaches 0.5 leaves that end unbounded (None). A few lines over scipy's band: no
    installed library computes this interval (lifelines is not a dependency)."""
    hit = np.nonzero(np.asarray(band, dtype=float) <= level)[0]  # NaN compares False
    return float(t[hit[0]]) if hit.size else None


def km_survival_at(durations: np.ndarray, observed: np.ndarray, weights: np.ndarray, budget: float) -> np.ndarray:
    """Weighted Kaplan–Meier S(budget) for many weight vectors at once.

    ``weights``: (r, n) — e.g. bootstrap multiplicities of each item's session. Returns (r,).
    S(B) = Π (1 − d_j / n_j) over the distinct times t_j ≤ B with a death, where d_j is the weight
    of deaths at t_j and n_j that of items still at risk (all of them less those that ended before
    t_j). Items sorted by time are taken as they are: a caller with many weight sets sorts once.
    Hand-written because scipy's ecdf takes no weights and a loop over 1000 refits is slow.
    """
    durations = np.asarray(durations, dtype=float)
    observed = np.asarray(observed, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    if durations.size == 0:
        return np.full(w.shape[0], np.nan)
    total = w.sum(axis=1)
    if (durations[1:] < durations[:-1]).any():
        order = np.argsort(durations, kind="stable")
        durations, observed, w = durations[order], observed[order], w[:, order]
    k = int(np.searchsorted(durations, budget, side="right"))  # the items that end by the budget
    t, ev = durations[:k], observed[:k]
    first = np.flatnonzero(np.concatenate([[True], t[1:] != t[:-1]])) if k else np.zeros(0, dtype=np.int64)
    ended = np.cumsum(w[:, :k], axis=1)  # weight of the items up to and including each one
    # the items that died, each time's (of those with a death) weighed together
    dead = np.flatnonzero(ev)
    time_of = np.searchsorted(first, dead, side="right") - 1
    starts = np.flatnonzero(np.concatenate([[True], time_of[1:] != time_of[:-1]])) if dead.size else dead
    died = first[time_of[starts]]  # a time's first item (those before it ended earlier)
    d = w[:, dead] if starts.size == dead.size else np.add.reduceat(w[:, dead], starts, axis=1)
    # at risk at a time: everything but what ended before its first item
    n_at = total[:, None] - np.where(died > 0, ended[:, np.maximum(died - 1, 0)], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(n_at > 0, 1.0 - d / n_at, 1.0)
    # a round that drew no item at all has no estimate (NaN, dropped by percentile_ci), not S = 1
    return np.where(total > 0, np.prod(factor, axis=1), np.nan)


# ---------------------------------------------------------------------------------------- drift


def ols_sums(x: np.ndarray, y: np.ndarray, cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    """Per-cluster sufficient statistics (n, Σx, Σy, Σxy, Σx²) for :func:`ols_slope`."""
    cols = [np.ones_like(x), x, y, x * y, x * x]
    return np.stack([np.bincount(cluster, weights=c, minlength=n_clusters) for c in cols], axis=1)


def ols_slope(totals: np.ndarray) -> np.ndarray:
    """Least-squares slope of y on x from (r, 5) totals of (n, Σx, Σy, Σxy, Σx²)."""
    n, sx, sy, sxy, sxx = (totals[:, i] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore"):
        den = n * sxx - sx * sx
        return np.where(np.abs(den) > 1e-12 * np.maximum(n * sxx, 1e-300), (n * sxy - sx * sy) / den, np.nan)


def bin_rates(
    x: np.ndarray, y: np.ndarray, bins: int | np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> list[dict[str, float]]:
    """Success per equal-width bin of x with Wilson intervals; empty bins are left out."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size == 0:
        return []
    if isinstance(bins, (int, np.integer)):
        lo, hi = float(x.min()), float(x.max())
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, int(bins) + 1)
    else:
        edges = np.asarray(bins, dtype=float)
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    n = np.bincount(which, minlength=len(edges) - 1)
    k = np.bincount(which, weights=y, minlength=len(edges) - 1)
    out = []
    for i in np.nonzero(n)[0]:
        lo_ci, hi_ci = wilson(k[i], n[i], confidence)
        out.append(
            {
                "start": float(edges[i]),
                "end": float(edges[i + 1]),
                "n": int(n[i]),
                "successes": float(k[i]),
                "rate": float(k[i] / n[i]),
                "low": lo_ci,
                "high": hi_ci,
            }
        )
    return out


def _bern_cost(k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """−2 × Bernoulli log-likelihood of a segment with k successes in n at its MLE rate."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        ll = np.where(k > 0, k * np.log(np.where(p > 0, p, 1)), 0) + np.where(
            n - k > 0, (n - k) * np.log(np.where(p < 1, 1 - p, 1)), 0
        )
    return -2 * ll


def change_points(
    successes: np.ndarray, trials: np.ndarray, penalty: float | None = None, min_size: int = 1
) -> list[int]:
    """Exact optimal partitioning of a binned Bernoulli sequence.

    Minimises Σ_segments −2·loglik(segment) + β·(segments − 1) with β = 2·ln(N) by default (BIC:
    each change adds a rate and a location), N = total trials. Returns the indices of the bins where
    a new segment starts. O(B²) in the number of bins B; hand-written because it is a dozen lines
    and no maintained change-point library is installed.
    """
    k = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    b = k.size
    if b == 0:
        return []
    beta = 2 * np.log(max(n.sum(), 2)) if penalty is None else penalty
    ck = np.concatenate([[0], np.cumsum(k)])
    cn = np.concatenate([[0], np.cumsum(n)])
    best = np.full(b + 1, np.inf)
    best[0] = -beta
    prev = np.zeros(b + 1, dtype=int)
    for end in range(1, b + 1):
        starts = np.arange(0, end - min_size + 1)
        if starts.size == 0:
            continue
        cost = best[starts] + beta + _bern_cost(ck[end] - ck[starts], cn[end] - cn[starts])
        j = int(np.argmin(cost))
        best[end] = cost[j]
        prev[end] = starts[j]
    cps = []
    end = b
    while end > 0:
        start = prev[end]
        if start > 0:
            cps.append(int(start))
        end = start
    return sorted(cps)


# ---------------------------------------------------------------------------------- comparisons


def sign_flip_pvalue(d: np.ndarray, *, rounds: int = 9999, seed: int = 0, exact_max: int = 16) -> float:
    """Two-sided sign-flip permutation p-value for mean(d) == 0 (paired differences).

    Exact enumeration of all 2^n sign patterns when n ≤ ``exact_max``; otherwise ``rounds``
    Monte Carlo patterns with the (1 + hits) / (1 + rounds) correction so p is never 0.
    Hand-written: scipy.stats.permutation_test takes ~50 s for 10,000 pairs; this is a matrix
    product per batch.
    """
    d = np.asarray(d, dtype=float)
    n = d.size
    obs = abs(d.sum()) * (1 - 1e-12)  # tolerance so ties with the observed value count as extreme
    if n <= exact_max:
        signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
        return float(np.mean(np.abs(signs @ d) >= obs))
    rng = np.random.default_rng(seed)
    hits, done, batch = 0, 0, max(1, 2_000_000 // n)
    while done < rounds:
        b = min(batch, rounds - done)
        signs = rng.integers(0, 2, size=(b, n), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) >= obs))
        done += b
    return (1 + hits) / (1 + rounds)


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact McNemar test for paired 0/1 outcomes: two-sided binomial test of the discordant pairs
    (A succeeded and B failed: ``a_only``; the reverse: ``b_only``) at 1/2; 1.0 without any."""
    n = a_only + b_only
    return 1.0 if n == 0 else float(sps.binomtest(a_only, n, 0.5).pvalue)


def paired_test(
    diffs: np.ndarray,
    *,
    seed: int = 0,
    rounds: int = 9999,
    confidence: float = DEFAULT_CONFIDENCE,
    boot_rounds: int = DEFAULT_ROUNDS,
) -> dict[str, Any]:
    """Two-sided sign-flip permutation test of mean(diffs) == 0, with a bootstrap CI of the mean
    (``boot_rounds`` resamples: the configured ``--rounds``, not a fixed 1000).

    When every difference is −1, 0 or 1 the pairs are 0/1 outcomes (a difference of ±1 needs both
    to be 0 or 1; a 0 is a concordant pair either way) and ``mcnemar`` holds the exact McNemar
    test, the standard for paired success/failure; otherwise it is None."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        raise InvalidInput("a paired comparison needs at least 2 pairs", code="bench.too_few_pairs")
    p = 1.0 if np.allclose(d, 0) else sign_flip_pvalue(d, rounds=rounds, seed=seed)
    boot = bootstrap_sums(np.stack([d, np.ones_like(d)], axis=1), ratio, rounds=boot_rounds, seed=seed)
    lo, hi = percentile_ci(boot, confidence)
    mcnemar = None
    if np.isin(d, (-1.0, 0.0, 1.0)).all():
        a_only, b_only = int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))
        mcnemar = {"a_only": a_only, "b_only": b_only, "p_value": mcnemar_exact(a_only, b_only)}
    return {"pairs": int(d.size), "mean_diff": float(d.mean()), "low": lo, "high": hi, "p_value": p, "mcnemar": mcnemar}

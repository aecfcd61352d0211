"""Registered bench metrics. Each takes a :class:`~egocrowd.bench.digest.Corpus` (one policy's
sessions) and a :class:`ScoreConfig` and returns a JSON-ready dict, or ``None`` when the logs hold
nothing it can measure. Name and version of every metric are stored with its results.

Register your own with::

    @metric("my_metric", version="1", description="...")
    def my_metric(corpus, config): ...

Third-party packages may register through the ``egocrowd.plugins`` entry-point group by importing a
module that uses the decorator (see :mod:`egocrowd.registry`). Exact definitions: ``docs/bench.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from egocrowd.bench import stats as st
from egocrowd.bench.digest import Corpus
from egocrowd.errors import InvalidInput
from egocrowd.registry import Registry

Result = dict[str, Any] | None


@dataclass(frozen=True)
class ScoreConfig:
    rounds: int = st.DEFAULT_ROUNDS  # bootstrap rounds
    seed: int = 0
    confidence: float = st.DEFAULT_CONFIDENCE
    recovery_budget_s: float = 60.0  # "recovered within the budget"
    time_bins: int = 12  # bins over time into session
    min_group: int = 5  # outcomes a person/environment needs to compete for "worst group"

    def __post_init__(self) -> None:
        # rounds = 0 or time_bins = 0 used to crash deep inside numpy with a bare traceback
        if not 0 < self.confidence < 1:
            raise InvalidInput(f"confidence must be in (0, 1); got {self.confidence}", code="bench.bad_confidence")
        for name, low in (("rounds", 1), ("time_bins", 1), ("min_group", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InvalidInput(f"{name} must be an integer >= {low}; got {v!r}", code="bench.bad_config")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MetricFn = Callable[[Corpus, ScoreConfig], Result]
METRICS: Registry[MetricFn] = Registry("bench.metric")


def metric(name: str, *, version: str, description: str = "") -> Callable[[MetricFn], MetricFn]:
    """Register a metric under ``name``; bump ``version`` whenever its numbers could change."""
    return METRICS.register(name, version=version, description=description)


def metric_seed(config: ScoreConfig, name: str) -> int:
    """The bootstrap seed of a metric: the same for every metric (``name`` is kept for callers), so
    all metrics of a corpus resample the same sessions, drawn once (the stats.BootstrapBatch that
    compute_metrics opens); adding a metric still never changes another's intervals."""
    return config.seed % 2**32


def compute_metrics(corpus: Corpus, config: ScoreConfig, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Run the named (default: all) metrics on one corpus; inapplicable ones are left out."""
    out: dict[str, dict[str, Any]] = {}
    with st.BootstrapBatch():  # the metrics' bootstraps, one pass over the same draws (see _boot_est)
        for name in names or METRICS.names():
            spec = METRICS.get(name)
            res = spec.obj(corpus, config)
            if res is not None:
                out[name] = {"version": spec.version, **res}
    return out


def _factorize(labels: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Sorted distinct labels (as ``astype(str)`` reads them) and each label's position among them:
    ``np.unique(..., return_inverse=True)`` for a few distinct strings among many, with dicts (C loops)
    instead of sorting every item."""
    items = labels.tolist()
    first = {x: i for i, x in enumerate(dict.fromkeys(items))}  # distinct labels in first-seen order
    code = np.fromiter(map(first.__getitem__, items), dtype=np.int64, count=len(items))
    text = [x if type(x) is str else str(x) for x in first]  # two labels may read the same (1 and "1")
    names = sorted(set(text))
    at = {name: i for i, name in enumerate(names)}
    return names, np.array([at[t] for t in text], dtype=np.int64)[code] if items else code


def _clean(x: float | None) -> float | None:
    """JSON has no NaN or infinity: an undefined or unbounded number is null."""
    return None if x is None or not np.isfinite(x) else float(x)


def _est(value: float | None, ci: tuple[float, float], method: str) -> dict[str, Any]:
    return {"value": _clean(value), "low": _clean(ci[0]), "high": _clean(ci[1]), "method": method}


def _rate(k: float, n: float, config: ScoreConfig) -> dict[str, Any]:
    return {**_est(k / n if n else None, st.wilson(k, n, config.confidence), "wilson"), "k": float(k), "n": int(n)}


def _boot_est(
    value: float | None,
    per_cluster: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    config: ScoreConfig,
    name: str,
    *,
    scale: float = 1.0,
    keep_inf: bool = False,
) -> dict[str, Any]:
    """An estimate whose cluster-bootstrap interval is filled in when the metrics' batch of
    bootstraps runs (at once outside :func:`compute_metrics`): don't read ``low``/``high`` before."""
    est = _est(value, (float("nan"), float("nan")), "cluster_bootstrap")

    def done(boot: np.ndarray) -> None:
        low, high = st.percentile_ci(boot * scale, config.confidence, keep_inf=keep_inf)
        est["low"], est["high"] = _clean(low), _clean(high)

    st.bootstrap_later(per_cluster, statistic, done, rounds=config.rounds, seed=metric_seed(config, name))
    return est


def _boot_ratio(
    num: np.ndarray, den: np.ndarray, config: ScoreConfig, name: str, scale: float = 1.0, *, keep_inf: bool = False
) -> dict[str, Any]:
    total_den = float(den.sum())
    value = float(num.sum()) / total_den * scale if total_den else None
    return _boot_est(value, np.stack([num, den], axis=1), st.ratio, config, name, scale=scale, keep_inf=keep_inf)


# ----------------------------------------------------------------------------------------- metrics


@metric("sessions", version="1", description="What was scored: sessions, hours, events, truncated logs")
def sessions(c: Corpus, config: ScoreConfig) -> Result:
    t = c.table
    return {
        "sessions": c.n_sessions,
        "hours": float(c.duration.sum() / 3600),
        "autonomous_hours": float(c.autonomous.sum() / 3600),
        "events": int(t.counts["events"].sum()),
        "sources": dict(Counter(t.heads["source"])),
        "environments": sorted(set(t.heads["environment"])),
        "truncated": t.heads["end_reason"].count(None),
        "env_changes": t.tallies["env_changes"].total(),
    }


@metric("chain_success", version="1", description="CALVIN chain success SR_j and average successful length")
def chain_success(c: Corpus, config: ScoreConfig) -> Result:
    """SR_j = share of chains with k ≥ j; L = mean k = Σ_j SR_j (k: successes before the first failure)."""
    if c.chain_k.size == 0:
        return None
    k = c.chain_k
    horizon = int(max(c.chain_len.max(), k.max(), 1))
    n = k.size
    sr = [{"j": j, **_rate(float((k >= j).sum()), n, config)} for j in range(1, horizon + 1)]
    avg = _boot_ratio(
        c.session_sum(c.chain_sess, k.astype(float)), c.session_sum(c.chain_sess), config, "chain_success"
    )
    avg["value"] = float(k.mean())
    return {"chains": int(n), "horizon": horizon, "sr": sr, "avg_len": avg}


@metric("subtask_success", version="1", description="Share of subtasks ending in success; mean progress")
def subtask_success(c: Corpus, config: ScoreConfig) -> Result:
    if c.out_success.size == 0:
        return None
    num = c.session_sum(c.out_sess, c.out_success)
    den = c.session_sum(c.out_sess)
    rate = _rate(float(c.out_success.sum()), c.out_success.size, config)
    rate["cluster_ci"] = _boot_ratio(num, den, config, "subtask_success")
    progress = _boot_ratio(c.session_sum(c.out_sess, c.out_progress), den, config, "subtask_progress")
    return {"rate": rate, "progress": progress}


def _drift(
    x: np.ndarray,
    y: np.ndarray,
    sess: np.ndarray,
    n_sessions: int,
    bins: int | np.ndarray,
    config: ScoreConfig,
    name: str,
    unit: str,
) -> Result:
    ok = np.isfinite(x)
    x, y, sess = x[ok], y[ok], sess[ok]
    if x.size < 2 or np.ptp(x) == 0:
        return None
    sums = st.ols_sums(x, y, sess, n_sessions)
    slope = float(st.ols_slope(sums.sum(axis=0)[None])[0])
    table = st.bin_rates(x, y, bins, config.confidence)
    cps = st.change_points(np.array([b["successes"] for b in table]), np.array([b["n"] for b in table]))
    return {
        "unit": unit,
        "slope": _boot_est(slope, sums, st.ols_slope, config, name),
        "bins": table,
        "change_points": [table[i]["start"] for i in cps],
    }


def _has_time_axis(c: Corpus) -> np.ndarray:
    """Per outcome: does its session have a time axis (outcomes at two or more different times)?

    A trials-CSV row without a session is a session of one outcome whose "time into the session"
    is its own duration; pooled, failed trials that last longer then read as a strong, significant
    drift. Only sessions whose outcomes spread over time say anything about time into a session.
    """
    t_max = np.full(c.n_sessions, -np.inf)
    t_min = np.full(c.n_sessions, np.inf)
    np.maximum.at(t_max, c.out_sess, c.out_t)
    np.minimum.at(t_min, c.out_sess, c.out_t)
    return (t_max > t_min)[c.out_sess]


@metric(
    "drift_session_time", version="2", description="Success against hours into the session: slope, bins, change points"
)
def drift_session_time(c: Corpus, config: ScoreConfig) -> Result:
    if c.out_t.size == 0:
        return None
    axis = _has_time_axis(c)
    return _drift(
        np.where(axis, c.out_t / 3600, np.nan),  # NaN: left out by _drift
        c.out_success,
        c.out_sess,
        c.n_sessions,
        config.time_bins,
        config,
        "drift_session_time",
        "per hour",
    )


@metric(
    "drift_deployment_days",
    version="1",
    description="Success against days since deployment: slope, daily bins, change points",
)
def drift_deployment_days(c: Corpus, config: ScoreConfig) -> Result:
    if c.out_t.size == 0 or np.isnan(c.deployment_day).all():
        return None
    x = c.deployment_day[c.out_sess] + c.out_t / 86400
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return None
    lo, hi = np.floor(fin.min()), np.floor(fin.max()) + 1
    # whole days read naturally; fall back to 30 equal bins for very long deployments
    edges: int | np.ndarray = np.arange(lo, hi + 1) if hi - lo <= 60 else 30
    return _drift(x, c.out_success, c.out_sess, c.n_sessions, edges, config, "drift_deployment_days", "per day")


@metric(
    "recovery",
    version="3",
    description="Time to recover after a misinterpretation (Kaplan–Meier) and recovery within budget",
)
def recovery(c: Corpus, config: ScoreConfig) -> Result:
    """Survival S(t) = P(not yet recovered t seconds after a misinterpretation); unrecovered runs are
    censored at session end. Recovery rate within budget B = 1 − S(B)."""
    if c.mis_time.size == 0:
        return None
    observed = c.mis_recovered.astype(bool)
    curve = st.kaplan_meier(c.mis_time, observed, config.confidence)
    budget = config.recovery_budget_s
    order = np.argsort(c.mis_time, kind="stable")  # sorted once, not for every chunk of rounds
    time, died, sess = c.mis_time[order], observed[order], c.mis_sess[order]
    point = 1.0 - float(st.km_survival_at(time, died, np.ones((1, time.size)), budget)[0])
    boots = [
        1.0 - st.km_survival_at(time, died, counts[:, sess], budget)
        # chunks of rounds sized so the (rounds × misinterpretations) weight matrix stays ~16 MB
        for counts in st.resample_counts(
            c.n_sessions,
            config.rounds,
            metric_seed(config, "recovery"),
            chunk=max(1, min(256, 2_000_000 // max(c.mis_time.size, c.n_sessions))),
        )
    ]
    nan = float("nan")
    return {
        "misinterpretations": curve.n,
        "recovered": curve.events,
        "censored": curve.censored,
        "median_time_s": curve.median,
        "median": _est(
            curve.median,
            (
                nan if curve.median_low is None else curve.median_low,
                nan if curve.median_high is None else curve.median_high,
            ),
            "brookmeyer_crowley_loglog",
        ),
        "budget_s": budget,
        "rate_within_budget": _est(
            point, st.percentile_ci(np.concatenate(boots), config.confidence), "cluster_bootstrap"
        ),
        "curve": curve.to_dict(),
    }


@metric("conflicts", version="1", description="Conflict detection, correct resolution, clarification and over-asking")
def conflicts(c: Corpus, config: ScoreConfig) -> Result:
    t = c.table
    n = int(t.counts["conflicts"].sum())
    unneeded = t.counts["clarifications_unneeded"].astype(float)
    calm = np.maximum(t.counts["instructions"] - t.counts["instructions_in_conflict"], 0).astype(float)
    if n == 0 and unneeded.sum() == 0:
        return None
    res: dict[str, Any] = {"conflicts": n, "resolutions": t.tallies["resolutions"].total()}
    if n:
        for name, field in (
            ("detection_rate", "conflicts_detected"),
            ("correct_resolution_rate", "conflicts_correct"),
            ("clarification_rate", "conflicts_clarified"),
        ):
            res[name] = _rate(int(t.counts[field].sum()), n, config)
    if calm.sum() > 0:
        # can exceed 1 (several needless questions per instruction), hence a bootstrap, not Wilson
        res["over_asking_rate"] = _boot_ratio(unneeded, calm, config, "over_asking")
        res["unneeded_clarifications"] = int(unneeded.sum())
    return res


@metric("interventions", version="3", description="Mean time between interventions and interventions per hour")
def interventions(c: Corpus, config: ScoreConfig) -> Result:
    """MTBI = autonomous time / interventions (autonomous = session time − human-control time)."""
    hours = float(c.autonomous.sum() / 3600)
    if hours <= 0:
        return None
    n = float(c.interventions.sum())
    per_hour = _boot_ratio(c.interventions, c.autonomous / 3600, config, "interventions")
    res: dict[str, Any] = {
        "interventions": int(n),
        "autonomous_hours": hours,
        "per_hour": per_hour,
        # exact if interventions are a Poisson process; the bootstrap above also sees sessions that
        # differ, but says nothing with one session (every resample is that session)
        "per_hour_exact": _est(n / hours, st.poisson_exact(n, hours, config.confidence), "poisson_exact"),
        "reasons": c.table.tallies["intervention_reasons"].total(),
    }
    if n:
        # a round without interventions has MTBI = +inf (not undefined): keep it, so the upper
        # bound is reported as unbounded (null) instead of a finite, too-optimistic number
        mtbi = _boot_ratio(c.autonomous / 60, c.interventions, config, "mtbi", keep_inf=True)
        res["mtbi_min"] = mtbi
    else:
        # none observed: the exact one-sided Poisson bound says the rate is below −ln(α)/T
        alpha = 1 - config.confidence
        res["mtbi_min"] = {
            "value": None,
            "low": float(hours * 60 / -np.log(alpha)),
            "high": None,
            "method": "poisson_zero_events",
        }
    return res


@metric("safety", version="1", description="Safety events per hour of session, in total and by kind")
def safety(c: Corpus, config: ScoreConfig) -> Result:
    hours = c.duration / 3600
    if hours.sum() <= 0:
        return None
    tally = c.table.tallies["safety"]
    kinds = sorted(set(tally.label.tolist()))
    total = tally.per_session(c.n_sessions)
    res: dict[str, Any] = {
        "events": int(total.sum()),
        "hours": float(hours.sum()),
        "per_hour": _boot_ratio(total, hours, config, "safety"),
    }
    by_kind = {}
    for k in kinds:
        counts = tally.per_session(c.n_sessions, k)
        by_kind[k] = {"events": int(counts.sum()), "per_hour": _boot_ratio(counts, hours, config, f"safety.{k}")}
    res["by_kind"] = by_kind
    return res


def _groups(labels: np.ndarray, c: Corpus, config: ScoreConfig, name: str) -> Result:
    if c.out_success.size == 0:
        return None
    names, inv = _factorize(labels)
    g = len(names)
    cell = c.out_sess * g + inv
    k = np.bincount(cell, weights=c.out_success, minlength=c.n_sessions * g).reshape(c.n_sessions, g)
    n = np.bincount(cell, minlength=c.n_sessions * g).reshape(c.n_sessions, g).astype(float)
    kt, nt = k.sum(0), n.sum(0)
    groups = [{"group": str(names[i]), **_rate(kt[i], nt[i], config)} for i in range(g)]
    eligible = nt >= config.min_group
    res: dict[str, Any] = {"groups": groups, "min_group": config.min_group}
    if eligible.sum() >= 2:
        rates = kt / np.where(nt > 0, nt, np.nan)
        masked = np.where(eligible, rates, np.nan)
        worst = int(np.nanargmin(masked))
        best = int(g - 1 - np.nanargmax(masked[::-1]))  # last maximum: never the worst group when all tie

        def gap(tot: np.ndarray) -> np.ndarray:
            r = tot[:, :g] / tot[:, g:]
            r = r[:, eligible]
            # a round that drew no outcome of some eligible group has no gap (NaN, dropped later);
            # nanmax − nanmin over the groups present would shrink the gap toward 0
            return np.max(r, axis=1) - np.min(r, axis=1)

        res["worst"] = str(names[worst])
        res["best"] = str(names[best])
        res["gap"] = _boot_est(float(rates[best] - rates[worst]), np.concatenate([k, n], axis=1), gap, config, name)
    return res


@metric("per_person", version="2", description="Subtask success per instructing person; worst person and gap")
def per_person(c: Corpus, config: ScoreConfig) -> Result:
    return _groups(c.out_person, c, config, "per_person")


@metric("per_environment", version="2", description="Subtask success per environment; worst environment and gap")
def per_environment(c: Corpus, config: ScoreConfig) -> Result:
    env = np.array(c.table.heads["environment"], dtype=object)
    return _groups(env[c.out_sess] if c.out_sess.size else env[:0], c, config, "per_environment")

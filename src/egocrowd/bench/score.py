"""Scoring: logs or imported trials → one versioned scores document (JSON-ready dict).

I/O stays at the edge: :func:`score_logs` streams files into digests, everything after works on
digests. The document records the metric names and versions, the config (seed, rounds, confidence)
and its own ``format_version`` so a report can be re-rendered or compared later.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from egocrowd.bench import stats as st
from egocrowd.bench.digest import (
    SessionDigest,
    SessionTable,
    as_table,
    build_corpus,
    check_inputs,
    fewer_collections,
    log_tables,
)
from egocrowd.bench.metrics import METRICS, ScoreConfig, compute_metrics
from egocrowd.bench.ranking import Battle, rank_battles
from egocrowd.bench.sequential import sequential_test
from egocrowd.clock import utcnow
from egocrowd.errors import InvalidInput

SCORES_FORMAT = "egocrowd.bench.scores"
SCORES_FORMAT_VERSION = 1
MAX_COMPARED_POLICIES = 12  # all-pairs comparisons grow quadratically; rank beyond this


def _version() -> str:
    try:
        return version("egocrowd")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "unknown"


def _table_of_file(path: str, strict: bool) -> SessionTable:
    with fewer_collections():
        return SessionTable.concat(list(log_tables(path, strict=strict)))


def read_sessions(
    paths: Iterable[str | os.PathLike[str]],
    *,
    on_progress: Callable[[int], None] | None = None,
    strict: bool = True,
    jobs: int = 1,
) -> SessionTable:
    """Stream every log file to one table of digests (JSONL, JSONL.gz or Parquet), in input order.

    ``jobs > 1`` digests several files at once in worker processes (runs often write one file per
    episode); progress is then reported per finished file.
    """
    paths = [str(p) for p in paths]
    tables: list[SessionTable] = []
    if jobs <= 1 or len(paths) < 2:
        with fewer_collections():
            for p in paths:
                tables.extend(log_tables(p, strict=strict, on_progress=on_progress))
        return SessionTable.concat(tables)
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths))) as pool:
        chunks = max(1, len(paths) // (8 * jobs))
        for p, table in zip(paths, pool.map(_table_of_file, paths, itertools.repeat(strict), chunksize=chunks)):
            tables.append(table)
            if on_progress is not None:
                on_progress(os.path.getsize(p))
    return SessionTable.concat(tables)


def read_digests(
    paths: Iterable[str | os.PathLike[str]],
    *,
    on_progress: Callable[[int], None] | None = None,
    strict: bool = True,
    jobs: int = 1,
) -> list[SessionDigest]:
    """:func:`read_sessions`, one :class:`SessionDigest` per session."""
    return list(read_sessions(paths, on_progress=on_progress, strict=strict, jobs=jobs))


def by_policy(digests: Iterable[SessionDigest]) -> dict[str, SessionTable]:
    t = as_table(digests)
    rows: dict[str, list[int]] = defaultdict(list)
    for i, policy in enumerate(t.heads["policy"]):
        rows[policy].append(i)
    return {policy: t.take(np.array(rows[policy], dtype=np.int64)) for policy in sorted(rows)}


def _pair_means(digests: Iterable[SessionDigest]) -> dict[str, dict[str, float]]:
    """policy -> pair_key -> mean subtask success over that policy's sessions with that key (pair
    keys in the order first seen; sessions without a key or without outcomes left out)."""
    t = as_table(digests)
    wins = np.bincount(t.items["out_sess"], weights=t.items["out_success"], minlength=len(t))
    outcomes = np.bincount(t.items["out_sess"], minlength=len(t))
    used = [i for i, key in enumerate(t.heads["pair_key"]) if key is not None and outcomes[i] > 0]
    if not used:
        return {}
    keys = [t.heads["pair_key"][i] for i in used]
    pols = [t.heads["policy"][i] for i in used]
    key_names = list(dict.fromkeys(keys))  # first seen first
    pol_names = list(dict.fromkeys(pols))
    key_at = {k: j for j, k in enumerate(key_names)}
    pol_at = {p: j for j, p in enumerate(pol_names)}
    cell = np.fromiter((key_at[k] * len(pol_names) + pol_at[p] for k, p in zip(keys, pols)), np.int64, len(used))
    size = len(key_names) * len(pol_names)
    k = np.bincount(cell, weights=wins[used], minlength=size)  # added in session order, as before
    n = np.bincount(cell, weights=outcomes[used], minlength=size)
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for c in np.flatnonzero(n).tolist():  # key by key (first seen), then policy
        out[pol_names[c % len(pol_names)]][key_names[c // len(pol_names)]] = float(k[c] / n[c])
    return out


def compare(
    digests: Iterable[SessionDigest],
    a: str,
    b: str,
    config: ScoreConfig = ScoreConfig(),
    *,
    alpha: float = 0.05,
    means: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """Paired comparison of policies ``a`` and ``b`` over the pair keys both ran.

    Unit = pair key (same protocol and seed, or same task for CSV); value = mean subtask success
    of the policy's sessions with that key; d = a − b. Sign-flip permutation p-value, bootstrap CI of
    mean d, and the anytime-valid sequential test over the pairs in the order they were first seen.
    ``means``: :func:`_pair_means` of the same digests, when the caller compares many pairs.
    """
    means = _pair_means(digests) if means is None else means
    ma, mb = means.get(a, {}), means.get(b, {})
    keys = [k for k in ma if k in mb]
    if len(keys) < 2:
        raise InvalidInput(
            f"policies {a!r} and {b!r} share {len(keys)} pair key(s); a paired comparison needs >= 2 "
            "(run both on the same protocol seeds, or give CSV rows a 'pair' column)",
            code="bench.too_few_pairs",
        )
    xa = np.array([ma[k] for k in keys])
    xb = np.array([mb[k] for k in keys])
    res = st.paired_test(xa - xb, seed=config.seed, confidence=config.confidence, boot_rounds=config.rounds)
    seq = sequential_test(zip(xa, xb), alpha=alpha, stop=False)
    seq.pop("trajectory")
    return {
        "a": a,
        "b": b,
        "metric": "subtask_success",
        **res,
        "mean_a": float(xa.mean()),
        "mean_b": float(xb.mean()),
        "sequential": seq,
    }


def battles_from_digests(
    digests: Iterable[SessionDigest], means: dict[str, dict[str, float]] | None = None
) -> list[Battle]:
    """One battle per pair key and pair of policies that both ran it: the higher mean success wins."""
    means = _pair_means(digests) if means is None else means
    keys: dict[str, dict[str, float]] = defaultdict(dict)
    for pol, per_key in means.items():
        for key, v in per_key.items():
            keys[key][pol] = v
    battles = []
    for key in keys:
        for pa, pb in itertools.combinations(sorted(keys[key]), 2):
            va, vb = keys[key][pa], keys[key][pb]
            battles.append(Battle(pa, pb, "a" if va > vb else "b" if vb > va else "tie"))
    return battles


def score_digests(
    digests: Iterable[SessionDigest],
    config: ScoreConfig = ScoreConfig(),
    *,
    metrics: list[str] | None = None,
    battles: Sequence[Battle] | None = None,
    inputs: Sequence[str] = (),
    comparisons: bool = True,
    ranking: bool = True,
) -> dict[str, Any]:
    """Score every policy found, compare them pairwise and rank them (see module docstring).

    ``comparisons=False`` leaves out the paired comparisons, ``ranking=False`` the ranking (its
    1000-round Bradley–Terry bootstrap): scoring alone, e.g. to measure it against other tools."""
    digests = as_table(digests)
    if not len(digests) and not battles:
        raise InvalidInput("nothing to score: no sessions and no battles", code="bench.empty")
    check_inputs(digests, battles or ())
    groups = by_policy(digests)
    names = metrics or METRICS.names()
    doc: dict[str, Any] = {
        "format": SCORES_FORMAT,
        "format_version": SCORES_FORMAT_VERSION,
        "egocrowd_version": _version(),
        "created_at": utcnow().isoformat(timespec="seconds"),
        "inputs": list(inputs),
        "config": config.to_dict(),
        "metrics": {n: METRICS.get(n).version for n in names if n in METRICS},
        "policies": {},
        "comparisons": [],
        "ranking": None,
    }
    # the bootstraps are many products of a (rounds × sessions) matrix with a few columns: bound by
    # memory, no faster on several BLAS threads, whose busy waiting then takes a core from the rest
    with threadpool_limits(limits=1, user_api="blas"):
        doc["policies"] = {pol: compute_metrics(build_corpus(ds), config, names) for pol, ds in groups.items()}
    means = _pair_means(digests) if len(groups) >= 2 and (comparisons or (ranking and not battles)) else {}
    if comparisons and 2 <= len(groups) <= MAX_COMPARED_POLICIES:
        for a, b in itertools.combinations(groups, 2):
            try:
                doc["comparisons"].append(compare(digests, a, b, config, means=means))
            except InvalidInput as exc:
                if exc.code != "bench.too_few_pairs":
                    raise
    if not ranking:
        ranked: list[Battle] = []
    else:
        ranked = list(battles) if battles else battles_from_digests(digests, means) if len(groups) >= 2 else []
    if ranked:
        doc["ranking"] = rank_battles(ranked, rounds=config.rounds, seed=config.seed, confidence=config.confidence)
        doc["ranking"]["source"] = "pairwise table" if battles else "paired sessions (higher success wins)"
    return doc


def score_logs(
    paths: Sequence[str | os.PathLike[str]],
    config: ScoreConfig = ScoreConfig(),
    *,
    metrics: list[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    strict: bool = True,
) -> dict[str, Any]:
    digests = read_sessions(paths, on_progress=on_progress, strict=strict)
    return score_digests(digests, config, metrics=metrics, inputs=[str(p) for p in paths])

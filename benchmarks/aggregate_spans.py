#!/usr/bin/env python
"""Span aggregation on a simulated crowd: what the span work costs next to the label model, and what
the label model gains over majority vote.

    .venv/bin/python benchmarks/aggregate_spans.py [--clips 10000] [--annotators 3] [--spans 8]
                                                   [--terms 4] [--rounds 3] [--seed 0] [--quick]

1. ``egocrowd.labels.simulate``: ``--clips`` clips with about ``--spans`` true action spans each
   (``--terms`` verbs x ``--terms`` nouns: 16 labels by default), ``--annotators`` annotators per
   clip out of a crowd of 10 (3 bad ones right 35-45 % of the time, one who labels "open door" as
   "press button" 40 % of the time), boundary noise, missed and invented spans.
2. Alternately, ``--rounds`` times: (a) crowd-kit's DawidSkene fit alone on the matched label table
   (task = cluster, worker, label), and (b) everything in ``aggregate_spans`` except that fit:
   canonical order, matching by temporal IoU, median boundaries, Krippendorff's alpha and mean IoU
   per clip and for the campaign, building the consensus spans. Medians compared. Both are timed
   in CPU seconds of this process (``time.process_time``): both run on one thread, and the
   machines we measure on are shared, where wall time measures the neighbours.
   Target ``span_matching_vs_label_model``: (a) / (b) >= 1 (the span work costs no more than the
   label model).
3. Accuracy on the true spans (a true span counts as right when a consensus span overlaps it with
   IoU >= 0.5 and has its label; a missed span counts as wrong) for ``aggregate_spans`` and
   ``majority_vote_spans``. Target ``accuracy_gain_over_majority_vote``: the difference in
   percentage points >= 0.
``--quick``: 1,000 clips, for a smoke test. Numbers are measured side by side in one run on this
machine; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
from _common import target  # benchmarks/_common.py: the one format of target lines

from egocrowd.labels import aggregate as agg
from egocrowd.labels.aggregate import aggregate_spans, compare, majority_vote_spans, systematic_confusions
from egocrowd.labels.simulate import NOUNS, VERBS, label_accuracy, simulate_crowd


def label_model_alone(table) -> float:
    """(a): crowd-kit's Dawid–Skene on the label table, exactly as aggregate_spans configures it."""
    from crowdkit.aggregation import DawidSkene

    t0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crowd-kit 1.4 on pandas 3 (inplace=)
        DawidSkene(n_iter=agg.DS_ITERATIONS, tol=agg.DS_TOLERANCE).fit(table)
    return time.process_time() - t0


def span_work(answers, submitted, labels: dict[int, str], posterior: dict[int, float]) -> float:
    """(b): aggregate_spans without the label model (the same steps, the fitted labels given)."""
    t0 = time.process_time()
    matching = agg.match_campaign(answers, 0.3, submitted)
    fused = agg._fused(matching)
    agg.label_table(answers, matching)
    agg.agreement(matching)
    clips = np.array(list(matching.clip_annotators), dtype=np.int64)
    k_clip = np.array([len(w) for w in matching.clip_annotators.values()], dtype=np.float64)
    k = k_clip[np.searchsorted(clips, matching.cluster_clip)]
    post = np.array([posterior[c] for c in range(len(k))], dtype=np.float64)
    agg._consensus(matching, fused, labels, post * np.minimum(1.0, matching.size / k), None)
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=10_000)
    ap.add_argument("--annotators", type=int, default=3, help="annotators per clip (k)")
    ap.add_argument("--spans", type=int, default=8, help="true spans per clip (Poisson mean)")
    ap.add_argument("--terms", type=int, default=4, help="verbs and nouns in the taxonomy: terms x terms labels (<= 8)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="1,000 clips")
    args = ap.parse_args()
    if args.quick:
        args.clips = 1_000

    t0 = time.perf_counter()
    taxonomy = sorted(f"{v} {n}" for v in VERBS[: args.terms] for n in NOUNS[: args.terms])
    crowd = simulate_crowd(
        args.clips, per_clip=args.annotators, spans_per_clip=args.spans, labels=taxonomy, seed=args.seed
    )
    print(
        f"simulated {args.clips:,} clips x {args.annotators} annotators: {len(crowd.answers):,} answer spans, "
        f"{len(crowd.truth):,} true spans, {len(crowd.labels)} labels ({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )

    matching = agg.match_campaign(crowd.answers, 0.3, crowd.submitted)
    table = agg.label_table(crowd.answers, matching)
    labels, posterior, _ = agg.fit_labels(table)  # also imports crowd-kit before anything is timed
    print(f"label table: {len(table):,} rows, {len(matching.member_starts):,} clusters", flush=True)

    times: dict[str, list[float]] = {"label_model": [], "span_work": []}
    for r in range(args.rounds):
        times["label_model"].append(label_model_alone(table))
        times["span_work"].append(span_work(crowd.answers, crowd.submitted, labels, posterior))
        print(
            f"  round {r + 1}/{args.rounds}: "
            + ", ".join(f"{name} {v[-1] * 1000:.0f} ms CPU" for name, v in times.items()),
            flush=True,
        )
    med = {name: statistics.median(v) for name, v in times.items()}

    t0, c0 = time.perf_counter(), time.process_time()
    result = aggregate_spans(crowd.answers, submitted=crowd.submitted)
    whole, whole_cpu = time.perf_counter() - t0, time.process_time() - c0
    baseline = majority_vote_spans(crowd.answers)
    ours, theirs = label_accuracy(result.spans, crowd.truth), label_accuracy(baseline, crowd.truth)
    flagged = systematic_confusions(compare(crowd.answers, result.spans), min_count=5)
    print(
        f"aggregate_spans: {whole_cpu:.2f} CPU s ({whole:.2f} s wall) for {len(crowd.answers):,} spans "
        f"({len(crowd.answers) / whole_cpu:,.0f} spans per CPU second); medians: label model "
        f"{med['label_model'] * 1000:.0f} ms, span work {med['span_work'] * 1000:.0f} ms (CPU)"
    )
    print(f"agreement: alpha {result.alpha}, mean IoU {result.mean_iou}; {len(result.spans):,} consensus spans")
    print(f"label accuracy on the true spans: Dawid-Skene {ours:.4f}, majority vote {theirs:.4f}")
    print(
        "flagged confusions (against the consensus): "
        + (", ".join(f"annotator {f.annotator}: {f.expected} -> {f.given} {f.rate:.0%}" for f in flagged) or "none")
        + f"; planted: {', '.join(f'annotator {a}: {e} -> {g}' for a, e, g in crowd.planted)}"
    )
    ok = target("span_matching_vs_label_model", med["label_model"] / med["span_work"], 1.0)
    ok &= target("accuracy_gain_over_majority_vote", (ours - theirs) * 100, 0.0)  # percentage points
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""The pure core of span aggregation (docs/aggregation.md): k annotators' temporal action spans on
each clip in, consensus spans with a confidence, agreement and each annotator's skill out.

1. Matching (``match_spans``): on one clip, spans of different annotators whose temporal IoU
   reaches the threshold are joined, best pair first, never two spans of one annotator in a cluster.
2. Boundaries: the median of the members' starts and of their ends.
3. Label: Dawid–Skene (crowd-kit) over the table cluster × annotator → "verb noun", fitted on the
   whole campaign at once so that it learns each annotator's confusions; gold spans pin the true
   label of the clusters they match.
4. Confidence: the label's posterior times the share of the clip's annotators who marked the span.
5. Agreement: Krippendorff's alpha (nominal) over cluster × annotator, a missed span counting as the
   value "none", and the mean temporal IoU of matched pairs; per clip and for the campaign.

Everything here takes tables and touches no database. The result never depends on the order of
the rows: answers are put in a canonical order first. pandas, crowd-kit and krippendorff are
imported inside the functions that need them: the web server and the worker import this room at
start-up and must not pay for them.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from egocrowd.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

METHOD_NAME = "span-iou-dawid-skene"
METHOD_VERSION = 1
NONE = "none"  # the value of an annotator who marked nothing where others did (labels contain a space)
DS_ITERATIONS = 100
DS_TOLERANCE = 1e-5


@dataclass(frozen=True)
class SpanAnswer:
    """One annotator's span on one clip (also a gold or reference span: ``annotator`` is then who made it)."""

    clip: int
    annotator: int
    start_ms: int
    end_ms: int
    verb: str
    noun: str

    @property
    def label(self) -> str:
        return f"{self.verb} {self.noun}"


@dataclass(frozen=True)
class ConsensusSpan:
    clip: int
    start_ms: int
    end_ms: int
    verb: str
    noun: str
    confidence: float  # 0..1: the label's posterior times the share of the clip's annotators who marked it
    support: int  # annotators who marked a span here
    members: tuple[int, ...]  # indices into the answers given to aggregate_spans

    @property
    def label(self) -> str:
        return f"{self.verb} {self.noun}"


@dataclass(frozen=True)
class ClipAgreement:
    clip: int
    alpha: float | None  # None: fewer than two annotators, nothing to compare
    mean_iou: float | None  # None: no two annotators' spans matched
    annotators: int


@dataclass
class Aggregation:
    spans: list[ConsensusSpan]  # sorted by (clip, start_ms, end_ms, label)
    clips: dict[int, ClipAgreement]
    alpha: float | None  # over all clips
    mean_iou: float | None
    skills: dict[int, float]  # annotator -> estimated accuracy from the label model
    method: dict[str, Any] = field(default_factory=dict)  # name, version, parameters: stored with every result


@dataclass(frozen=True)
class Comparison:
    """One answer span judged against a reference (gold, consensus or a reviewer's fix).

    ``answer`` None and ``given`` None: the annotator missed a reference span; ``expected`` None: the
    annotator marked a span the reference does not have."""

    clip: int
    annotator: int
    answer: int | None
    expected: str | None
    given: str | None
    iou: float


@dataclass(frozen=True)
class Confusion:
    annotator: int | None  # None: campaign-wide
    expected: str
    given: str
    count: int
    total: int  # the annotator's matched spans whose expected label is ``expected``
    rate: float


@dataclass(frozen=True)
class Reliability:
    annotator: int
    gold_accuracy: float | None
    gold_spans: int
    agreement: float | None
    consensus_spans: int
    score: float | None
    mistakes: list[str]  # plain-English explanations, worst first


# --- checks and canonical order -------------------------------------------------------------------


def _check(answers: Sequence[SpanAnswer]) -> None:
    for a in answers:
        if a.start_ms < 0 or a.end_ms <= a.start_ms:
            raise InvalidInput(
                f"A span must start at 0 ms or later and end after it starts (clip {a.clip}: "
                f"{a.start_ms}–{a.end_ms} ms).",
                code="input.out_of_range",
            )
        if not a.verb or not a.noun or " " in a.verb or " " in a.noun:
            raise InvalidInput(
                f"A span's verb and noun are single terms without spaces (clip {a.clip}: {a.verb!r} {a.noun!r}).",
                code="input.out_of_range",
            )


def _canonical(answers: Sequence[SpanAnswer]) -> list[int]:
    """Indices of ``answers`` in the one order every computation uses, whatever order they came in."""
    return sorted(
        range(len(answers)),
        key=lambda i: (
            answers[i].clip,
            answers[i].start_ms,
            answers[i].end_ms,
            answers[i].annotator,
            answers[i].verb,
            answers[i].noun,
        ),
    )


# --- matching ---------------------------------------------------------------------------------------


def temporal_iou(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    """Intersection over union of two time intervals (0.0 when either is empty or they do not meet)."""
    inter = min(a_end, b_end) - max(a_start, b_start)
    if inter <= 0:
        return 0.0
    union = max(a_end, b_end) - min(a_start, b_start)
    return float(inter / union) if union > 0 else 0.0


def _iou_matrix(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    inter = np.minimum(ends[:, None], ends[None, :]) - np.maximum(starts[:, None], starts[None, :])
    union = np.maximum(ends[:, None], ends[None, :]) - np.minimum(starts[:, None], starts[None, :])
    return np.where(inter > 0, inter / np.maximum(union, 1), 0.0)


def _cluster(starts: np.ndarray, ends: np.ndarray, annotators: np.ndarray, threshold: float) -> list[list[int]]:
    """Clusters of positions (spans sorted canonically): pairs of different annotators joined best IoU
    first (ties: earlier spans first), never two spans of one annotator in a cluster."""
    n = len(starts)
    if n == 0:
        return []
    iou = _iou_matrix(starts.astype(np.float64), ends.astype(np.float64))
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    ok = upper & (iou >= threshold) & (annotators[:, None] != annotators[None, :])
    ii, jj = np.nonzero(ok)
    parent = list(range(n))
    members: list[set[int]] = [{int(a)} for a in annotators]  # annotators in each root's cluster
    if len(ii):
        order = np.lexsort((jj, ii, -iou[ii, jj]))
        for k in order:
            a, b = int(ii[k]), int(jj[k])
            ra, rb = a, b
            while parent[ra] != ra:
                ra = parent[ra]
            while parent[rb] != rb:
                rb = parent[rb]
            if ra == rb or members[ra] & members[rb]:
                continue
            if rb < ra:
                ra, rb = rb, ra
            parent[rb] = ra
            members[ra] |= members[rb]
    groups: dict[int, list[int]] = {}
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        groups.setdefault(r, []).append(i)
    return [groups[r] for r in sorted(groups)]


def match_spans(answers: Sequence[SpanAnswer], iou_threshold: float = 0.3) -> list[list[int]]:
    """Clusters of indices into ``answers`` (one clip's spans): each cluster holds at most one span per
    annotator, and each of its spans overlaps another member by at least ``iou_threshold``.
    Clusters come in time order, indices in each cluster in time order."""
    _check(answers)
    if len({a.clip for a in answers}) > 1:
        raise InvalidInput("match_spans takes one clip's spans.", code="input.out_of_range")
    order = _canonical(answers)
    starts = np.array([answers[i].start_ms for i in order], dtype=np.int64)
    ends = np.array([answers[i].end_ms for i in order], dtype=np.int64)
    annotators = np.array([answers[i].annotator for i in order], dtype=np.int64)
    return [[order[p] for p in group] for group in _cluster(starts, ends, annotators, iou_threshold)]


@dataclass
class Matching:
    """Every clip's clusters for a whole campaign (positions into ``order``, the canonical order)."""

    order: list[int]  # canonical position -> index into the answers
    clusters: list[list[int]]  # canonical positions; clusters sorted by clip, then time
    cluster_clip: list[int]
    pair_iou: dict[int, list[float]]  # clip -> IoU of every matched pair of spans
    clip_annotators: dict[int, list[int]]  # clip -> its annotators (sorted)


def match_campaign(
    answers: Sequence[SpanAnswer],
    iou_threshold: float = 0.3,
    submitted: Mapping[int, Iterable[int]] | None = None,
) -> Matching:
    """``match_spans`` on every clip of a campaign, in canonical order."""
    _check(answers)
    order = _canonical(answers)
    clips = np.array([answers[i].clip for i in order], dtype=np.int64)
    starts = np.array([answers[i].start_ms for i in order], dtype=np.int64)
    ends = np.array([answers[i].end_ms for i in order], dtype=np.int64)
    annotators = np.array([answers[i].annotator for i in order], dtype=np.int64)
    clip_annotators: dict[int, set[int]] = defaultdict(set)
    for c, a in zip(clips.tolist(), annotators.tolist(), strict=True):
        clip_annotators[c].add(a)
    for c, who in (submitted or {}).items():
        clip_annotators[int(c)].update(int(a) for a in who)
    clusters: list[list[int]] = []
    cluster_clip: list[int] = []
    pair_iou: dict[int, list[float]] = {}
    bounds = np.flatnonzero(np.diff(clips)) + 1 if len(clips) else np.array([], dtype=np.int64)
    for lo, hi in zip(np.r_[0, bounds], np.r_[bounds, len(clips)], strict=True):
        if hi <= lo:
            continue
        clip = int(clips[lo])
        local = _cluster(starts[lo:hi], ends[lo:hi], annotators[lo:hi], iou_threshold)
        ious: list[float] = []
        for group in local:
            clusters.append([lo + p for p in group])
            cluster_clip.append(clip)
            for x in range(len(group)):
                for y in range(x + 1, len(group)):
                    p, q = lo + group[x], lo + group[y]
                    ious.append(temporal_iou(starts[p], ends[p], starts[q], ends[q]))
        pair_iou[clip] = ious
    for clip in clip_annotators:
        pair_iou.setdefault(clip, [])
    return Matching(
        order=order,
        clusters=clusters,
        cluster_clip=cluster_clip,
        pair_iou=pair_iou,
        clip_annotators={c: sorted(a) for c, a in sorted(clip_annotators.items())},
    )


# --- the label model ------------------------------------------------------------------------------


def label_table(answers: Sequence[SpanAnswer], matching: Matching) -> pd.DataFrame:
    """The table Dawid–Skene reads: one row per matched span, task = cluster number (its position in
    ``matching.clusters``), worker = annotator, label = "verb noun"; in canonical order."""
    import pandas as pd  # heavy; only aggregation needs it (start-up time of the server and worker)

    tasks, workers, labels = [], [], []
    for t, group in enumerate(matching.clusters):
        for p in group:
            a = answers[matching.order[p]]
            tasks.append(t)
            workers.append(a.annotator)
            labels.append(a.label)
    return pd.DataFrame({"task": tasks, "worker": workers, "label": labels})


def fit_labels(
    table: pd.DataFrame, true_labels: Mapping[int, str] | None = None
) -> tuple[dict[int, str], dict[int, float], dict[int, float]]:
    """crowd-kit's Dawid–Skene on ``table``: (label per task, its posterior, each worker's estimated
    accuracy: the mean posterior of the labels the worker gave)."""
    if table.empty:
        return {}, {}, {}
    import pandas as pd  # heavy; see label_table
    from crowdkit.aggregation import DawidSkene  # heavy (~1 s); only aggregation needs it

    gold = pd.Series(dict(true_labels), dtype=object) if true_labels else None
    model = DawidSkene(n_iter=DS_ITERATIONS, tol=DS_TOLERANCE)
    with warnings.catch_warnings():
        # crowd-kit 1.4 still passes pandas' deprecated ``inplace=``; the warnings are pandas' to
        # give crowd-kit, not news for whoever aggregates
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        model.fit(table, true_labels=gold)
    probas = model.probas_
    assert probas is not None and model.labels_ is not None
    labels = {int(t): str(v) for t, v in model.labels_.items()}
    posterior = {int(t): float(p) for t, p in probas.max(axis=1).items()}
    matrix = probas.to_numpy()
    columns = {str(c): k for k, c in enumerate(probas.columns)}
    rows = probas.index.get_indexer(table["task"])
    cols = np.array([columns[str(v)] for v in table["label"]])
    given = matrix[rows, cols]
    skill_sum: dict[int, float] = defaultdict(float)
    skill_n: dict[int, int] = defaultdict(int)
    for w, p in zip(table["worker"].tolist(), given.tolist(), strict=True):
        skill_sum[int(w)] += p
        skill_n[int(w)] += 1
    skills = {w: skill_sum[w] / skill_n[w] for w in sorted(skill_sum)}
    return labels, posterior, skills


# --- agreement ------------------------------------------------------------------------------------


def _nominal_alpha(value_counts: np.ndarray) -> float | None:
    """Krippendorff's alpha (nominal) from a units × values count matrix (the same number as
    ``krippendorff.alpha(value_counts=..., level_of_measurement="nominal")``, tested). None when no
    unit has two values; 1.0 when every pairable unit agrees (the package divides 0 by 0 there:
    nothing varies, and nothing disagrees)."""
    m = value_counts.sum(axis=1)
    pairable = value_counts[m >= 2]
    if len(pairable) == 0:
        return None
    mp = pairable.sum(axis=1).astype(np.float64)
    n = float(mp.sum())
    same = float((pairable * (pairable - 1) / (mp - 1)[:, None]).sum())
    if n - same <= 1e-12:
        return 1.0
    n_c = pairable.sum(axis=0).astype(np.float64)
    expected = n * n - float((n_c * n_c).sum())
    return float(1.0 - (n - 1.0) * (n - same) / expected)


def _value_counts(answers: Sequence[SpanAnswer], matching: Matching, clusters: Iterable[int]) -> np.ndarray:
    """Units (clusters) × values (labels, then "none") counts for Krippendorff's alpha: each of the
    clip's annotators gives the cluster their label, or "none" when they have no span in it."""
    rows = list(clusters)
    labels = sorted({answers[matching.order[p]].label for c in rows for p in matching.clusters[c]})
    column = {label: k for k, label in enumerate(labels)}
    counts = np.zeros((len(rows), len(labels) + 1), dtype=np.int64)
    for r, c in enumerate(rows):
        group = matching.clusters[c]
        for p in group:
            counts[r, column[answers[matching.order[p]].label]] += 1
        counts[r, -1] = len(matching.clip_annotators[matching.cluster_clip[c]]) - len(group)
    return counts


def _campaign_alpha(counts: np.ndarray) -> float | None:
    """The campaign's alpha from the krippendorff package (what the issue names), with the same
    edge cases as ``_nominal_alpha``."""
    if len(counts) == 0 or not (counts.sum(axis=1) >= 2).any():
        return None
    ours = _nominal_alpha(counts)
    if ours == 1.0:
        return 1.0
    import krippendorff  # only aggregation needs it

    return float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal"))


# --- the whole campaign ---------------------------------------------------------------------------


def _median_int(values: list[int]) -> int:
    return int(round(float(np.median(values))))


def _split(label: str) -> tuple[str, str]:
    verb, _, noun = label.partition(" ")
    return verb, noun


def _gold_labels(
    gold: Sequence[SpanAnswer], fused: dict[int, tuple[int, int]], matching: Matching, threshold: float
) -> dict[int, str]:
    """Cluster -> the gold label that pins it: each gold span pins the cluster (on its clip) whose fused
    span overlaps it most (IoU >= threshold), one gold span per cluster, best pairs first."""
    by_clip: dict[int, list[int]] = defaultdict(list)
    for c, clip in enumerate(matching.cluster_clip):
        by_clip[clip].append(c)
    gold_sorted = sorted(gold, key=lambda g: (g.clip, g.start_ms, g.end_ms, g.verb, g.noun, g.annotator))
    candidates: list[tuple[float, int, int]] = []
    for gi, g in enumerate(gold_sorted):
        for c in by_clip.get(g.clip, ()):
            s, e = fused[c]
            iou = temporal_iou(g.start_ms, g.end_ms, s, e)
            if iou >= threshold:
                candidates.append((-iou, gi, c))
    pinned: dict[int, str] = {}
    used: set[int] = set()
    for _, gi, c in sorted(candidates):
        if gi in used or c in pinned:
            continue
        used.add(gi)
        pinned[c] = gold_sorted[gi].label
    return pinned


def aggregate_spans(
    answers: Sequence[SpanAnswer],
    *,
    gold: Sequence[SpanAnswer] = (),
    iou_threshold: float = 0.3,
    min_support: int | None = None,
    submitted: Mapping[int, Iterable[int]] | None = None,
) -> Aggregation:
    """Consensus spans for a whole campaign at once (Dawid–Skene learns each annotator's confusions
    from many clips).

    ``gold``: reference spans (clip, start, end, label; ``annotator`` ignored) that pin the true label
    of the clusters they match. ``min_support``: the fewest annotators a consensus span needs (default
    a majority of the clip's annotators). ``submitted``: clip -> every annotator who submitted on it,
    including those who marked nothing (otherwise a clip's annotators are those with a span on it).
    """
    _check(gold)
    matching = match_campaign(answers, iou_threshold, submitted)
    fused: dict[int, tuple[int, int]] = {}
    for c, group in enumerate(matching.clusters):
        members = [answers[matching.order[p]] for p in group]
        start = _median_int([m.start_ms for m in members])
        end = max(_median_int([m.end_ms for m in members]), start + 1)
        fused[c] = (start, end)
    pinned = _gold_labels(gold, fused, matching, iou_threshold)
    labels, posterior, skills = fit_labels(label_table(answers, matching), pinned)

    spans: list[ConsensusSpan] = []
    for c, group in enumerate(matching.clusters):
        clip = matching.cluster_clip[c]
        k = len(matching.clip_annotators[clip])
        needed = min_support if min_support is not None else k // 2 + 1
        if len(group) < needed:
            continue
        verb, noun = _split(labels[c])
        start, end = fused[c]
        spans.append(
            ConsensusSpan(
                clip=clip,
                start_ms=start,
                end_ms=end,
                verb=verb,
                noun=noun,
                confidence=round(posterior[c] * min(1.0, len(group) / k), 6),
                support=len(group),
                members=tuple(sorted(matching.order[p] for p in group)),
            )
        )
    spans.sort(key=lambda s: (s.clip, s.start_ms, s.end_ms, s.label, s.members))

    by_clip: dict[int, list[int]] = defaultdict(list)
    for c, clip in enumerate(matching.cluster_clip):
        by_clip[clip].append(c)
    clips: dict[int, ClipAgreement] = {}
    all_ious: list[float] = []
    for clip, who in matching.clip_annotators.items():
        ious = matching.pair_iou.get(clip, [])
        all_ious.extend(ious)
        counts = _value_counts(answers, matching, by_clip.get(clip, []))
        clips[clip] = ClipAgreement(
            clip=clip,
            alpha=_round(_nominal_alpha(counts)) if len(counts) else None,
            mean_iou=_round(float(np.mean(ious))) if ious else None,
            annotators=len(who),
        )
    campaign_counts = _value_counts(answers, matching, range(len(matching.clusters)))
    return Aggregation(
        spans=spans,
        clips=clips,
        alpha=_round(_campaign_alpha(campaign_counts)),
        mean_iou=_round(float(np.mean(all_ious))) if all_ious else None,
        skills={w: round(s, 6) for w, s in skills.items()},
        method=_method(iou_threshold, min_support, gold=len(gold)),
    )


def _round(x: float | None) -> float | None:
    # Sums in a different order differ in the last bits; six digits keep results equal and readable.
    return None if x is None else round(x, 6)


def _method(iou_threshold: float, min_support: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "name": METHOD_NAME,
        "version": METHOD_VERSION,
        "parameters": {
            "iou_threshold": iou_threshold,
            "min_support": min_support if min_support is not None else "majority",
            "boundaries": "median",
            "label_model": f"crowdkit.DawidSkene(n_iter={DS_ITERATIONS}, tol={DS_TOLERANCE})",
            **extra,
        },
    }


def majority_vote_spans(answers: Sequence[SpanAnswer], iou_threshold: float = 0.3) -> list[ConsensusSpan]:
    """The baseline: the same matching and boundaries, the most frequent label of each cluster (ties:
    alphabetical), kept when a majority of the clip's annotators marked it; confidence = the label's
    share of the clip's annotators."""
    matching = match_campaign(answers, iou_threshold)
    spans: list[ConsensusSpan] = []
    for c, group in enumerate(matching.clusters):
        clip = matching.cluster_clip[c]
        k = len(matching.clip_annotators[clip])
        if len(group) < k // 2 + 1:
            continue
        members = [answers[matching.order[p]] for p in group]
        votes: dict[str, int] = defaultdict(int)
        for m in members:
            votes[m.label] += 1
        label = min(votes, key=lambda v: (-votes[v], v))
        verb, noun = _split(label)
        start = _median_int([m.start_ms for m in members])
        end = max(_median_int([m.end_ms for m in members]), start + 1)
        spans.append(
            ConsensusSpan(
                clip=clip,
                start_ms=start,
                end_ms=end,
                verb=verb,
                noun=noun,
                confidence=round(votes[label] / k, 6),
                support=len(group),
                members=tuple(sorted(matching.order[p] for p in group)),
            )
        )
    spans.sort(key=lambda s: (s.clip, s.start_ms, s.end_ms, s.label, s.members))
    return spans


# --- audits: comparisons, confusions, reliability ---------------------------------------------------


def _reference_key(r: SpanAnswer | ConsensusSpan) -> tuple[int, int, int, str]:
    return (r.clip, r.start_ms, r.end_ms, r.label)


def compare(
    answers: Sequence[SpanAnswer],
    reference: Sequence[SpanAnswer] | Sequence[ConsensusSpan],
    iou_threshold: float = 0.3,
) -> list[Comparison]:
    """Each annotator's spans against the reference spans of the clips they worked on: on each clip,
    one-to-one pairs by best temporal IoU (>= threshold); a reference span left over is a miss, an
    answer left over a span the reference does not have. Sorted by (clip, annotator, answer...)."""
    _check(answers)
    refs: dict[int, list[SpanAnswer | ConsensusSpan]] = defaultdict(list)
    for r in reference:
        refs[r.clip].append(r)
    mine: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i in _canonical(answers):
        mine[(answers[i].clip, answers[i].annotator)].append(i)
    out: list[Comparison] = []
    for (clip, annotator), idx in sorted(mine.items()):
        ref = sorted(refs.get(clip, []), key=_reference_key)
        pairs: list[tuple[float, int, int]] = []
        for x, i in enumerate(idx):
            a = answers[i]
            for y, r in enumerate(ref):
                iou = temporal_iou(a.start_ms, a.end_ms, r.start_ms, r.end_ms)
                if iou >= iou_threshold:
                    pairs.append((-iou, x, y))
        pairs.sort()
        got: dict[int, tuple[int, float]] = {}
        taken: set[int] = set()
        for neg, x, y in pairs:
            if x in got or y in taken:
                continue
            got[x] = (y, -neg)
            taken.add(y)
        for x, i in enumerate(idx):
            if x in got:
                y, iou = got[x]
                out.append(Comparison(clip, annotator, i, ref[y].label, answers[i].label, round(iou, 6)))
            else:
                out.append(Comparison(clip, annotator, i, None, answers[i].label, 0.0))
        for y, r in enumerate(ref):
            if y not in taken:
                out.append(Comparison(clip, annotator, None, r.label, None, 0.0))
    return out


def confusion_matrix(comparisons: Iterable[Comparison], annotator: int | None = None) -> tuple[list[str], np.ndarray]:
    """Rows: the expected label, columns: the given label; "none" (last, when present) stands for a
    missed span (column) or a span the reference does not have (row). ``annotator``: one annotator's
    comparisons only."""
    rows = [c for c in comparisons if annotator is None or c.annotator == annotator]
    labels = sorted({v for c in rows for v in (c.expected, c.given) if v is not None})
    if any(c.expected is None or c.given is None for c in rows):
        labels.append(NONE)
    index = {label: k for k, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for c in rows:
        matrix[index[c.expected or NONE], index[c.given or NONE]] += 1
    return labels, matrix


def systematic_confusions(
    comparisons: Iterable[Comparison],
    *,
    min_rate: float = 0.2,
    min_count: int = 3,
    per_annotator: bool = True,
    max_p: float = 0.01,
) -> list[Confusion]:
    """Label swaps that are a habit, not an accident: "open door" given as "press button" in at least
    ``min_rate`` of the matched spans whose expected label is "open door", at least ``min_count``
    times, and more often than chance: an annotator who errs at random spreads their errors over
    every other label, so the count must be unlikely (binomial tail below ``max_p``, Bonferroni over
    every swap seen) if the errors were spread evenly. Per annotator, or campaign-wide (``annotator``
    None) when ``per_annotator`` is False. Worst first (rate, then count)."""
    totals: dict[tuple[int | None, str], int] = defaultdict(int)
    swaps: dict[tuple[int | None, str, str], int] = defaultdict(int)
    matched: dict[int | None, int] = defaultdict(int)
    wrong: dict[int | None, int] = defaultdict(int)
    labels: set[str] = set()
    for c in comparisons:
        if c.expected is None or c.given is None:
            continue
        who = c.annotator if per_annotator else None
        labels.update((c.expected, c.given))
        totals[(who, c.expected)] += 1
        matched[who] += 1
        if c.given != c.expected:
            swaps[(who, c.expected, c.given)] += 1
            wrong[who] += 1
    alternatives = max(1, len(labels) - 1)
    tests = max(1, len(swaps))
    found = []
    for (who, expected, given), count in swaps.items():
        total = totals[(who, expected)]
        if count < min_count or count / total < min_rate:
            continue
        chance = wrong[who] / matched[who] / alternatives  # one swap's rate if errors were spread evenly
        if _binomial_tail(count, total, chance) * tests > max_p:
            continue
        found.append(Confusion(who, expected, given, count, total, round(count / total, 6)))
    found.sort(key=lambda f: (-1 if f.annotator is None else f.annotator, -f.rate, -f.count, f.expected, f.given))
    return found


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed in log space (no scipy at import time)."""
    if p <= 0.0:
        return 0.0 if k > 0 else 1.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k, n + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


GOLD_WEIGHT = 2  # a gold span counts as much as two consensus spans: it is the truth, not a vote


def _accuracy(rows: list[Comparison]) -> float | None:
    return sum(1 for c in rows if c.expected is not None and c.expected == c.given) / len(rows) if rows else None


def _explain(rows: list[Comparison], against: str) -> list[str]:
    """Plain-English mistakes from one annotator's comparisons against gold or the consensus."""
    out: list[tuple[int, str]] = []
    matched = [c for c in rows if c.expected is not None and c.given is not None]
    by_expected: dict[str, int] = defaultdict(int)
    swaps: dict[tuple[str, str], int] = defaultdict(int)
    for c in matched:
        by_expected[c.expected] += 1  # type: ignore[index]
        if c.expected != c.given:
            swaps[(c.expected, c.given)] += 1  # type: ignore[index]
    for (expected, given), n in swaps.items():
        out.append((n, f'You labelled "{expected}" as "{given}" {n} of {by_expected[expected]} times ({against}).'))
    missed = sum(1 for c in rows if c.given is None)
    if missed:
        total = sum(1 for c in rows if c.expected is not None)
        out.append((missed, f"You missed {missed} of {total} actions that {against} marks."))
    extra = sum(1 for c in rows if c.expected is None)
    if extra:
        out.append((extra, f"You marked {extra} actions that {against} does not have."))
    loose = [c.iou for c in matched if c.iou < 0.5]
    if matched and len(loose) * 4 >= len(matched):
        out.append(
            (
                len(loose),
                f"Your start and end times are loose: {len(loose)} of {len(matched)} spans overlap "
                f"{against} by less than half.",
            )
        )
    out.sort(key=lambda t: (-t[0], t[1]))
    return [text for _, text in out]


def reliability(
    answers: Sequence[SpanAnswer],
    *,
    gold: Sequence[SpanAnswer] = (),
    consensus: Sequence[ConsensusSpan] | Sequence[SpanAnswer] = (),
    iou_threshold: float = 0.3,
) -> dict[int, Reliability]:
    """Each annotator's accuracy against gold (on gold clips) and agreement with the consensus (on the
    other clips), both as the share of comparisons where the labels match (a miss or an extra span
    counts as wrong); the score weighs a gold span as ``GOLD_WEIGHT`` consensus spans."""
    gold_clips = {g.clip for g in gold}
    on_gold = [a for a in answers if a.clip in gold_clips]
    off_gold = [a for a in answers if a.clip not in gold_clips]
    vs_gold = compare(on_gold, gold, iou_threshold) if gold else []
    vs_consensus = compare(off_gold, [c for c in consensus if c.clip not in gold_clips], iou_threshold)
    per_gold: dict[int, list[Comparison]] = defaultdict(list)
    per_cons: dict[int, list[Comparison]] = defaultdict(list)
    for c in vs_gold:
        per_gold[c.annotator].append(c)
    for c in vs_consensus:
        per_cons[c.annotator].append(c)
    out: dict[int, Reliability] = {}
    for annotator in sorted({a.annotator for a in answers}):
        g, k = per_gold.get(annotator, []), per_cons.get(annotator, [])
        ga, ca = _accuracy(g), _accuracy(k)
        weight = GOLD_WEIGHT * len(g) + len(k)
        score = None
        if weight:
            score = round((GOLD_WEIGHT * len(g) * (ga or 0.0) + len(k) * (ca or 0.0)) / weight, 6)
        out[annotator] = Reliability(
            annotator=annotator,
            gold_accuracy=_round(ga),
            gold_spans=sum(1 for c in g if c.expected is not None),
            agreement=_round(ca),
            consensus_spans=sum(1 for c in k if c.expected is not None),
            score=score,
            mistakes=_explain(g, "the reference") + _explain(k, "the consensus"),
        )
    return out

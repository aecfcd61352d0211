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


def _refuse(a: SpanAnswer) -> InvalidInput:
    if a.start_ms < 0 or a.end_ms <= a.start_ms:
        return InvalidInput(
            f"A span must start at 0 ms or later and end after it starts (clip {a.clip}: {a.start_ms}–{a.end_ms} ms).",
            code="input.out_of_range",
        )
    return InvalidInput(
        f"A span's verb and noun are single terms without spaces (clip {a.clip}: {a.verb!r} {a.noun!r}).",
        code="input.out_of_range",
    )


def _bad_term(term: str) -> bool:
    return not term or " " in term


def _check(answers: Sequence[SpanAnswer]) -> None:
    for a in answers:
        if a.start_ms < 0 or a.end_ms <= a.start_ms or _bad_term(a.verb) or _bad_term(a.noun):
            raise _refuse(a)


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


def _iou(s1: np.ndarray, e1: np.ndarray, s2: np.ndarray, e2: np.ndarray) -> np.ndarray:
    inter = np.minimum(e1, e2) - np.maximum(s1, s2)
    union = np.maximum(e1, e2) - np.minimum(s1, s2)
    return np.where(inter > 0, inter / np.maximum(union, 1), 0.0)


def _group_starts(keys: np.ndarray) -> np.ndarray:
    """Where each run of equal values begins in a sorted array."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


@dataclass
class Matching:
    """Every clip's clusters for a whole campaign. Arrays are in canonical order (clip, start, end,
    annotator, verb, noun): ``order[p]`` is the index into the answers of canonical position p."""

    order: np.ndarray
    clip: np.ndarray
    start: np.ndarray
    end: np.ndarray
    annotator: np.ndarray
    label_code: np.ndarray  # index into ``labels``
    labels: list[str]  # sorted
    cluster: np.ndarray  # position -> its cluster; clusters are numbered by clip, then time
    cluster_clip: np.ndarray  # cluster -> its clip
    members: np.ndarray  # positions grouped by cluster (ascending within a cluster)
    member_starts: np.ndarray  # where each cluster's run begins in ``members``
    clip_annotators: dict[int, list[int]]  # clip -> its annotators (with ``submitted``), sorted
    pair_clip: np.ndarray  # every pair of spans in one cluster: its clip and IoU (mean IoU)
    pair_iou: np.ndarray

    @property
    def size(self) -> np.ndarray:
        return np.diff(np.r_[self.member_starts, len(self.members)])

    @property
    def clusters(self) -> list[list[int]]:
        """Canonical positions of each cluster."""
        flat = self.members.tolist()
        bounds = [*self.member_starts.tolist(), len(flat)]
        return [flat[bounds[c] : bounds[c + 1]] for c in range(len(bounds) - 1)]


def match_campaign(
    answers: Sequence[SpanAnswer],
    iou_threshold: float = 0.3,
    submitted: Mapping[int, Iterable[int]] | None = None,
) -> Matching:
    """Clusters on every clip of a campaign: pairs of spans of one clip by different annotators with
    temporal IoU >= ``iou_threshold`` are joined best pair first (ties: earlier spans first), unless
    the two clusters already share an annotator. Vectorised except the joining itself."""
    if not 0.0 < iou_threshold <= 1.0:
        raise InvalidInput("The IoU threshold is between 0 (excluded) and 1.", code="input.out_of_range")
    n = len(answers)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Matching(
            order=empty,
            clip=empty,
            start=empty,
            end=empty,
            annotator=empty,
            label_code=empty,
            labels=[],
            cluster=empty,
            cluster_clip=empty,
            members=empty,
            member_starts=empty,
            clip_annotators={int(c): sorted({int(w) for w in who}) for c, who in sorted((submitted or {}).items())},
            pair_clip=empty,
            pair_iou=np.zeros(0),
        )
    clip = np.fromiter((a.clip for a in answers), dtype=np.int64, count=n)
    start = np.fromiter((a.start_ms for a in answers), dtype=np.int64, count=n)
    end = np.fromiter((a.end_ms for a in answers), dtype=np.int64, count=n)
    annotator = np.fromiter((a.annotator for a in answers), dtype=np.int64, count=n)
    # terms -> codes in string order by a dict (numpy sorts strings in object arrays slowly)
    verbs = sorted({a.verb for a in answers})
    nouns = sorted({a.noun for a in answers})
    verb_index = {t: k for k, t in enumerate(verbs)}
    noun_index = {t: k for k, t in enumerate(nouns)}
    verb_code = np.fromiter((verb_index[a.verb] for a in answers), dtype=np.int64, count=n)
    noun_code = np.fromiter((noun_index[a.noun] for a in answers), dtype=np.int64, count=n)
    bad = (start < 0) | (end <= start)
    bad_terms = {k for k, t in enumerate(verbs) if _bad_term(t)}, {k for k, t in enumerate(nouns) if _bad_term(t)}
    if bad.any() or bad_terms[0] or bad_terms[1]:
        bad |= np.isin(verb_code, list(bad_terms[0])) | np.isin(noun_code, list(bad_terms[1]))
        raise _refuse(answers[int(np.flatnonzero(bad)[0])])
    order = np.lexsort((noun_code, verb_code, annotator, end, start, clip))
    clip, start, end, annotator = clip[order], start[order], end[order], annotator[order]
    # labels sort as "verb noun" strings do, because verbs hold no spaces
    pair_code = verb_code[order] * max(1, len(nouns)) + noun_code[order]
    used, label_code = np.unique(pair_code, return_inverse=True)
    labels = [f"{verbs[c // max(1, len(nouns))]} {nouns[c % max(1, len(nouns))]}" for c in used.tolist()]

    # Candidate pairs: a span meets only the spans after it (in start order) that start before it
    # ends, so look ahead one step at a time until no span meets the next one any more.
    left, right = [], []
    active = np.arange(max(0, n - 1))
    step = 1
    while active.size:
        ahead = active + step
        ok = ahead < n
        active, ahead = active[ok], ahead[ok]
        ok = (clip[ahead] == clip[active]) & (start[ahead] < end[active])
        active, ahead = active[ok], ahead[ok]
        differ = annotator[ahead] != annotator[active]
        left.append(active[differ])
        right.append(ahead[differ])
        step += 1
    i = np.concatenate(left) if left else np.zeros(0, dtype=np.int64)
    j = np.concatenate(right) if right else np.zeros(0, dtype=np.int64)
    iou = _iou(start[i], end[i], start[j], end[j])
    keep = iou >= iou_threshold
    i, j, iou = i[keep], j[keep], iou[keep]
    best_first = np.lexsort((j, i, -iou))

    # Each annotator of a clip gets one bit, so "do these clusters share an annotator" is one AND.
    by_who = np.lexsort((annotator, clip))
    who_new = np.r_[True, (clip[by_who][1:] != clip[by_who][:-1]) | (annotator[by_who][1:] != annotator[by_who][:-1])]
    clip_new = np.r_[True, clip[by_who][1:] != clip[by_who][:-1]]
    rank = np.cumsum(who_new) - 1
    first = np.maximum.accumulate(np.where(clip_new, rank, 0))
    bit = np.empty(n, dtype=np.int64)
    bit[by_who] = rank - first
    parent = list(range(n))
    mask = [1 << b for b in bit.tolist()]
    for a, b in zip(i[best_first].tolist(), j[best_first].tolist(), strict=True):
        while parent[a] != a:
            a = parent[a]
        while parent[b] != b:
            b = parent[b]
        if a == b or mask[a] & mask[b]:
            continue
        if b < a:
            a, b = b, a
        parent[b] = a  # the root is always the cluster's first position
        mask[a] |= mask[b]
    root = np.array(parent, dtype=np.int64)
    while not np.array_equal(root[root], root):
        root = root[root]
    roots, cluster = np.unique(root, return_inverse=True)
    cluster = cluster.reshape(-1).astype(np.int64)
    members = np.lexsort((np.arange(n), cluster))
    member_starts = _group_starts(cluster[members])

    # every pair of spans in one cluster, for the mean IoU
    pa, pb = [], []
    sorted_cluster = cluster[members]
    for d in range(1, int(np.diff(np.r_[member_starts, n]).max(initial=1))):
        same = sorted_cluster[d:] == sorted_cluster[:-d]
        pa.append(members[:-d][same])
        pb.append(members[d:][same])
    p = np.concatenate(pa) if pa else np.zeros(0, dtype=np.int64)
    q = np.concatenate(pb) if pb else np.zeros(0, dtype=np.int64)

    clip_annotators: dict[int, set[int]] = defaultdict(set)
    for c, w in zip(clip[by_who][who_new].tolist(), annotator[by_who][who_new].tolist(), strict=True):
        clip_annotators[c].add(w)
    for c, who in (submitted or {}).items():
        clip_annotators[int(c)].update(int(w) for w in who)
    return Matching(
        order=order,
        clip=clip,
        start=start,
        end=end,
        annotator=annotator,
        label_code=label_code.reshape(-1).astype(np.int64),
        labels=labels,
        cluster=cluster,
        cluster_clip=clip[roots],
        members=members,
        member_starts=member_starts,
        clip_annotators={c: sorted(w) for c, w in sorted(clip_annotators.items())},
        pair_clip=clip[p],
        pair_iou=_iou(start[p], end[p], start[q], end[q]),
    )


def match_spans(answers: Sequence[SpanAnswer], iou_threshold: float = 0.3) -> list[list[int]]:
    """Clusters of indices into ``answers`` (one clip's spans): each cluster holds at most one span per
    annotator, and each of its spans overlaps another member by at least ``iou_threshold``.
    Clusters come in time order, indices in each cluster in time order."""
    if len({a.clip for a in answers}) > 1:
        raise InvalidInput("match_spans takes one clip's spans.", code="input.out_of_range")
    m = match_campaign(answers, iou_threshold)
    order = m.order.tolist()
    return [[order[p] for p in group] for group in m.clusters]


# --- the label model ------------------------------------------------------------------------------


def label_table(answers: Sequence[SpanAnswer], matching: Matching) -> pd.DataFrame:
    """The table Dawid–Skene reads: one row per span, task = cluster number, worker = annotator,
    label = "verb noun"; grouped by cluster, in canonical order."""
    import pandas as pd  # heavy; only aggregation needs it (start-up time of the server and worker)

    m = matching.members
    labels = np.array(matching.labels, dtype=object)
    return pd.DataFrame(
        {"task": matching.cluster[m], "worker": matching.annotator[m], "label": labels[matching.label_code[m]]}
    )


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
    labels = dict(zip(model.labels_.index.tolist(), map(str, model.labels_.tolist()), strict=True))
    posterior = dict(zip(probas.index.tolist(), probas.max(axis=1).tolist(), strict=True))
    matrix = probas.to_numpy(dtype=np.float64)
    rows = probas.index.get_indexer(pd.Index(table["task"]))
    cols = pd.Index([str(c) for c in probas.columns]).get_indexer(pd.Index(table["label"].astype(str)))
    given = pd.Series(matrix[rows, cols]).groupby(table["worker"].to_numpy()).mean()
    skills = {int(w): float(s) for w, s in zip(given.index.tolist(), given.tolist(), strict=True)}
    return labels, posterior, skills


# --- agreement ------------------------------------------------------------------------------------


# The krippendorff package builds a units x values x values array; above this many cells the same
# number comes from our sums (equal to the package's, tested) in a fraction of the time and memory.
PACKAGE_ALPHA_MAX_CELLS = 2_000_000


@dataclass
class CampaignAgreement:
    clip_alpha: dict[int, float | None]
    clip_iou: dict[int, float | None]
    alpha: float | None
    mean_iou: float | None


def agreement(matching: Matching) -> CampaignAgreement:
    """Krippendorff's alpha (nominal) per clip and for the campaign over the table cluster × the
    clip's annotators (a missed span is the value "none"), and the mean IoU of every pair of spans
    in a cluster. Per clip by sums over the coincidences (one pass for all clips, equal to the
    krippendorff package, tested); the campaign's value from the package itself."""
    clips = np.array(list(matching.clip_annotators), dtype=np.int64)
    k_clip = np.array([len(w) for w in matching.clip_annotators.values()], dtype=np.int64)
    n_clusters = len(matching.member_starts)
    n_values = len(matching.labels) + 1  # the last value is "none"
    clip_of_cluster = np.searchsorted(clips, matching.cluster_clip)
    k = k_clip[clip_of_cluster].astype(np.float64)  # every annotator of the clip rates every cluster
    size = matching.size
    key = matching.cluster * n_values + matching.label_code
    cell, count = np.unique(key, return_counts=True)
    cell_cluster, cell_value = cell // n_values, cell % n_values
    # add "none" cells: the clip's annotators with no span in the cluster
    none = k - size
    cell_cluster = np.r_[cell_cluster, np.arange(n_clusters)]
    cell_value = np.r_[cell_value, np.full(n_clusters, n_values - 1)]
    count = np.r_[count, none].astype(np.float64)
    pairable_cell = k[cell_cluster] >= 2
    cell_cluster, cell_value, count = cell_cluster[pairable_cell], cell_value[pairable_cell], count[pairable_cell]
    cell_clip = clip_of_cluster[cell_cluster]
    same = count * (count - 1) / (k[cell_cluster] - 1)
    pairable = k >= 2
    n_by_clip = np.bincount(clip_of_cluster[pairable], weights=k[pairable], minlength=len(clips))
    same_by_clip = np.bincount(cell_clip, weights=same, minlength=len(clips))
    value_key = cell_clip * n_values + cell_value
    vk, vinv = np.unique(value_key, return_inverse=True)
    n_c = np.bincount(vinv.reshape(-1), weights=count)
    sq_by_clip = np.bincount(vk // n_values, weights=n_c * n_c, minlength=len(clips))
    clip_alpha: dict[int, float | None] = {}
    for c, n, s, sq in zip(clips.tolist(), n_by_clip.tolist(), same_by_clip.tolist(), sq_by_clip.tolist(), strict=True):
        if n < 2:
            clip_alpha[c] = None
        elif n - s <= 1e-9:
            clip_alpha[c] = 1.0
        else:
            clip_alpha[c] = _round(1.0 - (n - 1.0) * (n - s) / (n * n - sq))

    pair_index = np.searchsorted(clips, matching.pair_clip)
    iou_sum = np.bincount(pair_index, weights=matching.pair_iou, minlength=len(clips))
    iou_n = np.bincount(pair_index, minlength=len(clips))
    clip_iou = {
        c: (_round(s / m) if m else None)
        for c, s, m in zip(clips.tolist(), iou_sum.tolist(), iou_n.tolist(), strict=True)
    }

    alpha: float | None = None
    n_all = float(n_by_clip.sum())
    if n_all >= 2:
        s_all = float(same_by_clip.sum())
        if n_all - s_all <= 1e-9:
            alpha = 1.0
        elif n_clusters * n_values * n_values <= PACKAGE_ALPHA_MAX_CELLS:
            import krippendorff  # only aggregation needs it

            counts = np.zeros((n_clusters, n_values))
            np.add.at(counts, (cell_cluster, cell_value), count)
            alpha = _round(float(krippendorff.alpha(value_counts=counts, level_of_measurement="nominal")))
        else:
            totals = np.bincount(cell_value, weights=count, minlength=n_values)
            alpha = _round(1.0 - (n_all - 1.0) * (n_all - s_all) / (n_all * n_all - float((totals * totals).sum())))
    mean_iou = _round(float(matching.pair_iou.mean())) if len(matching.pair_iou) else None
    return CampaignAgreement(clip_alpha, clip_iou, alpha, mean_iou)


# --- the whole campaign ---------------------------------------------------------------------------


def _fused(matching: Matching) -> tuple[np.ndarray, np.ndarray]:
    """Each cluster's start and end: the medians of its members' (rounded to the millisecond, half to
    even), the end at least 1 ms after the start."""
    out = []
    bounds = np.r_[matching.member_starts, len(matching.members)]
    lo, hi = bounds[:-1], bounds[1:] - 1
    for values in (matching.start, matching.end):
        ranked = np.lexsort((values, matching.cluster))
        v = values[ranked].astype(np.float64)
        out.append(np.rint((v[lo + (hi - lo) // 2] + v[hi - (hi - lo) // 2]) / 2).astype(np.int64))
    start, end = out
    return start, np.maximum(end, start + 1)


def _split(label: str) -> tuple[str, str]:
    verb, _, noun = label.partition(" ")
    return verb, noun


def _gold_labels(
    gold: Sequence[SpanAnswer], fused: tuple[np.ndarray, np.ndarray], matching: Matching, threshold: float
) -> dict[int, str]:
    """Cluster -> the gold label that pins it: each gold span pins the cluster (on its clip) whose fused
    span overlaps it most (IoU >= threshold), one gold span per cluster, best pairs first."""
    gold_sorted = sorted(gold, key=lambda g: (g.clip, g.start_ms, g.end_ms, g.verb, g.noun, g.annotator))
    candidates: list[tuple[float, int, int]] = []
    for gi, g in enumerate(gold_sorted):
        lo, hi = np.searchsorted(matching.cluster_clip, [g.clip, g.clip + 1])
        for c in range(int(lo), int(hi)):
            iou = temporal_iou(g.start_ms, g.end_ms, int(fused[0][c]), int(fused[1][c]))
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


def _consensus(
    matching: Matching,
    fused: tuple[np.ndarray, np.ndarray],
    labels: Mapping[int, str],
    confidence: np.ndarray,
    min_support: int | None,
) -> list[ConsensusSpan]:
    clips = np.array(list(matching.clip_annotators), dtype=np.int64)
    k_clip = np.array([len(w) for w in matching.clip_annotators.values()], dtype=np.int64)
    k = k_clip[np.searchsorted(clips, matching.cluster_clip)]
    size = matching.size
    needed = np.full(len(size), min_support) if min_support is not None else k // 2 + 1
    originals = matching.order[matching.members].tolist()
    bounds = [*matching.member_starts.tolist(), len(originals)]
    starts, ends, cluster_clip = fused[0].tolist(), fused[1].tolist(), matching.cluster_clip.tolist()
    conf = np.round(confidence, 6).tolist()
    spans = []
    for c in np.flatnonzero(size >= needed).tolist():
        verb, noun = _split(labels[c])
        spans.append(
            ConsensusSpan(
                clip=cluster_clip[c],
                start_ms=starts[c],
                end_ms=ends[c],
                verb=verb,
                noun=noun,
                confidence=conf[c],
                support=bounds[c + 1] - bounds[c],
                members=tuple(sorted(originals[bounds[c] : bounds[c + 1]])),
            )
        )
    spans.sort(key=lambda s: (s.clip, s.start_ms, s.end_ms, s.label, s.members))
    return spans


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
    if min_support is not None and min_support < 1:
        raise InvalidInput("min_support is at least 1 annotator.", code="input.out_of_range")
    matching = match_campaign(answers, iou_threshold, submitted)
    fused = _fused(matching)
    pinned = _gold_labels(gold, fused, matching, iou_threshold)
    labels, posterior, skills = fit_labels(label_table(answers, matching), pinned)
    agreed = agreement(matching)
    clips = np.array(list(matching.clip_annotators), dtype=np.int64)
    k_clip = np.array([len(w) for w in matching.clip_annotators.values()], dtype=np.float64)
    k = k_clip[np.searchsorted(clips, matching.cluster_clip)]
    post = np.array([posterior[c] for c in range(len(k))], dtype=np.float64)
    confidence = post * np.minimum(1.0, matching.size / k)
    return Aggregation(
        spans=_consensus(matching, fused, labels, confidence, min_support),
        clips={
            c: ClipAgreement(c, agreed.clip_alpha[c], agreed.clip_iou[c], len(who))
            for c, who in matching.clip_annotators.items()
        },
        alpha=agreed.alpha,
        mean_iou=agreed.mean_iou,
        skills={w: round(s, 6) for w, s in sorted(skills.items())},
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
    n_values = max(1, len(matching.labels))
    cell, count = np.unique(matching.cluster * n_values + matching.label_code, return_counts=True)
    best = np.lexsort((cell % n_values, -count, cell // n_values))
    first = best[_group_starts((cell // n_values)[best])]
    labels = {
        int(c): matching.labels[int(v)] for c, v in zip(cell[first] // n_values, cell[first] % n_values, strict=True)
    }
    clips = np.array(list(matching.clip_annotators), dtype=np.int64)
    k_clip = np.array([len(w) for w in matching.clip_annotators.values()], dtype=np.float64)
    k = k_clip[np.searchsorted(clips, matching.cluster_clip)]
    return _consensus(matching, _fused(matching), labels, count[first] / k, None)


# --- audits: comparisons, confusions, reliability ---------------------------------------------------


def _reference_key(r: SpanAnswer | ConsensusSpan) -> tuple[int, int, int, str]:
    return (r.clip, r.start_ms, r.end_ms, r.label)


def compare(
    answers: Sequence[SpanAnswer],
    reference: Sequence[SpanAnswer | ConsensusSpan],
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
        out.append((n, f'You labelled "{expected}" as "{given}" in {n} of {by_expected[expected]} cases ({against}).'))
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
    consensus: Sequence[ConsensusSpan | SpanAnswer] = (),
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

"""Synthetic crowds for the tests and the benchmark (docs/aggregation.md): clips with true action
spans, annotators of known accuracy with boundary noise, missed and invented spans, and planted
systematic confusions ("open door" labelled "press button" 40 % of the time). Deterministic for a
seed; pure (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from egocrowd.labels.aggregate import SpanAnswer

VERBS = ("open", "close", "press", "pick", "place", "pour", "cut", "wipe")
NOUNS = ("door", "button", "cup", "drawer", "knife", "bottle", "sponge", "lid")
# A campaign's closed taxonomy is small; 4 x 4 labels by default (docs/aggregation.md: with 64 labels
# and a few hundred answers per annotator, full confusion matrices are too sparse to beat majority vote).
DEFAULT_LABELS = tuple(sorted(f"{v} {n}" for v in VERBS[:4] for n in NOUNS[:4]))


@dataclass(frozen=True)
class SimAnnotator:
    id: int
    accuracy: float  # chance of the true label (when no planted confusion fires)
    boundary_noise_ms: float = 300.0  # standard deviation of start and end errors
    miss_rate: float = 0.05  # chance of not marking a true span
    extra_rate: float = 0.02  # chance per true span of also marking an action that is not there
    confusions: tuple[tuple[str, str, float], ...] = ()  # (true label, given label, rate)


@dataclass
class Crowd:
    answers: list[SpanAnswer]
    truth: list[SpanAnswer]  # every clip's true spans (annotator 0)
    annotators: list[SimAnnotator]
    labels: list[str]
    clip_ms: dict[int, int]
    submitted: dict[int, list[int]]  # clip -> the annotators who worked on it
    planted: list[tuple[int, str, str]] = field(default_factory=list)  # (annotator, true, given)

    def gold(self, clips: int) -> list[SpanAnswer]:
        """The true spans of the first ``clips`` clips, as reviewer-made gold."""
        chosen = sorted(self.clip_ms)[:clips]
        keep = set(chosen)
        return [t for t in self.truth if t.clip in keep]


def default_annotators(count: int = 10, bad: int = 3, seed: int = 0) -> list[SimAnnotator]:
    """``count`` annotators: ``bad`` of them right only 35–45 % of the time, the rest 85–95 %;
    annotator 1 says "press button" for 40 % of "open door"."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, count + 1):
        is_bad = i > count - bad
        accuracy = float(rng.uniform(0.35, 0.45) if is_bad else rng.uniform(0.85, 0.95))
        confusions: tuple[tuple[str, str, float], ...] = ()
        if i == 1:
            confusions = (("open door", "press button", 0.4),)
        out.append(SimAnnotator(id=i, accuracy=accuracy, confusions=confusions))
    return out


def simulate_crowd(
    clips: int = 200,
    *,
    annotators: list[SimAnnotator] | None = None,
    per_clip: int = 3,
    spans_per_clip: int = 8,
    labels: list[str] | None = None,
    seed: int = 0,
    first_clip: int = 1,
) -> Crowd:
    """A campaign of ``clips`` clips, each with about ``spans_per_clip`` true spans (2–8 s, apart) and
    ``per_clip`` annotators drawn from ``annotators``. Labels are drawn with a skew (some actions are
    common) so that a confusion between two common ones shows up."""
    rng = np.random.default_rng(seed)
    crowd = annotators if annotators is not None else default_annotators(seed=seed)
    if per_clip > len(crowd):
        raise ValueError("per_clip exceeds the number of annotators")
    taxonomy = list(labels or DEFAULT_LABELS)
    for must in ("open door", "press button"):
        if must not in taxonomy:
            taxonomy.append(must)
    weights = 1.0 / np.arange(1, len(taxonomy) + 1) ** 0.7
    common = [taxonomy.index("open door"), taxonomy.index("press button")]
    order = [*common, *(k for k in range(len(taxonomy)) if k not in common)]
    probs = np.empty(len(taxonomy))
    probs[order] = weights / weights.sum()

    truth: list[SpanAnswer] = []
    answers: list[SpanAnswer] = []
    clip_ms: dict[int, int] = {}
    submitted: dict[int, list[int]] = {}
    for clip in range(first_clip, first_clip + clips):
        n = max(1, int(rng.poisson(spans_per_clip)))
        lengths = rng.integers(2000, 8000, size=n)
        gaps = rng.integers(500, 3000, size=n)
        t = int(rng.integers(0, 2000))
        true_spans = []
        for length, gap in zip(lengths.tolist(), gaps.tolist(), strict=True):
            label = taxonomy[int(rng.choice(len(taxonomy), p=probs))]
            verb, noun = label.split(" ")
            true_spans.append(SpanAnswer(clip, 0, t, t + length, verb, noun))
            t += length + gap
        clip_ms[clip] = t
        truth.extend(true_spans)
        who = sorted(int(x) for x in rng.choice(len(crowd), size=per_clip, replace=False))
        submitted[clip] = [crowd[w].id for w in who]
        for w in who:
            ann = crowd[w]
            for span in true_spans:
                if rng.random() < ann.miss_rate:
                    continue
                given = _answer_label(rng, ann, span.label, taxonomy)
                answers.append(_noisy(rng, ann, clip, span.start_ms, span.end_ms, given, t))
                if rng.random() < ann.extra_rate:
                    start = int(rng.integers(0, max(1, t - 2000)))
                    other = taxonomy[int(rng.integers(len(taxonomy)))]
                    answers.append(_noisy(rng, ann, clip, start, start + 2000, other, t))
    planted = [(a.id, true, given) for a in crowd for true, given, _ in a.confusions]
    return Crowd(answers, truth, crowd, taxonomy, clip_ms, submitted, planted)


def _answer_label(rng: np.random.Generator, ann: SimAnnotator, true: str, taxonomy: list[str]) -> str:
    for expected, given, rate in ann.confusions:
        if expected == true and rng.random() < rate:
            return given
    if rng.random() < ann.accuracy:
        return true
    others = [x for x in taxonomy if x != true]
    return others[int(rng.integers(len(others)))]


def _noisy(
    rng: np.random.Generator, ann: SimAnnotator, clip: int, start: int, end: int, label: str, clip_end: int
) -> SpanAnswer:
    s = int(round(start + rng.normal(0, ann.boundary_noise_ms)))
    e = int(round(end + rng.normal(0, ann.boundary_noise_ms)))
    s = min(max(0, s), clip_end - 1)
    e = max(s + 100, min(e, clip_end))
    verb, noun = label.split(" ")
    return SpanAnswer(clip, ann.id, s, e, verb, noun)


def label_accuracy(spans, truth: list[SpanAnswer], iou_threshold: float = 0.5) -> float:
    """Share of true spans that a consensus span matches (IoU >= threshold) with the right label: a
    missed span counts as wrong, so dropping doubtful spans does not raise the score."""
    from egocrowd.labels.aggregate import temporal_iou

    by_clip: dict[int, list] = {}
    for s in spans:
        by_clip.setdefault(s.clip, []).append(s)
    right = 0
    for t in truth:
        best, best_iou = None, iou_threshold
        for s in by_clip.get(t.clip, ()):
            iou = temporal_iou(t.start_ms, t.end_ms, s.start_ms, s.end_ms)
            if iou >= best_iou:
                best, best_iou = s, iou
        if best is not None and best.label == t.label:
            right += 1
    return right / len(truth) if truth else 0.0

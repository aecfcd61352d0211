"""The pure aggregation core (egocrowd.labels.aggregate): matching, fusion, the label model against
crowd-kit itself, agreement against the krippendorff package, row-order independence, edge cases,
comparisons, confusions and reliability."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from egocrowd.errors import InvalidInput
from egocrowd.labels.aggregate import (
    ClipAgreement,
    ConsensusSpan,
    SpanAnswer,
    aggregate_spans,
    compare,
    confusion_matrix,
    fit_labels,
    label_table,
    majority_vote_spans,
    match_campaign,
    match_spans,
    reliability,
    systematic_confusions,
    temporal_iou,
)
from egocrowd.labels.simulate import simulate_crowd


def span(clip, annotator, start, end, label="open door"):
    verb, noun = label.split(" ")
    return SpanAnswer(clip, annotator, start, end, verb, noun)


@pytest.fixture(scope="module")
def crowd():
    return simulate_crowd(120, seed=3)


@pytest.fixture(scope="module")
def aggregated(crowd):
    return aggregate_spans(crowd.answers, submitted=crowd.submitted)


def test_temporal_iou():
    assert temporal_iou(0, 10, 0, 10) == 1.0
    assert temporal_iou(0, 10, 5, 15) == pytest.approx(5 / 15)
    assert temporal_iou(0, 10, 10, 20) == 0.0
    assert temporal_iou(0, 10, 20, 30) == 0.0
    assert temporal_iou(5, 5, 0, 10) == 0.0


def test_match_spans_pairs_each_annotator_once_and_keeps_apart_what_does_not_overlap():
    answers = [
        span(1, 1, 0, 1000),
        span(1, 2, 100, 1100),
        span(1, 3, 50, 950),
        span(1, 1, 5000, 6000),
        span(1, 2, 5100, 6100),
        span(1, 3, 9000, 9500),  # nobody else saw it
    ]
    assert match_spans(answers) == [[0, 2, 1], [3, 4], [5]]


def test_overlapping_spans_of_one_annotator_never_share_a_cluster():
    answers = [span(1, 1, 0, 1000), span(1, 1, 100, 1000), span(1, 2, 0, 1000)]
    clusters = match_spans(answers)
    for group in clusters:
        assert len({answers[i].annotator for i in group}) == len(group)
    assert sorted(i for g in clusters for i in g) == [0, 1, 2]
    # the exact copy of annotator 2's span wins over the one that starts later
    assert [0, 2] in clusters


def test_chains_below_the_threshold_do_not_pull_in_a_second_span_of_an_annotator():
    # 1 and 2 overlap, 2 and 3 overlap; annotator 1 has a second span that also overlaps 3
    answers = [span(1, 1, 0, 1000), span(1, 2, 400, 1400), span(1, 3, 800, 1800), span(1, 1, 1000, 2000)]
    for group in match_spans(answers):
        assert len({answers[i].annotator for i in group}) == len(group)


def test_match_spans_takes_one_clip():
    with pytest.raises(InvalidInput):
        match_spans([span(1, 1, 0, 10), span(2, 1, 0, 10)])


@pytest.mark.parametrize("start,end", [(100, 100), (200, 100), (-5, 100)])
def test_empty_or_negative_spans_are_refused(start, end):
    with pytest.raises(InvalidInput) as e:
        aggregate_spans([span(1, 1, start, end)])
    assert e.value.code == "input.out_of_range"


def test_no_answers():
    result = aggregate_spans([])
    assert result.spans == [] and result.clips == {} and result.alpha is None and result.mean_iou is None
    assert result.skills == {}
    assert result.method["name"] == "span-iou-dawid-skene"


def test_one_annotator_gets_their_own_spans_and_no_agreement():
    answers = [span(7, 1, 0, 1000), span(7, 1, 2000, 3000, "press button")]
    result = aggregate_spans(answers)
    assert [(s.start_ms, s.end_ms, s.label, s.support) for s in result.spans] == [
        (0, 1000, "open door", 1),
        (2000, 3000, "press button", 1),
    ]
    assert result.clips[7].alpha is None and result.clips[7].mean_iou is None and result.clips[7].annotators == 1
    assert result.alpha is None


def test_an_annotator_who_saw_nothing_lowers_agreement_and_support():
    answers = [span(1, 1, 0, 1000), span(1, 2, 0, 1000)]
    both = aggregate_spans(answers)
    assert both.clips[1].alpha == 1.0
    assert both.spans[0].confidence == pytest.approx(1.0, abs=1e-6)
    three = aggregate_spans(answers, submitted={1: [1, 2, 3]})
    assert three.clips[1].annotators == 3
    assert three.clips[1].alpha is not None and three.clips[1].alpha < 1.0
    assert three.spans[0].support == 2
    assert three.spans[0].confidence == pytest.approx(2 / 3, abs=1e-6)


def test_boundaries_are_the_median_and_minority_spans_are_dropped():
    answers = [span(1, 1, 0, 1000), span(1, 2, 100, 1200), span(1, 3, 5000, 90000), span(1, 3, 40, 900)]
    result = aggregate_spans(answers)
    assert [(s.start_ms, s.end_ms, s.support) for s in result.spans] == [(40, 1000, 3)]
    assert sorted(result.spans[0].members) == [0, 1, 3]
    assert len(aggregate_spans(answers, min_support=1).spans) == 2


def test_the_label_part_is_crowd_kits_dawid_skene_on_the_same_table(crowd, aggregated):
    from crowdkit.aggregation import DawidSkene

    matching = match_campaign(crowd.answers, 0.3, crowd.submitted)
    table = label_table(crowd.answers, matching)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crowd-kit 1.4 on pandas 3 (inplace=)
        expected = DawidSkene(n_iter=100, tol=1e-5).fit_predict(table)
    by_members = {tuple(sorted(matching.order[p] for p in group)): t for t, group in enumerate(matching.clusters)}
    assert aggregated.spans
    for s in aggregated.spans:
        assert s.label == expected[by_members[s.members]]
    labels, _, _ = fit_labels(table)
    assert labels == {int(t): v for t, v in expected.items()}


def test_gold_pins_the_clusters_it_matches():
    # Annotators 1 and 2 agree on a wrong label; gold says otherwise and wins.
    answers = [span(1, 1, 0, 1000, "press button"), span(1, 2, 0, 1000, "press button"), span(1, 3, 0, 1000)]
    answers += [span(2, 1, 0, 1000, "press button"), span(2, 2, 0, 1000, "press button"), span(2, 3, 0, 1000)]
    gold = [span(1, 99, 50, 950, "open door")]
    result = aggregate_spans(answers, gold=gold)
    first = next(s for s in result.spans if s.clip == 1)
    assert first.label == "open door" and first.confidence == pytest.approx(1.0, abs=1e-6)
    assert result.method["parameters"]["gold"] == 1
    # a gold label no annotator used is still taken
    other = aggregate_spans(answers, gold=[span(2, 99, 0, 1000, "cut lid")])
    assert next(s for s in other.spans if s.clip == 2).label == "cut lid"


def _reliability_data(answers, matching, clusters):
    """The cluster x annotator table written out by hand: the clip's annotators who have no span in a
    cluster give it "none", annotators of other clips nan."""
    annotators = sorted({a.annotator for a in answers})
    values = sorted({a.label for a in answers}) + ["none"]
    data = np.full((len(annotators), len(clusters)), np.nan)
    for column, t in enumerate(clusters):
        for who in matching.clip_annotators[int(matching.cluster_clip[t])]:
            data[annotators.index(who), column] = values.index("none")
        for p in matching.clusters[t]:
            a = answers[matching.order[p]]
            data[annotators.index(a.annotator), column] = values.index(a.label)
    return data


def test_alpha_is_the_krippendorff_packages_alpha_per_clip_and_for_the_campaign(crowd, aggregated):
    import krippendorff

    matching = match_campaign(crowd.answers, 0.3, crowd.submitted)
    everything = range(len(matching.clusters))
    expected = krippendorff.alpha(
        reliability_data=_reliability_data(crowd.answers, matching, everything), level_of_measurement="nominal"
    )
    assert aggregated.alpha == pytest.approx(expected, abs=1e-6)
    assert 0 < aggregated.alpha < 1
    assert 0.5 < aggregated.mean_iou < 1
    compared = 0
    for clip in sorted(crowd.submitted)[:40]:
        data = _reliability_data(crowd.answers, matching, [t for t in everything if matching.cluster_clip[t] == clip])
        if len(np.unique(data[~np.isnan(data)])) < 2:
            assert aggregated.clips[clip].alpha == 1.0
            continue
        per_clip = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert aggregated.clips[clip].alpha == pytest.approx(per_clip, abs=1e-6)
        compared += 1
    assert compared >= 20


def test_a_large_campaign_gets_the_same_alpha_from_our_sums(crowd, aggregated, monkeypatch):
    from egocrowd.labels import aggregate

    monkeypatch.setattr(aggregate, "PACKAGE_ALPHA_MAX_CELLS", 0)
    again = aggregate_spans(crowd.answers, submitted=crowd.submitted)
    assert again.alpha == pytest.approx(aggregated.alpha, abs=2e-6)


def test_mean_iou_is_over_every_pair_in_a_cluster():
    answers = [span(1, 1, 0, 1000), span(1, 2, 0, 500), span(1, 3, 0, 800), span(1, 1, 5000, 6000)]
    result = aggregate_spans(answers, min_support=1)
    assert result.clips[1].mean_iou == pytest.approx((0.5 + 0.8 + 500 / 800) / 3, abs=1e-6)
    assert result.mean_iou == result.clips[1].mean_iou


def test_a_clip_nobody_marked_anything_on_has_no_agreement_to_measure():
    result = aggregate_spans([span(1, 1, 0, 1000), span(1, 2, 0, 1000)], submitted={1: [1, 2], 2: [1, 2]})
    assert result.clips[2] == ClipAgreement(2, None, None, 2)
    assert result.clips[1].alpha == 1.0 and result.alpha == 1.0


def _normalised(result, answers):
    """An Aggregation with members written as the answers themselves, so that two orders of one
    table compare equal."""
    spans = [
        dataclasses.replace(s, members=tuple(sorted(dataclasses.astuple(answers[i]) for i in s.members)))  # type: ignore[arg-type]
        for s in result.spans
    ]
    return dataclasses.replace(result, spans=spans)


ORDER_CROWD = simulate_crowd(15, seed=11)


# no shrinking: each example aggregates a whole crowd, and a failing permutation is printed as is
@settings(max_examples=6, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(
    st.permutations(range(len(ORDER_CROWD.answers))),
    st.permutations(range(len(ORDER_CROWD.gold(3)))),
)
def test_row_order_does_not_matter(order, gold_order):
    answers = ORDER_CROWD.answers
    gold = ORDER_CROWD.gold(3)
    base = aggregate_spans(answers, gold=gold)
    shuffled = [answers[i] for i in order]
    again = aggregate_spans(shuffled, gold=[gold[i] for i in gold_order])
    assert _normalised(again, shuffled) == _normalised(base, answers)
    assert _comparisons(shuffled, base.spans) == _comparisons(answers, base.spans)


def _comparisons(answers, reference):
    return sorted(
        (
            c.clip,
            c.annotator,
            () if c.answer is None else dataclasses.astuple(answers[c.answer]),
            c.expected,
            c.given,
            c.iou,
        )
        for c in compare(answers, reference)
    )


def test_majority_vote_takes_the_most_frequent_label():
    answers = [span(1, 1, 0, 1000), span(1, 2, 0, 1000), span(1, 3, 0, 1000, "press button")]
    (s,) = majority_vote_spans(answers)
    assert s.label == "open door" and s.confidence == pytest.approx(2 / 3, abs=1e-6) and s.support == 3


def test_compare_finds_misses_extras_and_swaps():
    reference = [span(1, 0, 0, 1000), span(1, 0, 2000, 3000, "press button")]
    answers = [span(1, 5, 100, 1000, "press button"), span(1, 5, 8000, 9000)]
    got = compare(answers, reference)
    assert [(c.answer, c.expected, c.given) for c in got] == [
        (0, "open door", "press button"),
        (1, None, "open door"),
        (None, "press button", None),
    ]
    assert got[0].iou == pytest.approx(0.9)
    labels, matrix = confusion_matrix(got)
    assert labels == ["open door", "press button", "none"]
    assert matrix.tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    consensus = [ConsensusSpan(1, 0, 1000, "open", "door", 0.9, 3, (0, 1, 2))]
    assert [c.expected for c in compare(answers, consensus)] == ["open door", None]


def test_systematic_confusions_need_rate_count_and_more_than_chance():
    reference = [span(c, 0, 0, 1000) for c in range(1, 11)] + [span(c, 0, 0, 1000, "pick cup") for c in range(11, 51)]
    answers = [span(c, 5, 0, 1000, "press button" if c <= 4 else "open door") for c in range(1, 11)]
    answers += [span(c, 6, 0, 1000, "press button" if c <= 2 else "open door") for c in range(1, 11)]
    answers += [span(c, who, 0, 1000, "pick cup") for c in range(11, 51) for who in (5, 6)]
    found = systematic_confusions(compare(answers, reference))
    assert [(f.annotator, f.expected, f.given, f.count, f.total, f.rate) for f in found] == [
        (5, "open door", "press button", 4, 10, 0.4)
    ]
    campaign = systematic_confusions(compare(answers, reference), per_annotator=False)
    assert [(f.annotator, f.count, f.total) for f in campaign] == [(None, 6, 20)]


def test_reliability_explains_mistakes():
    gold = [span(1, 0, 0, 1000), span(1, 0, 2000, 3000)]
    answers = [span(1, 5, 0, 1000, "press button"), span(1, 6, 0, 1000), span(1, 6, 2000, 3000)]
    answers += [span(2, 5, 0, 1000), span(2, 6, 0, 1000)]
    consensus = [ConsensusSpan(2, 0, 1000, "open", "door", 1.0, 2, (3, 4))]
    r = reliability(answers, gold=gold, consensus=consensus)
    assert r[6].gold_accuracy == 1.0 and r[6].score == 1.0 and r[6].mistakes == []
    assert r[5].gold_accuracy == 0.0 and r[5].gold_spans == 2 and r[5].agreement == 1.0
    assert r[5].score == pytest.approx(1 / 5)  # two gold comparisons weigh 2 each, one consensus 1
    assert r[5].mistakes == [
        'You labelled "open door" as "press button" 1 of 1 times (the reference).',
        "You missed 1 of 2 actions that the reference marks.",
    ]

"""The proof on synthetic crowds (egocrowd.labels.simulate): the aggregated labels beat majority vote
when a few annotators are bad, the flagged confusions are exactly the planted ones, and skills follow
the annotators' real accuracy."""

from __future__ import annotations

import pytest

from egocrowd.labels.aggregate import aggregate_spans, compare, majority_vote_spans, systematic_confusions
from egocrowd.labels.simulate import default_annotators, label_accuracy, simulate_crowd


@pytest.fixture(scope="module")
def crowd():
    return simulate_crowd(300, seed=1)


@pytest.fixture(scope="module")
def aggregated(crowd):
    return aggregate_spans(crowd.answers, submitted=crowd.submitted)


def test_the_simulation_is_deterministic_and_shaped_as_asked():
    a, b = simulate_crowd(20, seed=5), simulate_crowd(20, seed=5)
    assert a.answers == b.answers and a.truth == b.truth
    assert simulate_crowd(20, seed=6).answers != a.answers
    assert set(a.clip_ms) == set(range(1, 21))
    assert all(len(who) == 3 for who in a.submitted.values())
    assert all(0 <= s.start_ms < s.end_ms <= a.clip_ms[s.clip] for s in a.answers)
    assert a.planted == [(1, "open door", "press button")]


def test_dawid_skene_beats_majority_vote_with_a_few_bad_annotators(crowd, aggregated):
    ours = label_accuracy(aggregated.spans, crowd.truth)
    baseline = label_accuracy(majority_vote_spans(crowd.answers), crowd.truth)
    print(f"label accuracy: Dawid-Skene {ours:.3f}, majority vote {baseline:.3f}")
    assert ours > baseline + 0.02


def test_skills_rank_the_bad_annotators_last(crowd, aggregated):
    bad = {a.id for a in crowd.annotators if a.accuracy < 0.5}
    ranked = sorted(aggregated.skills, key=aggregated.skills.get)
    assert set(ranked[: len(bad)]) == bad
    for a in crowd.annotators:
        assert aggregated.skills[a.id] == pytest.approx(a.accuracy, abs=0.12)


def test_flagged_confusions_are_exactly_the_planted_ones(crowd, aggregated):
    against_consensus = systematic_confusions(compare(crowd.answers, aggregated.spans), min_rate=0.2, min_count=5)
    assert [(f.annotator, f.expected, f.given) for f in against_consensus] == crowd.planted
    against_truth = systematic_confusions(compare(crowd.answers, crowd.truth), min_rate=0.2, min_count=5)
    assert [(f.annotator, f.expected, f.given) for f in against_truth] == crowd.planted
    assert 0.3 <= against_truth[0].rate <= 0.5


def test_a_clean_crowd_flags_nothing():
    crowd = simulate_crowd(150, annotators=[a for a in default_annotators(bad=0) if a.id != 1], seed=2)
    result = aggregate_spans(crowd.answers, submitted=crowd.submitted)
    assert systematic_confusions(compare(crowd.answers, result.spans), min_count=5) == []
    assert result.alpha is not None and result.alpha > 0.6
    with_bad = simulate_crowd(150, seed=2)
    assert aggregate_spans(with_bad.answers, submitted=with_bad.submitted).alpha < result.alpha - 0.1

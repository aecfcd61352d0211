from __future__ import annotations

import math

import choix
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from egocrowd.bench.ranking import Battle, _cells, _win_matrix, fit_bt, rank_battles
from egocrowd.errors import InvalidInput


def _simulate(strengths, n, seed):
    rng = np.random.default_rng(seed)
    k = len(strengths)
    out = []
    for _ in range(n):
        i, j = rng.choice(k, 2, replace=False)
        p = 1 / (1 + 10 ** (-(strengths[i] - strengths[j])))
        out.append(Battle(f"p{i}", f"p{j}", "a" if rng.random() < p else "b"))
    return out


def test_matches_choix_on_tie_free_data():
    battles = _simulate([0, 0.2, 0.5, 0.6], 800, seed=2)
    names, pairs, score_i, n = _cells(battles)
    theta = fit_bt(_win_matrix(len(names), pairs, score_i, n))
    idx = {m: i for i, m in enumerate(names)}
    data = [(idx[b.a], idx[b.b]) if b.winner == "a" else (idx[b.b], idx[b.a]) for b in battles]
    ref = choix.opt_pairwise(len(names), data, alpha=1e-6)
    assert np.allclose(theta, ref - ref.mean(), atol=1e-4)


def test_ties_count_as_half_wins():
    # A beats B once and ties once: 1.5 wins to 0.5, so P(A > B) = 3/4 and r_A − r_B = log10(3)
    res = rank_battles([Battle("A", "B", "a"), Battle("B", "A", "tie")], rounds=0)
    r = {row["policy"]: row["rating"] for row in res["ranking"]}
    assert r["A"] - r["B"] == pytest.approx(400 * math.log10(3), abs=0.01)
    assert (r["A"] + r["B"]) / 2 == pytest.approx(1000)


def test_recovers_true_order_and_reports_ties_honestly():
    strengths = [0.0, 0.01, 0.6]  # p0 and p1 are practically equal
    res = rank_battles(_simulate(strengths, 1500, seed=4), rounds=300, seed=1)
    rows = res["ranking"]
    assert rows[0]["policy"] == "p2" and rows[0]["rank"] == 1 and rows[0]["tied_with_next"] is False
    assert rows[1]["tied_with_next"] is True and rows[1]["rank"] == rows[2]["rank"] == 2
    for row in rows:
        assert row["low"] <= row["rating"] <= row["high"]
    true_gap = 400 * 0.6
    assert rows[0]["rating"] - (rows[1]["rating"] + rows[2]["rating"]) / 2 == pytest.approx(true_gap, rel=0.25)


def test_anchor_and_errors():
    battles = _simulate([0, 0.3], 200, seed=1)
    res = rank_battles(battles, rounds=20, anchor=("p0", 1200.0))
    assert {r["policy"]: r["rating"] for r in res["ranking"]}["p0"] == pytest.approx(1200)
    with pytest.raises(InvalidInput):
        rank_battles(battles, rounds=0, anchor=("nobody", 1.0))
    with pytest.raises(InvalidInput):
        rank_battles([], rounds=0)
    with pytest.raises(InvalidInput):
        Battle("a", "a", "tie")
    with pytest.raises(InvalidInput):
        Battle("a", "b", "c")


def test_same_seed_same_numbers():
    battles = _simulate([0, 0.3, 0.1], 300, seed=9)
    assert rank_battles(battles, rounds=100, seed=5) == rank_battles(battles, rounds=100, seed=5)
    assert rank_battles(battles, rounds=100, seed=5) != rank_battles(battles, rounds=100, seed=6)


battle_lists = hst.lists(
    hst.tuples(hst.integers(0, 3), hst.integers(0, 3), hst.sampled_from(["a", "b", "tie"])).filter(
        lambda t: t[0] != t[1]
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=30, deadline=None)
@given(battle_lists, hst.permutations(["w", "x", "y", "z"]), hst.randoms(use_true_random=False))
def test_invariant_to_relabelling_and_battle_order(raw, perm, rnd):
    names = ["w", "x", "y", "z"]
    battles = [Battle(names[i], names[j], w) for i, j, w in raw]
    base = {r["policy"]: r["rating"] for r in rank_battles(battles, rounds=0)["ranking"]}
    relabel = dict(zip(names, perm))
    renamed = {
        r["policy"]: r["rating"]
        for r in rank_battles([Battle(relabel[b.a], relabel[b.b], b.winner) for b in battles], rounds=0)["ranking"]
    }
    for old, new in relabel.items():
        if old in base:
            assert renamed[new] == pytest.approx(base[old], abs=1e-3)
    shuffled = list(battles)
    rnd.shuffle(shuffled)
    # swapping sides (and the winner with them) is the same battle
    flipped = [Battle(b.b, b.a, {"a": "b", "b": "a", "tie": "tie"}[b.winner]) for b in shuffled]
    full = rank_battles(battles, rounds=30, seed=2)
    assert rank_battles(flipped, rounds=30, seed=2) == full  # bit-identical, intervals included


# ------------------------------------------------------------- one rank rule (issue #19)

# A ≫ B on 35 battles, B edges C 2–1, C ≫ D on 35: C is rated third but, on three battles with
# B, separable from nobody above it. Ranking by "1 + policies significantly better" gave 1, 2, 1, 2.
CHAIN = (
    [Battle("A", "B", "a")] * 30
    + [Battle("A", "B", "b")] * 5
    + [Battle("B", "C", "a")] * 2
    + [Battle("B", "C", "b")]
    + [Battle("C", "D", "a")] * 30
    + [Battle("C", "D", "b")] * 5
)


def assert_one_rank_rule(rows):
    """Competition ranks in rating order; tied (adjacent) policies share a rank, separated ones do not."""
    ratings = [r["rating"] for r in rows]
    assert ratings == sorted(ratings, reverse=True)
    assert rows[0]["rank"] == 1
    for pos in range(1, len(rows)):
        above, row = rows[pos - 1], rows[pos]
        assert row["rank"] == (above["rank"] if above["tied_with_next"] else pos + 1)
    assert "tied_with_next" not in rows[-1]


def test_ranks_never_contradict_ratings_and_ties_share_a_rank():
    rows = rank_battles(CHAIN, rounds=300, seed=0)["ranking"]
    assert [r["policy"] for r in rows] == ["A", "B", "C", "D"]
    assert [r["tied_with_next"] for r in rows[:3]] == [False, True, False]
    assert [r["rank"] for r in rows] == [1, 2, 2, 4]
    assert_one_rank_rule(rows)


@settings(max_examples=40, deadline=None)
@given(battle_lists)
def test_the_rank_rule_holds_on_any_battles(raw):
    names = ["w", "x", "y", "z"]
    rows = rank_battles([Battle(names[i], names[j], w) for i, j, w in raw], rounds=40, seed=3)["ranking"]
    assert_one_rank_rule(rows)

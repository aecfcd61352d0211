"""A clean sweep on little data is not a separation; on enough data it is."""

from egocrowd.bench.ranking import Battle, rank_battles


def _sweep(n: int) -> dict:
    battles = [Battle("oracle", "canned", "a") for _ in range(n)] + [Battle("canned", "random", "a")] * n
    return rank_battles(battles, rounds=200, seed=1)


def test_three_nil_is_a_statistical_tie():
    rows = _sweep(3)["ranking"]
    assert [r["policy"] for r in rows] == ["oracle", "canned", "random"]
    assert rows[0]["tied_with_next"] and rows[1]["tied_with_next"]  # exact p = 0.25 each
    assert rows[0]["rank"] == rows[1]["rank"] == 1  # canned shares oracle's rank


def test_twenty_nil_is_separated():
    rows = _sweep(20)["ranking"]
    assert not rows[0]["tied_with_next"] and not rows[1]["tied_with_next"]
    assert [r["rank"] for r in rows] == [1, 2, 3]

"""The fast bootstrap (multinomial over cells, all rounds in one batched Newton fit) against the
straightforward one: resample battles, refit each round with choix (an independent implementation)."""

from __future__ import annotations

import choix
import numpy as np

from egocrowd.bench.ranking import LN10, SCALE, Battle, fit_bt_batch, rank_battles

K = 5
NAMES = [f"p{i}" for i in range(K)]


def _battles(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(winner, loser, is_tie) with 20 % ties among K policies of spread strengths."""
    rng = np.random.default_rng(seed)
    strength = np.array([0.0, 0.05, 0.2, 0.3, 0.5])
    a = rng.integers(0, K, n)
    b = (a + rng.integers(1, K, n)) % K
    a_wins = rng.random(n) < 1 / (1 + 10 ** (strength[b] - strength[a]))
    return np.where(a_wins, a, b), np.where(a_wins, b, a), rng.random(n) < 0.2


def _win_matrix(winner: np.ndarray, loser: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Wins with a tie as half a win to each side, the way a choix user builds the dense matrix."""
    w = np.bincount(winner * K + loser, weights=np.where(tie, 0.5, 1.0), minlength=K * K)
    w += np.bincount(loser * K + winner, weights=np.where(tie, 0.5, 0.0), minlength=K * K)
    return w.reshape(K, K)


def test_batched_fit_equals_one_fit_per_round():
    winner, loser, tie = _battles(400, seed=1)
    rng = np.random.default_rng(2)
    rounds = [rng.integers(0, 400, 400) for _ in range(40)]
    wins = np.stack([_win_matrix(winner[i], loser[i], tie[i]) for i in rounds])
    batched = fit_bt_batch(wins)
    for w, theta in zip(wins, batched):
        ref = choix.ilsr_pairwise_dense(w, tol=1e-12)
        assert np.max(np.abs(theta - (ref - ref.mean()))) < 1e-5


def test_bootstrap_intervals_match_a_per_battle_reference():
    n, rounds = 600, 1000
    winner, loser, tie = _battles(n, seed=3)
    battles = [
        Battle(NAMES[w], NAMES[lo], "tie" if t else "a")
        for w, lo, t in zip(winner.tolist(), loser.tolist(), tie.tolist())
    ]
    ours = {r["policy"]: (r["low"], r["high"]) for r in rank_battles(battles, rounds=rounds, seed=0)["ranking"]}

    rng = np.random.default_rng(0)
    boot = []
    for _ in range(rounds):
        i = rng.integers(0, n, n)
        theta = choix.ilsr_pairwise_dense(_win_matrix(winner[i], loser[i], tie[i]))
        boot.append(SCALE * (theta - theta.mean()) / LN10)
    low, high = np.quantile(boot, [0.025, 0.975], axis=0)
    for p, name in enumerate(NAMES):
        # Different random draws of the same resampling distribution: endpoints agree to Monte Carlo
        # error (about 2 % of the width per endpoint at 1000 rounds); a resampling that were wrong
        # (per cell instead of per battle, say) moves them far more.
        width = high[p] - low[p]
        assert abs(ours[name][0] - 1000 - low[p]) < 0.12 * width, name
        assert abs(ours[name][1] - 1000 - high[p]) < 0.12 * width, name


def test_intervals_reproducible_by_seed_and_only_by_seed():
    winner, loser, tie = _battles(300, seed=5)
    battles = [Battle(NAMES[w], NAMES[lo], "tie" if t else "a") for w, lo, t in zip(winner, loser, tie)]
    first = rank_battles(battles, rounds=200, seed=7)["ranking"]
    again = rank_battles(list(reversed(battles)), rounds=200, seed=7)["ranking"]
    other = rank_battles(battles, rounds=200, seed=8)["ranking"]
    assert [(r["low"], r["high"]) for r in first] == [(r["low"], r["high"]) for r in again]
    assert [(r["low"], r["high"]) for r in first] != [(r["low"], r["high"]) for r in other]

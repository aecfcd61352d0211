from __future__ import annotations

import numpy as np
import pytest

from egocrowd.bench.sequential import SequentialTest, sequential_test
from egocrowd.errors import InvalidInput


def test_type_one_error_stays_below_alpha_under_continuous_monitoring():
    rng = np.random.default_rng(123)
    reps, n, alpha = 600, 300, 0.1
    wrong = 0
    for _ in range(reps):
        a = rng.random(n) < 0.55
        b = rng.random(n) < 0.55
        wrong += sequential_test(zip(a, b), alpha=alpha)["decision"] != "continue"
    # Ville's inequality bounds it by alpha; allow a little Monte Carlo noise
    assert wrong / reps <= alpha + 0.02


def test_stops_early_for_a_clear_difference_and_names_the_winner():
    rng = np.random.default_rng(1)
    stops = []
    for _ in range(40):
        a = rng.random(500) < 0.5
        b = rng.random(500) < 0.85
        res = sequential_test(zip(a, b))
        assert res["decision"] == "B"
        stops.append(res["stopped_at"])
    assert np.median(stops) < 100


def test_progress_outcomes_and_state():
    t = SequentialTest(alpha=0.05)
    for _ in range(200):
        t.update(0.9, 0.4)
    assert t.decision == "A" and t.stopped_at is not None and t.stopped_at < 200
    s = t.summary()
    assert s["wealth_a"] >= s["threshold"] and s["mean_diff"] == pytest.approx(0.5)


def test_same_data_same_answer_and_input_checks():
    pairs = [(1, 0), (0, 0), (1, 1), (1, 0)] * 30
    assert sequential_test(pairs) == sequential_test(pairs)
    with pytest.raises(InvalidInput):
        SequentialTest().update(1.5, 0)
    with pytest.raises(InvalidInput):
        SequentialTest(alpha=0)

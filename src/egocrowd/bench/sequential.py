"""Anytime-valid sequential comparison of two policies: "have we run enough trials yet?"

Trials come in pairs (A and B on the same seed/task); each gives outcomes ``a, b`` in [0, 1]
(success 0/1 or progress). With d_i = a_i − b_i ∈ [−1, 1] and H0: E[d_i | past] = 0, two betting
wealth processes

    K⁺_n = Π_{i≤n} (1 + λ_i d_i),   K⁻_n = Π_{i≤n} (1 − λ'_i d_i),

with predictable bets λ_i, λ'_i ∈ [0, ½] are non-negative supermartingales under H0. By Ville's
inequality P(sup_n K⁺_n ≥ 2/α) ≤ α/2, so stopping the first time either wealth reaches 2/α and
declaring that side better has type-I error ≤ α **however often you look** (Waudby-Smith & Ramdas,
"Estimating means of bounded random variables by betting", JRSS-B 2024). The bet is the aGRAPA
plug-in λ_i = clip(μ̂/(σ̂² + μ̂²), 0, ½) from the previous pairs (μ̂ shrunk toward 0 by one
pseudo-observation so early bets are small). Hand-written: a dozen lines, no library offers it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from egocrowd.errors import InvalidInput

_MAX_BET = 0.5


@dataclass
class SequentialTest:
    """Feed paired outcomes with :meth:`update`; read :attr:`decision` ("continue", "A", "B")."""

    alpha: float = 0.05
    n: int = 0
    log_wealth_a: float = 0.0  # evidence that A is better
    log_wealth_b: float = 0.0  # evidence that B is better
    decision: str = "continue"
    stopped_at: int | None = None
    _sum: float = 0.0
    _sumsq: float = 0.0
    trajectory: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise InvalidInput(f"alpha must be in (0, 1); got {self.alpha}", code="bench.bad_alpha")

    @property
    def threshold(self) -> float:
        return 2.0 / self.alpha

    def _bet(self, sign: float) -> float:
        mu = sign * self._sum / (self.n + 1)  # shrink toward 0 with one pseudo-observation at 0
        var = max(self._sumsq / (self.n + 1) - (self._sum / (self.n + 1)) ** 2, 0.0)
        if mu <= 0:
            return 0.0
        return min(mu / (var + mu * mu), _MAX_BET)

    def update(self, a: float, b: float) -> str:
        if not (0.0 <= a <= 1.0 and 0.0 <= b <= 1.0):
            raise InvalidInput(f"outcomes must be in [0, 1]; got {a}, {b}", code="bench.bad_outcome")
        d = a - b
        la, lb = self._bet(+1.0), self._bet(-1.0)
        self.log_wealth_a += math.log1p(la * d)
        self.log_wealth_b += math.log1p(-lb * d)
        self.n += 1
        self._sum += d
        self._sumsq += d * d
        self.trajectory.append((self.log_wealth_a, self.log_wealth_b))
        if self.decision == "continue":
            log_thr = math.log(self.threshold)
            if self.log_wealth_a >= log_thr:
                self.decision, self.stopped_at = "A", self.n
            elif self.log_wealth_b >= log_thr:
                self.decision, self.stopped_at = "B", self.n
        return self.decision

    def summary(self) -> dict[str, Any]:
        return {
            "method": "betting_test_supermartingale",
            "alpha": self.alpha,
            "pairs": self.n,
            "decision": self.decision,
            "stopped_at": self.stopped_at,
            "wealth_a": math.exp(min(self.log_wealth_a, 700)),
            "wealth_b": math.exp(min(self.log_wealth_b, 700)),
            "threshold": self.threshold,
            "mean_diff": self._sum / self.n if self.n else None,
        }


def sequential_test(pairs: Iterable[tuple[float, float]], alpha: float = 0.05, *, stop: bool = True) -> dict[str, Any]:
    """Run the test over paired outcomes in the order they were collected.

    ``stop=True`` stops reading at the first decision (what an evaluator would have done);
    ``stop=False`` reads all pairs but keeps the first decision.
    """
    test = SequentialTest(alpha=alpha)
    for a, b in pairs:
        if test.update(float(a), float(b)) != "continue" and stop:
            break
    out = test.summary()
    out["trajectory"] = [[round(x, 6), round(y, 6)] for x, y in test.trajectory]
    return out

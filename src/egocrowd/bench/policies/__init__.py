"""Policies for egocrowd.bench: the interface, the registry, baselines and remote adapters.

* :class:`Policy` — ``reset(observation, seed=...)`` and ``act(observation) -> action``.
* :func:`register_policy` / :data:`POLICIES` / :func:`make_policy` (name, or an http/ws URL).
* Baselines: ``random``, ``oracle`` (knows the house rules), ``canned`` (short-task specialist).
* :mod:`.remote`: :class:`HttpPolicy`, :class:`WebSocketPolicy` and the matching servers.
"""

from egocrowd.bench.policies.base import POLICIES, Observation, Policy, make_policy, register_policy
from egocrowd.bench.policies.baselines import CannedPolicy, OraclePolicy, RandomPolicy

__all__ = [
    "POLICIES",
    "Observation",
    "Policy",
    "make_policy",
    "register_policy",
    "CannedPolicy",
    "OraclePolicy",
    "RandomPolicy",
]

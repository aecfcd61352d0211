"""Policies for egocrowd.bench: the interface, the registry, baselines and remote adapters.

* :class:`Policy` — ``reset(observation, seed=...)`` and ``act(observation) -> action``.
* :func:`register_policy` / :data:`POLICIES` / :func:`make_policy` (name, or an http/ws URL).
* Baselines: ``random``, ``oracle`` (knows the house rules), ``canned`` (short-task specialist).
* :mod:`.remote`: :class:`HttpPolicy`, :class:`WebSocketPolicy` and the matching servers.
"""

from typing import Any

from egocrowd.bench.policies.base import POLICIES, Observation, Policy, register_policy
from egocrowd.bench.policies.baselines import CannedPolicy, OraclePolicy, RandomPolicy
from egocrowd.bench.policies.remote import HttpPolicy, WebSocketPolicy


def is_remote(spec: str) -> bool:
    """A policy served by another process, reached by URL."""
    return spec.startswith(("http://", "https://", "ws://", "wss://"))


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """A policy by registered name, or a remote one by URL (``http(s)://`` or ``ws(s)://``)."""
    if spec.startswith(("http://", "https://")):
        return HttpPolicy(spec, **kwargs)
    if spec.startswith(("ws://", "wss://")):
        return WebSocketPolicy(spec, **kwargs)
    return POLICIES.get(spec).obj(**kwargs)


__all__ = [
    "POLICIES",
    "Observation",
    "Policy",
    "is_remote",
    "make_policy",
    "register_policy",
    "CannedPolicy",
    "OraclePolicy",
    "RandomPolicy",
]

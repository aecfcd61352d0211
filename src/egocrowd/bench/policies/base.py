"""The policy interface and the policy registry.

A policy is anything with ``reset(observation, seed=...)`` and ``act(observation) -> action``
(an :class:`~egocrowd.bench.sim.actions.Action`, a dict or a text command). Register one with::

    @register_policy("my-policy", version="3")
    class MyPolicy(Policy):
        def act(self, observation): return "wait"

and run it with ``egocrowd bench run PROTOCOL --policy my-policy``. A policy served by another
process (a lab's real model) is reached with ``--policy http://host:port`` or ``ws://host:port``
(see :mod:`.remote`). Name and version end up in every log header.
"""

from __future__ import annotations

from typing import Any, ClassVar

from egocrowd.bench.sim.actions import Action
from egocrowd.registry import Registry

Observation = dict[str, Any]


class Policy:
    """Base class; subclasses override :meth:`act` and usually :meth:`reset`."""

    name: ClassVar[str] = "policy"
    version: ClassVar[str] = "0"
    # set by @register_policy on the class (the name and version the registry knows it by), or on
    # an instance that speaks for another policy (a remote one)
    registry_name: str | None = None
    registry_version: str | None = None

    @property
    def label(self) -> tuple[str, str]:
        """(name, version) as written into the log."""
        name = self.registry_name if self.registry_name is not None else self.name
        version = self.registry_version if self.registry_version is not None else self.version
        return name, version

    def reset(self, observation: Observation, *, seed: int | None = None) -> None:
        """Start of a session; ``observation`` carries the walkthrough (inventory, layout, house rules)."""

    def act(self, observation: Observation) -> Action | dict[str, Any] | str:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release connections or processes (remote policies)."""


POLICIES: Registry[type[Policy]] = Registry("bench.policy", builtins="egocrowd.bench.policies.baselines")


def register_policy(name: str, *, version: str, description: str = "") -> Any:
    """Register a policy class; its instances report ``name`` and ``version`` in every log."""

    def deco(cls: type[Policy]) -> type[Policy]:
        POLICIES.add(name, cls, version=str(version), description=description)
        cls.registry_name, cls.registry_version = name, str(version)
        return cls

    return deco

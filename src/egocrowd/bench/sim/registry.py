"""A small name → (factory, version) registry used for environments, chores and policies.

Registered things carry a version that the runner writes into every log they produce, so a result
can always be traced back to the exact environment and policy code that made it.
"""

from __future__ import annotations

from egocrowd.plugins import load_plugins  # noqa: F401 - re-exported

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from egocrowd.errors import InvalidInput

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    name: str
    version: str
    factory: T
    description: str = ""


class Registry(Generic[T]):
    """Register with ``@registry.register("name", version="1")``; look up with ``registry.get``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, version: str, description: str = "") -> Callable[[T], T]:
        def deco(factory: T) -> T:
            if name in self._entries and self._entries[name].factory is not factory:
                raise InvalidInput(f"{self.kind} {name!r} is already registered", code="bench.duplicate_name")
            self._entries[name] = Entry(name, str(version), factory, description or (getattr(factory, "__doc__", "") or "").strip().split("\n")[0])
            # let instances report what they are (name + version go into the logs)
            for attr, value in (("registry_name", name), ("registry_version", str(version))):
                try:
                    setattr(factory, attr, value)
                except (AttributeError, TypeError):  # pragma: no cover - builtins
                    pass
            return factory

        return deco

    def get(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise InvalidInput(f"unknown {self.kind} {name!r} (known: {known})", code=f"bench.unknown_{self.kind}") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

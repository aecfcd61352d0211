"""One generic registry for every plugin kind: pipeline stages, executors, QC checks, bench metrics,
environments, chores and policies.

    CHECKS: Registry[CheckFn] = Registry("qc.check", builtins="egocrowd.media.qc.checks")

    @CHECKS.register("too_dark", version=1, description="Too dark")
    def too_dark(ctx): ...

    CHECKS.get("too_dark")  # -> Entry(name, version, obj, description)

A registry's kind is ``area.thing``; an unknown name raises ``InvalidInput`` with code
``area.unknown_thing`` (the message lists the known names), a clashing registration raises
``area.duplicate_thing``. Registered things carry a version that is stored with every result they
produce.

Third-party packages extend any registry from a module named in the ``egocrowd.plugins``
entry-point group; importing it registers what it brings with the same decorators::

    [project.entry-points."egocrowd.plugins"]
    mylab = "mylab_egocrowd.checks"

Plugins (and a registry's own built-ins, when they live in another module) are imported once,
before the first lookup; a broken plugin is logged, never fatal. Tests add entries inside
:func:`scratch`, which puts every registry back as it was.
"""

from __future__ import annotations

import importlib
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from egocrowd.errors import InvalidInput

PLUGIN_GROUP = "egocrowd.plugins"
log = logging.getLogger("egocrowd.plugins")
T = TypeVar("T")
Version = str | int

_plugins_loaded = False
_plugins_lock = threading.RLock()  # re-entrant: a plugin may look something up while it is imported
_registries: weakref.WeakSet[Registry[Any]] = weakref.WeakSet()


def load_plugins() -> list[str]:
    """Import every ``egocrowd.plugins`` module once; a broken one is logged. Returns their names."""
    global _plugins_loaded
    with _plugins_lock:
        if _plugins_loaded:
            return []
        _plugins_loaded = True
        names = []
        for ep in entry_points(group=PLUGIN_GROUP):
            try:
                ep.load()
                names.append(ep.name)
            except Exception:  # noqa: BLE001 - one bad plugin must not take the platform down
                log.exception("could not load egocrowd plugin %s", ep.name)
        return names


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    name: str
    version: Version
    obj: T
    description: str = ""


class Registry(Generic[T]):
    """Names → versioned things, in registration order (checks run and metrics print in it)."""

    def __init__(self, kind: str, *, builtins: str | None = None) -> None:
        self.kind = kind
        self._area, _, self._thing = kind.rpartition(".")
        self._builtins = builtins
        self._ready = builtins is None and _plugins_loaded
        self._entries: dict[str, Entry[T]] = {}
        _registries.add(self)

    # -- registering --------------------------------------------------------------------------------
    def register(self, name: str, *, version: Version = "1", description: str = "") -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name``."""

        def deco(obj: T) -> T:
            self.add(name, obj, version=version, description=description)
            return obj

        return deco

    def add(self, name: str, obj: T, *, version: Version = "1", description: str = "") -> Entry[T]:
        old = self._entries.get(name)
        if old is not None and not _same(old.obj, obj):
            raise InvalidInput(
                f"a {self._label} named {name!r} is already registered", code=self._code("duplicate"), name=name
            )
        doc = (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
        entry = Entry(name, version, obj, description or doc)
        self._entries[name] = entry
        return entry

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    # -- looking up ---------------------------------------------------------------------------------
    def get(self, name: str) -> Entry[T]:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise InvalidInput(
                f"unknown {self._label} {name!r} (known: {known})",
                code=self._code("unknown"),
                name=name,
                known=sorted(self._entries),
            ) from None

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        self._load()
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"

    # -- internals ----------------------------------------------------------------------------------
    @property
    def _label(self) -> str:
        return self.kind.replace(".", " ")

    def _code(self, what: str) -> str:
        return f"{self._area}.{what}_{self._thing}" if self._area else f"{what}_{self._thing}"

    def _load(self) -> None:
        if self._ready:
            return
        with _plugins_lock:  # another thread must not see half of the built-ins
            if self._builtins:
                importlib.import_module(self._builtins)
            load_plugins()
            self._ready = True


def _same(a: object, b: object) -> bool:
    """The same thing registered again (a module imported twice, e.g. reloaded) is not a clash."""
    if a is b:
        return True

    def key(o: object) -> tuple[str | None, str | None]:
        return getattr(o, "__module__", None), getattr(o, "__qualname__", None)

    return key(a)[1] is not None and key(a) == key(b)


@contextmanager
def scratch() -> Iterator[None]:
    """Everything registered inside is gone afterwards, from every registry (for tests)."""
    registries = list(_registries)
    for reg in registries:  # built-ins and plugins first: imported inside, they would be lost
        reg._load()
    saved = {reg: dict(reg._entries) for reg in registries}
    try:
        yield
    finally:
        for reg, entries in saved.items():
            reg._entries = entries


__all__ = ["Entry", "Registry", "load_plugins", "scratch", "PLUGIN_GROUP"]

"""Click parameter types and the command group shared by `egocrowd` and `egocrowd bench`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import CompletionItem

from egocrowd.errors import EgocrowdError, InvalidInput


class CommandGroup(click.Group):
    """A group whose commands (and subgroups') end an :class:`EgocrowdError` with one clear line,
    "message [code]" and exit status 1, never a traceback: commands just let our errors rise."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EgocrowdError as exc:
            raise click.ClickException(f"{exc.message} [{exc.code}]") from None


class RegistryChoice(click.ParamType):
    """One of a registry's names, looked up when the command runs (so plugins count, and
    ``egocrowd --help`` imports nothing heavy). ``registry`` is ``"module:ATTRIBUTE"``; ``also``
    lets other values through (a policy's URL)."""

    name = "name"

    def __init__(self, registry: str, *, also: Callable[[str], bool] | None = None) -> None:
        self._where = registry
        self._also = also

    @property
    def registry(self) -> Any:
        module, _, attr = self._where.partition(":")
        return getattr(importlib.import_module(module), attr)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if self._also is not None and self._also(value):
            return value
        try:
            return self.registry.get(value).name
        except InvalidInput as exc:
            self.fail(f"{exc.message} [{exc.code}]", param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[" + "|".join(self.registry.names()) + "]"

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(n) for n in self.registry.names() if n.startswith(incomplete)]


__all__ = ["RegistryChoice"]

"""Tiny policies the battle tests serve over the real HTTP wire protocol (egocrowd.bench's
http_app under uvicorn): one that does what the evaluator asked, one that never moves, one slow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from egocrowd.bench.policies.base import Policy
from egocrowd.bench.policies.remote import http_app
from tests.support.servers import LiveServer


class Fetcher(Policy):
    """Goes to the first object the evaluator named, picks it up, then waits."""

    name, version = "fetcher", "1"

    def reset(self, observation: dict[str, Any], *, seed: int | None = None) -> None:
        said = " ".join(m["text"] for m in observation["messages"] if m["from"] == "evaluator").lower()
        inventory = observation["inventory"]
        wanted = next((o for o in inventory if o.replace("_", " ") in said), None)
        self.plan = [] if wanted is None else [f"navigate {inventory[wanted]['place']}", f"pick {wanted}"]

    def act(self, observation: dict[str, Any]) -> str:
        return self.plan.pop(0) if self.plan else "wait"


class Idler(Policy):
    name, version = "idler", "1"

    def act(self, observation: dict[str, Any]) -> str:
        return "wait"


class Slow(Idler):
    name = "slow"

    def act(self, observation: dict[str, Any]) -> str:
        time.sleep(0.4)
        return "wait"


@contextmanager
def served(*policies: Policy) -> Iterator[list[str]]:
    """Each policy behind its own real HTTP server; yields their base URLs."""
    with ExitStack() as stack:
        yield [stack.enter_context(LiveServer(http_app(p))).base for p in policies]

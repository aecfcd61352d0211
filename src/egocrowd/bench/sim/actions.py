"""Robot actions: one small value type, three spellings (an ``Action``, a dict, or a text command).

Text grammar (what a remote policy or a language model may send)::

    navigate kitchen | navigate fridge | navigate alex
    pick milk        | place [fridge]   | open fridge | close jam_jar | toggle light | toggle tv
    pour blue_glass  | fold shirt       | ask alex: which one do you mean? | say on my way | wait
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from egocrowd.bench.sim.world import VERBS
from egocrowd.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class Action:
    verb: str
    target: str | None = None  # object, place, room or person
    text: str | None = None  # for ask / say

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"verb": self.verb}
        if self.target is not None:
            d["target"] = self.target
        if self.text is not None:
            d["text"] = self.text
        return d

    def to_text(self) -> str:
        if self.verb == "ask":
            return f"ask {self.target}: {self.text or ''}".rstrip()
        if self.verb == "say":
            return f"say {self.text or ''}".rstrip()
        return self.verb if self.target is None else f"{self.verb} {self.target}"


WAIT = Action("wait")


def _bad(msg: str) -> InvalidInput:
    return InvalidInput(msg, code="bench.bad_action")


def parse_action(a: Action | dict[str, Any] | str) -> Action:
    """Normalise any accepted spelling to an :class:`Action`; raises ``bench.bad_action``."""
    if isinstance(a, Action):
        act = a
    elif isinstance(a, dict):
        verb = a.get("verb")
        target = a.get("target", a.get("object", a.get("person")))
        act = Action(str(verb), None if target is None else str(target), a.get("text"))
    elif isinstance(a, str):
        s = a.strip()
        verb, _, rest = s.partition(" ")
        rest = rest.strip()
        if verb == "ask":
            who, _, question = rest.partition(":")
            act = Action("ask", who.strip() or None, question.strip() or None)
        elif verb == "say":
            act = Action("say", None, rest or None)
        else:
            act = Action(verb, rest or None)
    else:
        raise _bad(f"an action must be an Action, a dict or a text command; got {type(a).__name__}")
    if act.verb not in VERBS:
        raise _bad(f"unknown verb {act.verb!r} (verbs: {', '.join(VERBS)})")
    if act.verb in ("navigate", "pick", "toggle", "pour", "open", "close", "ask") and not act.target:
        raise _bad(f"{act.verb} needs a target")
    return act

"""How scripted people speak: speaking styles, urgent interruptions, misheard (corrupted) speech.

A person's ``style`` changes only the words, never the intent, so a policy that reads the
structured parse is unaffected while a policy that reads the text must cope with terse, polite,
casual and child speech.
"""

from __future__ import annotations

import random

from egocrowd.bench.sim.chores import CHORES, Args
from egocrowd.bench.sim.world import World

_URGENT = ("Stop, before that: ", "Quick, first ", "Sorry, this first: ", "Wait! ")
_GARBLE = ("[inaudible]", "[unclear]", "mm-", "[noise]")


def render(
    world: World,
    chore: str,
    args: Args,
    style: str,
    speaker: str | None,
    *,
    urgent: bool = False,
    rng: random.Random | None = None,
) -> str:
    """The words a person with ``style`` uses to ask for ``chore(args)``."""
    tpl = CHORES.get(chore).obj
    core = tpl.phrase(world, args, speaker)
    if style == "terse":
        text = tpl.short(world, args, speaker)
    elif style == "polite":
        text = f"Could you please {core}?"
    elif style == "casual":
        text = f"Hey, {core}, ok?"
    elif style == "child":
        text = f"Robot! {core[0].upper()}{core[1:]} pleeease!"
    else:
        text = f"{core[0].upper()}{core[1:]}."
    if urgent:
        prefix = (rng or random.Random(0)).choice(_URGENT)
        text = prefix + text[0].lower() + text[1:]
    return text


def corrupt(true_text: str, wrong_text: str) -> str:
    """Garble the words where what was said and what was understood differ (an ASR-style error)."""
    heard = set(wrong_text.lower().split())
    out = []
    for i, word in enumerate(true_text.split()):
        out.append(word if word.lower() in heard else _GARBLE[i % len(_GARBLE)])
    return " ".join(out)

"""Chores as symbolic precondition / effect templates (in the spirit of CALVIN and BEHAVIOR goals).

A chore template samples its arguments from a world where its *preconditions* hold (the object is
free, not already where it should be...) and turns them into a *goal*: a list of predicates whose
conjunction is the chore's effect. The session generator applies each effect to a projected world
before sampling the next chore, so a chain of chores is feasible by construction.

Goals are pure functions of the arguments (``goal_of(chore, args)``), so a remote policy receives the
goal with every instruction and any two parties agree on what "done" means.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from egocrowd.bench.sim.world import ROBOT, Predicate, World
from egocrowd.registry import Registry

Args = dict[str, Any]


@dataclass(slots=True)
class SampleContext:
    """What the generator knows when it samples a chore at a given step."""

    busy: set[str] = field(default_factory=set)  # objects reserved by open instructions
    drifted: set[str] = field(default_factory=set)  # objects moved by drift since the start
    speaker: str | None = None


@dataclass(frozen=True, slots=True)
class ChoreTemplate:
    name: str
    sample: Callable[[World, random.Random, SampleContext], Args | None]
    goal: Callable[[Args], list[Predicate]]
    phrase: Callable[[World, Args, str | None], str]  # "put the milk in the fridge"
    short: Callable[[World, Args, str | None], str]  # terse style: "milk. fridge."
    paraphrase: Callable[[World, Args, str | None], str]  # an unusual wording of the same intent
    perturb: Callable[[World, Args, random.Random, SampleContext], Args | None] | None = None
    objects: Callable[[Args], list[str]] = lambda a: [a["object"]] if "object" in a else []
    unsafe: Callable[[World, Args], bool] = lambda w, a: False


CHORES: Registry[ChoreTemplate] = Registry("bench.chore")


def chore(name: str, *, version: str = "1") -> Callable[[Callable[[], ChoreTemplate]], Callable[[], ChoreTemplate]]:
    """Register a chore template factory; the template's name must match."""

    def deco(fn: Callable[[], ChoreTemplate]) -> Callable[[], ChoreTemplate]:
        tpl = fn()
        CHORES.add(name, tpl, version=version)
        return fn

    return deco


def goal_of(name: str, args: Args) -> list[Predicate]:
    return CHORES.get(name).obj.goal(args)


# ---------------------------------------------------------------------------------------- helpers


def _free(world: World, ctx: SampleContext, pred: Callable[[Any], bool]) -> list[str]:
    """Movable objects nobody holds, not reserved, matching ``pred`` (sorted ids: determinism)."""
    out = []
    for o in world.objects.values():
        if o.id in ctx.busy or o.place == ROBOT or o.place in world.people:
            continue
        if pred(o):
            out.append(o.id)
    return out


def _pick_weighted(ids: list[str], rng: random.Random, ctx: SampleContext) -> str | None:
    """Prefer objects that drift has moved: that is where a policy that never re-checks breaks."""
    if not ids:
        return None
    weights = [4.0 if i in ctx.drifted else 1.0 for i in ids]
    return rng.choices(ids, weights=weights, k=1)[0]


def _name(world: World, eid: str) -> str:
    return eid.replace("_", " ")


def _loc(world: World, target: str, speaker: str | None) -> str:
    if target in world.people:
        return "me" if target == speaker else target.capitalize()
    pl = world.places.get(target)
    prep = "in" if pl is not None and pl.kind == "container" else "on"
    return f"{prep} the {_name(world, target)}"


def _other_place(world: World, obj_id: str, rng: random.Random, exclude: set[str]) -> str | None:
    """A plausible spot: any open surface, or the object's own home (nobody asks for the hamper)."""
    o = world.objects[obj_id]
    options = [p.id for p in world.places.values() if p.kind == "surface" or p.id == o.home]
    options = [p for p in options if p != o.place and p not in exclude]
    return rng.choice(options) if options else None


# ---------------------------------------------------------------------------------------- chores


@chore("put")
def _put() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        obj = _pick_weighted(_free(w, ctx, lambda o: not o.dangerous or o.place != o.home), rng, ctx)
        if obj is None:
            return None
        o = w.objects[obj]
        # dangerous things only ever go back to their safe home; others usually go home too
        if o.dangerous or (o.home and o.home != o.place and rng.random() < 0.5):
            place = o.home
        else:
            place = _other_place(w, obj, rng, set())
        if place is None or place == o.place:
            return None
        return {"object": obj, "place": place}

    def perturb(w: World, a: Args, rng: random.Random, ctx: SampleContext) -> Args | None:
        place = _other_place(w, a["object"], rng, {a["place"]})
        return None if place is None else {"object": a["object"], "place": place}

    return ChoreTemplate(
        "put",
        sample,
        goal=lambda a: [(a["object"], "place", a["place"])],
        phrase=lambda w, a, s: f"put the {_name(w, a['object'])} {_loc(w, a['place'], s)}",
        short=lambda w, a, s: f"{_name(w, a['object'])}, {_name(w, a['place'])}.",
        paraphrase=lambda w, a, s: f"that {_name(w, a['object'])} really belongs {_loc(w, a['place'], s)}, you know",
        perturb=perturb,
    )


@chore("bring")
def _bring() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        obj = _pick_weighted(_free(w, ctx, lambda o: not o.dangerous and not o.dish and o.charges == 0), rng, ctx)
        people = [p.id for p in w.present_people()]
        if obj is None or not people:
            return None
        person = ctx.speaker if ctx.speaker in people and rng.random() < 0.7 else rng.choice(people)
        return {"object": obj, "person": person}

    def perturb(w: World, a: Args, rng: random.Random, ctx: SampleContext) -> Args | None:
        others = _free(w, ctx, lambda o: not o.dangerous and not o.dish and o.charges == 0 and o.id != a["object"])
        return {"object": rng.choice(others), "person": a["person"]} if others else None

    return ChoreTemplate(
        "bring",
        sample,
        goal=lambda a: [(a["object"], "place", a["person"])],
        phrase=lambda w, a, s: (
            f"bring me the {_name(w, a['object'])}"
            if a["person"] == s
            else f"bring the {_name(w, a['object'])} to {a['person'].capitalize()}"
        ),
        short=lambda w, a, s: f"{_name(w, a['object'])}. {'here' if a['person'] == s else a['person'].capitalize()}.",
        paraphrase=lambda w, a, s: (
            f"{'I' if a['person'] == s else a['person'].capitalize()} could really use the {_name(w, a['object'])} right now"
        ),
        perturb=perturb,
        unsafe=lambda w, a: (
            w.objects[a["object"]].dangerous and a["person"] in w.people and w.people[a["person"]].role == "child"
        ),
    )


@chore("fold")
def _fold() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        obj = _pick_weighted(_free(w, ctx, lambda o: o.foldable and not o.folded), rng, ctx)
        if obj is None:
            return None
        return {"object": obj, "place": w.objects[obj].home or "shelf"}

    def perturb(w: World, a: Args, rng: random.Random, ctx: SampleContext) -> Args | None:
        others = _free(w, ctx, lambda o: o.foldable and not o.folded and o.id != a["object"])
        if not others:
            return None
        o = rng.choice(others)
        return {"object": o, "place": w.objects[o].home or "shelf"}

    return ChoreTemplate(
        "fold",
        sample,
        goal=lambda a: [(a["object"], "folded", True), (a["object"], "place", a["place"])],
        phrase=lambda w, a, s: f"fold the {_name(w, a['object'])} and put it {_loc(w, a['place'], s)}",
        short=lambda w, a, s: f"fold {_name(w, a['object'])}.",
        paraphrase=lambda w, a, s: (
            f"the {_name(w, a['object'])} is all crumpled, it should be neat {_loc(w, a['place'], s)}"
        ),
        perturb=perturb,
    )


def _openable_objects(w: World, ctx: SampleContext, want_open: bool) -> list[str]:
    return _free(w, ctx, lambda o: o.openable and o.open != want_open)


@chore("open")
def _open() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        cands = _openable_objects(w, ctx, True)
        if not w.places["window"].open and "window" not in ctx.busy:
            cands.append("window")
        return {"target": rng.choice(cands)} if cands else None

    def perturb(w: World, a: Args, rng: random.Random, ctx: SampleContext) -> Args | None:
        cands = [c for c in _openable_objects(w, ctx, True) if c != a["target"]]
        return {"target": rng.choice(cands)} if cands else None

    return ChoreTemplate(
        "open",
        sample,
        goal=lambda a: [(a["target"], "open", True)],
        phrase=lambda w, a, s: f"open the {_name(w, a['target'])}",
        short=lambda w, a, s: f"{_name(w, a['target'])}, open.",
        paraphrase=lambda w, a, s: (
            "let's get some fresh air in here"
            if a["target"] == "window"
            else f"I can't get the lid off the {_name(w, a['target'])}"
        ),
        perturb=perturb,
        objects=lambda a: [a["target"]],
    )


@chore("close")
def _close() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        cands = _openable_objects(w, ctx, False)
        if w.places["window"].open and "window" not in ctx.busy:
            cands.append("window")
        return {"target": rng.choice(cands)} if cands else None

    return ChoreTemplate(
        "close",
        sample,
        goal=lambda a: [(a["target"], "open", False)],
        phrase=lambda w, a, s: f"close the {_name(w, a['target'])}",
        short=lambda w, a, s: f"{_name(w, a['target'])}, shut.",
        paraphrase=lambda w, a, s: (
            "there's a draft in here"
            if a["target"] == "window"
            else f"the {_name(w, a['target'])} will go off if it stays open"
        ),
        objects=lambda a: [a["target"]],
    )


@chore("pour")
def _pour() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        target = _pick_weighted(
            _free(w, ctx, lambda o: o.fillable and not o.filled and o.place != "dishwasher"), rng, ctx
        )
        sources = _free(w, ctx, lambda o: o.charges > 0)
        if target is None or not sources:
            return None
        return {"target": target, "source": sources[0]}

    def perturb(w: World, a: Args, rng: random.Random, ctx: SampleContext) -> Args | None:
        others = _free(
            w, ctx, lambda o: o.fillable and not o.filled and o.place != "dishwasher" and o.id != a["target"]
        )
        return {"target": rng.choice(others), "source": a["source"]} if others else None

    return ChoreTemplate(
        "pour",
        sample,
        goal=lambda a: [(a["target"], "filled", True)],
        phrase=lambda w, a, s: f"pour some water into the {_name(w, a['target'])}",
        short=lambda w, a, s: f"water, {_name(w, a['target'])}.",
        paraphrase=lambda w, a, s: f"I'm so thirsty and the {_name(w, a['target'])} is empty",
        perturb=perturb,
        objects=lambda a: [a["target"], a["source"]],
    )


@chore("load_dishwasher")
def _load() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        dishes = _free(w, ctx, lambda o: o.dish and o.dirty and o.place != "dishwasher")
        if not dishes or "dishwasher" in ctx.busy:
            return None
        return {"dishes": dishes[:4]}

    def goal(a: Args) -> list[Predicate]:
        return [(d, "place", "dishwasher") for d in a["dishes"]] + [
            ("dishwasher", "open", False),
            ("dishwasher", "on", True),
        ]

    return ChoreTemplate(
        "load_dishwasher",
        sample,
        goal=goal,
        phrase=lambda w, a, s: "load the dishwasher and start it",
        short=lambda w, a, s: "dishes.",
        paraphrase=lambda w, a, s: "the kitchen is a mess of dirty dishes again",
        objects=lambda a: [*a["dishes"], "dishwasher"],
    )


@chore("put_away_groceries")
def _groceries() -> ChoreTemplate:
    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        items = _free(w, ctx, lambda o: o.grocery and o.place == "bag" and o.home is not None)
        if not items:
            return None
        return {"items": [[i, w.objects[i].home] for i in items[:5]]}

    return ChoreTemplate(
        "put_away_groceries",
        sample,
        goal=lambda a: [(i, "place", home) for i, home in a["items"]],
        phrase=lambda w, a, s: "put the groceries away",
        short=lambda w, a, s: "groceries.",
        paraphrase=lambda w, a, s: "the shopping is still sitting in the hallway",
        objects=lambda a: [i for i, _ in a["items"]],
    )


@chore("switch")
def _switch() -> ChoreTemplate:
    devices = ("tv", "lamp")

    def sample(w: World, rng: random.Random, ctx: SampleContext) -> Args | None:
        free = [d for d in devices if d not in ctx.busy]
        if not free:
            return None
        d = rng.choice(free)
        return {"device": d, "on": not w.places[d].on}

    def perturb(w: World, a: Args, rng: random.Random, ctx: SampleContext) -> Args | None:
        others = [d for d in devices if d != a["device"] and d not in ctx.busy]
        return {"device": others[0], "on": not w.places[others[0]].on} if others else None

    return ChoreTemplate(
        "switch",
        sample,
        goal=lambda a: [(a["device"], "on", a["on"])],
        phrase=lambda w, a, s: f"turn {'on' if a['on'] else 'off'} the {_name(w, a['device'])}",
        short=lambda w, a, s: f"{_name(w, a['device'])} {'on' if a['on'] else 'off'}.",
        paraphrase=lambda w, a, s: (
            f"it would be nice to have the {_name(w, a['device'])} going"
            if a["on"]
            else f"nobody is using the {_name(w, a['device'])}"
        ),
        perturb=perturb,
        objects=lambda a: [a["device"]],
    )


def apply_goal(world: World, goal: list[Predicate]) -> None:
    """Project a goal onto a world (the generator's 'as if done' step)."""
    for eid, attr, value in goal:
        e = world.objects.get(eid) or world.places.get(eid)
        if e is None:
            continue
        setattr(e, attr, value)
    if world.holding is not None and world.objects[world.holding].place != ROBOT:
        world.holding = None

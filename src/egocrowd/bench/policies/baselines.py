"""Baseline policies: random, a scripted oracle, and a "canned-benchmark" policy.

Both scripted policies share one greedy symbolic planner (:class:`Planner`) and differ only in the
skills the protocol measures, so the gap between them *is* the long-horizon, multi-person skill:

============================  ==========================  ==================================
skill                         ``oracle``                  ``canned``
============================  ==========================  ==================================
short chores                  yes                         yes
who is speaking               applies the house rules     ignores it: latest instruction wins
world model                   re-checks what it sees,     a snapshot from the first day,
                              searches, turns lights on   never re-checked
unclear instruction           asks the speaker            never asks, acts on what it heard
============================  ==========================  ==================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from egocrowd.bench.policies.base import Observation, Policy, register_policy
from egocrowd.bench.sim.actions import WAIT, Action
from egocrowd.bench.sim.world import VERBS

CONFIRM_BELOW = 0.7  # parse confidence under which the oracle asks before acting
GIVE_UP_AFTER = 300  # steps spent on one task before a scripted policy drops it


# ---------------------------------------------------------------------------------------- planner


@dataclass
class Belief:
    """Where the policy thinks things are, and their states."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"place", "open", ...}
    place_room: dict[str, str] = field(default_factory=dict)
    places: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"kind", "open", "on"}
    people: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"role", "priority", "room"}
    rooms: list[str] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)  # believed, but not looked at since it mattered

    @classmethod
    def from_walkthrough(cls, obs: Observation) -> Belief:
        b = cls()
        for room, places in obs["layout"].items():
            b.rooms.append(room)
            for p in places:
                b.place_room[p["id"]] = room
                b.places[p["id"]] = dict(p)
        b.objects = {k: dict(v) for k, v in obs["inventory"].items()}
        b.people = {p["id"]: dict(p) for p in obs["house_rules"]["people"]}
        for p in obs["people"]:
            b.people.setdefault(p["id"], {}).update(p)
        b.see_places(obs)
        return b

    def see_places(self, obs: Observation) -> None:
        for p in obs["places"]:
            self.places.setdefault(p["id"], {}).update(p)

    def holds(self, pred: list[Any]) -> bool:
        eid, attr, value = pred
        e = self.objects.get(eid) or self.places.get(eid)
        return e is not None and e.get(attr, False if attr != "place" else None) == value

    def is_closed(self, place: str | None) -> bool:
        p = self.places.get(place or "")
        return p is not None and p.get("open") is False

    def holdable(self, place: str | None) -> bool:
        p = self.places.get(place or "")
        return p is not None and p.get("kind") in ("surface", "container")


class Planner:
    """Greedy: the first unmet goal predicate decides the next action. ``None`` = goal met."""

    def __init__(self, belief: Belief, *, search: bool) -> None:
        self.b = belief
        self.search = search
        self.searched: dict[str, set[str]] = {}  # target -> rooms looked at since it went missing

    def next(self, goal: list[list[Any]], obs: Observation) -> Action | None:
        for pred in goal:
            if pred[0] in self.b.stale:
                act = self._verify(pred[0], obs)
                if act is not None:
                    return act
            if not self.b.holds(pred):
                return self._achieve(pred, obs)
        return None

    def _verify(self, eid: str, obs: Observation) -> Action | None:
        """Go and look before trusting an old belief (only the oracle marks things stale)."""
        b = self.b
        if eid in b.places:
            return None if obs["room"] == b.place_room.get(eid) else Action("navigate", eid)
        loc = b.objects.get(eid, {}).get("place")
        if loc is None:
            return self._search(eid, obs)
        if loc == "robot":
            b.stale.discard(eid)
            return None
        if loc in b.people:  # handed over earlier: does that person still have it?
            return Action("navigate", loc) if obs["room"] != b.people[loc].get("room") else None
        if obs["at"] != loc:
            return Action("navigate", loc)
        if b.is_closed(loc):
            return Action("open", loc)
        b.stale.discard(eid)
        return None

    def _achieve(self, pred: list[Any], obs: Observation) -> Action | None:
        eid, attr, value = pred
        holding, at = obs["holding"], obs["at"]
        b = self.b
        if attr == "place":
            if holding == eid:
                if at != value:
                    return Action("navigate", value)
                if b.is_closed(value):
                    return Action("open", value)
                return Action("place", value)
            return self._fetch(eid, obs)
        if attr == "folded":
            return Action("fold", eid) if holding == eid else self._fetch(eid, obs)
        if attr == "open":
            if eid in b.objects:  # a jar: hold it, then twist
                if holding != eid:
                    return self._fetch(eid, obs)
                return Action("open" if value else "close", eid)
            if at != eid:
                return Action("navigate", eid)
            return Action("open" if value else "close", eid)
        if attr == "filled":
            src = holding if holding and b.objects.get(holding, {}).get("pourable") else None
            if src is None:
                jugs = sorted(k for k, v in b.objects.items() if v.get("pourable"))
                if not jugs:
                    return None
                return self._fetch(jugs[0], obs)
            loc = b.objects.get(eid, {}).get("place")
            if loc is None:
                return self._search(eid, obs)
            if at != loc:
                return Action("navigate", loc)
            if b.is_closed(loc):
                return Action("open", loc)
            return Action("pour", eid)
        if attr == "on":
            if at != eid:
                return Action("navigate", eid)
            return Action("toggle", eid)
        return None

    def _fetch(self, eid: str, obs: Observation) -> Action | None:
        holding, at = obs["holding"], obs["at"]
        loc = self.b.objects.get(eid, {}).get("place")
        if loc in self.b.people:
            return WAIT  # someone has it; they will put it down
        if holding is not None and holding != eid:
            return self._stow(obs)
        if loc is None:
            return self._search(eid, obs)
        self.searched.pop(eid, None)
        if at != loc:
            return Action("navigate", loc)
        if self.b.is_closed(loc):
            return Action("open", loc)
        return Action("pick", eid)

    def _stow(self, obs: Observation) -> Action:
        at = obs["at"]
        if self.b.holdable(at) and not self.b.is_closed(at):
            return Action("place", at)
        room = obs["room"]
        spots = sorted(
            p for p, r in self.b.place_room.items() if r == room and self.b.places.get(p, {}).get("kind") == "surface"
        )
        return Action("navigate", spots[0] if spots else "kitchen_table")

    def _search(self, eid: str, obs: Observation) -> Action | None:
        if not self.search:
            return None
        if not obs["lit"]:
            return Action("toggle", "light")  # cannot look for anything in the dark
        seen = self.searched.setdefault(eid, set())
        seen.add(obs["room"])
        for room in self.b.rooms:
            if room not in seen:
                return Action("navigate", room)
        seen.clear()  # looked everywhere: start over (someone may be carrying it)
        return WAIT


def _key(parse: dict[str, Any]) -> str | None:
    """The thing an instruction is about (two instructions about it may contradict)."""
    a = parse["args"]
    return a.get("object") or a.get("target") or a.get("device")


@dataclass
class _Task:
    id: str
    person: str
    goal: list[list[Any]]
    parse: dict[str, Any]
    urgent: bool = False
    waiting: bool = False  # asked; waiting for the answer
    steps: int = 0


# ---------------------------------------------------------------------------------------- policies


class _Scripted(Policy):
    search = True

    def reset(self, observation: Observation, *, seed: int | None = None) -> None:
        self.belief = Belief.from_walkthrough(observation)
        self.planner = Planner(self.belief, search=self.search)
        self.tasks: list[_Task] = []
        self.last: Action | None = None
        self.last_task: _Task | None = None

    # the one place the two scripted policies' bookkeeping of their own actions meets
    def _own_effects(self, obs: Observation) -> None:
        a, b = self.last, self.belief
        if a is None or obs["result"] != "ok":
            return
        if a.verb == "pick" and a.target in b.objects:
            b.objects[a.target]["place"] = "robot"
        elif a.verb == "place" and self._held in b.objects:
            b.objects[self._held]["place"] = obs["at"] if a.target is None else a.target
        elif a.verb in ("open", "close"):
            e = b.objects.get(a.target or "") or b.places.setdefault(a.target or "", {})
            e["open"] = a.verb == "open"
            if a.verb == "open" and a.target == "dishwasher":
                e["on"] = False
        elif a.verb == "toggle" and a.target in b.places:
            b.places[a.target]["on"] = not b.places[a.target].get("on", False)
        elif a.verb == "pour" and a.target in b.objects:
            b.objects[a.target]["filled"] = True
        elif a.verb == "fold" and a.target in b.objects:
            b.objects[a.target]["folded"] = True

    def _remember(self, action: Action, obs: Observation, task: _Task | None) -> Action:
        self.last = action
        self.last_task = task
        self._held = obs["holding"]
        return action

    def _work(self, obs: Observation) -> tuple[Action, _Task | None]:
        blocked: _Task | None = None
        held = obs["holding"]
        # urgent first, then whatever uses the thing in hand (no put-down/pick-up ping-pong), then in order
        order = sorted(self.tasks, key=lambda t: (not t.urgent, not any(p[0] == held for p in t.goal)))
        for task in order:
            if task.waiting:
                continue
            task.steps += 1
            act = self.planner.next(task.goal, obs)
            if act is None or task.steps > GIVE_UP_AFTER:
                self.tasks.remove(task)  # done (as far as we believe)
                continue
            if act is WAIT:  # blocked (someone holds the thing): get on with the next task meanwhile
                blocked = blocked or task
                continue
            return act, task
        if blocked is not None:
            return WAIT, blocked
        if obs["holding"] is not None:  # tidy: do not walk around with things
            return self.planner._stow(obs), None
        return WAIT, None


@register_policy("oracle", version="1.0", description="Knows the house rules, re-checks the world, asks when unsure")
class OraclePolicy(_Scripted):
    name = "oracle"
    version = "1.0"
    search = True

    def reset(self, observation: Observation, *, seed: int | None = None) -> None:
        super().reset(observation, seed=seed)
        self.rules = list(observation["house_rules"]["rules"])
        self.to_ask: list[tuple[str, str]] = []  # (person, question)

    def _unsafe(self, parse: dict[str, Any]) -> bool:
        for eid, attr, value in parse["goal"]:
            if (
                attr == "place"
                and value in self.belief.people
                and self.belief.people[value].get("role") == "child"
                and self.belief.objects.get(eid, {}).get("dangerous")
            ):
                return True
        return False

    def _priority(self, person: str) -> int:
        return int(self.belief.people.get(person, {}).get("priority", 99))

    def _hear(self, m: dict[str, Any]) -> None:
        kind, parse = m["kind"], m.get("parse")
        if parse is None:
            return
        if kind in ("answer", "correction"):
            for t in list(self.tasks):
                if t.id in m["re"]:
                    self.tasks.remove(t)
            self.tasks.append(_Task(m["re"][0] if m["re"] else m["id"], m["from"], parse["goal"], parse, m["urgent"]))
            return
        new = _Task(m["id"], m["from"], parse["goal"], parse, m["urgent"])
        if self._unsafe(parse) and "safety_first" in self.rules:
            rival = next((t for t in self.tasks if _key(t.parse) == _key(parse)), None)
            if rival is None:
                return  # refuse: never hand a dangerous thing to a child
        if m["confidence"] < CONFIRM_BELOW:
            new.waiting = True
            self.to_ask.append((m["from"], f"Sorry, did you say: {m['text']}"))
        rival = next(
            (
                t
                for t in self.tasks
                if _key(t.parse) is not None
                and _key(t.parse) == _key(parse)
                and t.person != new.person
                and t.goal != new.goal
            ),
            None,
        )
        if rival is None:
            self.tasks.append(new)
            return
        winner = self._resolve(rival, new)
        if winner is None:  # equal say: ask, keep both parked until the answer names one
            rival.waiting = new.waiting = True
            self.tasks.append(new)
            self.to_ask.append((new.person, f"{rival.person} asked differently; which should I do?"))
        elif winner is new:
            self.tasks.remove(rival)
            self.tasks.append(new)

    def _resolve(self, old: _Task, new: _Task) -> _Task | None:
        for rule in self.rules:
            if rule == "safety_first" and self._unsafe(old.parse) != self._unsafe(new.parse):
                return new if self._unsafe(old.parse) else old
            if rule == "priority_by_role" and self._priority(old.person) != self._priority(new.person):
                return old if self._priority(old.person) < self._priority(new.person) else new
            if rule == "ask_when_equal":
                return None
            if rule == "latest_wins":
                return new
        return new

    def act(self, observation: Observation) -> Action:
        obs, b = observation, self.belief
        self._own_effects(obs)
        b.see_places(obs)
        for p in obs["people"]:
            b.people.setdefault(p["id"], {}).update(p)
        if obs["lit"]:
            # re-check the world: what is here, and what is not here any more
            seen = {v["id"] for v in obs["visible"]}
            for v in obs["visible"]:
                b.objects[v["id"]] = dict(v)
            b.stale -= seen
            room = obs["room"]
            for p in obs["places"]:
                b.stale.discard(p["id"])
            for oid, o in b.objects.items():
                pl = o.get("place") or ""
                here = b.place_room.get(pl) == room or (pl in b.people and b.people[pl].get("room") == room)
                if oid not in seen and here and not b.is_closed(pl):
                    o["place"] = None  # gone: it stays stale until found again
        for m in obs["messages"]:
            if m.get("parse"):
                # a new request about something: do not trust what we last saw of it
                b.stale.update(str(p[0]) for p in m["parse"]["goal"])
            self._hear(m)
        if self.to_ask:
            who, question = self.to_ask.pop(0)
            return self._remember(Action("ask", who, question), obs, None)
        act, task = self._work(obs)
        if not obs["lit"] and act.verb not in ("navigate", "wait", "ask", "say"):
            act = Action("toggle", "light")  # it is dark: switch the light on first
        return self._remember(act, obs, task)


@register_policy(
    "canned",
    version="1.0",
    description="Does short chores well; ignores who speaks, never re-checks the world, never asks",
)
class CannedPolicy(_Scripted):
    """What a policy tuned on short single-instruction benchmarks does in a real home."""

    name = "canned"
    version = "1.0"
    search = False

    def act(self, observation: Observation) -> Action:
        obs = observation
        self._own_effects(obs)
        self.belief.see_places(obs)  # local perception of doors and switches only
        if obs["result"] != "ok" and self.last_task is not None and self.last_task in self.tasks:
            self.tasks.remove(self.last_task)  # it failed; a canned policy moves on
        for m in obs["messages"]:
            parse = m.get("parse")
            if parse is None:
                continue
            new = _Task(m["id"], m["from"], parse["goal"], parse, m["urgent"])
            key = _key(parse)
            # the latest instruction about the same thing replaces the earlier one, whoever said it
            self.tasks = [t for t in self.tasks if key is None or _key(t.parse) != key]
            if m["urgent"]:
                self.tasks.insert(0, new)
            else:
                self.tasks.append(new)
        act, task = self._work(obs)
        return self._remember(act, obs, task)


@register_policy("random", version="1.0", description="Uniformly random verb and target from what it can see")
class RandomPolicy(Policy):
    name = "random"
    version = "1.0"

    def reset(self, observation: Observation, *, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.rooms = sorted(observation["layout"])

    def act(self, observation: Observation) -> str:
        obs, rng = observation, self.rng
        verb = rng.choice(VERBS)
        objs = [v["id"] for v in obs["visible"]]
        places = [p["id"] for p in obs["places"]]
        people = [p["id"] for p in obs["people"]]
        if verb == "navigate":
            return f"navigate {rng.choice(self.rooms + places + people)}"
        if verb in ("pick", "pour", "fold"):
            return f"{verb} {rng.choice(objs)}" if objs else "wait"
        if verb == "place":
            return "place"
        if verb in ("open", "close"):
            opts = places + ([obs["holding"]] if obs["holding"] else [])
            return f"{verb} {rng.choice(opts)}"
        if verb == "toggle":
            return f"toggle {rng.choice(places + ['light'])}"
        if verb == "ask":
            return f"ask {rng.choice(people)}: what now?" if people else "wait"
        if verb == "say":
            return "say hello"
        return "wait"

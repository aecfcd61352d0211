"""Turn a protocol and a seed into a concrete session script.

The generator walks the session's timeline in step order over a *projected* world: every chore is
sampled where its preconditions hold and its effect is applied as if done, every drift event is
applied when it happens. So the chain of chores is feasible by construction, and drift lands on
objects that later chores need (that is what a policy that never re-checks the world must face).

Everything random is drawn here from one ``random.Random(seed)``; the environment's step function
is deterministic. Same protocol + same seed = same script, on any machine.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from egocrowd.bench.protocols import Protocol
from egocrowd.bench.sim.chores import CHORES, SampleContext, apply_goal
from egocrowd.bench.sim.people import corrupt, render
from egocrowd.bench.sim.world import NEW_CLUTTER, NEW_GROCERIES, ROBOT, Obj, PersonState, Predicate, World, make_world


@dataclass(slots=True)
class Utterance:
    """One instruction as spoken; ``parse`` is what the household's speech front end understood."""

    id: str
    step: int
    person: str
    text: str
    chore: str
    args: dict[str, Any]
    parse_chore: str
    parse_args: dict[str, Any]
    confidence: float
    urgent: bool = False
    kind: str = "task"  # task | interrupt | conflict | misheard


@dataclass(slots=True)
class ConflictSpec:
    id: str
    kind: str  # priority | equal | safety
    first: str  # utterance ids in speaking order
    second: str
    goals: dict[str, list[Predicate]]  # utterance id -> goal
    rule: str  # the rule that decides: safety_first | priority_by_role | ask_when_equal | latest_wins
    expected: str  # schema resolution the rule calls correct
    winner: str  # the utterance the rule (or, when asking, the answer) says to follow
    persons: list[str]


@dataclass(slots=True)
class MisSpec:
    id: str
    kind: str  # paraphrase | corrupt
    wrong_goal: list[Predicate]


@dataclass(slots=True)
class TaskSpec:
    """One scored subtask: the chore that should get done, and how it was asked for."""

    index: int
    chain: str
    chain_index: int
    step: int
    deadline: int
    chore: str
    args: dict[str, Any]
    goal: list[Predicate]
    person: str
    utterances: list[Utterance]
    feature: str  # plain | interruption | conflict | misinterpretation
    drift_affected: bool = False
    conflict: ConflictSpec | None = None
    mis: MisSpec | None = None


@dataclass(slots=True)
class DriftEvent:
    id: str
    step: int
    kind: str
    params: dict[str, Any]
    detail: str = ""


@dataclass(slots=True)
class Script:
    protocol: Protocol
    seed: int
    world: World  # the initial world (the env copies it)
    tasks: list[TaskSpec]
    drift: list[DriftEvent]
    chains: dict[str, list[str]] = field(default_factory=dict)  # chain -> chore names


# ---------------------------------------------------------------------------------------- drift


def apply_drift(world: World, ev: DriftEvent) -> bool:
    """Apply one drift event to a world; False when it could not happen (the robot holds the thing)."""
    p = ev.params
    k = ev.kind
    if k == "object_moved":
        o = world.objects.get(p["object"])
        if o is None or o.place == ROBOT or (p.get("only_from") and o.place != p["only_from"]):
            return False
        o.place = p["to"]
        return True
    if k in ("new_object", "groceries"):
        for spec in p["objects"]:
            if spec["id"] not in world.objects:
                world.objects[spec["id"]] = Obj(**spec)
        return True
    if k == "rearrange":
        moved = False
        for oid, to in p["moves"]:
            o = world.objects.get(oid)
            if o is not None and o.place != ROBOT and o.place in world.places:
                o.place = to
                moved = True
        return moved
    if k == "lighting":
        world.rooms[p["room"]] = p["lit"]
        return True
    if k in ("person_arrives", "person_leaves"):
        world.people[p["person"]].present = k == "person_arrives"
        return True
    if k == "meal":
        for oid in p["dishes"]:
            o = world.objects.get(oid)
            if o is not None and o.place != ROBOT:
                o.place, o.dirty, o.filled = p.get("to", "kitchen_table"), True, False
        world.places["dishwasher"].on = False
        return True
    raise AssertionError(f"unhandled drift kind {k}")  # pragma: no cover - validated by the loader


# ---------------------------------------------------------------------------------------- generator


class _Gen:
    def __init__(self, protocol: Protocol, seed: int) -> None:
        self.p = protocol
        self.rng = random.Random(seed)
        self.world = make_world(protocol.layout)
        arrivals = {d.params.get("person") for d in protocol.drift if d.kind == "person_arrives"}
        for ps in protocol.people:
            present = ps.arrives_at is None and ps.id not in arrivals
            self.world.people[ps.id] = PersonState(ps.id, ps.role, ps.priority, ps.style, ps.room, present)
        self.initial = self.world.clone()
        self.busy: dict[str, int] = {}
        self.drifted: set[str] = set()
        self.tasks: list[TaskSpec] = []
        self.drift: list[DriftEvent] = []
        self.n_utt = 0
        self.n_conf = 0
        self.n_mis = 0
        self.used_new: set[str] = set()

    # ------------------------------------------------------------------ helpers
    def ctx(self, step: int, speaker: str | None = None) -> SampleContext:
        return SampleContext({o for o, until in self.busy.items() if until >= step}, set(self.drifted), speaker)

    def reserve(self, chore: str, args: dict[str, Any], until: int) -> None:
        for o in CHORES.get(chore).obj.objects(args):
            self.busy[o] = max(self.busy.get(o, -1), until)

    def present(self) -> list[PersonState]:
        return self.world.present_people()

    def sample_chore(
        self, step: int, speaker: str, only: tuple[str, ...] | None = None
    ) -> tuple[str, dict[str, Any]] | None:
        weights = {k: v for k, v in self.p.chore_weights.items() if v > 0 and (only is None or k in only)}
        # groceries waiting in the hallway get put away soon, as in a real home
        if "put_away_groceries" in weights and any(o.place == "bag" and o.grocery for o in self.world.objects.values()):
            weights["put_away_groceries"] *= 3
        ctx = self.ctx(step, speaker)
        names = sorted(weights)
        for _ in range(12):
            name = self.rng.choices(names, weights=[weights[n] for n in names], k=1)[0]
            args = CHORES.get(name).obj.sample(self.world, self.rng, ctx)
            if args is not None:
                return name, args
        return None

    def utter(
        self,
        step: int,
        person: str,
        chore: str,
        args: dict[str, Any],
        *,
        kind: str = "task",
        urgent: bool = False,
        parse: tuple[str, dict[str, Any]] | None = None,
        text: str | None = None,
    ) -> Utterance:
        self.n_utt += 1
        ps = self.world.people[person]
        lo, hi = self.p.misheard_confidence if parse is not None else self.p.heard_confidence
        conf = round(self.rng.uniform(lo, hi), 3)
        if text is None:
            text = render(self.world, chore, args, ps.style, person, urgent=urgent, rng=self.rng)
        pc, pa = parse if parse is not None else (chore, args)
        return Utterance(f"u{self.n_utt}", step, person, text, chore, args, pc, pa, conf, urgent, kind)

    def touched(self, chore: str, args: dict[str, Any]) -> bool:
        """Does drift (moved/new objects, a dark room) stand between the robot and this chore?"""
        tpl = CHORES.get(chore).obj
        objs = tpl.objects(args)
        if any(o in self.drifted for o in objs):
            return True
        for pred in tpl.goal(args):
            for eid in (pred[0], pred[2] if isinstance(pred[2], str) else None):
                if eid is None:
                    continue
                room = None
                if eid in self.world.objects:
                    room = self.world.room_of(self.world.objects[eid])
                elif eid in self.world.places:
                    room = self.world.places[eid].room
                if room is not None and not self.world.rooms[room]:
                    return True
        return False

    def add_task(
        self, step: int, chore: str, args: dict[str, Any], person: str, utts: list[Utterance], feature: str, **kw: Any
    ) -> TaskSpec:
        deadline = min(step + self.p.budget_steps, self.p.steps)
        tpl = CHORES.get(chore).obj
        t = TaskSpec(
            len(self.tasks),
            "",
            0,
            step,
            deadline,
            chore,
            args,
            tpl.goal(args),
            person,
            utts,
            feature,
            drift_affected=self.touched(chore, args),
            **kw,
        )
        self.reserve(chore, args, deadline)
        for u in utts:
            if u.chore != chore or u.args != args:
                self.reserve(u.chore, u.args, deadline)
        apply_goal(self.world, t.goal)
        if chore == "bring":  # the person puts it down again a while later (more drift for free)
            self.schedule_return(deadline, args["object"], args["person"])
        self.tasks.append(t)
        return t

    def schedule_return(self, after: int, obj: str, person: str) -> None:
        step = after + self.rng.randint(10, 100)
        if step >= self.p.steps:
            return
        room = self.world.people[person].room
        spots = sorted(p.id for p in self.world.places.values() if p.room == room and p.kind == "surface")
        if spots:
            self._pending_returns.append((step, obj, person, self.rng.choice(spots)))

    # ------------------------------------------------------------------ tasks
    def plain(
        self,
        step: int,
        urgent: bool = False,
        person: str | None = None,
        chore: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> None:
        people = self.present()
        if not people:
            return
        speaker = person or self.rng.choice(people).id
        if chore is None:
            got = self.sample_chore(step, speaker)
            if got is None:
                return
            chore, args = got
        elif args is None:
            args = CHORES.get(chore).obj.sample(self.world, self.rng, self.ctx(step, speaker))
            if args is None:
                return
        u = self.utter(step, speaker, chore, args, kind="interrupt" if urgent else "task", urgent=urgent)
        self.add_task(step, chore, args, speaker, [u], "interruption" if urgent else "plain")

    def misheard(
        self,
        step: int,
        kind: str | None = None,
        person: str | None = None,
        chore: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> bool:
        people = self.present()
        if not people:
            return False
        speaker = person or self.rng.choice(people).id
        perturbable = tuple(n for n in self.p.chore_weights if CHORES.get(n).obj.perturb is not None)
        got = (
            (chore, args)
            if chore and args
            else self.sample_chore(step, speaker, perturbable if chore is None else (chore,))
        )
        if got is None:
            return False
        chore, args = got
        tpl = CHORES.get(chore).obj
        if tpl.perturb is None:
            return False
        wrong = tpl.perturb(self.world, args, self.rng, self.ctx(step, speaker))
        if wrong is None or tpl.goal(wrong) == tpl.goal(args):
            return False
        kind = kind or self.rng.choice(self.p.misinterpretation_kinds)
        ps = self.world.people[speaker]
        if kind == "paraphrase":
            text = tpl.paraphrase(self.world, args, speaker)
            text = text[0].upper() + text[1:] + "."
        else:
            text = corrupt(
                render(self.world, chore, args, ps.style, speaker, rng=self.rng),
                render(self.world, chore, wrong, ps.style, speaker, rng=random.Random(0)),
            )
        u = self.utter(step, speaker, chore, args, kind="misheard", parse=(chore, wrong), text=text)
        self.n_mis += 1
        self.add_task(
            step, chore, args, speaker, [u], "misinterpretation", mis=MisSpec(f"m{self.n_mis}", kind, tpl.goal(wrong))
        )
        return True

    def conflict(
        self, step: int, kind: str | None = None, persons: list[str] | None = None, unsafe_first: bool | None = None
    ) -> bool:
        people = self.present()
        kinds = [kind] if kind else list(self.p.conflict_kinds)
        self.rng.shuffle(kinds)
        return any(self._conflict(step, k, people, persons, unsafe_first) for k in kinds)

    def _conflict(
        self, step: int, kind: str, people: list[PersonState], persons: list[str] | None, unsafe_first: bool | None
    ) -> bool:
        rng, w = self.rng, self.world
        ctx = self.ctx(step)
        if persons:
            a, b = (w.people[x] for x in persons)
        else:
            pairs = [
                (x, y)
                for x in people
                for y in people
                if x.id < y.id
                and (
                    (kind == "priority" and x.priority != y.priority)
                    or (kind == "equal" and x.priority == y.priority)
                    or kind == "safety"
                )
            ]
            if not pairs:
                return False
            a, b = rng.choice(pairs)
            if rng.random() < 0.5:
                a, b = b, a
        gap = self.p.conflict_gap_steps
        if kind == "safety":
            children = [p for p in people if p.role == "child"]
            danger = sorted(
                o.id
                for o in w.objects.values()
                if o.dangerous and o.id not in ctx.busy and o.place not in (ROBOT, o.home) and o.place not in w.people
            )
            if not children or not danger:
                return False
            child = rng.choice(children)
            obj = rng.choice(danger)
            unsafe_args = {"object": obj, "person": child.id}
            safe_args = {"object": obj, "place": w.objects[obj].home}
            if unsafe_first is None:
                unsafe_first = rng.random() < 0.5
            (c1, a1), (c2, a2) = (
                (("bring", unsafe_args), ("put", safe_args))
                if unsafe_first
                else (("put", safe_args), ("bring", unsafe_args))
            )
        else:
            cands = sorted(
                o.id
                for o in w.objects.values()
                if not o.dangerous
                and o.charges == 0
                and not o.dish
                and o.id not in ctx.busy
                and o.place not in (ROBOT,)
                and o.place not in w.people
            )
            if not cands:
                return False
            obj = rng.choice(cands)
            cur = w.objects[obj].place
            home = w.objects[obj].home
            spots = sorted(p.id for p in w.places.values() if (p.kind == "surface" or p.id == home) and p.id != cur)
            p1, p2 = rng.sample(spots, 2)
            c1, a1 = "put", {"object": obj, "place": p1}
            if rng.random() < 0.4:  # "bring it to me" against "put it away"
                c1, a1 = "bring", {"object": obj, "person": a.id}
            c2, a2 = "put", {"object": obj, "place": p2}
            if rng.random() < 0.5:
                (c1, a1), (c2, a2) = (c2, a2), (c1, a1)
        u1 = self.utter(step, a.id, c1, a1, kind="conflict")
        u2 = self.utter(step + gap, b.id, c2, a2, kind="conflict")
        g1, g2 = CHORES.get(c1).obj.goal(a1), CHORES.get(c2).obj.goal(a2)
        unsafe = {u1.id: CHORES.get(c1).obj.unsafe(w, a1), u2.id: CHORES.get(c2).obj.unsafe(w, a2)}
        winner, rule, expected = self.resolve(u1, u2, unsafe)
        win = u1 if winner == u1.id else u2
        self.n_conf += 1
        spec = ConflictSpec(
            f"k{self.n_conf}", kind, u1.id, u2.id, {u1.id: g1, u2.id: g2}, rule, expected, winner, [a.id, b.id]
        )
        self.add_task(step, win.chore, win.args, win.person, [u1, u2], "conflict", conflict=spec)
        return True

    def resolve(self, u1: Utterance, u2: Utterance, unsafe: dict[str, bool]) -> tuple[str, str, str]:
        """Apply the protocol's ordered rules: (winner utterance id, deciding rule, expected resolution)."""
        pa, pb = self.world.people[u1.person].priority, self.world.people[u2.person].priority
        for rule in self.p.rules:
            if rule == "safety_first" and unsafe[u1.id] != unsafe[u2.id]:
                return (u2.id if unsafe[u1.id] else u1.id), rule, "refused"
            if rule == "priority_by_role" and pa != pb:
                return (u1.id if pa < pb else u2.id), rule, "followed_priority"
            if rule == "ask_when_equal":
                # the answer the people give once asked (they settle it between themselves)
                return self.rng.choice([u1.id, u2.id]), rule, "asked_clarification"
            if rule == "latest_wins":
                return u2.id, rule, "followed_priority"
        raise AssertionError("rules end with a decisive rule")  # pragma: no cover - validated

    # ------------------------------------------------------------------ drift
    def make_drift(self, step: int, kind: str, params: dict[str, Any]) -> DriftEvent | None:
        rng, w = self.rng, self.world
        free = sorted(
            o.id
            for o in w.objects.values()
            if o.id not in self.busy_at(step) and o.place != ROBOT and o.place not in w.people and w.accessible(o)
        )
        present = [p.id for p in self.present()]
        by = params.get("by") or (rng.choice(present) if present else "someone")
        if kind == "object_moved":
            obj = params.get("object") or (rng.choice(free) if free else None)
            if obj is None or obj not in w.objects:
                return None
            cur_room = w.room_of(w.objects[obj])
            spots = sorted(
                p.id
                for p in w.places.values()
                if p.kind == "surface" and p.id != w.objects[obj].place and p.id != "bag"
            )
            far = [s for s in spots if w.places[s].room != cur_room]
            to = params.get("to") or rng.choice(far if far and rng.random() < 0.7 else spots)
            return DriftEvent(
                "",
                step,
                kind,
                {"object": obj, "to": to, "by": by},
                f"{by} moved the {obj.replace('_', ' ')} to the {to.replace('_', ' ')}",
            )
        if kind in ("new_object", "groceries"):
            specs: list[dict[str, Any]] = []
            if kind == "groceries":
                pool = [g for g in NEW_GROCERIES if g[0] not in self.used_new]
                for name, home in rng.sample(pool, min(int(params.get("count", 3)), len(pool))):
                    self.used_new.add(name)
                    specs.append({"id": name, "kind": "food", "place": "bag", "home": home, "grocery": True})
                detail = f"{by} came back with groceries: " + ", ".join(s["id"] for s in specs)
            else:
                spec = dict(params.get("object") or {})
                if not spec:
                    clutter = [c for c in NEW_CLUTTER if c not in self.used_new]
                    if not clutter:
                        return None
                    spots = sorted(p.id for p in w.places.values() if p.kind == "surface" and p.id != "bag")
                    spec = {"id": rng.choice(clutter), "kind": "thing", "place": rng.choice(spots)}
                spec.setdefault("kind", "thing")
                self.used_new.add(spec["id"])
                specs.append(spec)
                detail = f"a new {spec['id'].replace('_', ' ')} appeared on the {spec['place'].replace('_', ' ')}"
            if not specs:
                return None
            return DriftEvent("", step, kind, {"objects": specs}, detail)
        if kind == "rearrange":
            room = params.get("room") or rng.choice(sorted(w.rooms))
            spots = sorted(p.id for p in w.places.values() if p.room == room and p.kind == "surface" and p.id != "bag")
            objs = [o for o in free if w.objects[o].place in spots]
            if len(spots) < 2 or not objs:
                return None
            moves = []
            for o in objs:
                options = [s for s in spots if s != w.objects[o].place]
                moves.append([o, rng.choice(options)])
            return DriftEvent(
                "", step, kind, {"room": room, "moves": moves}, f"the {room.replace('_', ' ')} was rearranged"
            )
        if kind == "lighting":
            room = params.get("room") or rng.choice(sorted(w.rooms))
            lit = bool(params.get("lit", not w.rooms[room]))
            return DriftEvent(
                "",
                step,
                kind,
                {"room": room, "lit": lit},
                f"the lights in the {room.replace('_', ' ')} went {'on' if lit else 'off'}",
            )
        if kind in ("person_arrives", "person_leaves"):
            person = params["person"]
            verb = "arrived" if kind == "person_arrives" else "left"
            return DriftEvent("", step, kind, {"person": person}, f"{person} {verb}")
        if kind == "meal":
            # people also take clean dishes out of a closed dishwasher, so not only ``free``
            busy = self.busy_at(step)
            dishes = sorted(
                o.id
                for o in w.objects.values()
                if o.dish and o.id not in busy and o.place != ROBOT and o.place not in w.people
            )
            if not dishes:
                return None
            return DriftEvent(
                "",
                step,
                kind,
                {"dishes": dishes, "to": "kitchen_table"},
                "the family had a meal; dishes are on the table",
            )
        raise AssertionError(kind)  # pragma: no cover

    def busy_at(self, step: int) -> set[str]:
        return {o for o, until in self.busy.items() if until >= step}

    # ------------------------------------------------------------------ the timeline
    def run(self) -> Script:
        p, rng = self.p, self.rng
        self._pending_returns: list[tuple[int, str, str, str]] = []
        # drift occurrences (kind, params) by step
        drift_at: list[tuple[int, int, str, dict[str, Any]]] = []
        for i, d in enumerate(p.drift):
            steps = set(d.at)
            if d.every:
                steps.update(range(d.every, p.steps, d.every))
            drift_at.extend((s, i, d.kind, d.params) for s in sorted(steps) if s < p.steps)
        for ps in p.people:
            if ps.arrives_at is not None:
                drift_at.append((ps.arrives_at, -1, "person_arrives", {"person": ps.id}))
            if ps.leaves_at is not None:
                drift_at.append((ps.leaves_at, -1, "person_leaves", {"person": ps.id}))
        # task slots: explicit script items, then generated ones spread over the session
        slots: list[tuple[int, str, dict[str, Any]]] = [(it["at"], "script", it) for it in p.script]
        n_gen = max(p.chores - len(p.script), 0)
        span = max(p.steps - p.budget_steps - 1, 1)
        prev = None
        for i in range(n_gen):
            base = 1 + int(i * span / max(n_gen, 1))
            step = base + rng.randrange(max(span // max(n_gen, 1) // 2, 1))
            roll = rng.random()
            if roll < p.conflict_rate:
                kind = "conflict"
            elif roll < p.conflict_rate + p.misinterpretation_rate:
                kind = "misheard"
            elif roll < p.conflict_rate + p.misinterpretation_rate + p.interruption_rate and prev is not None:
                kind, step = "interrupt", prev + rng.randint(2, 5)
            else:
                kind = "plain"
            slots.append((min(step, p.steps - 1), kind, {}))
            prev = step
        timeline = sorted(
            # (step, drift first, order, kind, drift kind, params)
            [(s, 0, i, "drift", k, prm) for s, i, k, prm in drift_at]
            + [(s, 1, j, kind, "", it) for j, (s, kind, it) in enumerate(slots)],
            key=lambda x: x[:3],
        )
        n_drift = 0
        for step, _, _, kind, drift_kind, payload in timeline:
            while self._pending_returns and self._pending_returns[0][0] <= step:
                rs, obj, person, to = self._pending_returns.pop(0)
                ev = DriftEvent(
                    "",
                    rs,
                    "object_moved",
                    {"object": obj, "to": to, "by": person, "only_from": person},
                    f"{person} put the {obj.replace('_', ' ')} down on the {to.replace('_', ' ')}",
                )
                n_drift = self._emit_drift(ev, n_drift)
            if kind == "drift":
                made = self.make_drift(step, drift_kind, dict(payload))
                if made is not None:
                    n_drift = self._emit_drift(made, n_drift)
            elif kind == "plain":
                self.plain(step)
            elif kind == "interrupt":
                self.plain(step, urgent=True)
            elif kind == "misheard":
                if not self.misheard(step):
                    self.plain(step)
            elif kind == "conflict":
                if not self.conflict(step):
                    self.plain(step)
            elif kind == "script":
                it = payload
                if "conflict" in it:
                    c = it["conflict"]
                    self.conflict(step, c["kind"], c.get("persons"), c.get("unsafe_first"))
                elif it.get("misinterpret"):
                    self.misheard(step, it["misinterpret"], it["person"], it["chore"], it.get("args"))
                else:
                    self.plain(step, bool(it.get("urgent")), it["person"], it["chore"], it.get("args"))
            self._pending_returns.sort()
        for rs, obj, person, to in self._pending_returns:
            if rs < p.steps:
                ev = DriftEvent(
                    "",
                    rs,
                    "object_moved",
                    {"object": obj, "to": to, "by": person, "only_from": person},
                    f"{person} put the {obj.replace('_', ' ')} down on the {to.replace('_', ' ')}",
                )
                n_drift = self._emit_drift(ev, n_drift)
        # chains in issue order (CALVIN-style groups of chain_length)
        self.tasks.sort(key=lambda t: (t.step, t.index))
        chains: dict[str, list[str]] = {}
        for i, t in enumerate(self.tasks):
            t.index = i
            t.chain = f"c{i // p.chain_length + 1}"
            t.chain_index = i % p.chain_length + 1
            chains.setdefault(t.chain, []).append(t.chore)
        self.drift.sort(key=lambda d: d.step)
        return Script(p, 0, self.initial, self.tasks, self.drift, chains)

    def _emit_drift(self, ev: DriftEvent, n: int) -> int:
        if not apply_drift(self.world, ev):
            return n
        n += 1
        ev.id = f"d{n}"
        if ev.kind == "object_moved":
            self.drifted.add(ev.params["object"])
        elif ev.kind == "rearrange":
            self.drifted.update(o for o, _ in ev.params["moves"])
        elif ev.kind in ("new_object", "groceries"):
            self.drifted.update(s["id"] for s in ev.params["objects"])
        self.drift.append(ev)
        return n


def generate_script(protocol: Protocol, seed: int) -> Script:
    """The concrete session for ``protocol`` and ``seed`` (pure; no I/O)."""
    script = _Gen(protocol, seed).run()
    script.seed = seed
    return script

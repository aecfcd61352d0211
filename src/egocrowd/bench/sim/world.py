"""Symbolic household state: rooms, places (furniture), objects with states, people, the robot.

Everything is plain slotted dataclasses so one step costs microseconds. A *predicate* is a tuple
``(entity_id, attribute, value)`` (e.g. ``("milk", "place", "fridge")``); a chore's goal is a list
of predicates and is reached when all hold. The same predicates drive the scripted planners.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from egocrowd.errors import InvalidInput

ROBOT = "robot"

# The verbs of the action space (issue #5): the order is stable and documented.
VERBS = ("navigate", "pick", "place", "open", "close", "toggle", "pour", "fold", "ask", "say", "wait")

Predicate = tuple[str, str, Any]


@dataclass(slots=True)
class Place:
    """Furniture or fixture in a room; objects sit on/in places that ``holds``."""

    id: str
    room: str
    kind: str = "surface"  # surface | container | appliance | fixture
    openable: bool = False
    open: bool = True
    toggleable: bool = False
    on: bool = False
    holds: bool = True


@dataclass(slots=True)
class Obj:
    """A movable object. ``place`` is a place id, a person id (handed over) or ``"robot"``."""

    id: str
    kind: str
    place: str
    home: str | None = None  # where it is put away (groceries, laundry, dangerous tools)
    foldable: bool = False
    folded: bool = False
    openable: bool = False
    open: bool = False
    fillable: bool = False
    filled: bool = False
    charges: int = 0  # > 0: something you can pour from
    dish: bool = False
    dirty: bool = False
    dangerous: bool = False
    grocery: bool = False

    @property
    def name(self) -> str:
        return self.id.replace("_", " ")


@dataclass(slots=True)
class PersonState:
    id: str
    role: str
    priority: int  # lower number = higher precedence (same convention as the log schema)
    style: str = "plain"
    room: str = "living_room"
    present: bool = True


@dataclass(slots=True)
class World:
    rooms: dict[str, bool]  # room -> lit
    places: dict[str, Place]
    objects: dict[str, Obj]
    people: dict[str, PersonState] = field(default_factory=dict)
    robot_room: str = "hallway"
    robot_at: str | None = None  # a place id, a person id, or None (middle of the room)
    holding: str | None = None

    # ------------------------------------------------------------------ queries
    def clone(self) -> World:
        return copy.deepcopy(self)

    def room_of(self, obj: Obj) -> str | None:
        p = obj.place
        if p == ROBOT:
            return self.robot_room
        pl = self.places.get(p)
        if pl is not None:
            return pl.room
        person = self.people.get(p)
        return person.room if person is not None and person.present else None

    def accessible(self, obj: Obj) -> bool:
        """Not shut inside a closed container."""
        pl = self.places.get(obj.place)
        return pl is None or pl.open or not pl.openable

    def visible_objects(self) -> list[Obj]:
        """Objects in the robot's room, not shut away; the hot path of every step, hence inlined."""
        room = self.robot_room
        if not self.rooms[room]:
            return []  # a dark room shows nothing
        places, people = self.places, self.people
        out = []
        for o in self.objects.values():
            pl = places.get(o.place)
            if pl is not None:
                if pl.room == room and (pl.open or not pl.openable):
                    out.append(o)
            elif o.place == ROBOT:
                out.append(o)
            else:
                person = people.get(o.place)
                if person is not None and person.present and person.room == room:
                    out.append(o)
        return out

    def holds(self, pred: Predicate) -> bool:
        eid, attr, value = pred
        e = self.objects.get(eid) or self.places.get(eid)
        return e is not None and getattr(e, attr) == value

    def holds_all(self, goal: list[Predicate] | tuple[Predicate, ...]) -> bool:
        return all(self.holds(pred) for pred in goal)

    def receptacles(self) -> list[str]:
        return [p.id for p in self.places.values() if p.holds]

    def present_people(self) -> list[PersonState]:
        return [p for p in self.people.values() if p.present]

    # ------------------------------------------------------------------ the robot acts
    def apply(self, verb: str, target: str | None) -> str:
        """Apply one robot action; returns ``"ok"`` or ``"fail:<reason>"``. ``ask``/``say`` are the env's."""
        if verb == "navigate":
            return self._navigate(target)
        if verb in ("wait", "say", "ask"):
            return "ok"
        if verb == "toggle" and target == "light":
            self.rooms[self.robot_room] = not self.rooms[self.robot_room]
            return "ok"
        if not self.rooms[self.robot_room]:
            return "fail:too_dark"
        fn = _ACTIONS.get(verb)
        if fn is None:
            return "fail:unknown_verb"
        return fn(self, target)

    def _navigate(self, target: str | None) -> str:
        if target in self.rooms:
            self.robot_room, self.robot_at = target, None
        elif target in self.places:
            self.robot_room, self.robot_at = self.places[target].room, target
        elif target in self.people and self.people[target].present:
            self.robot_room, self.robot_at = self.people[target].room, target
        else:
            return "fail:unknown_target"
        return "ok"

    def _pick(self, target: str | None) -> str:
        if self.holding is not None:
            return "fail:hands_full"
        obj = self.objects.get(target or "")
        if obj is None:
            return "fail:unknown_object"
        if self.robot_at is None or obj.place != self.robot_at:
            return "fail:not_here"
        if not self.accessible(obj):
            return "fail:closed"
        obj.place = ROBOT
        self.holding = obj.id
        return "ok"

    def _place(self, target: str | None) -> str:
        if self.holding is None:
            return "fail:empty_hands"
        at = self.robot_at
        if at is None or (target is not None and target != at):
            return "fail:not_here"
        pl = self.places.get(at)
        if pl is not None:
            if not pl.holds:
                return "fail:cannot_hold"
            if pl.openable and not pl.open:
                return "fail:closed"
        elif not (at in self.people and self.people[at].room == self.robot_room and self.people[at].present):
            return "fail:not_here"
        self.objects[self.holding].place = at
        self.holding = None
        return "ok"

    def _set_open(self, target: str | None, value: bool) -> str:
        if target is not None and target == self.holding:
            obj = self.objects[target]
            if not obj.openable:
                return "fail:not_openable"
            obj.open = value
            return "ok"
        pl = self.places.get(target or "")
        if pl is None or target != self.robot_at:
            return "fail:not_here"
        if not pl.openable:
            return "fail:not_openable"
        pl.open = value
        if value and pl.toggleable and pl.kind == "container":
            pl.on = False  # opening a dishwasher ends its cycle
        return "ok"

    def _open(self, target: str | None) -> str:
        return self._set_open(target, True)

    def _close(self, target: str | None) -> str:
        return self._set_open(target, False)

    def _toggle(self, target: str | None) -> str:
        pl = self.places.get(target or "")
        if pl is None or target != self.robot_at:
            return "fail:not_here"
        if not pl.toggleable:
            return "fail:not_toggleable"
        if pl.openable and pl.open and not pl.on:
            return "fail:open"  # a dishwasher runs closed
        pl.on = not pl.on
        if pl.on and pl.kind == "container":  # a wash cycle cleans what is inside
            for o in self.objects.values():
                if o.place == pl.id and o.dish:
                    o.dirty = False
                    o.filled = False
        return "ok"

    def _pour(self, target: str | None) -> str:
        src = self.objects.get(self.holding or "")
        if src is None or src.charges <= 0:
            return "fail:nothing_to_pour"
        obj = self.objects.get(target or "")
        if obj is None or obj.place != self.robot_at or not self.accessible(obj):
            return "fail:not_here"
        if not obj.fillable:
            return "fail:not_fillable"
        if obj.filled:
            return "fail:already_full"
        obj.filled = True
        src.charges -= 1
        return "ok"

    def _fold(self, target: str | None) -> str:
        obj = self.objects.get(self.holding or "")
        if obj is None or (target is not None and target != obj.id):
            return "fail:not_holding"
        if not obj.foldable:
            return "fail:not_foldable"
        obj.folded = True
        return "ok"


_ACTIONS = {
    "pick": World._pick,
    "place": World._place,
    "open": World._open,
    "close": World._close,
    "toggle": World._toggle,
    "pour": World._pour,
    "fold": World._fold,
}


# ---------------------------------------------------------------------------------------- layouts


def _apartment() -> World:
    """The reference home: five rooms, 23 places, 27 objects."""
    rooms = {r: True for r in ("kitchen", "living_room", "bedroom", "bathroom", "hallway")}
    P = Place
    places = [
        P("counter", "kitchen"),
        P("kitchen_table", "kitchen"),
        P("fridge", "kitchen", "container", openable=True, open=False),
        P("cabinet", "kitchen", "container", openable=True, open=False),
        P("drawer", "kitchen", "container", openable=True, open=False),
        P("dishwasher", "kitchen", "container", openable=True, open=False, toggleable=True),
        P("stove", "kitchen", "appliance", toggleable=True, holds=False),
        P("sofa", "living_room"),
        P("coffee_table", "living_room"),
        P("shelf", "living_room"),
        P("tv", "living_room", "appliance", toggleable=True, holds=False),
        P("window", "living_room", "fixture", openable=True, open=False, holds=False),
        P("bed", "bedroom"),
        P("nightstand", "bedroom"),
        P("wardrobe", "bedroom", "container", openable=True, open=False),
        P("laundry_basket", "bedroom", "container"),
        P("lamp", "bedroom", "appliance", toggleable=True, holds=False),
        P("bathroom_shelf", "bathroom"),
        P("hamper", "bathroom", "container"),
        P("shoe_rack", "hallway"),
        P("hall_table", "hallway"),
        P("bag", "hallway", "container"),
    ]
    objects = [
        Obj("shirt", "clothing", "laundry_basket", home="wardrobe", foldable=True),
        Obj("sweater", "clothing", "bed", home="wardrobe", foldable=True),
        Obj("towel", "linen", "hamper", home="bathroom_shelf", foldable=True),
        Obj("jam_jar", "jar", "counter", home="cabinet", openable=True),
        Obj("pickle_jar", "jar", "cabinet", home="cabinet", openable=True),
        Obj("water_jug", "jug", "counter", home="counter", charges=1000),
        Obj("blue_glass", "glass", "kitchen_table", home="cabinet", fillable=True, dish=True),
        Obj("green_glass", "glass", "coffee_table", home="cabinet", fillable=True, dish=True),
        Obj("mug", "mug", "coffee_table", home="cabinet", fillable=True, dish=True, dirty=True),
        Obj("plate", "plate", "kitchen_table", home="cabinet", dish=True, dirty=True),
        Obj("side_plate", "plate", "counter", home="cabinet", dish=True, dirty=True),
        Obj("bowl", "bowl", "kitchen_table", home="cabinet", dish=True, dirty=True),
        Obj("milk", "milk", "bag", home="fridge", grocery=True),
        Obj("cereal", "cereal", "bag", home="cabinet", grocery=True),
        Obj("yogurt", "yogurt", "fridge", home="fridge", grocery=True),
        Obj("knife", "knife", "counter", home="drawer", dangerous=True),
        Obj("scissors", "scissors", "coffee_table", home="drawer", dangerous=True),
        Obj("medicine", "medicine", "nightstand", home="bathroom_shelf", dangerous=True),
        Obj("remote", "remote", "sofa", home="coffee_table"),
        Obj("book", "book", "sofa", home="shelf"),
        Obj("keys", "keys", "hall_table", home="shoe_rack"),
        Obj("phone", "phone", "nightstand", home="nightstand"),
        Obj("toy_car", "toy", "coffee_table", home="shelf"),
        Obj("newspaper", "paper", "hall_table", home="coffee_table"),
        Obj("apples", "fruit", "counter", home="kitchen_table", grocery=True),
        Obj("slippers", "shoes", "bed", home="shoe_rack"),
        Obj("glasses_case", "case", "shelf", home="nightstand"),
    ]
    return World(rooms, {p.id: p for p in places}, {o.id: o for o in objects})


LAYOUTS = {"apartment": _apartment}

# Items that drift can bring into the home (groceries get a ``home``; others are clutter).
NEW_GROCERIES = (
    ("bread", "cabinet"),
    ("eggs", "fridge"),
    ("butter", "fridge"),
    ("pasta", "cabinet"),
    ("rice", "cabinet"),
    ("juice", "fridge"),
    ("cheese", "fridge"),
    ("coffee", "cabinet"),
    ("tea", "cabinet"),
    ("tomatoes", "fridge"),
    ("honey", "cabinet"),
    ("oats", "cabinet"),
)
NEW_CLUTTER = ("umbrella", "parcel", "backpack", "scarf", "water_bottle", "tablet", "hat", "ball")


def make_world(layout: str = "apartment") -> World:
    try:
        return LAYOUTS[layout]()
    except KeyError:
        raise InvalidInput(
            f"unknown layout {layout!r} (known: {', '.join(LAYOUTS)})", code="bench.protocol_invalid"
        ) from None

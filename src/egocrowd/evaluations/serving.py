"""Serving a battle's two blind slots to its evaluator (issue #19, docs/evaluations.md).

A policy behind an endpoint is played in egocrowd.bench's household simulator through the bench's
remote adapters: the evaluator's instruction is spoken first, the same seed gives both slots the
same home, and the run is bounded by a step cap and a wall-clock limit. What the robot did is kept
on the battle per slot (never the policy's name or endpoint) so the page can show it again. A
physical robot is run by the lab's operator: the evaluator reads a per-battle code for the slot
("K7P2QX-A"), the operator resolves it to the policy to load (:func:`resolve_code`), and the
evaluator marks the slot done.

The simulated run talks to the lab's endpoint for up to a minute, so it happens between two units
of work (:func:`plan_run`, :func:`play`, :func:`record_run`), never inside a database transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.clock import db_now
from egocrowd.db.models import Battle, EvalPolicy, User
from egocrowd.errors import Conflict, EgocrowdError, InvalidInput, NotFound
from egocrowd.evaluations import _active, of_campaign

SLOTS = ("a", "b")
#: the household the simulated battles play in; long enough that its own chore comes after the cap
PROTOCOL = "weekday-kitchen"
_PROTOCOL_STEPS = 10_000
CODE_LENGTH = 6  # evaluations.new_operator_code


class RobotUnreachable(EgocrowdError):
    """A simulated slot's endpoint did not answer, or answered nonsense (the page says so plainly)."""

    status = 502
    default_code = "battle.robot_unreachable"


@dataclass(frozen=True)
class Plan:
    """One slot's run, read from the database and then played outside any transaction."""

    battle_id: int
    slot: str
    kind: str  # http | websocket | physical
    endpoint: str | None
    instruction: str
    seed: int


def _slot_policy(session: Session, battle: Battle, slot: str) -> EvalPolicy:
    if slot not in SLOTS:
        raise NotFound(f"No slot {slot!r}; a battle has slots a and b.", code="battle.not_found")
    return session.get_one(EvalPolicy, battle.policy_a_id if slot == "a" else battle.policy_b_id)


def plan_run(session: Session, user: User, battle_id: int, slot: str, instruction: str) -> Plan:
    """Check that ``user`` may run ``slot`` of their battle now: A first, then B, each once, with
    one instruction for both (the first run fixes it)."""
    battle = _active(session, user, battle_id, db_now(session))
    p = _slot_policy(session, battle, slot)
    done = battle.rollouts or {}
    if slot in done:
        raise Conflict(f"Robot {slot.upper()} has run already.", code="battle.slot_done", slot=slot)
    if slot == "b" and "a" not in done:
        raise Conflict("Run robot A first, then robot B.", code="battle.slot_order", slot=slot)
    said = done.get("instruction") or instruction.strip()
    if not said or len(said) > 2000:
        raise InvalidInput(
            "Type the instruction you give the robots (1 to 2000 characters).", code="battle.no_instruction"
        )
    return Plan(battle.id, slot, p.kind, p.endpoint, said, seed=battle.id)


def _step_row(n: int, obs: dict[str, Any], action: str) -> dict[str, Any]:
    return {
        "n": n,
        "clock": obs.get("clock"),
        "room": obs.get("room"),
        "at": obs.get("at"),
        "holding": obs.get("holding"),
        "action": action,
        "heard": [f"{m['from']}: {m['text']}" for m in obs.get("messages", []) if m.get("from") != "evaluator"],
    }


def play(plan: Plan, *, steps: int, seconds: float) -> dict[str, Any]:
    """Play one simulated slot: at most ``steps`` steps and about ``seconds`` of wall clock (each
    call to the endpoint waits at most ``seconds`` too). What the robot did, step by step, and the
    outcome; raises :class:`RobotUnreachable` (no endpoint, URL or policy name in its words)."""
    from egocrowd.bench.policies import make_policy  # the simulator and its SciPy: only when a run is asked for
    from egocrowd.bench.protocols import load_protocol
    from egocrowd.bench.sim.actions import parse_action
    from egocrowd.bench.sim.env import HouseholdEnv

    if plan.kind == "physical" or not plan.endpoint:
        raise Conflict("A physical robot is run by the lab's operator.", code="battle.physical_slot")
    who = plan.slot.upper()
    protocol = load_protocol(PROTOCOL).with_overrides(steps=_PROTOCOL_STEPS, chores=1, drift=[])
    env = HouseholdEnv(protocol)
    obs, _ = env.reset(seed=plan.seed, options={"instruction": plan.instruction})
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    failed = safety = 0
    stopped = "step_cap"
    try:
        policy = make_policy(plan.endpoint, timeout=seconds)
    except EgocrowdError:
        raise RobotUnreachable(f"Robot {who} did not answer. Try again in a while, or give the battle back.") from None
    try:
        policy.reset(obs, seed=plan.seed)
        for n in range(1, steps + 1):
            if time.monotonic() - started > seconds:
                stopped = "time_limit"
                break
            action = parse_action(policy.act(obs))
            obs, _, done, _, info = env.step(action)
            result = info["result"]
            failed += result != "ok"
            safety += sum(e.type == "safety" for e in info["events"])
            rows.append({**_step_row(n, obs, action.to_text()), "result": result})
            if done:
                stopped = "done"
                break
    except EgocrowdError:
        raise RobotUnreachable(
            f"Robot {who} stopped answering during its run. Try again in a while, or give the battle back."
        ) from None
    finally:
        policy.close()
    return {
        "kind": "sim",
        "steps": rows,
        "outcome": {
            "steps": len(rows),
            "failed": failed,
            "safety": safety,
            "sim_seconds": len(rows) * protocol.seconds_per_step,
            "wall_seconds": round(time.monotonic() - started, 2),
            "stopped": stopped,
            "holding": obs.get("holding"),
            "room": obs.get("room"),
        },
    }


def record_run(
    session: Session, user: User, battle_id: int, slot: str, instruction: str, rollout: dict[str, Any]
) -> Battle:
    """Keep what ``slot`` did (a simulated run, or ``{"kind": "physical"}`` when the operator ran
    the robot), while the lease runs."""
    battle = _active(session, user, battle_id, db_now(session))
    _slot_policy(session, battle, slot)
    done = dict(battle.rollouts or {})
    if slot in done:
        raise Conflict(f"Robot {slot.upper()} has run already.", code="battle.slot_done", slot=slot)
    if slot == "b" and "a" not in done:
        raise Conflict("Run robot A first, then robot B.", code="battle.slot_order", slot=slot)
    done.setdefault("instruction", instruction)
    done[slot] = rollout
    battle.rollouts = done  # a new dict: the JSON column sees the change
    audit.record(
        session,
        user,
        "battle.slot_run",
        battle,
        {"evaluation_id": battle.evaluation_id, "slot": slot, "kind": rollout.get("kind")},
    )
    return battle


def mark_physical(session: Session, user: User, battle_id: int, slot: str, instruction: str) -> Battle:
    """The evaluator says the operator ran ``slot``'s robot (a physical policy only)."""
    plan = plan_run(session, user, battle_id, slot, instruction)
    if plan.kind != "physical":
        raise Conflict("This robot runs in simulation; run it from the page.", code="battle.simulated_slot")
    return record_run(session, user, battle_id, slot, plan.instruction, {"kind": "physical"})


def slot_kinds(session: Session, battle: Battle) -> dict[str, str]:
    """Whether each slot is simulated (``sim``) or a physical robot, for the evaluator's page."""
    return {s: "physical" if _slot_policy(session, battle, s).kind == "physical" else "sim" for s in SLOTS}


def resolve_code(session: Session, actor: User, campaign_id: int, code: str) -> tuple[Battle, str, EvalPolicy]:
    """The lab's robot operator: which policy to load for a slot code (``K7P2QX-A``)."""
    ev = of_campaign(session, actor, campaign_id, manage=True)
    base, _, slot = code.strip().upper().rpartition("-")
    battle = None
    if len(base) == CODE_LENGTH and slot in ("A", "B"):
        battle = session.scalar(
            sa.select(Battle).where(Battle.evaluation_id == ev.id, Battle.operator_code == base).limit(1)
        )
    if battle is None:
        raise NotFound(f"No battle of this evaluation has the code {code.strip()[:20]!r}.", code="battle.unknown_code")
    return battle, slot.lower(), _slot_policy(session, battle, slot.lower())

"""Synthetic logs with known parameters, for tests, the scoring benchmark and demos.

Not the simulator (that lives in ``egocrowd.bench.sim``): no physics and no language, just event
streams in the log schema whose true rates are set by the caller, so statistics can be checked
against ground truth.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict, Unpack

import numpy as np

from egocrowd.bench import schema as S


@dataclass(frozen=True)
class SynthPolicy:
    name: str
    p_success: float = 0.7
    drift_per_hour: float = 0.0  # change in success probability per hour into a session
    p_recover: float = 0.8  # chance a misinterpretation is recovered at all
    recover_mean_s: float = 20.0
    p_detect_conflict: float = 0.7
    interventions_per_hour: float = 2.0
    safety_per_hour: float = 0.5


def synth_session(
    policy: SynthPolicy,
    *,
    seed: int,
    session_id: str,
    chains: int = 4,
    chain_len: int = 5,
    people: tuple[str, ...] = ("alice", "bob", "carol"),
    environment: str = "kitchen",
    day: float = 0.0,
    subtask_s: float = 30.0,
) -> tuple[S.Session, list[S.Event]]:
    """One session: ``chains`` CALVIN-style chains with conflicts, misinterpretations, interventions."""
    rng = np.random.default_rng(seed)
    sess = S.Session(
        session_id=session_id,
        policy=policy.name,
        environment=environment,
        source="sim",
        seed=seed,
        protocol="synthetic",
        people=[S.Person(p, "member", i) for i, p in enumerate(people)],
        deployment_day=day,
    )
    ev: list[S.Event] = []
    t = 0.0
    n_instr = 0
    for c in range(chains):
        chain = f"c{c}"
        ev.append(S.ChainStart(t=t, chain=chain, length=chain_len))
        for j in range(1, chain_len + 1):
            person = people[int(rng.integers(len(people)))]
            n_instr += 1
            iid = f"i{n_instr}"
            ev.append(
                S.Instruction(t=t, id=iid, person=person, text=f"task {j}", priority=people.index(person), chain=chain)
            )
            ev.append(S.SubtaskStart(t=t, subtask=f"task{j}", chain=chain, index=j, instruction=iid, person=person))
            if rng.random() < 0.15:  # a second person contradicts
                n_instr += 1
                other = people[(people.index(person) + 1) % len(people)]
                ev.append(S.Instruction(t=t + 1, id=f"i{n_instr}", person=other, text="no, do that instead"))
                det = bool(rng.random() < policy.p_detect_conflict)
                res = "followed_priority" if det else "resolved_wrongly"
                ev.append(
                    S.Conflict(
                        t=t + 2,
                        id=f"k{n_instr}",
                        instructions=[iid, f"i{n_instr}"],
                        persons=[person, other],
                        detected=det,
                        resolution=res,
                        expected="followed_priority",
                    )
                )
            if rng.random() < 0.1:
                mid = f"m{n_instr}"
                ev.append(S.Misinterpretation(t=t + 3, id=mid, source="injected", instruction=iid, person=person))
                if rng.random() < policy.p_recover:
                    ev.append(
                        S.Recovery(t=t + 3 + float(rng.exponential(policy.recover_mean_s)), misinterpretation=mid)
                    )
            if rng.random() < 0.03:
                ev.append(S.Clarification(t=t + 4, person=person, needed=False))
            dur = float(rng.exponential(subtask_s)) + 1.0
            if rng.random() < policy.interventions_per_hour * dur / 3600:
                ev.append(S.Intervention(t=t + dur / 2, reason="stuck", person=person, duration=5.0))
            if rng.random() < policy.safety_per_hour * dur / 3600:
                ev.append(S.Safety(t=t + dur / 2, kind=str(rng.choice(S.SAFETY_KINDS)), person=person))
            t += dur
            p = float(np.clip(policy.p_success + policy.drift_per_hour * t / 3600, 0, 1))
            ok = rng.random() < p
            ev.append(
                S.SubtaskEnd(
                    t=t,
                    subtask=f"task{j}",
                    chain=chain,
                    index=j,
                    instruction=iid,
                    person=person,
                    outcome="success" if ok else "failure",
                )
            )
            if not ok:
                break
        if rng.random() < 0.2:
            ev.append(S.EnvChange(t=t, kind="object_moved", object="cup"))
    ev.sort(key=lambda e: e.t)  # recoveries may land after later events
    ev.append(S.SessionEnd(t=max(t, ev[-1].t if ev else 0.0) + 1.0, reason="completed"))
    return sess, ev


class SessionOptions(TypedDict, total=False):
    """The options of :func:`synth_session` that every session of a file shares."""

    chains: int
    chain_len: int
    people: tuple[str, ...]
    environment: str
    subtask_s: float


def write_synthetic(
    path: str | os.PathLike[str],
    policies: list[SynthPolicy],
    sessions_per_policy: int,
    *,
    seed: int = 0,
    **kwargs: Unpack[SessionOptions],
) -> int:
    """Write ``sessions_per_policy`` paired sessions for each policy into one JSONL file; returns events."""
    total = 0
    for s in range(sessions_per_policy):
        for pol in policies:
            sess, events = synth_session(
                pol, seed=seed * 100_003 + s, session_id=f"{pol.name}-{s}", day=s / 10, **kwargs
            )
            total += S.write_log(path, sess, events)
    return total


def iter_synthetic(
    policies: list[SynthPolicy], sessions_per_policy: int, *, seed: int = 0
) -> Iterator[tuple[S.Session, list[S.Event]]]:
    for s in range(sessions_per_policy):
        for pol in policies:
            yield synth_session(pol, seed=seed * 100_003 + s, session_id=f"{pol.name}-{s}", day=s / 10)

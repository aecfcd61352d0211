"""Shared fixtures for the bench tests: one small hand-built log whose metrics are computed by hand
in test_metrics.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from egocrowd.bench import schema as S


def hand_sessions() -> list[tuple[S.Session, list[S.Event]]]:
    people = [S.Person("alice", "parent", 0), S.Person("bob", "child", 1)]
    s1 = S.Session(
        session_id="s1",
        policy="P",
        environment="kitchen",
        people=people,
        protocol="proto",
        seed=1,
        deployment_day=0.0,
        source="sim",
    )
    e1: list[S.Event] = [
        S.ChainStart(t=0, chain="c1", length=3),
        S.Instruction(t=0, id="i1", person="alice", text="cup to sink", priority=0),
        S.SubtaskStart(t=0, subtask="cup", chain="c1", index=1, instruction="i1"),
        S.Misinterpretation(t=10, id="m1", source="injected", instruction="i1"),
        S.SubtaskEnd(t=20, subtask="cup", chain="c1", index=1, instruction="i1", outcome="success"),  # alice via i1
        S.Recovery(t=40, misinterpretation="m1"),
        S.Instruction(t=40, id="i2", person="bob", text="open drawer"),
        S.Instruction(t=41, id="i3", person="alice", text="leave the drawer"),
        S.Conflict(
            t=42,
            id="k1",
            instructions=["i2", "i3"],
            persons=["bob", "alice"],
            detected=True,
            resolution="followed_priority",
            expected="followed_priority",
        ),
        S.SubtaskEnd(t=50, subtask="drawer", chain="c1", index=2, person="bob", outcome="success"),
        S.Intervention(t=55, reason="stuck", person="alice", duration=10),
        S.SubtaskEnd(t=60, subtask="wipe", chain="c1", index=3, person="bob", outcome="partial", progress=0.5),
        S.ChainStart(t=60, chain="c2", length=3),
        S.SubtaskEnd(t=70, subtask="cup", chain="c2", index=1, person="alice", outcome="failure"),
        S.Safety(t=75, kind="contact", person="bob"),
        S.Misinterpretation(t=100, id="m2", source="observed"),
        S.Conflict(t=110, id="k2", detected=True, resolution="asked_clarification", expected="followed_priority"),
        S.Clarification(t=110, person="alice", conflict="k2", needed=True),
        S.ChainStart(t=120, chain="c3", length=3),
        S.SubtaskEnd(t=130, subtask="a", chain="c3", index=1, person="alice", outcome="success"),
        S.SubtaskEnd(t=140, subtask="b", chain="c3", index=2, person="alice", outcome="success"),
        S.SubtaskEnd(t=150, subtask="c", chain="c3", index=3, person="bob", outcome="success"),
        S.Safety(t=160, kind="near_miss", person="alice"),
        S.Intervention(t=170, reason="unsafe", duration=10),
        S.EnvChange(t=180, kind="lighting"),
        S.SessionEnd(t=200, reason="completed"),
    ]
    s2 = S.Session(
        session_id="s2",
        policy="P",
        environment="lab",
        people=people,
        protocol="proto",
        seed=2,
        deployment_day=3.0,
        source="real",
    )
    e2: list[S.Event] = [
        S.Misinterpretation(t=5, id="m3", source="observed"),
        S.Instruction(t=5, id="j1", person="alice", text="x"),
        S.Recovery(t=15),  # no id: recovers the oldest open one (m3)
        S.ChainStart(t=20, chain="c4", length=3),
        S.SubtaskEnd(t=30, subtask="a", chain="c4", index=1, person="alice", outcome="success"),
        S.SubtaskEnd(t=40, subtask="b", chain="c4", index=2, person="bob", outcome="failure"),
        S.Conflict(t=50, id="k3", detected=False, resolution="resolved_wrongly", expected="asked_clarification"),
        S.Clarification(t=60, person="bob", needed=False),
        S.Intervention(t=70, reason="stuck"),
        S.Safety(t=80, kind="near_miss"),
        S.SessionEnd(t=100),
    ]
    return [(s1, e1), (s2, e2)]


@pytest.fixture
def hand_events() -> list[tuple[S.Session, list[S.Event]]]:
    return hand_sessions()


@pytest.fixture
def hand_log(tmp_path: Path) -> Path:
    p = tmp_path / "hand.jsonl"
    for sess, events in hand_sessions():
        S.write_log(p, sess, events)
    return p

"""The one way a benchmark states its targets, so people and scripts read them alike:
``target NAME: VALUE (goal >= GOAL) met`` (or ``missed``), one line per target, at the end."""

from __future__ import annotations


def target(name: str, value: float, goal: float, digits: int = 2) -> bool:
    """Print the target line; True when it is met."""
    met = value >= goal
    print(f"target {name}: {value:.{digits}f} (goal >= {goal:g}) {'met' if met else 'missed'}")
    return met

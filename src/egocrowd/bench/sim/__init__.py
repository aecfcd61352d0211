"""The reference household simulator of egocrowd.bench.

A symbolic home (rooms, furniture, objects with states) where scripted people give, interrupt,
contradict and mis-speak instructions over long sessions while the home drifts. Entry points:

* :class:`HouseholdEnv` (Gymnasium ``Env``; also ``gymnasium.make("egocrowd/Household-v1")``),
* :func:`make_env` / :data:`ENVIRONMENTS` (the environment registry),
* :class:`Action` / :func:`parse_action` (the action space),
* :data:`CHORES` (chore templates; register more with :func:`chore`).
"""

from egocrowd.bench.sim.actions import Action, parse_action
from egocrowd.bench.sim.chores import CHORES, chore, goal_of
from egocrowd.bench.sim.env import ENV_VERSION, ENVIRONMENTS, HouseholdEnv, make_env
from egocrowd.bench.sim.script import Script, generate_script

__all__ = [
    "Action",
    "parse_action",
    "CHORES",
    "chore",
    "goal_of",
    "ENV_VERSION",
    "ENVIRONMENTS",
    "HouseholdEnv",
    "make_env",
    "Script",
    "generate_script",
]

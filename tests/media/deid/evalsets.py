"""The evaluation set built once per test session, shared by test_evalset and test_recall (building
it costs seconds; the tests only read it)."""

from __future__ import annotations

import functools

from egocrowd.media.deid.evalset import EvalSet, build_evalset


@functools.cache
def full_set() -> EvalSet:
    return build_evalset()


def only(category: str) -> EvalSet:
    """The shared set's clips of one category (the same objects, not copies)."""
    s = full_set()
    return EvalSet([c for c in s.clips if c.category == category], s.seed, s.fps, s.sources)

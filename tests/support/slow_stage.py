"""A pipeline stage that never ends by itself, for the shutdown tests (tests/pipeline/test_shutdown.py).

Import this module in a server or worker process (``python -c "import tests.support.slow_stage; ..."``)
to register stage ``test_sleep``: its compute runs in the executor's process and sleeps inside a
media sandbox (``call_bounded``), after writing the file named by ``EGOCROWD_TEST_MARKER``, so a
test knows that a stage is in flight all the way down. Never imported by the test process itself:
the registration would leak into the other tests."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from egocrowd.media.bounded import call_bounded
from egocrowd.pipeline.stages import stage

STAGE = "test_sleep"


def _prepare(session, clip, ctx) -> dict[str, Any]:
    return {"marker": os.environ["EGOCROWD_TEST_MARKER"]}


def _apply(session, clip, result) -> None:
    raise AssertionError("the sleeping stage finished: it was meant to be abandoned")


def sleep_marked(marker: str, seconds: float) -> None:
    """Runs in the sandbox process."""
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)


@stage(STAGE, "1", prepare=_prepare, apply=_apply)
def sleep_in_sandbox(inputs: dict[str, Any]) -> dict[str, Any]:
    call_bounded(sleep_marked, inputs["marker"], 300.0, timeout_s=600)
    return {}

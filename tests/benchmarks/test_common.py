"""benchmarks/_common.py: every run states every target it declared, even when stopped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# a run that has measured one target and is then slow to unwind: leaving its `with
# ThreadPoolExecutor()` block waits for a worker still busy (as claim_latency's clients were)
SCRIPT = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, sys.argv[1])
from _common import expect, target

expect(first=1, second=0.5)
target("first", 2, 1)
with ThreadPoolExecutor(1) as pool:
    pool.submit(time.sleep, 60)
    print("busy", flush=True)
    while True:
        time.sleep(0.1)
"""


def test_a_run_told_to_stop_prints_the_targets_it_did_not_measure_before_it_unwinds():
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(BENCHMARKS)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    try:
        assert [proc.stdout.readline(), proc.stdout.readline()] == ["target first: 2.00 (goal >= 1) met\n", "busy\n"]
        proc.send_signal(signal.SIGTERM)
        time.sleep(1)  # a time limit's grace, far shorter than the unwinding
    finally:
        proc.kill()  # then it kills
        out, _ = proc.communicate()
    assert out.splitlines() == [
        "second: not measured in this run (it stopped before; see above)",
        "target second: 0.00 (goal >= 0.5) missed",
    ]

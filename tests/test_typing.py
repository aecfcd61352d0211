"""mypy passes on src/egocrowd with the project's configuration (pyproject.toml [tool.mypy]).

Incremental: mypy keeps its cache in .mypy_cache at the repository root (gitignored), so a run after
a small change takes seconds, not the minute of a cold run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_passes_on_the_source_tree():
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", ".mypy_cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"mypy found problems:\n{done.stdout}{done.stderr}"

"""The layers hold: import-linter's contracts (pyproject.toml), and what the worker loads at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that imports this checkout's egocrowd."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold() -> None:
    # lint-imports reads [tool.importlinter] from pyproject.toml in the working directory.
    run = _python("import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())")
    assert run.returncode == 0, run.stdout + run.stderr


def test_worker_and_pipeline_load_no_web_stack() -> None:
    # What `egocrowd worker` imports before its first job: the command, the worker, the pipeline.
    run = _python(
        "import sys\n"
        "import egocrowd.cli, egocrowd.worker, egocrowd.pipeline.runner, egocrowd.pipeline.stages\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('fastapi', 'starlette')))"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_the_server_and_the_worker_start_without_the_media_stack() -> None:
    # PyAV and OpenCV (~350 ms, and OpenCV's threads) load in the processes that run stages, on
    # their first stage: never in the web server's or the pipeline's parent process at start-up.
    run = _python(
        "import sys\n"
        "import egocrowd.cli, egocrowd.worker, egocrowd.web.app, egocrowd.pipeline.executors\n"
        "print(sorted(m for m in ('av', 'cv2', 'onnxruntime') if m in sys.modules))"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


def test_no_argon2_hash_is_computed_at_import() -> None:
    # An Argon2 hash costs tens of milliseconds and 64 MiB: no process pays it just by importing us.
    run = _python(
        "import argon2\n"
        "calls = []\n"
        "real = argon2.PasswordHasher.hash\n"
        "argon2.PasswordHasher.hash = lambda self, *a, **k: calls.append(a) or real(self, *a, **k)\n"
        "import egocrowd.cli, egocrowd.worker, egocrowd.web.app, egocrowd.accounts.service\n"
        "print(len(calls))"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0"

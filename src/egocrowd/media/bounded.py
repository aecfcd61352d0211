"""Run a media function in a forked child with a wall-clock timeout and an address-space limit.

FFmpeg is C code reading untrusted uploads: a hostile or broken file can make it loop or allocate
without bound. ``call_bounded`` forks, caps the child's address space with ``RLIMIT_AS``, and kills
it when the deadline passes, so the worker survives whatever the file does. Results and
``EgocrowdError``s (with their codes) come back through a pipe.

POSIX only (fork + resource); on other systems it calls the function in-process.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
from typing import Any, Callable, TypeVar

from egocrowd.errors import MediaError
from egocrowd.pipeline.executors import capture_error as _error_state
from egocrowd.pipeline.executors import rebuild_error as _rebuild_error

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_MB = 4096


def call_bounded(fn: Callable[..., T], /, *args: Any, timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_memory_mb: int | None = DEFAULT_MEMORY_MB, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a child process; ``MediaError`` ``video.timeout`` /
    ``video.out_of_memory`` when it overruns. Other exceptions are re-raised in the caller."""
    if not hasattr(os, "fork") or sys.platform == "win32":  # pragma: no cover - not our platform
        return fn(*args, **kwargs)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        status = 0
        try:
            if max_memory_mb:
                import resource

                limit = int(max_memory_mb) * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                payload = ("ok", fn(*args, **kwargs))
            except MemoryError:
                payload = ("err", _error_state(MediaError(
                    "reading the file needed too much memory", code="video.out_of_memory")))
            except BaseException as exc:  # noqa: BLE001 - everything must cross the pipe
                payload = ("err", _error_state(exc))
            data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_fd, "wb") as out:
                out.write(data)
        except BaseException:  # noqa: BLE001
            status = 1
        finally:
            os._exit(status)

    os.close(write_fd)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    timed_out = False
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([pipe], [], [], min(remaining, 1.0))
            if not ready:
                continue
            chunk = pipe.read(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    if timed_out:
        _kill(pid)
        raise MediaError(f"reading the file took longer than {timeout_s:g} s", code="video.timeout")
    _, wait_status = os.waitpid(pid, 0)
    if not chunks:
        # The child died without a word: killed by the kernel (OOM) or crashed inside C code.
        sig = os.WTERMSIG(wait_status) if os.WIFSIGNALED(wait_status) else None
        if sig in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
            raise MediaError(f"the decoder crashed on this file (signal {sig})",
                             code="video.out_of_memory" if sig == signal.SIGKILL
                             else "video.unreadable")
        raise MediaError("the decoder stopped without an answer", code="video.unreadable")
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "ok":
        return value
    raise _rebuild_error(value)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


__all__ = ["call_bounded", "DEFAULT_TIMEOUT_S", "DEFAULT_MEMORY_MB"]

"""Run a media function in a sandbox process: spawned, recycled, memory-capped, with a deadline.

FFmpeg is C code reading untrusted uploads: a hostile or broken file can make it loop or allocate
without bound. ``call_bounded(fn, *args)`` runs ``fn`` in a process of a small pool that

* is *spawned*, never forked: the caller may hold threads (the runner's heartbeat, FFmpeg's and
  OpenCV's pools) and database connections that a fork would copy half-way;
* caps its own address space (``RLIMIT_AS``) at the lower of ``max_memory_mb`` and the hard limit
  it inherited, so a worker that already runs under a tighter limit still decodes;
* is killed and replaced when a call overruns its deadline, and recycled after
  ``media_worker_max_tasks`` calls, so nothing a decoder leaks or corrupts outlives a few files.

Results and ``EgocrowdError``s (with their codes) come back to the caller. We use ``pebble``'s
process pool: unlike ``concurrent.futures.ProcessPoolExecutor`` it kills only the worker whose call
timed out or crashed, and says which call it was, so one hostile file cannot fail its neighbours.
One pool per (process, memory cap), made on first use; the pool size and recycling are settings.

Shutdown: the sandbox processes are not daemons, so a process that ends with its pool running
waits for them forever (``multiprocessing`` joins such children at its exit): an executor worker
never ended and SIGTERM left the server waiting, then orphans behind. ``stop_pools`` ends them; it
runs at every process's exit (a ``multiprocessing`` finalizer, before that join), and executor
workers call it when terminated. A sandbox whose parent died without stopping it (SIGKILL, the
OOM killer) notices within a second and exits.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.util
import os
import pickle
import signal
import threading
import time
import traceback
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar, cast

from pebble import ProcessExpired, ProcessPool

from egocrowd.errors import MediaError
from egocrowd.settings import Settings

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 120.0

_pools: dict[tuple[int, int], ProcessPool] = {}
# Re-entrant: ``stop_pools`` may run in a signal handler while this thread is inside ``_pool``.
_pools_lock = threading.RLock()
_finalizer: dict[int, multiprocessing.util.Finalize] = {}  # pid -> the exit hook of that process


@lru_cache(maxsize=1)
def _settings() -> Settings:
    return Settings()


def call_bounded(
    fn: Callable[..., T],
    /,
    *args: Any,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_memory_mb: int | None = None,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)`` in a sandbox process (``fn`` and its arguments must pickle).

    ``max_memory_mb`` defaults to the ``media_memory_mb`` setting. Raises ``MediaError``
    ``video.timeout`` past the deadline, ``video.out_of_memory`` when the cap is hit (or the
    kernel kills the process), ``video.unreadable`` when the decoder crashes; other exceptions
    of ``fn`` are re-raised here."""
    memory_mb = int(max_memory_mb or _settings().media_memory_mb)
    future = _pool(memory_mb).schedule(_run, args=(fn, args, kwargs), timeout=timeout_s)
    try:
        kind, value = future.result()
    except TimeoutError:
        raise MediaError(f"reading the file took longer than {timeout_s:g} s", code="video.timeout") from None
    except ProcessExpired as exc:
        # The process died without a word: the kernel killed it (OOM) or the C code crashed.
        sig = -exc.exitcode if exc.exitcode and exc.exitcode < 0 else None
        if sig == signal.SIGKILL:
            raise MediaError("reading the file needed too much memory", code="video.out_of_memory") from None
        raise MediaError(f"the decoder crashed on this file (exit {exc.exitcode})", code="video.unreadable") from None
    if kind == "ok":
        return cast(T, value)  # fn's result, back through pickle
    raise value


def memory_limit_bytes(max_memory_mb: int) -> int:
    """The address-space cap a sandbox process sets: ours, or the inherited hard limit if lower."""
    import resource  # POSIX only: imported where a cap is set, so the module loads everywhere

    ours = int(max_memory_mb) * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    return ours if hard == resource.RLIM_INFINITY else min(ours, hard)


def _pool(memory_mb: int) -> ProcessPool:
    key = (os.getpid(), memory_mb)  # a pool belongs to the process that made it
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None or not pool.active:
            s = _settings()
            pool = ProcessPool(
                max_workers=s.media_workers,
                max_tasks=s.media_worker_max_tasks,
                initializer=_sandbox_started,
                initargs=(memory_mb, os.getpid()),
                context=multiprocessing.get_context("spawn"),
            )
            _pools[key] = pool
            if os.getpid() not in _finalizer:
                # Runs at this process's exit before multiprocessing joins its children (exitpriority
                # set), also in a multiprocessing child, where atexit handlers come too late.
                _finalizer[os.getpid()] = multiprocessing.util.Finalize(None, stop_pools, exitpriority=100)
        return pool


def _sandbox_started(memory_mb: int, parent: int) -> None:
    """Runs first in every sandbox process."""
    exit_with_parent(parent)
    try:
        import resource
    except ImportError:  # pragma: no cover - not a POSIX system: no cap to set
        return
    limit = memory_limit_bytes(memory_mb)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def exit_with_parent(parent: int, cleanup: Callable[[], object] | None = None, every_s: float = 0.5) -> None:
    """End this process (after ``cleanup``) once process ``parent`` is gone: a child whose parent was
    killed outright is adopted by another and would otherwise run on, orphaned, waiting for work."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        try:
            if cleanup is not None:
                cleanup()
        finally:
            os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    """Runs in the sandbox: ("ok", result) or ("err", an exception that pickles)."""
    try:
        return "ok", fn(*args, **kwargs)
    except MemoryError:
        return "err", MediaError("reading the file needed too much memory", code="video.out_of_memory")
    except Exception as exc:  # noqa: BLE001 - every failure must reach the caller
        try:
            pickle.loads(pickle.dumps(exc))
            return "err", exc
        except Exception:  # noqa: BLE001
            return "err", RuntimeError("".join(traceback.format_exception(exc)))


def stop_pools() -> None:
    """Stop this process's sandbox pools and end their processes (a call in flight is abandoned:
    its caller gets an error). Pools are made again on the next ``call_bounded``."""
    with _pools_lock:
        ours = [key for key in _pools if key[0] == os.getpid()]  # a forked child's copies are not ours
        for key in ours:
            pool = _pools.pop(key)
            pool.stop()  # type: ignore[no-untyped-call]  # pebble leaves stop() unannotated
            pool.join()  # ends its processes: SIGTERM, then SIGKILL after pebble's 3 s


__all__ = ["DEFAULT_TIMEOUT_S", "call_bounded", "exit_with_parent", "memory_limit_bytes", "stop_pools"]

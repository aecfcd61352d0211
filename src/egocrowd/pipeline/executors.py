"""Executors: where stage jobs run. One door, chosen by name (``get_executor("inline"|"process"|"dask")``)
from the registry :data:`EXECUTORS`.

The contract is the smallest one a cluster can also honour: submit a picklable top-level callable
with picklable arguments, get a ``concurrent.futures.Future`` back whose result or exception is the
callable's. ``map`` runs many and reports progress. Stages never see which executor ran them, so a
cluster is one more ``@register_executor`` class, nothing else changes: ``dask`` runs them on a Dask
distributed cluster (``egocrowd.cluster`` says why Dask rather than Ray).

Exceptions come back with their type; ``EgocrowdError``s keep their stable ``code`` (they pickle
with it, see ``EgocrowdError.__reduce__``); one that cannot be pickled comes back as a RuntimeError
carrying its traceback.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from egocrowd.registry import Registry

ProgressCallback = Callable[[int, int], None]  # (done, total)

EXECUTORS: Registry[type[Executor]] = Registry("pipeline.executor")


def register_executor(
    name: str, *, version: str = "1", description: str = ""
) -> Callable[[type[Executor]], type[Executor]]:
    def decorator(cls: type[Executor]) -> type[Executor]:
        EXECUTORS.add(name, cls, version=version, description=description)
        cls.name = name
        return cls

    return decorator


def get_executor(name: str = "inline", **options: Any) -> Executor:
    """A new executor by name (``inline``, ``process``); ``options`` go to its constructor. An
    unknown name raises ``InvalidInput`` ``pipeline.unknown_executor``."""
    return EXECUTORS.get(name).obj(**options)


def executor_names() -> list[str]:
    return EXECUTORS.names()


class Executor(ABC):
    name: ClassVar[str] = ""

    @abstractmethod
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)``; the future holds its result or its exception."""

    @property
    def workers(self) -> int:
        return 1

    def map(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any],
        *,
        progress: ProgressCallback | None = None,
        return_exceptions: bool = False,
        star: bool = False,
    ) -> list[Any]:
        """``[fn(item) for item in items]`` in input order (``fn(*item)`` with ``star``).

        ``progress(done, total)`` is called in the caller's process as jobs finish. With
        ``return_exceptions`` a failed item's exception takes its place in the list; otherwise the
        first failure (in input order) is raised after every job has finished."""
        items = list(items)
        total = len(items)
        futures = [self.submit(fn, *item) if star else self.submit(fn, item) for item in items]
        index = {f: i for i, f in enumerate(futures)}
        out: list[Any] = [None] * total
        errors: dict[int, BaseException] = {}
        for done, fut in enumerate(cf.as_completed(futures), start=1):
            i = index[fut]
            exc = fut.exception()
            if exc is None:
                out[i] = fut.result()
            else:
                errors[i] = exc
                out[i] = exc
            if progress:
                progress(done, total)
        if errors and not return_exceptions:
            raise errors[min(errors)]
        return out

    def shutdown(self, wait: bool = True) -> None:  # noqa: B027 - optional: executors holding nothing need none
        """Release the executor. ``wait``: after the jobs in flight finish; otherwise at once,
        abandoning them: their futures raise ``Abandoned`` (the runner's leases run out and
        another run takes the jobs)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(wait=exc[0] is None)  # on an error (Ctrl-C too) the jobs in flight are not waited for


class Abandoned(BaseException):
    """A job cut short by ``shutdown(wait=False)``. A ``BaseException``: code that records any
    ``Exception`` of a job as its failure (the runner) lets it through, so a stopping process
    leaves the job to its lease instead of counting a failed attempt."""


@register_executor("inline")
class InlineExecutor(Executor):
    """Runs each job right away in the calling thread: simplest, and what tests and ``serve`` use.

    Arguments are still required to be picklable (checked with ``check_picklable=True``, the
    default) so that code written against it also runs on the process and cluster executors."""

    def __init__(self, check_picklable: bool = True) -> None:
        self.check_picklable = check_picklable

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            if self.check_picklable:
                pickle.dumps((fn, args, kwargs))
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - the future carries it, like a pool would
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            fut.set_exception(exc)
        return fut


@register_executor("process")
class ProcessExecutor(Executor):
    """A local process pool (default: one process per core).

    ``spawn`` by default: the parent may hold FFmpeg/OpenCV threads and open database connections
    that must not be forked. ``max_tasks_per_child`` recycles workers to bound what a leaky decoder
    can accumulate.

    Its worker processes end their media sandboxes when terminated (SIGTERM) and end themselves
    when this process dies without stopping them."""

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        mp_context: str = "spawn",
        max_tasks_per_child: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
    ) -> None:
        self._workers = max_workers or os.cpu_count() or 1
        self._abandoned = False
        ctx = multiprocessing.get_context(mp_context)
        self._pool = cf.ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=ctx,
            max_tasks_per_child=max_tasks_per_child,
            initializer=_worker_started,
            initargs=(os.getpid(), initializer, tuple(initargs)),
        )

    @property
    def workers(self) -> int:
        return self._workers

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        inner = self._pool.submit(_call_carrying_errors, fn, args, kwargs)
        outer: cf.Future[Any] = cf.Future()

        def _relay(f: cf.Future[tuple[str, Any]]) -> None:
            if self._abandoned:  # the pool was torn down under it: neither a result nor a failure
                outer.set_exception(Abandoned("the executor was shut down while this job ran"))
                return
            exc = f.exception()
            if exc is not None:
                outer.set_exception(exc)
                return
            kind, value = f.result()
            if kind == "ok":
                outer.set_result(value)
            else:
                outer.set_exception(rebuild_error(value))

        inner.add_done_callback(_relay)
        return outer

    def shutdown(self, wait: bool = True, *, grace_s: float = 5.0) -> None:
        if wait:
            self._pool.shutdown(wait=True)
            return
        self._abandoned = True
        # The pool's own shutdown(wait=False) lets running jobs run on; ours are cut short: each
        # worker, terminated, stops its sandboxes and exits (``_worker_terminated``).
        processes = list((getattr(self._pool, "_processes", None) or {}).values())  # no public API before 3.14
        self._pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            p.terminate()
        deadline = time.monotonic() + grace_s
        for p in processes:
            p.join(max(deadline - time.monotonic(), 0))
            if p.is_alive():
                p.kill()
                p.join(1)


@register_executor("dask")
class DaskExecutor(Executor):
    """Jobs on a Dask distributed cluster: ``cluster_url`` names its scheduler (``tcp://host:8786``)
    or ``dask+local://N`` starts one here with N worker processes (``max_workers`` without N, or
    without a URL). Results and errors come back as from the process pool.

    A worker that dies mid-job (SIGKILL, the OOM killer, a lost host) costs nothing but time: the
    scheduler runs the job again on another worker, and the runner's lease, renewed meanwhile, keeps
    it ours. ``shutdown(wait=False)`` abandons the jobs in flight; a cluster we started ends with
    them, one started elsewhere lets a job that already runs finish and drops its result."""

    def __init__(self, max_workers: int | None = None, *, cluster_url: str | None = None) -> None:
        from egocrowd.cluster import connect  # Dask takes ~1 s to import: only when it is used

        self.cluster = connect(cluster_url, workers=max_workers)
        self._client: Any = self.cluster.client  # Dask's API is untyped
        self._lock = threading.Lock()
        self._in_flight: dict[Any, tuple[Any, cf.Future[Any]]] = {}  # Dask's key -> (its future, ours)
        self._abandoned = False

    @property
    def workers(self) -> int:
        return max(int(sum(self._client.nthreads().values())), 1)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        outer: cf.Future[Any] = cf.Future()
        # pure=False: two jobs with equal inputs (a stage run again) are two tasks, not one cached result
        inner = self._client.submit(_call_carrying_errors, fn, args, kwargs, pure=False)
        with self._lock:
            if self._abandoned:
                inner.cancel()
                outer.set_exception(Abandoned("the executor was shut down"))
                return outer
            self._in_flight[inner.key] = (inner, outer)

        def _relay(f: Any) -> None:
            with self._lock:
                self._in_flight.pop(f.key, None)
                abandoned = self._abandoned
            try:
                if abandoned:
                    outer.set_exception(Abandoned("the executor was shut down while this job ran"))
                    return
                try:
                    kind, value = f.result()
                except BaseException as exc:  # noqa: BLE001 - the cluster's own: KilledWorker after repeated deaths
                    outer.set_exception(exc)
                    return
                if kind == "ok":
                    outer.set_result(value)
                else:
                    outer.set_exception(rebuild_error(value))
            except cf.InvalidStateError:  # shutdown(wait=False) answered it already
                pass

        inner.add_done_callback(_relay)
        return outer

    def shutdown(self, wait: bool = True) -> None:
        if wait:
            with self._lock:
                outers = [outer for _, outer in self._in_flight.values()]
            cf.wait(outers)
        else:
            with self._lock:
                self._abandoned = True
                in_flight, self._in_flight = list(self._in_flight.values()), {}
            for _, outer in in_flight:
                try:
                    outer.set_exception(Abandoned("the executor was shut down while this job ran"))
                except cf.InvalidStateError:
                    pass
            if self.cluster.local is not None:
                # Ours: ended now. Asked to close, a worker waits for the job it runs (seconds at least).
                for nanny in list(self.cluster.local.workers.values()):
                    nanny.auto_restart = False
                    with contextlib.suppress(ProcessLookupError, TypeError):  # TypeError: no pid, not started
                        os.kill(nanny.pid, signal.SIGTERM)
            elif in_flight:
                self._client.cancel([inner for inner, _ in in_flight], force=True)
        self.cluster.close()


def _worker_started(parent: int, initializer: Callable[..., Any] | None, initargs: tuple[Any, ...]) -> None:
    """Runs first in every worker process of a ``ProcessExecutor``."""
    # Ctrl-C reaches the whole process group: the parent decides what becomes of its workers' jobs
    # (a worker dying of it here failed the job it ran, an attempt lost).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_terminated)
    # here, not at the top: egocrowd.media loads PyAV and OpenCV, which the server's own process and
    # the pipeline's parent never need (the worker needs them for its first stage anyway)
    from egocrowd.media.bounded import exit_with_parent, stop_pools

    exit_with_parent(parent, stop_pools)
    if initializer is not None:
        initializer(*initargs)


def _worker_terminated(signum: int, frame: Any) -> None:
    # Without this the worker died at once and its sandbox processes ran on, orphaned.
    from egocrowd.media.bounded import stop_pools  # loaded by _worker_started already

    try:
        stop_pools()
    finally:
        os._exit(128 + signum)


def _call_carrying_errors(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    """Runs in the worker: returns ("ok", result) or ("err", ``capture_error(exc)``)."""
    try:
        return "ok", fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return "err", capture_error(exc)


def capture_error(exc: BaseException) -> dict[str, Any]:
    """A picklable stand-in for ``exc`` that ``rebuild_error`` turns back into an exception.
    EgocrowdErrors pickle with their code (see ``EgocrowdError.__reduce__``); an exception that
    cannot be pickled at all travels as a RuntimeError carrying its traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return {"exc": exc}
    except Exception:  # noqa: BLE001
        return {"exc": RuntimeError("".join(traceback.format_exception(exc)))}


def rebuild_error(state: dict[str, Any]) -> BaseException:
    exc: BaseException = state["exc"]
    return exc


__all__ = [
    "Abandoned",
    "EXECUTORS",
    "Executor",
    "InlineExecutor",
    "ProcessExecutor",
    "DaskExecutor",
    "get_executor",
    "register_executor",
    "executor_names",
    "ProgressCallback",
    "capture_error",
    "rebuild_error",
]

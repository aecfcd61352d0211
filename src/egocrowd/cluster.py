"""A Dask distributed cluster, by URL: where the pipeline's ``dask`` executor runs stages and the
bench runner runs episodes when one machine is not enough.

- ``tcp://host:8786`` (or ``tls://``, ``ws://``, ``wss://``): the scheduler of a cluster started
  elsewhere (``dask scheduler``; ``dask worker tcp://host:8786``, see docs/operations.md);
- ``dask+local://N``: a cluster started here with N worker processes of one thread each (one per
  core without N), closed with it.

Why Dask distributed (and not Ray): it is pure Python and starts a local cluster in about a second
on two cores; its futures are already ``concurrent.futures``-like; a ``LocalCluster`` of process
workers is a real cluster for tests; and when a worker dies the scheduler runs its tasks again on
another (up to ``distributed.scheduler.allowed-failures`` times), so a lost host costs time, not work.

Worker processes must not be daemons: stages decode in sandbox processes of their own
(``egocrowd.media.bounded``), which a daemonic process may not start. Ours are started so; a cluster
started elsewhere needs ``DASK_DISTRIBUTED__WORKER__DAEMON=False`` in its workers' environment, and
connecting to one without it fails at once (``pipeline.cluster_unavailable``), not at each job.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from egocrowd.errors import EgocrowdError, InvalidInput

LOCAL = "dask+local"
REMOTE = ("tcp", "tls", "ws", "wss")
# No dashboard, and the scheduler's HTTP endpoints on a free port (its default, 8787, may be taken).
NO_DASHBOARD = {"dashboard_address": "127.0.0.1:0", "scheduler_kwargs": {"dashboard": False}}


class ClusterUnavailable(EgocrowdError):
    status = 503
    default_code = "pipeline.cluster_unavailable"


@dataclass
class Cluster:
    """A client of a cluster, and the cluster itself when we started it (``close`` ends both)."""

    client: Client
    address: str  # the scheduler's
    local: LocalCluster | None = None

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.local is not None:
                self.local.close()


def local_workers(url: str | None, workers: int | None = None) -> int | None:
    """How many worker processes ``url`` starts here (``None``: it names a remote scheduler)."""
    if url is None:
        return workers or os.cpu_count() or 1
    parts = urlsplit(url)
    if parts.scheme == LOCAL:
        if parts.path.strip("/") or parts.query or (parts.netloc and not parts.netloc.isdigit()):
            raise InvalidInput(f"{url!r}: write dask+local://N, N worker processes", code="pipeline.bad_cluster_url")
        n = int(parts.netloc) if parts.netloc else (workers or os.cpu_count() or 1)
        if not 1 <= n <= 256:
            raise InvalidInput(f"{url!r}: 1 to 256 worker processes", code="pipeline.bad_cluster_url")
        return n
    if parts.scheme in REMOTE and parts.hostname:
        return None
    raise InvalidInput(
        f"{url!r} is not a cluster URL: tcp://host:8786 (a Dask scheduler) or dask+local://N",
        code="pipeline.bad_cluster_url",
    )


def connect(url: str | None = None, *, workers: int | None = None, timeout_s: float = 10.0) -> Cluster:
    """A client of the cluster at ``url`` (``None``: a local one of ``workers`` processes)."""
    n = local_workers(url, workers)
    if n is None:
        assert url is not None
        try:
            client = Client(url, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterUnavailable(f"no Dask scheduler answers at {url}: {exc}") from None
        cluster = Cluster(client, url)
    else:
        # Global, not for the start only: the nannies read it again when they restart a worker that died.
        dask.config.set({"distributed.worker.daemon": False})
        local = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            silence_logs=logging.ERROR,
            **NO_DASHBOARD,
        )
        cluster = Cluster(Client(local, set_as_default=False), local.scheduler_address, local)
    try:
        cluster.client.register_plugin(_MayStartProcesses(), name="egocrowd-may-start-processes")
    except Exception as exc:
        address = cluster.address
        cluster.close()
        raise ClusterUnavailable(f"the cluster at {address} cannot run our jobs: {exc}") from None
    return cluster


class _MayStartProcesses(WorkerPlugin):
    """Refuses a daemonic worker (on every worker, those that join later too)."""

    def setup(self, worker: object) -> None:
        if multiprocessing.current_process().daemon:
            raise RuntimeError(
                "its workers are daemonic processes, which cannot start the media sandboxes: "
                "start them with DASK_DISTRIBUTED__WORKER__DAEMON=False"
            )

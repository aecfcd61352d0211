"""What the benchmarks share (the scripts beside this module; ``make bench`` runs those whose name
does not start with ``_``):

- :func:`target`, the one way a benchmark states its targets, so people and scripts read them alike:
  ``target NAME: VALUE (goal >= GOAL) met`` (or ``missed``), one line per target, at the end;
- :func:`expect`, the targets a run will state, declared when it starts: any it has not printed
  when the process ends (an error, PostgreSQL out of reach) or is told to stop (SIGTERM, SIGINT:
  printed at once, before the run unwinds) is printed then, as missed and not measured, so every
  run states every target;
- :func:`private_schema`, a PostgreSQL schema of one run's own, so runs never see each other's rows
  (or the tests'), created and dropped here;
- :func:`listening_socket`, a loopback port for a server subprocess that nobody can take first.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


_stated: set[str] = set()
_expected: dict[str, float] = {}


def target(name: str, value: float, goal: float, digits: int = 2) -> bool:
    """Print the target line; True when it is met."""
    _stated.add(name)
    met = value >= goal
    # flushed: a run cut short by a time limit keeps the targets it measured (stdout to a pipe is
    # block-buffered, and a killed process loses what it held)
    print(f"target {name}: {value:.{digits}f} (goal >= {goal:g}) {'met' if met else 'missed'}", flush=True)
    return met


def expect(**goals: float) -> None:
    """Declare the targets this run states (name=goal). Those not printed by the end of the process
    are printed then as missed, value 0, after a line saying they were not measured."""
    if not _expected:
        atexit.register(_unmeasured)
        for sig in (signal.SIGTERM, signal.SIGINT):  # a time limit, or Ctrl-C
            signal.signal(sig, _stop)
    _expected.update(goals)


def _stop(signum: int, frame: object) -> None:
    """Print the targets not measured before anything else: unwinding waits for the run's threads,
    servers and pools to stop, and a time limit that does not wait that long kills the process
    (claim_latency went silent so under ``timeout -k 10``)."""
    _unmeasured()
    raise SystemExit(128 + signum)


def _unmeasured() -> None:
    for name, goal in _expected.items():
        if name not in _stated:
            print(f"{name}: not measured in this run (it stopped before; see above)", flush=True)
            target(name, 0.0, goal)


@contextmanager
def private_schema(prefix: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh schema ``PREFIX_<random>`` in EGOCROWD_TEST_DATABASE_URL's database (default: the
    local test database); yields a URL whose connections use it, drops it with everything in it
    (``keep``: leaves it, and prints its name, for a look at the rows afterwards)."""
    base = os.environ.get("EGOCROWD_TEST_DATABASE_URL", DEFAULT_URL)
    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        if keep:
            print(f"schema kept: {schema}")
        else:
            with admin.begin() as c:
                c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def listening_socket() -> socket.socket:
    """A listening socket on a loopback port the kernel picked, for a server subprocess started
    with ``uvicorn --fd N`` and ``pass_fds=(N,)``: asking for a "free" port and binding it again in
    the child leaves a moment in which another process (a parallel test, another benchmark) takes it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock

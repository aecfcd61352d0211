"""What an operator watches: Prometheus instruments and logs (plain text, or one JSON object a line
with the request id), shared by the app servers and the pipeline workers.

The instruments are module-level, in prometheus_client's process registry: the web door serves
them at ``/metrics`` (web.observability); ``egocrowd worker --metrics-port`` serves a worker's.
With several uvicorn processes set ``PROMETHEUS_MULTIPROC_DIR`` (docs/operations.md) and each
process writes its samples there for the one that answers the scrape.

Label values are bounded sets (stage names, route templates, outcomes), never ids or paths, so
the number of time series stays small whatever the traffic."""

from __future__ import annotations

import contextvars
import functools
import logging
import logging.config
import os
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Histogram
from pythonjsonlogger.core import RESERVED_ATTRS

# --- instruments --------------------------------------------------------------------------------
HTTP_SECONDS = Histogram(
    "egocrowd_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and status class",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STAGE_SECONDS = Histogram(
    "egocrowd_pipeline_stage_duration_seconds",
    "Time a stage's compute took where it ran, by stage and outcome (ok, failed, abandoned)",
    ["stage", "outcome"],
    # from a probe's fraction of a second to QC's 900 s bound
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800),
)
UPLOAD_BYTES = Counter("egocrowd_upload_bytes", "Upload bytes received and written (tus PATCH and creation bodies)")
UPLOADS_FINISHED = Counter(
    "egocrowd_uploads_finished",
    "Fully received uploads handed to the platform, by outcome: completed, or the code refusing them",
    ["outcome"],
)
CLAIMS = Counter(
    "egocrowd_claims",
    "Claims of work, by kind (assignment, annotation) and outcome: ok, or the code refusing them",
    ["kind", "outcome"],
)

P = ParamSpec("P")
R = TypeVar("R")


def count_outcomes(
    counter: Counter, refusal: type[Exception], **labels: str
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Counts each call of the decorated function in ``counter`` by ``outcome``: ``ok``, the stable
    code of a ``refusal`` it raised (codes are a bounded set, unlike messages), else ``error``.
    (The caller names the refusal type: this base module imports no sibling.)"""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def counted(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                out = fn(*args, **kwargs)
            except refusal as exc:
                counter.labels(**labels, outcome=str(getattr(exc, "code", "error"))).inc()
                raise
            except Exception:
                counter.labels(**labels, outcome="error").inc()
                raise
            counter.labels(**labels, outcome="ok").inc()
            return out

        return counted

    return decorate


# --- logs ---------------------------------------------------------------------------------------
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("egocrowd_request_id", default=None)
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def new_request_id(offered: str | None = None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (a proxy's, so logs join up across
    hops), else a fresh one. Anything else is dropped: it would land verbatim in every log line."""
    if offered and _CLIENT_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def _stamp_request_id(factory):
    """Every log record carries the request id of the moment (None outside a request), whichever
    handler formats it: ours, pytest's, a library's."""

    def make(*args, **kwargs) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    make.stamps_request_id = True  # type: ignore[attr-defined]
    return make


if not getattr(logging.getLogRecordFactory(), "stamps_request_id", False):  # once, even if reloaded
    logging.setLogRecordFactory(_stamp_request_id(logging.getLogRecordFactory()))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger [request id]: message`` (no brackets outside a request)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(tag)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None)
        return self._style._fmt % {**record.__dict__, "tag": f" [{rid}]" if rid else ""}


def reset_multiprocess_dir() -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` before the server's processes start: the client library
    sums every file there, so a previous run's counters would otherwise be counted again (and the
    files of processes long gone would pile up). A no-op when the variable is unset."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for leftover in path.glob("*.db"):
        leftover.unlink(missing_ok=True)


def logging_config(fmt: str = "text", level: int | str = logging.INFO) -> dict:
    """A ``logging.config.dictConfig`` for a server or worker process: ``text`` for people, ``json``
    for a log pipeline (one object a line: time, level, logger, message, request_id and any
    ``extra``). uvicorn applies it in each of its worker processes too (``log_config``)."""
    formatters = {
        "text": {"()": TextFormatter},
        # a well-kept formatter: escaping, extras and tracebacks done right
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],  # uvicorn's ANSI copy of the message
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {fmt: formatters[fmt]},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": fmt,
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        # uvicorn's loggers speak through the same handler; its access log is replaced by ours
        # (egocrowd.access: route, status, duration and request id)
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error")},
            # HTTP clients log whole URLs at INFO, and a URL may carry a signed link's token
            **{name: {"level": "WARNING"} for name in ("httpx", "httpcore")},
        },
    }


def configure_logging(fmt: str = "text", level: int | str = logging.INFO) -> None:
    logging.config.dictConfig(logging_config(fmt, level))

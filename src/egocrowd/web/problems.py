"""EgocrowdError (and every other failure) → RFC 9457 problem documents. Never a stack trace.

``title`` is the problem type's one title (egocrowd.problem_titles), in the request's language
(account, ``lang`` cookie or Accept-Language; the response says which in ``Content-Language``);
``detail`` is this occurrence's message, in English, as technical as it needs to be."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from egocrowd import i18n
from egocrowd.errors import EgocrowdError
from egocrowd.problem_titles import title as title_of
from egocrowd.telemetry import request_id
from egocrowd.web.pages.render import render_error

log = logging.getLogger("egocrowd.web")
PROBLEM_TYPE_BASE = "https://egocrowd.dev/problems/"
_HTTP_CODES = {
    400: "http.bad_request",
    401: "auth.required",
    403: "auth.forbidden",
    404: "http.not_found",
    405: "http.method_not_allowed",
    406: "http.not_acceptable",
    413: "http.too_large",
    415: "http.unsupported_media_type",
    429: "http.too_many_requests",
}


def problem(
    status: int,
    code: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """The problem document of ``code``: its title in the language of the moment, ``detail`` as given."""
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title_of(code, status), "status": status, "code": code}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {
        **(headers or {}),
        **({"WWW-Authenticate": "Bearer"} if status == 401 else {}),
        "Content-Language": i18n.current(),
    }
    if extra.get("retry_after") is not None:
        headers["Retry-After"] = str(extra["retry_after"])
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


def as_problem(exc: Exception) -> tuple[int, str, str, dict]:
    """(status, code, message, extra) for any exception, for JSON and HTML alike."""
    if isinstance(exc, EgocrowdError):
        return exc.status, exc.code, exc.message, dict(exc.extra)
    if isinstance(exc, RequestValidationError):
        errors = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())[1:]) or None,
                "message": e.get("msg"),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        msg = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        return 422, "validation.failed", msg, {"errors": errors}
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, f"http.{exc.status_code}")
        return exc.status_code, code, str(exc.detail), {}
    # the request id lets whoever reports it point an operator at the log line (egocrowd.telemetry)
    return 500, "internal", "Something went wrong on our side; it has been logged.", {"request_id": request_id.get()}


def render(exc: Exception, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """The problem document for ``exc`` (``headers`` added, e.g. the tus server's)."""
    status, code, message, extra = as_problem(exc)
    return problem(status, code, message, headers=headers, **extra)


async def handle(request: Request, exc: Exception):
    """Every failure's one answer: a problem document under /api/, the same problem as a page elsewhere."""
    status, code, message, _ = as_problem(exc)
    if status >= 500:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response: Response = (
        render(exc) if request.url.path.startswith("/api/") else render_error(request, status, code, message)
    )
    if status >= 500 and (rid := request_id.get()):  # answered outside RequestContext, which adds it otherwise
        response.headers["X-Request-ID"] = rid
    return response


def install(app) -> None:
    for exc_type in (EgocrowdError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(exc_type, handle)

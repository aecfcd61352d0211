"""Who is calling: an API token (``Authorization: Bearer egc_…``) or a signed session cookie.

Cookies are signed (itsdangerous), HttpOnly, SameSite=Lax and Secure over https. Every state-changing
request authenticated by cookie must carry the session's CSRF token: a hidden ``csrf_token`` form
field, or an ``X-CSRF-Token`` header for scripts. Token-authenticated API calls need none (a browser
never sends the token by itself).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from egocrowd.accounts import service as accounts
from egocrowd.db.models import User
from egocrowd.errors import Forbidden, Unauthenticated

COOKIE = "egocrowd_session"
SESSION_MAX_AGE = 14 * 24 * 3600
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass
class Ctx:
    session: Session
    user: User | None
    via_cookie: bool

    def require_user(self) -> User:
        """The caller, or 401 ``auth.required`` (pages turn that into a redirect to log in)."""
        if self.user is None:
            raise Unauthenticated("Log in first.", code="auth.required")
        return self.user


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return request.app.state.cookie_signer


def read_cookie(request: Request) -> dict:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return {}
    try:
        return _serializer(request).loads(raw, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return {}


def csrf_token(request: Request) -> str:
    """The session's CSRF token (anonymous visitors get one too, for the log-in form)."""
    data = read_cookie(request)
    token = data.get("csrf") or getattr(request.state, "new_csrf", None)
    if token is None:
        token = request.state.new_csrf = secrets.token_urlsafe(24)
    return token


def write_cookie(request: Request, response: Response, *, user_id: int | None) -> None:
    data = {"uid": user_id, "csrf": secrets.token_urlsafe(24)}  # new token on every log-in/out
    secure = request.app.state.settings.secure_cookies
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(COOKIE, _serializer(request).dumps(data), max_age=SESSION_MAX_AGE, httponly=True,
                        samesite="lax", secure=secure, path="/")


def persist_anonymous_csrf(request: Request, response: Response) -> None:
    """Anonymous pages that rendered a form: keep its CSRF token in the cookie."""
    token = getattr(request.state, "new_csrf", None)
    if token and not read_cookie(request):
        secure = request.app.state.settings.secure_cookies
        response.set_cookie(COOKIE, _serializer(request).dumps({"uid": None, "csrf": token}),
                            max_age=SESSION_MAX_AGE, httponly=True, samesite="lax",
                            secure=bool(secure) if secure is not None else request.url.scheme == "https")


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = read_cookie(request).get("csrf")
    # Compare bytes: compare_digest refuses non-ASCII str (a 500), and a form may send a file here.
    if (not expected or not submitted or not isinstance(submitted, str)
            or not hmac.compare_digest(expected.encode(), submitted.encode())):
        raise Forbidden("The form expired or came from another site; reload the page and try again.",
                        code="auth.csrf")


def viewer(request: Request, session: Session) -> User | None:
    """Who is looking, by session cookie: None for anonymous visitors and suspended accounts. The one
    lookup behind :func:`unit` and the pages rendered outside one (error pages, forms shown again)."""
    uid = read_cookie(request).get("uid")
    return accounts.active_user(session, uid) if uid is not None else None


@contextmanager
def unit(request: Request, *, form_csrf: str | None = None) -> Iterator[Ctx]:
    """One request's unit of work: a transaction, the caller, and the CSRF check for cookie writes."""
    # Reads (GET, HEAD) run in read-only transactions: they never wait behind writers on SQLite.
    with request.app.state.db.transaction(write=request.method not in SAFE_METHODS) as session:
        user, via_cookie = None, False
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            user = accounts.user_for_token(session, header[7:].strip())
        else:
            user = viewer(request, session)
            via_cookie = read_cookie(request).get("uid") is not None
        # Page forms always carry a token (even log-in: no login CSRF); API writes by cookie too.
        if form_csrf is not None or (via_cookie and request.method not in SAFE_METHODS):
            check_csrf(request, form_csrf if form_csrf is not None else request.headers.get("x-csrf-token"))
        yield Ctx(session, user, via_cookie)

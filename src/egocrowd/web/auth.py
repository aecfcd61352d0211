"""Who is calling: an API token (``Authorization: Bearer egc_…``) or a session cookie.

Sessions live in the database (``login_sessions``); the cookie is signed (itsdangerous) and carries
the session's random secret (stored there only hashed) and the CSRF token. So logging out, changing
the password or being suspended ends a session for good, even for a copy of the cookie saved before.
Cookies are HttpOnly, SameSite=Lax and Secure over https. Every state-changing request authenticated
by cookie must carry the CSRF token: a hidden ``csrf_token`` form field, or an ``X-CSRF-Token``
header for scripts. Token-authenticated API calls need none (a browser never sends the token by itself).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from egocrowd import i18n
from egocrowd.accounts import login as _login
from egocrowd.accounts import service as accounts
from egocrowd.db.models import LoginSession, User
from egocrowd.errors import Forbidden, Unauthenticated

COOKIE = "egocrowd_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


@dataclass
class Ctx:
    session: Session
    user: User | None
    via_cookie: bool
    login_session_id: int | None = None  # the caller's browser session, when logged in by cookie

    def require_user(self) -> User:
        """The caller, or 401 ``auth.required`` (pages turn that into a redirect to log in)."""
        if self.user is None:
            raise Unauthenticated("Log in first.", code="auth.required")
        return self.user


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return request.app.state.cookie_signer


def _max_age(request: Request) -> int:
    return int(request.app.state.settings.session_days * 24 * 3600)


def read_cookie(request: Request) -> dict:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return {}
    try:
        data = _serializer(request).loads(raw, max_age=_max_age(request))
    except BadSignature:
        return {}
    return data if isinstance(data, dict) else {}


def _set_cookie(request: Request, response: Response, data: dict) -> None:
    secure = request.app.state.settings.secure_cookies
    if secure is None:
        secure = request.url.scheme == "https"
    response.set_cookie(
        COOKIE,
        _serializer(request).dumps(data),
        max_age=_max_age(request),
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )


def csrf_token(request: Request) -> str:
    """The session's CSRF token (anonymous visitors get one too, for the log-in form)."""
    data = read_cookie(request)
    token = data.get("csrf") or getattr(request.state, "new_csrf", None)
    if token is None:
        token = request.state.new_csrf = secrets.token_urlsafe(24)
    return token


def persist_anonymous_csrf(request: Request, response: Response) -> None:
    """Anonymous pages that rendered a form: keep its CSRF token in the cookie."""
    token = getattr(request.state, "new_csrf", None)
    if token and not read_cookie(request):
        _set_cookie(request, response, {"csrf": token})


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = read_cookie(request).get("csrf")
    # Compare bytes: compare_digest refuses non-ASCII str (a 500), and a form may send a file here.
    if (
        not expected
        or not submitted
        or not isinstance(submitted, str)
        or not hmac.compare_digest(expected.encode(), submitted.encode())
    ):
        raise Forbidden("The form expired or came from another site; reload the page and try again.", code="auth.csrf")


def password_login(request: Request, email: str, password: str, *, form_csrf: str | None = None) -> int:
    """Check a password (throttled per account and client address; 429 ``auth.throttled``) and
    return the user id. Page forms pass their CSRF token (no login CSRF)."""
    if form_csrf is not None:
        check_csrf(request, form_csrf)
    return _login.log_in(
        request.app.state.db,
        email,
        password,
        address=client_address(request),
        limits=_login.Limits.from_settings(request.app.state.settings),
    )


def client_address(request: Request) -> str | None:
    # Behind a proxy, run uvicorn with --proxy-headers (and --forwarded-allow-ips) so this is the client.
    return request.client.host if request.client else None


def log_in(request: Request, response: Response, user_id: int) -> None:
    """Start a new session for ``user_id`` (ending the one this browser had) and set its cookie."""
    old = read_cookie(request).get("sid")
    with request.app.state.db.transaction() as s:
        if old:
            accounts.end_session_by_secret(s, old)
        _, secret = accounts.start_session(
            s,
            s.get(User, user_id),
            ttl=timedelta(days=request.app.state.settings.session_days),
            user_agent=request.headers.get("user-agent"),
        )
    _set_cookie(request, response, {"sid": secret, "csrf": secrets.token_urlsafe(24)})  # new CSRF token too


def log_out(request: Request, response: Response) -> None:
    """End this browser's session in the database and give it an anonymous cookie."""
    old = read_cookie(request).get("sid")
    if old:
        with request.app.state.db.transaction() as s:
            accounts.end_session_by_secret(s, old)
    _set_cookie(request, response, {"csrf": secrets.token_urlsafe(24)})


def _cookie_session(request: Request, session: Session) -> tuple[bool, LoginSession | None]:
    """(does the browser send a session cookie, the live session it names). The one cookie lookup
    behind :func:`unit` and :func:`viewer` (an ended, expired or suspended one is None)."""
    sid = read_cookie(request).get("sid")
    if not isinstance(sid, str):
        return False, None
    return True, accounts.session_for_secret(session, sid)


def viewer(request: Request, session: Session) -> User | None:
    """Who is logged in by cookie, for pages rendered outside a unit of work (error pages...)."""
    row = _cookie_session(request, session)[1]
    if row is not None:
        speak_to(row.user)
    return row.user if row else None


def speak_to(user: User) -> None:
    """The rest of the request speaks the caller's own language and zone, where they chose them
    (else what the browser said, set by :class:`egocrowd.web.locale.LocaleMiddleware`)."""
    i18n.activate(user.language, user.time_zone)


@contextmanager
def unit(request: Request, *, form_csrf: str | None = None) -> Iterator[Ctx]:
    """One request's unit of work: a transaction, the caller, and the CSRF check for cookie writes."""
    db = request.app.state.db
    touch: tuple[Callable[[Session, int], None], int] | None = None  # what to record once the request is done
    # Reads (GET, HEAD) run in read-only transactions: they never wait behind writers on SQLite.
    with db.transaction(write=request.method not in SAFE_METHODS) as session:
        user, via_cookie, login_session_id = None, False, None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = accounts.check_token(session, header[7:].strip())
            user = token.user
            if accounts.needs_touch(token.last_used_at):
                touch = (accounts.touch_token, token.id)
        else:
            via_cookie, row = _cookie_session(request, session)
            if row is not None:
                user, login_session_id = row.user, row.id
                if accounts.needs_touch(row.last_seen_at):
                    touch = (accounts.touch_session, row.id)
        if user is not None:
            speak_to(user)
        # Page forms always carry a token (even log-in: no login CSRF); API writes by cookie too.
        if form_csrf is not None or (via_cookie and request.method not in SAFE_METHODS):
            check_csrf(request, form_csrf if form_csrf is not None else request.headers.get("x-csrf-token"))
        yield Ctx(session, user, via_cookie, login_session_id)
    if touch is not None:
        # Last seen / last used: its own tiny write after the work, at most once a minute per client.
        with db.transaction() as s:
            touch[0](s, touch[1])

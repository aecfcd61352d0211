"""Which language and time zone a request speaks (issue #15), and the switcher's door.

The order: the account's setting (applied in :func:`egocrowd.web.auth.unit` once the caller is
known), else the ``lang`` cookie the switcher sets, else the browser's Accept-Language, else English.
The zone: the account's, else the ``tz`` cookie that ``locale.js`` sets from the browser's own zone,
else UTC.
"""

from __future__ import annotations

from urllib.parse import unquote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from egocrowd import i18n
from egocrowd.accounts import service as accounts
from egocrowd.web.auth import unit
from egocrowd.web.pages.render import TextForm, safe_next, see_other

LANG_COOKIE, ZONE_COOKIE = "lang", "tz"
YEAR = 365 * 24 * 3600


class LocaleMiddleware:
    """Sets the request's language and zone before any handler runs (pure ASGI: the context
    variables it sets are inherited by the handler, in the loop or in the thread pool)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = HTTPConnection(scope)  # Starlette's own (lenient) cookie and header parsing
            cookies = request.cookies
            language = i18n.supported(cookies.get(LANG_COOKIE)) or i18n.negotiate(
                request.headers.get("accept-language")
            )
            i18n.activate(language or i18n.DEFAULT, unquote(cookies.get(ZONE_COOKIE) or "UTC"))
        await self.app(scope, receive, send)


router = APIRouter(include_in_schema=False)


@router.post("/language")
def choose_language(request: Request, form: TextForm) -> RedirectResponse:
    """The switcher on every page: remember the choice (a cookie; the account too when logged in)
    and go back where the person was."""
    language = i18n.supported(form.get("lang"))
    back = safe_next(form.get("next"), "/")
    with unit(request, form_csrf=form.get("csrf_token", "")) as ctx:
        if language and ctx.user is not None:
            accounts.update_profile(ctx.session, ctx.user, language=language)  # audited there
    resp = see_other(back)
    if language:
        resp.set_cookie(LANG_COOKIE, language, max_age=YEAR, samesite="lax", secure=request.url.scheme == "https")
    return resp

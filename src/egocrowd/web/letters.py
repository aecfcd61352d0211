"""Sending the letters capabilities give back (account links, notes), once the answer has gone out.

Handlers call :func:`send_letters` after their transaction committed; :class:`SendAfterResponse`
sends the letters once the response is complete. Sending before answering would make the answer's
time depend on whether a letter went out (an SMTP round trip), which tells a stranger whether an
address has an account, whatever the answer's words say.
"""

from __future__ import annotations

import logging

import anyio
from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from egocrowd.mail import Letter, Mailer, MailError, make_mailer
from egocrowd.settings import Settings

log = logging.getLogger("egocrowd.web.letters")
#: The answer to every request that mails a link: the same whether or not the address has an account.
SENT = {"status": "sent", "detail": "If this address can be used, we sent an email to it. Open the link inside."}
_QUEUE = "egocrowd.letters"  # the scope key of the request's letters


def send_letters(request: Request, *letters: Letter | None) -> None:
    """Send these once the response is complete (at once, when the app has no SendAfterResponse).
    A failure is logged, never shown: the answer must not depend on whether an address has an
    account (and the person can ask again)."""
    wanted = [letter for letter in letters if letter is not None]
    queue = request.scope.get(_QUEUE)
    if queue is None:
        _send(make_mailer(request.app.state.settings), wanted)
    else:
        queue.extend(wanted)


class SendAfterResponse:
    """Sends the letters a request queued, after its response went out (in a worker thread: the
    mailers are blocking)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        letters: list[Letter] = []
        scope[_QUEUE] = letters
        await self.app(scope, receive, send)
        if letters:
            await anyio.to_thread.run_sync(_send, make_mailer(self.settings), letters)


def _send(mailer: Mailer, letters: list[Letter]) -> None:
    for letter in letters:
        try:
            mailer.send(letter)
        except MailError:
            log.exception("could not send %r", letter.subject)


def base_url(request: Request) -> str:
    # Links in emails use the configured address, never the request's Host header (which a caller
    # could set to their own site to collect reset links).
    return request.app.state.settings.base_url.rstrip("/")

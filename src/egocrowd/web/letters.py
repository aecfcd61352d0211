"""Sending the letters capabilities give back (account links, notes), once the transaction committed."""

from __future__ import annotations

import logging

from fastapi import Request

from egocrowd.mail import Letter, MailError, make_mailer

log = logging.getLogger("egocrowd.web.letters")
#: The answer to every request that mails a link: the same whether or not the address has an account.
SENT = {"status": "sent", "detail": "If this address can be used, we sent an email to it. Open the link inside."}


def send_letters(request: Request, *letters: Letter | None) -> None:
    """Send after the transaction committed. A failure is logged, never shown: the answer must not
    depend on whether an address has an account (and the person can ask again)."""
    mailer = make_mailer(request.app.state.settings)
    for letter in letters:
        if letter is not None:
            try:
                mailer.send(letter)
            except MailError:
                log.exception("could not send %r", letter.subject)


def base_url(request: Request) -> str:
    # Links in emails use the configured address, never the request's Host header (which a caller
    # could set to their own site to collect reset links).
    return request.app.state.settings.base_url.rstrip("/")

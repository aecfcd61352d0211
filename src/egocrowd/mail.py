"""Sending email: one :class:`Mailer`, chosen by the ``mail_url`` setting.

- ``outbox`` (the default): every message is written as an ``.eml`` file into ``outbox_dir``
  (``<data dir>/outbox``), atomically (a temporary file renamed into place), so the embedded
  install works offline and an operator can open the files with any mail program.
- ``smtp://user:pass@host:port`` (``smtps://`` for TLS from the first byte, ``?starttls=true`` to
  upgrade a plain connection), with the standard library's smtplib.

Callers send *after* their transaction committed (a slow or failing mail server never holds a
database lock, and no mail leaves for a change that was rolled back).
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from egocrowd.clock import utcnow
from egocrowd.errors import EgocrowdError
from egocrowd.settings import Settings


class MailError(EgocrowdError):
    status = 502
    default_code = "mail.failed"


@dataclass(frozen=True)
class Letter:
    """One plain-text email to one address."""

    to: str
    subject: str
    body: str


class Mailer(Protocol):
    def send(self, letter: Letter) -> object: ...  # the outbox tells where it wrote


def compose(sender: str, letter: Letter) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = letter.to
    msg["Subject"] = letter.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].partition("@")[2] or "localhost")
    # 8bit: the text as written (UTF-8), so links are never wrapped or "=3D"-escaped and an .eml in
    # the outbox reads as plain text; every mail server of the last decades accepts it (8BITMIME).
    msg.set_content(letter.body, cte="8bit")
    return msg


class OutboxMailer:
    """Writes each message to ``directory`` as ``<time>-<random>.eml``; readers never see half a file."""

    def __init__(self, directory: Path, sender: str) -> None:
        self.directory = Path(directory)
        self.sender = sender

    def send(self, letter: Letter) -> Path:
        data = compose(self.sender, letter).as_bytes()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        except OSError as exc:
            raise MailError(f"Cannot write to the outbox {self.directory}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            path = self.directory / f"{utcnow():%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}.eml"
            os.replace(tmp, path)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise MailError(f"Cannot write to the outbox {self.directory}: {exc}") from exc
            raise
        return path


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.tls, self.starttls, self.timeout = tls, starttls, timeout

    def send(self, letter: Letter) -> None:
        msg = compose(self.sender, letter)
        try:
            smtp = (
                smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=ssl.create_default_context())
                if self.tls
                else smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            )
            with smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as exc:
            raise MailError(f"The mail server {self.host}:{self.port} refused or failed: {exc}") from exc


def mailer_from_url(url: str, sender: str, outbox: Path) -> Mailer:
    if url == "outbox":
        return OutboxMailer(outbox, sender)
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"mail_url must be 'outbox' or smtp[s]://[user:pass@]host[:port], not {url!r}")
    query = parse_qs(parts.query)
    tls = parts.scheme == "smtps"
    return SmtpMailer(
        parts.hostname,
        parts.port or (465 if tls else 25),
        sender=sender,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=tls,
        starttls=query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes"),
    )


def make_mailer(settings: Settings) -> Mailer:
    """The mailer the settings ask for (cheap to make: it connects only when sending)."""
    return mailer_from_url(settings.mail_url, settings.mail_from, settings.outbox_path)

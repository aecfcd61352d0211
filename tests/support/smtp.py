"""A real SMTP server in-process (aiosmtpd) that keeps what it receives, for mail tests; and
reading the links the default (outbox) mailer wrote."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller


def mailed_link(outbox: Path, to: str, path: str, *, wait_s: float = 10.0) -> str:
    """The path and query of the newest ``path`` link mailed to ``to`` in the outbox folder (.eml
    files). Mail leaves after the answer that caused it, so this waits a little for it."""
    deadline = time.monotonic() + wait_s
    while True:
        for eml in sorted(outbox.glob("*.eml"), reverse=True):
            msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
            found = re.search(re.escape(path) + r"\?token=[\w-]+", msg.get_content())
            if msg["To"] == to and found:
                return found.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path} link mailed to {to} in {outbox}")
        time.sleep(0.1)


@dataclass
class Inbox:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def link(self, address: str, path: str, *, wait_s: float = 10.0) -> str:
        """The token of the last link to ``path`` (``/reset-password``) mailed to ``address`` (mail
        leaves after the answer that caused it: a live server's may still be on its way)."""
        deadline = time.monotonic() + wait_s
        while True:
            bodies = [m.get_body(("plain",)).get_content() for m in self.to(address)]
            tokens = [t for b in bodies for t in re.findall(re.escape(path) + r"\?token=([\w-]+)", b)]
            if tokens or time.monotonic() > deadline:
                assert tokens, f"no {path} link mailed to {address}: {bodies}"
                return tokens[-1]
            time.sleep(0.1)


def _free_port() -> int:
    # aiosmtpd's controller cannot listen on port 0 (it checks readiness by connecting to the port).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def smtp_server() -> Iterator[Inbox]:
    inbox = Inbox("127.0.0.1", _free_port())
    controller = Controller(inbox, hostname=inbox.host, port=inbox.port)
    controller.start()
    try:
        yield inbox
    finally:
        controller.stop()

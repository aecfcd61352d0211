"""Request size limits, enforced before anything is parsed.

Two gates, so that a careless or hostile client cannot make one request cost the server
hundreds of megabytes:

- :class:`BodyLimit` (ASGI middleware): a request body larger than ``max_body_bytes`` is answered
  413 ``http.too_large`` as soon as its ``Content-Length`` (or, when chunked, its running byte
  count) passes the limit, before the JSON or form parser reads it. Upload routes are exempt: the
  tus server bounds their bodies itself, by ``Upload-Length`` and the campaign's limit.
- :class:`BoundedHttpToolsProtocol` (uvicorn protocol): the request line and headers together may
  not pass ``h11_max_incomplete_event_size`` bytes. uvicorn's h11 protocol has this bound; the faster
  httptools protocol that ``uvicorn[standard]`` picks has none (a 100 MiB header was accepted), so we
  add it there and use one knob for both. Too large a head is answered 431 and the connection closed.
  It also lets upload bodies (tus) buffer up to ``UPLOAD_BODY_BUFFER`` before it stops reading the
  socket, instead of uvicorn's 64 KiB: the app then gets ~1 MiB pieces, a sixteenth of the
  wake-ups and pause/resume calls per byte (the upload handler writes ~1 MiB at a time). The
  socket reads are kept as a list (``_Pieces``) instead of being appended to a ``bytearray`` and
  copied out of it again: one copy of every uploaded byte fewer.

Why not FastAPI's own ``max_body_size`` (Starlette's RequestBodyLimitMiddleware): tried, its refusal
of a chunked body is answered outside the app's exception handlers, as plain text, where every
refusal of ours must be a problem document with a stable code.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from egocrowd.web.problems import problem
from egocrowd.web.tus import UPLOADS_PATH

UNLIMITED_PREFIXES = (UPLOADS_PATH,)  # tus: bounded by Upload-Length and the campaign's limit
# Body bytes one upload request may have buffered before the socket is paused (uvicorn: 64 KiB).
UPLOAD_BODY_BUFFER = 1 << 20


class BodyTooLarge(Exception):
    """Raised inside ``receive`` once a streamed body passes the limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNLIMITED_PREFIXES):
            return await self.app(scope, receive, send)
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            return await self._refuse(scope, receive, send)

        seen = 0
        started = False

        async def bounded_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except BodyTooLarge:
            if not started:  # a handler that already answered keeps its answer
                await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit_kb = self.max_body_bytes // 1024
        response = problem(
            413,
            "http.too_large",
            f"A request body may be at most {limit_kb} KiB.",
            limit_bytes=self.max_body_bytes,
        )
        response.headers["Connection"] = "close"  # do not read the rest of the body
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser refuses it before we get here
    return None


class _Pieces:
    """An upload body's buffered pieces, in place of uvicorn's ``bytearray``: appending keeps a
    reference instead of copying, and ``bytes()`` (what uvicorn's ``receive`` hands the app) joins
    them once, or hands over a lone piece as it is."""

    __slots__ = ("parts", "size")

    def __init__(self, first: bytes | bytearray) -> None:
        self.parts: list[bytes] = [bytes(first)] if first else []
        self.size = len(first)

    def __iadd__(self, piece: bytes) -> _Pieces:
        self.parts.append(piece)
        self.size += len(piece)
        return self

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, with uvicorn's ``h11_max_incomplete_event_size`` applied to the request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_head = self.config.h11_max_incomplete_event_size or 16 * 1024
        self._head_bytes = 0
        self._in_head = True
        self._body_buffer = 0  # this request's larger read-ahead, when it is an upload

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        # Counted after parsing, so a head and its body in one read are not mistaken for a huge head.
        if self._in_head and self._head_bytes > self._max_head and not self.transport.is_closing():
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        path = self.scope.get("path", "")
        self._body_buffer = UPLOAD_BODY_BUFFER if path.startswith(UNLIMITED_PREFIXES) else 0

    def on_body(self, body: bytes) -> None:
        if self._body_buffer and type(self.cycle.body) is not _Pieces:  # receive() left a new bytearray
            self.cycle.body = _Pieces(self.cycle.body)  # type: ignore[assignment]
        super().on_body(body)  # pauses reading once 64 KiB wait for the app
        # An upload keeps reading up to its own limit (not while a pipelined request waits: that
        # pause is uvicorn's, not ours). The app's next receive() resumes reading as usual.
        if self._body_buffer and not self.pipeline and len(self.cycle.body) <= self._body_buffer:
            self.flow.resume_reading()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0

    def _refuse_head(self) -> None:
        # The app never saw this request, so the problem document is written here, in its shape.
        body = bytes(
            problem(
                431,
                "http.headers_too_large",
                f"The request line and headers may be at most {self._max_head // 1024} KiB.",
                limit_bytes=self._max_head,
            ).body
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
        )
        self.transport.close()


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """The server options every way of serving the app uses (``egocrowd serve``, the tests)."""
    return {"http": BoundedHttpToolsProtocol, "h11_max_incomplete_event_size": settings.max_header_kb * 1024}

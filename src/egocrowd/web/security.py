"""Security headers on every response, and the list of front-end library files our pages load.

The Content-Security-Policy allows scripts only from this site's files (no inline script, no
``on*=`` handlers, no eval), forbids framing (clickjacking), and lets media play from ``blob:`` URLs
(the capture page previews the recording it is about to upload). Inline ``style=""`` attributes
stay allowed (templates size progress bars with them); ``<style>`` elements do not. The API docs
(/api/docs, Swagger UI from npm) live under the same policy: their start-up script is a file of ours.

HTML pages are answered ``Cache-Control: no-cache, private``: they show a person's own data, so no
shared cache may keep them, and the browser asks again (cheaply, compressed) before showing one.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_CACHE_CONTROL = "no-cache, private"

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()",
}
HSTS = "max-age=31536000"

#: The only files under node_modules that pages load (grep the templates for "/vendor/").
VENDOR_FILES = frozenset(
    {
        "tus-js-client/dist/tus.min.js",
        "swagger-ui-dist/swagger-ui.css",
        "swagger-ui-dist/swagger-ui-bundle.js",
    }
)


class SecurityHeaders:
    """Pure ASGI middleware (never buffers a body: uploads and downloads stream through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if https:  # over plain http the header is ignored anyway, and would pin a dev host
                    headers.setdefault("Strict-Transport-Security", HSTS)
                if headers.get("content-type", "").startswith("text/html"):
                    headers.setdefault("Cache-Control", PAGE_CACHE_CONTROL)
            await send(message)

        await self.app(scope, receive, send_with_headers)

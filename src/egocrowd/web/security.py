"""Security headers on every response, and the few front-end library files our pages load.

The Content-Security-Policy allows scripts only from this site's files (no inline script, no
``on*=`` handlers, no eval), forbids framing (clickjacking), and lets media play from ``blob:`` URLs
(the capture page previews the recording it is about to upload). Inline ``style=""`` attributes
stay allowed (templates size progress bars with them); ``<style>`` elements do not.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# FastAPI's Swagger UI (/api/docs) is one inline script plus files from a CDN.
_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "frame-ancestors 'none'"
)
_DOCS_PATHS = ("/api/docs", "/api/docs/oauth2-redirect")

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()",
}
HSTS = "max-age=31536000"

#: The only files under node_modules that pages load (grep the templates for "/vendor/").
VENDOR_FILES = frozenset({"tus-js-client/dist/tus.min.js"})


class SecurityHeaders:
    """Pure ASGI middleware (never buffers a body: uploads and downloads stream through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = _DOCS_POLICY if scope["path"] in _DOCS_PATHS else CONTENT_SECURITY_POLICY
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", policy)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if https:  # over plain http the header is ignored anyway, and would pin a dev host
                    headers.setdefault("Strict-Transport-Security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class VendorFiles(StaticFiles):
    """Serves only :data:`VENDOR_FILES` from node_modules, not its thousands of other files."""

    async def get_response(self, path: str, scope: Scope):
        if path not in VENDOR_FILES:
            raise HTTPException(status_code=404)
        return await super().get_response(path, scope)

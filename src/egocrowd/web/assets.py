"""Our static files and the npm libraries pages load: content-hashed URLs, long caching, gzip.

Templates write ``{{ asset('/static/app.css') }}``, which becomes ``/static/app.css?v=<hash>`` (the
first 12 hex digits of the file's sha256). A request that carries the current hash is answered with
``Cache-Control: public, max-age=31536000, immutable`` — a phone on metered data downloads each file
once per release — and any other request (an old hash, none) with a short lifetime, so that a stale
URL never pins an old file for a year.

Files are read, hashed and gzip-compressed once, on first use, and kept in memory (restart the
server to pick up an edited file): they are few and small (Swagger UI's bundle, 1.5 MB, is the
largest), and compressing them on every request would cost the server far more than holding them. Everything else (pages, API answers above ~1 KiB) is
compressed on the fly by Starlette's GZipMiddleware (:class:`Compression`), never the tus upload
traffic, and never bodies that are compressed already (video, images, zip) or partial (206).

``EGOCROWD_COMPRESS_RESPONSES`` and ``EGOCROWD_CACHE_STATIC`` turn both off (the page-weight
benchmark measures the difference side by side).
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

from jinja2 import pass_context
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES, GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from egocrowd.web.tus import UPLOADS_PATH

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"
UNCACHED = "no-cache"
MIN_COMPRESS_BYTES = 1024  # below this, gzip's header and a round of CPU buy nothing
_TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")


@dataclass(frozen=True)
class _File:
    body: bytes
    gzipped: bytes | None  # None: not worth compressing (small, or not text)
    version: str
    media_type: str


class AssetFiles:
    """A fixed set of files, ``{url path: file on disk}``, served from memory."""

    def __init__(self, files: dict[str, Path], *, cache: bool = True, compress: bool = True) -> None:
        self.files, self.cache, self.compress = files, cache, compress
        self._loaded: dict[str, _File] = {}
        self._lock = threading.Lock()

    def _get(self, path: str) -> _File:
        found = self._loaded.get(path)
        if found is None:
            source = self.files.get(path)
            if source is None or not source.is_file():
                raise HTTPException(status_code=404)
            with self._lock:  # read and compress each file once, even when pages load it in parallel
                found = self._loaded.get(path) or self._load(source)
                self._loaded[path] = found
        return found

    def _load(self, source: Path) -> _File:
        body = source.read_bytes()
        media_type = mimetypes.guess_type(source.name)[0] or "application/octet-stream"
        textual = media_type.startswith(_TEXT_TYPES)
        packed = gzip.compress(body, compresslevel=9, mtime=0) if textual and len(body) >= MIN_COMPRESS_BYTES else None
        if media_type.startswith("text/") or media_type == "application/javascript":
            media_type += "; charset=utf-8"
        return _File(body, packed, hashlib.sha256(body).hexdigest()[:12], media_type)

    def url(self, path: str) -> str:
        """``path`` with its content hash. A name we do not serve is a bug in a template: it raises;
        a listed file missing on disk (npm not run yet) keeps its bare URL, which answers 404."""
        if path not in self.files:
            raise KeyError(f"no such asset: {path}")
        if path not in self._loaded and not self.files[path].is_file():  # once loaded, no disk look-up per page
            return path
        return f"{path}?v={self._get(path).version}"

    def response(self, request: Request, path: str) -> Response:
        f = self._get(path)
        if not self.cache:
            cache_control = UNCACHED
        else:
            cache_control = IMMUTABLE if request.query_params.get("v") == f.version else SHORT
        use_gzip = self.compress and f.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "")
        etag = f'"{f.version}{"-gz" if use_gzip else ""}"'  # one ETag per representation
        headers = {"Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        return Response(f.gzipped if use_gzip else f.body, media_type=f.media_type, headers=headers)


class Assets:
    """Every file a page may load, by URL: ``/static/…`` (ours) and ``/vendor/…`` (from npm)."""

    def __init__(self, static_dir: Path, vendor_dir: Path, vendor_files: frozenset[str], **options: bool) -> None:
        files = {f"/static/{p.relative_to(static_dir).as_posix()}": p for p in static_dir.rglob("*") if p.is_file()}
        files.update({f"/vendor/{name}": vendor_dir / name for name in vendor_files})
        self.files = AssetFiles(files, **options)

    # Plain functions: Starlette runs them in its thread pool, so the one-time read and gzip of a
    # large file never stalls the event loop.
    def serve(self, request: Request) -> Response:
        return self.files.response(request, request.url.path)

    def favicon(self, request: Request) -> Response:
        return self.files.response(request, "/static/favicon.svg")


@pass_context
def asset(context, path: str) -> str:
    """Jinja global: ``{{ asset('/static/app.css') }}`` → the URL with the file's content hash."""
    return context["request"].app.state.assets.files.url(path)


class Compression:
    """Starlette's GZipMiddleware for everything but the tus upload endpoint (its bodies are the
    upload's bytes and offsets, never to be re-encoded) and bodies that are not worth it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(
            app,
            minimum_size=MIN_COMPRESS_BYTES,
            compresslevel=6,  # on the fly: most of level 9's gain for a fraction of its CPU
            exclude_content_types=(*DEFAULT_EXCLUDED_CONTENT_TYPES, "application/octet-stream"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UPLOADS_PATH):
            await self.app(scope, receive, send)
        else:
            await self.gzip(scope, receive, send)


class HeadAsGet:
    """HEAD on a page answers like GET without the body (link checkers, uptime probes and caches ask
    it; FastAPI routes answer only the methods they name). The headers, Content-Length included, are
    GET's. The API under /api/ is left as declared (tus answers HEAD itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)


def install(app: Starlette, static_dir: Path, vendor_dir: Path, vendor_files: frozenset[str], settings) -> Assets:
    """Serve ``/static/…``, ``/vendor/…`` and ``/favicon.ico`` (browsers ask for it unprompted)."""
    assets = Assets(
        static_dir, vendor_dir, vendor_files, cache=settings.cache_static, compress=settings.compress_responses
    )
    app.state.assets = assets
    app.add_route("/static/{path:path}", assets.serve, name="static")
    app.add_route("/vendor/{path:path}", assets.serve, name="vendor")
    app.add_route("/favicon.ico", assets.favicon, name="favicon")
    if settings.compress_responses:
        app.add_middleware(Compression)
    app.add_middleware(HeadAsGet)  # outside Compression: HEAD's Content-Length is the compressed GET's
    return assets

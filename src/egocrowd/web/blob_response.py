"""A blob as an HTTP response with Range support, whichever store holds it.

On ``file://`` it is Starlette's ``FileResponse`` (206/416, If-Range and multi-range handled there).
On an object store the bytes are streamed from ranged GETs: the player's seek asks for one range and
only that range is fetched, never the whole object. One ``bytes=a-b``, ``a-`` or ``-n`` range is
answered 206; a multi-range request gets the whole file (200), which the standard allows (Starlette's
parser is private, and one range is what players and download tools send). Blobs never change under
their name, so If-Range always matches and is not looked at.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from egocrowd.blobs import Blobs, BlobStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | bool:
    """``(start, end)`` (end exclusive) for one satisfiable range; None: serve it all; False: 416."""
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None:
        return None  # several ranges, or a unit we do not speak: the whole file
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:  # the last n bytes
        n = int(last)
        return (max(size - n, 0), size) if n > 0 and size > 0 else False
    start = int(first)
    end = min(int(last) + 1, size) if last else size
    if start >= size or end <= start:
        return False
    return start, end


def blob_response(
    request: Request,
    blobs: Blobs,
    sha256: str,
    *,
    media_type: str,
    filename: str | None = None,
    inline: bool = False,
    headers: Mapping[str, str] | None = None,
) -> Response:
    headers = dict(headers or {})
    disposition = "inline" if inline else "attachment"
    if isinstance(blobs, BlobStore):
        return FileResponse(
            blobs.path(sha256),
            media_type=media_type,
            filename=filename,
            content_disposition_type=disposition,
            headers=headers,
        )
    size = blobs.size(sha256)
    if filename:
        headers["Content-Disposition"] = f"{disposition}; filename*=utf-8''{quote(filename)}"
    headers["Accept-Ranges"] = "bytes"
    wanted = parse_range(request.headers.get("range"), size)
    if wanted is False:
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = wanted if isinstance(wanted, tuple) else (0, size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if isinstance(wanted, tuple):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(
        blobs.iter_range(sha256, start, end), status_code=status, media_type=media_type, headers=headers
    )

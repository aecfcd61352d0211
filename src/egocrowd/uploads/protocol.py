"""The tus 1.0 protocol, without HTTP: headers in, decisions and typed errors out.

Extensions: core + creation, creation-with-upload, expiration, checksum (sha1, md5, sha256, sha512)
and termination (https://tus.io/protocols/resumable-upload). The HTTP server
(:mod:`egocrowd.web.tus`) reads headers, calls these functions and renders the errors
they raise as problem documents; the statuses below are the ones the tus spec fixes.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from egocrowd.errors import (
    Conflict,
    EgocrowdError,
    Gone,
    InvalidInput,
    NotFound,
    TooLarge,
)
from egocrowd.uploads.store import UploadInfo

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "EXTENSIONS",
    "MAX_METADATA_CHARS",
    "OFFSET_CONTENT_TYPE",
    "TUS_VERSION",
    "BadTusRequest",
    "Checksum",
    "ChecksumMismatch",
    "Grant",
    "UnsupportedContentType",
    "UnsupportedVersion",
    "check_body_fits",
    "check_content_type",
    "check_length",
    "check_offset",
    "check_usable",
    "check_version",
    "encode_metadata",
    "failure",
    "interrupted",
    "is_decimal",
    "no_such_upload",
    "parse_checksum",
    "parse_length",
    "parse_metadata",
    "parse_offset",
    "replay_failure",
    "too_long",
    "upload_headers",
]

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,creation-with-upload,expiration,checksum,termination"
CHECKSUM_ALGORITHMS = {"sha1": hashlib.sha1, "md5": hashlib.md5, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_CHARS = 16384  # the record is rewritten on every commit: keep it small


# -- errors whose statuses the tus spec fixes -----------------------------------------------------


class BadTusRequest(InvalidInput):
    status = 400
    default_code = "upload.bad_request"


class UnsupportedVersion(EgocrowdError):
    status = 412
    default_code = "upload.unsupported_version"


class UnsupportedContentType(InvalidInput):
    status = 415
    default_code = "upload.bad_content_type"


class ChecksumMismatch(InvalidInput):
    status = 460
    default_code = "upload.checksum_mismatch"


# -- what the platform allows -------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """Who owns a new upload, how big it may be, and what it is for (stored with the upload)."""

    owner: str
    max_length: int
    context: Mapping[str, Any] = field(default_factory=dict)


# -- headers ------------------------------------------------------------------------------------


def parse_metadata(header: str | None) -> dict[str, str]:
    """``Upload-Metadata: key b64,key2 b64,flag`` → dict (values decoded as UTF-8)."""
    out: dict[str, str] = {}
    if not header or not header.strip():
        return out
    if len(header) > MAX_METADATA_CHARS:
        raise BadTusRequest(
            f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters", code="upload.bad_metadata"
        )
    for pair in header.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2 or key in out or not key.isascii():
            raise BadTusRequest(f"malformed Upload-Metadata pair {pair.strip()!r}", code="upload.bad_metadata")
        try:
            out[key] = base64.b64decode(parts[1], validate=True).decode("utf-8") if len(parts) == 2 else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadTusRequest(
                f"Upload-Metadata value for {key!r} is not base64 UTF-8", code="upload.bad_metadata"
            ) from None
    return out


def encode_metadata(metadata: Mapping[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in metadata.items())


def is_decimal(value: str | None) -> TypeGuard[str]:
    # ASCII digits only, and not absurdly long: str.isdigit() also accepts e.g. Latin-1 "\u00b2"
    # (which int() refuses), and int() refuses more than 4300 digits; both were a 500.
    return value is not None and 0 < len(value) <= 20 and value.isascii() and value.isdigit()


def _parse_int(value: str | None, name: str) -> int:
    if not is_decimal(value):
        raise BadTusRequest(f"{name} must be a non-negative integer", code="upload.bad_request")
    return int(value)


def parse_length(header: str | None, *, max_size: int) -> int:
    """``Upload-Length`` of a new upload, at most ``max_size`` (the advertised ``Tus-Max-Size``)."""
    length = _parse_int(header, "Upload-Length")
    if length > max_size:
        raise TooLarge(f"Upload-Length {length} exceeds Tus-Max-Size {max_size}", code="upload.too_large")
    return length


def parse_offset(header: str | None) -> int:
    return _parse_int(header, "Upload-Offset")


@dataclass
class Checksum:
    """An ``Upload-Checksum``: a fresh hasher of its algorithm and the digest the chunk must have."""

    hasher: Any
    digest: bytes

    def matches(self) -> bool:
        return bool(self.hasher.digest() == self.digest)


def parse_checksum(header: str | None) -> Checksum | None:
    if header is None:
        return None
    algo, _, b64 = header.strip().partition(" ")
    factory = CHECKSUM_ALGORITHMS.get(algo.lower())
    if factory is None:
        raise BadTusRequest(f"checksum algorithm {algo!r} not supported", code="upload.bad_checksum")
    try:
        digest = base64.b64decode(b64.strip(), validate=True)
    except binascii.Error:
        raise BadTusRequest("Upload-Checksum value is not base64", code="upload.bad_checksum") from None
    return Checksum(factory(), digest)


def check_version(header: str | None) -> None:
    if header != TUS_VERSION:
        raise UnsupportedVersion(f"Tus-Resumable: {TUS_VERSION} is required")


def check_content_type(header: str | None, what: str) -> None:
    if (header or "").split(";")[0].strip() != OFFSET_CONTENT_TYPE:
        raise UnsupportedContentType(f"{what} must be {OFFSET_CONTENT_TYPE}")


# -- states and offsets ---------------------------------------------------------------------------


def check_length(length: int, grant: Grant) -> None:
    """A new upload fits the grant (answered before any byte is read)."""
    if length > grant.max_length:
        raise TooLarge(
            f"Upload-Length {length} exceeds this assignment's limit of {grant.max_length} bytes",
            code="upload.too_large",
            max_length=grant.max_length,
        )


def check_usable(info: UploadInfo | None, verb: str) -> UploadInfo:
    """The upload exists, has not expired, and (but for HEAD and DELETE) has not been refused."""
    if info is None:
        raise no_such_upload()
    if info.is_expired():
        raise Gone("this upload expired; start a new one", code="upload.expired")
    if info.state == "failed" and verb not in ("DELETE", "HEAD"):
        raise replay_failure(info.error or {})
    return info


def check_offset(info: UploadInfo | None, offset: int) -> UploadInfo:
    """A PATCH at ``offset`` continues where the server is (re-read under the lock)."""
    if info is None:
        raise no_such_upload()
    if offset != info.offset:
        raise Conflict(
            f"Upload-Offset {offset} does not match the server's {info.offset}", code="upload.offset_mismatch"
        )
    return info


def check_body_fits(info: UploadInfo, declared_length: str | None) -> None:
    """A declared ``Content-Length`` going past ``Upload-Length`` is refused before reading it."""
    if is_decimal(declared_length) and info.offset + int(declared_length) > info.length:
        raise too_long()


def no_such_upload() -> NotFound:
    return NotFound("no such upload", code="upload.not_found")


def too_long() -> TooLarge:
    return TooLarge("the body goes past Upload-Length", code="upload.too_large")


def interrupted() -> Conflict:
    """The body stopped early (the client went away, or a newer request took the upload over)."""
    return Conflict("the request body was interrupted", code="upload.interrupted")


def upload_headers(info: UploadInfo) -> dict[str, str]:
    """What every response about an upload tells the client: offset, expiry, completion result."""
    h = {"Upload-Offset": str(info.offset)}
    if info.state == "receiving":
        h["Upload-Expires"] = email.utils.format_datetime(info.expires_at, usegmt=True)
    h.update(info.result)
    if info.error:
        h["Egocrowd-Upload-Error"] = str(info.error.get("code", "upload.rejected"))
    return h


def failure(err: EgocrowdError) -> dict[str, Any]:
    """A refused upload's error as stored in its record (and replayed to later requests)."""
    return {"status": err.status, "code": err.code, "message": err.message}


def replay_failure(err: Mapping[str, Any]) -> EgocrowdError:
    e = EgocrowdError(err.get("message", "upload rejected"), code=err.get("code", "upload.rejected"))
    e.status = int(err.get("status", 422))
    return e

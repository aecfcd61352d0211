"""The canonical encoding of audit events and checkpoints (format ``egocrowd.audit/1``).

Pure functions with no database, so the app, ``egocrowd audit verify`` and an auditor's own script
compute the same bytes. docs/provenance.md states the rules; they never change within a format
version (a new rule would be a new version, and old events keep theirs).

An event's *body* is a JSON object with exactly these keys::

    seq, prev_hash, at, actor_id, action, entity_type, entity_id, payload

``at`` is RFC 3339 UTC with microseconds (``2026-11-30T10:28:52.123456Z``). Its canonical bytes are
``json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)``
in UTF-8 (pure ASCII: every non-ASCII character is a ``\\uXXXX`` escape, so there is one spelling
for every string). Its hash is the lowercase hex sha256 of those bytes. The first event's
``prev_hash`` is :data:`GENESIS`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

FORMAT = "egocrowd.audit/1"
GENESIS = "0" * 64
#: the keys of an event body, in the order the canonical encoding sorts them
BODY_KEYS = ("action", "actor_id", "at", "entity_id", "entity_type", "payload", "prev_hash", "seq")

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def canonical(value: Any) -> bytes:
    """The one byte spelling of a JSON value: sorted keys, no spaces, ASCII, no NaN."""
    return _dumps(value).encode("ascii")


def format_time(at: datetime) -> str:
    """RFC 3339, UTC, always with microseconds."""
    if at.tzinfo is None:
        raise ValueError("audit times are timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def normalize_payload(payload: Any) -> Any:
    """The payload as the database will give it back (a JSON round trip: tuples become lists,
    keys strings), so that what is hashed at commit is what verify reads later."""
    return json.loads(_dumps(payload))


def event_body(
    *,
    seq: int | None,
    prev_hash: str | None,
    at: datetime | str,
    actor_id: int | None,
    action: str,
    entity_type: str,
    entity_id: str,
    payload: Any,
) -> dict[str, Any]:
    return {
        "action": action,
        "actor_id": actor_id,
        "at": at if isinstance(at, str) else format_time(at),
        "entity_id": entity_id,
        "entity_type": entity_type,
        "payload": payload,
        "prev_hash": prev_hash,
        "seq": seq,
    }


def body_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def checkpoint_message(*, seq: int, hash: str, at: datetime | str, reason: str, key_id: str) -> bytes:
    """The bytes a checkpoint's Ed25519 signature covers."""
    return canonical(
        {
            "format": FORMAT,
            "kind": "checkpoint",
            "seq": seq,
            "hash": hash,
            "at": at if isinstance(at, str) else format_time(at),
            "reason": reason,
            "key_id": key_id,
        }
    )


def key_id(public_key_raw: bytes) -> str:
    """Names a public key: the hex sha256 of its 32 raw bytes."""
    return hashlib.sha256(public_key_raw).hexdigest()


__all__ = [
    "BODY_KEYS",
    "FORMAT",
    "GENESIS",
    "body_hash",
    "canonical",
    "checkpoint_message",
    "event_body",
    "format_time",
    "key_id",
    "normalize_payload",
    "parse_time",
]

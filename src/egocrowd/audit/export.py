"""The auditors' export: the whole log as JSON lines, verifiable with nothing but the file.

Line 1 is the header (format, when, the public keys), then one line per checkpoint, then one line
per event in stored (id) order: the chain's order, unless someone reordered rows. An event line is the event's body in its canonical encoding plus
``"kind":"event"`` and its ``"hash"``; the hash covers every key but those two. docs/provenance.md
has the procedure, and a short script that checks a file with hashlib, json and cryptography only.
Written a chunk at a time: the export of a long log never sits in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import BinaryIO

from sqlalchemy.orm import Session

from egocrowd.audit.encoding import FORMAT, canonical, format_time
from egocrowd.audit.verify import db_checkpoints, event_row_chunks, stored_body
from egocrowd.clock import db_now


def export_jsonl(
    session: Session,
    out: BinaryIO,
    public_keys: list[dict[str, str]],
    *,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the log to ``out``; returns the number of events written. ``public_keys``: dicts with
    ``key_id`` and ``public_key`` (hex), as :func:`egocrowd.audit.checkpoints.public_key` gives.
    Run it in a read-only transaction: on PostgreSQL make it REPEATABLE READ for one snapshot; the
    checkpoints are read first, so every event they cover is in the file."""
    header = {
        "kind": "header",
        "format": FORMAT,
        "exported_at": format_time(db_now(session)),
        "public_keys": [
            {"algorithm": "Ed25519", "key_id": k["key_id"], "public_key": k["public_key"]} for k in public_keys
        ],
    }
    out.write(canonical(header) + b"\n")
    for cp in db_checkpoints(session):
        line = {
            "kind": "checkpoint",
            "seq": cp.seq,
            "hash": cp.hash,
            "at": cp.at,
            "reason": cp.reason,
            "key_id": cp.key_id,
            "signature": cp.signature,
        }
        out.write(canonical(line) + b"\n")
    n = 0
    for rows in event_row_chunks(session, chunk):
        lines = []
        for row in rows:
            body = stored_body(row)  # a row written around the app (no seq): the file shows it, verify flags it
            body["kind"] = "event"
            body["hash"] = row.hash
            lines.append(canonical(body))
        out.write(b"\n".join(lines) + b"\n")
        n += len(rows)
        if progress is not None:
            progress(n)
    return n


__all__ = ["export_jsonl"]

"""Signed checkpoints of the audit chain and the key that signs them.

A checkpoint states, under an Ed25519 signature, that event ``seq`` of the log has hash ``hash``;
since every event's hash covers the one before, it vouches for the whole chain up to there. Whoever
can write the database can rebuild a chain with fresh hashes, but cannot sign: verify compares the
rebuilt chain with the signed checkpoints and finds the first one it no longer matches.

Checkpoints are made every ``audit_checkpoint_events`` events or ``audit_checkpoint_minutes``
minutes (housekeeping, :func:`checkpoint_if_due`), and on demand: :func:`checkpoint_at_commit`
signs the head in the committing transaction itself, after its own events (a release calls it, so
the release and a signature covering its events commit together), :func:`write_checkpoint` signs
the committed head now. A checkpoint is not an audit event (it would move the head it signs).

The private key lives in a file (``audit_signing_key``; ``egocrowd audit keygen`` writes it). With
no key a checkpoint that is due fails loudly (``audit.signing_key_missing``); nothing is ever left
unsigned. The embedded setup (SQLite, one host) makes its key on first use, like its secret key.

``cryptography`` is imported inside the functions that sign or verify: the web server and the
worker start without it (~40 ms) and load it only when they sign or serve the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.audit import chain
from egocrowd.audit.encoding import checkpoint_message, format_time, key_id
from egocrowd.clock import db_now
from egocrowd.db.models import AuditCheckpoint
from egocrowd.errors import Conflict, EgocrowdError, InvalidInput

if TYPE_CHECKING:  # pragma: no cover
    from egocrowd.db import Database
    from egocrowd.settings import Settings


class SigningKeyMissing(EgocrowdError):
    """No signing key where the settings say: nothing is signed until an admin makes one."""

    status = 503
    default_code = "audit.signing_key_missing"


@dataclass(frozen=True)
class SigningKey:
    private: Any  # cryptography's Ed25519PrivateKey
    public_raw: bytes  # the 32 raw bytes of the public key

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    def sign(self, message: bytes) -> str:
        return bytes(self.private.sign(message)).hex()


def key_path(settings: Settings) -> Path:
    return (settings.audit_signing_key or settings.data_dir / "audit_signing_key.pem").resolve()


def generate_key(path: Path) -> SigningKey:
    """Write a new Ed25519 private key (PKCS#8 PEM, mode 0600) to ``path``; never over an existing one
    (checkpoints signed with it could no longer be told from forgeries once it is gone)."""
    from cryptography.hazmat.primitives import serialization  # see the module docstring
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(
            f"An audit signing key already exists at {path}; it is kept (its checkpoints need it).",
            code="audit.signing_key_exists",
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return load_key(path)


def load_key(path: Path) -> SigningKey:
    from cryptography.hazmat.primitives import serialization  # see the module docstring
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyMissing(
            f"No audit signing key at {path}: create one with `egocrowd audit keygen` "
            "(or set EGOCROWD_AUDIT_SIGNING_KEY to its file). Checkpoints are never written unsigned.",
            path=str(path),
        ) from None
    private = serialization.load_pem_private_key(data, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise InvalidInput(f"The audit signing key at {path} is not an Ed25519 key.", code="audit.bad_signing_key")
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(private, raw)


def signing_key(settings: Settings) -> SigningKey:
    """The key the settings name. The embedded setup makes one on first use; any other setup must
    have one (``egocrowd audit keygen``), else ``audit.signing_key_missing``."""
    path = key_path(settings)
    if settings.is_embedded and not path.exists():
        try:
            return generate_key(path)
        except Conflict:  # another process made it a moment ago
            pass
    return load_key(path)


def require_signing_key(settings: Settings) -> None:
    """At a process's start: raise ``audit.signing_key_missing`` now when checkpoints will need a key
    that is not there (the embedded setup makes its own when the first one is due)."""
    if not settings.is_embedded:
        load_key(key_path(settings))


def public_key(settings: Settings) -> dict[str, str]:
    """What the app publishes: the algorithm, the key's id and its raw bytes (hex) and PEM."""
    return public_key_of(signing_key(settings))


def public_key_of(key: SigningKey) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization  # see the module docstring
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = key.public_raw
    pem = Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"algorithm": "Ed25519", "key_id": key_id(raw), "public_key": raw.hex(), "pem": pem.decode()}


def verify_signature(public_raw: bytes, signature_hex: str, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature  # see the module docstring
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


# ---------------------------------------------------------------- making checkpoints


def _insert(session: Session, key: SigningKey, reason: str, seq: int, hash_: str) -> AuditCheckpoint:
    at = db_now(session)
    message = checkpoint_message(seq=seq, hash=hash_, at=format_time(at), reason=reason, key_id=key.key_id)
    cp = AuditCheckpoint(seq=seq, hash=hash_, at=at, reason=reason, key_id=key.key_id, signature=key.sign(message))
    session.add(cp)
    session.flush()
    return cp


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason or len(reason) > 100:
        raise InvalidInput("A checkpoint needs a reason of 1 to 100 characters.", code="audit.bad_reason")
    return reason


def write_checkpoint(session: Session, key: SigningKey, reason: str) -> AuditCheckpoint | None:
    """Sign the chain's committed head now (None while the log is empty). Events recorded in this
    same transaction are not chained yet: use :func:`checkpoint_at_commit` to cover them."""
    reason = _check_reason(reason)
    seq, hash_ = chain.head(session)
    return _insert(session, key, reason, seq, hash_) if seq else None


def checkpoint_at_commit(session: Session, key: SigningKey, reason: str) -> None:
    """Sign the head when this transaction commits, after its own events are chained (a release:
    ``reason="release:<id>"``), in the same transaction: both commit, or neither."""
    reason = _check_reason(reason)

    def sign(s: Session, seq: int, hash_: str) -> None:
        if seq:
            _insert(s, key, reason, seq, hash_)

    chain.at_commit(session, sign)


def last_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalar(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc()))


def checkpoint_if_due(db: Database, settings: Settings) -> int:
    """Housekeeping: sign the head when ``audit_checkpoint_events`` events or ``audit_checkpoint_minutes``
    have passed since the last checkpoint (and the head moved). Returns how many were written (0 or 1).
    Raises ``audit.signing_key_missing`` when one is due and there is no key."""
    with db.transaction() as s:
        seq, hash_ = chain.head(s)
        last = last_checkpoint(s)
        if seq == 0 or (last is not None and last.seq >= seq):
            return 0
        due = (
            last is None
            or seq - last.seq >= settings.audit_checkpoint_events
            or db_now(s) - last.at >= timedelta(minutes=settings.audit_checkpoint_minutes)
        )
        if not due:
            return 0
        _insert(s, signing_key(settings), "periodic", seq, hash_)
        return 1


def list_checkpoints(session: Session) -> list[AuditCheckpoint]:
    """Every checkpoint, oldest first (one per thousands of events: few enough to hold)."""
    return list(session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)))


__all__ = [
    "SigningKey",
    "SigningKeyMissing",
    "checkpoint_at_commit",
    "checkpoint_if_due",
    "generate_key",
    "key_path",
    "last_checkpoint",
    "list_checkpoints",
    "load_key",
    "public_key",
    "public_key_of",
    "require_signing_key",
    "signing_key",
    "verify_signature",
    "write_checkpoint",
]

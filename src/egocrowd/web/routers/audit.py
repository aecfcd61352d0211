"""The audit log's public face: the key that signs its checkpoints (docs/provenance.md).

Public on purpose: anyone holding an export compares the key it names with this one."""

from __future__ import annotations

from fastapi import APIRouter, Request

from egocrowd.audit import checkpoints
from egocrowd.errors import NotFound

router = APIRouter(prefix="/api/v1/audit")


@router.get("/public-key")
def public_key(request: Request) -> dict[str, str]:
    """The Ed25519 public key of audit checkpoints: ``key_id`` (sha256 of the raw key, hex),
    ``public_key`` (the 32 raw bytes, hex) and ``pem``. 404 ``audit.no_public_key`` until an admin
    has run `egocrowd audit keygen`."""
    try:
        return checkpoints.public_key(request.app.state.settings)
    except checkpoints.SigningKeyMissing:
        raise NotFound(
            "No audit signing key has been made on this platform yet (`egocrowd audit keygen`).",
            code="audit.no_public_key",
        ) from None

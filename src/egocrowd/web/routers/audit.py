"""The platform's public keys (docs/provenance.md): the key that signs the audit log's checkpoints,
and the root certificate of the authority that signs released video (Content Credentials, C2PA).

Public on purpose: anyone holding an export or a released file compares what it names with these."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from egocrowd.audit import checkpoints
from egocrowd.errors import NotFound

router = APIRouter(prefix="/api/v1/audit")
credentials_router = APIRouter(prefix="/api/v1/content-credentials")


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


@credentials_router.get(
    "/ca.pem",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}, "description": "the root certificate (PEM)"}},
)
def content_credentials_root(request: Request) -> Response:
    """The root certificate of the authority that signs released video: trust it in a C2PA validator
    to see egocrowd's files as "Trusted". Its sha256 fingerprint is in the ``Egocrowd-Fingerprint``
    header. 404 ``c2pa.no_authority`` until an admin has run `egocrowd c2pa init`."""
    from egocrowd.releases import credentials

    try:
        authority = credentials.load_authority(credentials.authority_dir(request.app.state.settings))
    except credentials.NoAuthority:
        raise NotFound(
            "No content-credentials signing authority has been made on this platform yet (`egocrowd c2pa init`).",
            code="c2pa.no_authority",
        ) from None
    return Response(
        authority.ca_pem,
        media_type="application/x-pem-file",
        headers={"Egocrowd-Fingerprint": authority.fingerprint},
    )

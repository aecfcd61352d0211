"""JSON API: The catalog, access requests and grants, signed download links (#12; egocrowd.releases.buyers)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["catalog"])

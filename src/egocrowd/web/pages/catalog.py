"""Pages: The catalog, access requests and grants, signed download links (#12; egocrowd.releases.buyers)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

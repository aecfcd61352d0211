"""JSON API: Releases (#12): cut, list, show, build progress, manifest (egocrowd.releases; docs/releases.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["releases"])

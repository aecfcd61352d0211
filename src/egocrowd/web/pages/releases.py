"""Pages: Releases (#12): cut, list, show, build progress, manifest (egocrowd.releases; docs/releases.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

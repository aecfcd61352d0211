"""JSON API: Training (#15): qualifications, practice, tests and skill levels."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["training"])

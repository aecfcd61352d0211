"""Pages: Training (#15): practice tasks with instant feedback, qualification tests, skill levels."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

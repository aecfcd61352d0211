"""JSON API: Pay floors, measured hourly rates, top-ups and exchange rates (#11; egocrowd.pay.rates, docs/pay.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["rates"])

"""JSON API: Payout methods and payout batches (#11; egocrowd.pay.payouts, docs/pay.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["payouts"])

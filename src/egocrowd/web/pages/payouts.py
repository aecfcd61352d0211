"""Pages: Payout methods and payout batches (#11; egocrowd.pay.payouts, docs/pay.md)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

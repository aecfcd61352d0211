"""JSON API: Withdrawals (#12): the withdrawal feed buyers read and acknowledge, removals for cause (egocrowd.releases.withdrawals)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1", tags=["withdrawals"])

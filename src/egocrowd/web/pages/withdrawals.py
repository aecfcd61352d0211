"""Pages: Withdrawals (#12): the withdrawal feed buyers read and acknowledge, removals for cause (egocrowd.releases.withdrawals)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

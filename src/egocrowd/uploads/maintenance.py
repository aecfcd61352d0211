"""Upkeep of the upload store: expire what was abandoned, finish what a crash interrupted."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from egocrowd.clock import utcnow
from egocrowd.errors import EgocrowdError
from egocrowd.uploads.completion import OnComplete, complete_upload
from egocrowd.uploads.store import UploadInfo, Uploads

__all__ = ["expire_uploads", "recover_completed"]

log = logging.getLogger(__name__)


def expire_uploads(store: Uploads, now: datetime | None = None, *, orphan_grace_s: float = 3600) -> list[str]:
    """Delete expired unfinished uploads (and their bytes); returns their ids.

    Also forgets finished/failed records one ttl after they finished, and sweeps leftovers of
    crashes (``.part``/``.lock``/temp files without a record, older than ``orphan_grace_s``).
    Uploads whose bytes are all here but whose completion has not run (``completing``) are never
    expired: ``recover_completed`` owns them. Busy uploads (locked) are skipped.
    """
    now = now or utcnow()
    removed: list[str] = []
    known: set[str] = set()
    for info in store.iter_infos():
        known.add(info.id)
        if not _stale(info, now):
            continue
        with store.try_lock(info.id) as mine:
            if not mine:
                continue
            fresh = store.get(info.id)
            if fresh is not None and _stale(fresh, now):
                store.delete(info.id)
                removed.append(info.id)
    store.sweep_leftovers(known, orphan_grace_s)
    return removed


def _stale(info: UploadInfo, now: datetime) -> bool:
    return info.is_expired(now) or (info.state in ("finished", "failed") and now >= info.expires_at)


async def recover_completed(store: Uploads, on_complete: OnComplete) -> list[str]:
    """Run ``on_complete`` for uploads fully received but never finished (crash, hook error).

    Call at startup and periodically. Returns the ids finished now; failures are logged and left
    for a later try.
    """
    done: list[str] = []
    for info in list(store.iter_infos()):
        if info.state != "completing":
            continue
        try:
            async with store.locked(info.id):
                fresh = store.get(info.id)
                if fresh is None or fresh.state != "completing":
                    continue
                await asyncio.to_thread(complete_upload, store, fresh, on_complete)
                done.append(info.id)
        except EgocrowdError as err:
            log.warning("upload %s rejected on recovery: %s", info.id, err)
        except Exception:
            log.exception("recovering upload %s failed; will retry", info.id)
    return done

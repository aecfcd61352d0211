"""Resumable uploads (tus 1.0): the protocol router, the on-disk upload store and its upkeep.

See :mod:`egocrowd.uploads.tus` for the hook contract and ``docs/uploads.md`` for the overview.
"""

from egocrowd.uploads.store import UploadInfo, UploadStore
from egocrowd.uploads.tus import (
    CHECKSUM_ALGORITHMS,
    TUS_VERSION,
    ChecksumMismatch,
    Grant,
    TusHooks,
    expire_uploads,
    make_tus_router,
    recover_completed,
)

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "TUS_VERSION",
    "ChecksumMismatch",
    "Grant",
    "TusHooks",
    "UploadInfo",
    "UploadStore",
    "expire_uploads",
    "make_tus_router",
    "recover_completed",
]

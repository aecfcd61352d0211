"""Resumable uploads (tus 1.0): the pure protocol, the on-disk upload store, finishing an upload,
and the store's upkeep. The HTTP server is :mod:`egocrowd.web.tus`; the platform's
rules are :mod:`egocrowd.clips.uploads`. See ``docs/uploads.md`` for the overview.
"""

from egocrowd.uploads.completion import OnComplete, complete_upload
from egocrowd.uploads.maintenance import expire_uploads, recover_completed
from egocrowd.uploads.protocol import (
    CHECKSUM_ALGORITHMS,
    TUS_VERSION,
    ChecksumMismatch,
    Grant,
)
from egocrowd.uploads.store import UploadInfo, UploadStore

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "TUS_VERSION",
    "ChecksumMismatch",
    "Grant",
    "OnComplete",
    "UploadInfo",
    "UploadStore",
    "complete_upload",
    "expire_uploads",
    "recover_completed",
]

"""Resumable uploads (tus 1.0): the pure protocol, the upload stores (one local directory, or
shared by several servers: :mod:`.shared`), finishing an upload, and the stores' upkeep. The HTTP server is :mod:`egocrowd.web.tus`; the platform's
rules are :mod:`egocrowd.clips.uploads`. See ``docs/uploads.md`` for the overview.
"""

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from egocrowd.blobs import Blobs
from egocrowd.uploads.completion import OnComplete, complete_upload
from egocrowd.uploads.maintenance import expire_uploads, recover_completed
from egocrowd.uploads.protocol import (
    CHECKSUM_ALGORITHMS,
    TUS_VERSION,
    ChecksumMismatch,
    Grant,
)
from egocrowd.uploads.store import UploadInfo, Uploads, UploadStore

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "TUS_VERSION",
    "ChecksumMismatch",
    "Grant",
    "OnComplete",
    "UploadInfo",
    "UploadStore",
    "Uploads",
    "open_upload_store",
    "complete_upload",
    "expire_uploads",
    "recover_completed",
]


def open_upload_store(settings: Any, engine: Engine, blobs: Blobs) -> Uploads:
    """The deployment's upload store: shared (database rows, parts next to the blobs) when
    ``settings.shared_uploads``, else the local directory ``settings.uploads_path``."""
    ttl = timedelta(hours=settings.upload_expiry_hours)
    if settings.shared_uploads:
        from egocrowd.uploads.shared import SharedUploadStore

        return SharedUploadStore(engine, blobs.objects("uploads"), settings.uploads_path, ttl=ttl)
    return UploadStore(settings.uploads_path, ttl=ttl)

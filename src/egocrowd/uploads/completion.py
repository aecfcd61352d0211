"""Finishing a fully received upload: hand its bytes to the platform exactly once, crash-safely."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from egocrowd import telemetry
from egocrowd.blobs import sha256_file
from egocrowd.clock import utcnow
from egocrowd.errors import EgocrowdError
from egocrowd.uploads.protocol import failure
from egocrowd.uploads.store import UploadInfo, Uploads

__all__ = ["OnComplete", "complete_upload"]

# (info, data_path) -> response headers for the client, e.g. {"Egocrowd-Clip-Id": "42"}
OnComplete = Callable[[UploadInfo, Path], Mapping[str, str] | None]


def complete_upload(store: Uploads, info: UploadInfo, on_complete: OnComplete) -> None:
    """Run ``on_complete`` for an upload in state ``completing``; the caller holds its lock. Blocking.

    ``on_complete`` turns the data file into a clip and returns headers for the client (stored and
    repeated on later HEADs). It MUST be idempotent, keyed by ``info.id``: if the process dies
    inside it, it runs again (``recover_completed``, or the client's next PATCH). An
    ``EgocrowdError`` refuses the upload for good (recorded, replayed to the client, bytes
    dropped); any other exception leaves it ``completing`` for a retry. The data file is deleted
    after it returns, so the hook may move it away; ``info.sha256`` is always set, so
    ``blobs.put_file(path, sha256=info.sha256, move=True, verify=False)`` never reads it again.
    """
    if info.sha256 is None:
        # No streamed hash (a restart mid-upload): hash the file now and save it BEFORE the hook
        # runs. The hook may move the file into the blob store and then fail (a database
        # hiccup); its retry then finds the bytes by this hash. Without it the retry found
        # neither file nor hash: FileNotFoundError forever, the bytes swept later as an orphan.
        info.sha256 = sha256_file(store.data_file(info))[0]
        store.save(info)
    try:
        result = on_complete(info, store.data_file(info))
    except EgocrowdError as err:
        info.error = failure(err)
        _settle(store, info)
        telemetry.UPLOADS_FINISHED.labels(err.code).inc()
        raise
    info.result = {str(k): str(v) for k, v in (result or {}).items()}
    _settle(store, info)
    telemetry.UPLOADS_FINISHED.labels("completed").inc()


def _settle(store: Uploads, info: UploadInfo) -> None:
    info.finished_at = utcnow()
    store.touch(info)  # keep the finished record around for one ttl, for late HEADs
    store.save(info)
    store.drop_data(info.id)

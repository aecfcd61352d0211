"""Uploads: the tus server's hooks for the platform. They resolve the caller, then apply the rules
of :mod:`egocrowd.clips.uploads` (only the assignee, only while the lease runs, only up to the
campaign's limit; a finished upload becomes a clip), or, for an upload whose metadata says
``kind: field_session``, those of :mod:`egocrowd.evaluations.sessions` (a long session's bench log)."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request

from egocrowd.clips import uploads as rules
from egocrowd.evaluations import sessions as field_sessions
from egocrowd.uploads.protocol import Grant
from egocrowd.uploads.store import UploadInfo, Uploads
from egocrowd.web.auth import unit

__all__ = ["PlatformHooks"]


class PlatformHooks:
    """The web door to :mod:`egocrowd.clips.uploads`: resolves the caller, then applies the rules."""

    def __init__(self, db, blobs, store: Uploads, limits: rules.OpenUploadLimits) -> None:
        self.db, self.blobs, self.store, self.limits = db, blobs, store, limits

    def authorize_create(self, request: Request, length: int, metadata: dict[str, str]) -> Grant:
        with unit(request) as ctx:
            worker = ctx.require_user()
            if metadata.get("kind") == field_sessions.KIND:
                return field_sessions.grant_field_upload(ctx.session, worker, metadata)
            return rules.grant_upload(
                ctx.session, worker, metadata, limits=self.limits, open_uploads=self.store.open_uploads(str(worker.id))
            )

    def authorize_access(self, request: Request, info: UploadInfo, verb: str) -> None:
        with unit(request) as ctx:
            if info.context.get("kind") == field_sessions.KIND:  # no lease: the owner only
                rules.check_owner(ctx.require_user(), info)
                return
            rules.check_upload_access(ctx.session, ctx.require_user(), info, writing=verb == "PATCH")

    def on_complete(self, info: UploadInfo, data_path: Path) -> dict[str, str]:
        if info.context.get("kind") == field_sessions.KIND:
            return field_sessions.field_session_from_upload(self.db, self.blobs, info, data_path)
        return rules.clip_from_upload(self.db, self.blobs, info, data_path)

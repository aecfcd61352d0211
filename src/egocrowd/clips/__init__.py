"""Clips: turning received bytes into a Clip record (uploads and bulk ingest), listing them, and the
QC results as workers and requesters see them.

Atomicity of finishing an upload: the bytes go into the content-addressed blob store first (an
atomic rename), then one transaction creates the Clip, moves the assignment to ``submitted``,
writes the audit event and enqueues the first pipeline stage. A crash between the two leaves a blob
nobody references: :func:`sweep_orphan_blobs` deletes those after a grace period. A crash after the
commit is harmless: finishing is keyed by ``source_ref`` (the tus upload id), so running it again
returns the same clip. There is never a Clip without its bytes.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit, consent
from egocrowd.accounts import policy
from egocrowd.blobs import BlobRef, sha256_file
from egocrowd.clock import utcnow
from egocrowd.db import Database
from egocrowd.db.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    Clip,
    ClipStatus,
    Derivative,
    FieldSession,
    PayoutBatch,
    Release,
    ReleaseFile,
    User,
    Withdrawal,
)
from egocrowd.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from egocrowd.i18n import N_, check_words
from egocrowd.pay import rates
from egocrowd.pipeline.runner import enqueue

_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
VIDEO_SUFFIXES = {".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".3gp"}


def sanitize_name(name: str | None) -> str:
    """A display-safe file name: no path, no control or exotic characters, at most 200 chars."""
    base = Path((name or "").replace("\\", "/")).name
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = _UNSAFE.sub("_", base).strip(" ._") or "clip"
    return base[-200:]


def finish_upload(
    db: Database,
    blobs,
    *,
    source_ref: str,
    path: str | Path,
    worker_id: int,
    assignment_id: int | None,
    campaign_id: int,
    original_name: str | None,
    client_meta: dict | None = None,
    actor_id: int | None = None,
    sha256: str | None = None,
    move: bool = False,
) -> Clip:
    """Store ``path``'s bytes and create the clip (idempotent by ``source_ref``).

    ``sha256``: the hash the upload server computed while receiving, so 500 MB are not read again;
    with ``move`` the file is renamed into the store instead of copied. If a crash came after the
    move, the bytes are already in the store under that hash and finishing simply goes on."""
    if sha256 and not Path(path).exists() and blobs.exists(sha256):
        ref = BlobRef(sha256, blobs.size(sha256), existed=True)
    else:
        ref = blobs.put_file(path, sha256=sha256, move=move, verify=sha256 is None)
    # Restart the orphan sweep's grace period: the blob may be old (a dedup hit on an orphan, or
    # bytes moved from an upload whose last write was hours ago) and is about to be referenced.
    # Without this a sweep between here and the commit deleted it: a Clip without its bytes.
    _touch_blob(blobs, ref.sha256)
    try:
        with db.transaction() as s:
            return _record_clip(
                s,
                blobs,
                ref,
                source_ref=source_ref,
                worker_id=worker_id,
                assignment_id=assignment_id,
                campaign_id=campaign_id,
                original_name=original_name,
                client_meta=client_meta,
                actor_id=actor_id,
            )
    except sa.exc.IntegrityError:
        # The same source finished at the same moment elsewhere (two ingest runs over one folder):
        # the unique source_ref let exactly one commit, and that clip is the answer.
        with db.transaction() as s:
            existing = s.scalar(sa.select(Clip).where(Clip.source_ref == source_ref))
        if existing is None:
            raise
        return existing


def _record_clip(
    s: Session,
    blobs,
    ref,
    *,
    source_ref: str,
    worker_id: int,
    assignment_id: int | None,
    campaign_id: int,
    original_name: str | None,
    client_meta: dict | None,
    actor_id: int | None,
) -> Clip:
    """The one transaction of finishing: clip, assignment → submitted, audit events, first stage."""
    existing = s.scalar(sa.select(Clip).where(Clip.source_ref == source_ref))
    if existing is not None:
        return existing
    if not blobs.exists(ref.sha256):  # last guard: never commit a Clip whose bytes are gone
        raise Gone(
            "The uploaded bytes were lost before the clip was saved; upload the file again.", code="upload.bytes_lost"
        )
    if assignment_id is not None:
        a = s.scalar(sa.select(Assignment).where(Assignment.id == assignment_id).with_for_update())
        if a is None or a.worker_id != worker_id:
            raise Forbidden("This is not your assignment.", code="assignment.not_yours")
        if a.status is not AssignmentStatus.active:
            if a.status is AssignmentStatus.expired:
                raise Gone(
                    "The lease on this assignment expired before the upload finished.", code="assignment.lease_expired"
                )
            raise Conflict(f"This assignment is {a.status.value}.", code="assignment.not_active")
        a.status, a.submitted_at = AssignmentStatus.submitted, utcnow()
        # the idle time the capture page saw (upload metadata; checked when the upload began)
        idle = (client_meta or {}).get("idle_seconds")
        if idle is not None:
            try:
                a.idle_seconds = rates.clamp_idle(rates.parse_idle(idle), a.claimed_at, a.submitted_at)
            except InvalidInput:  # uploads from before the check: the time is simply not measured
                a.idle_seconds = None
    first = s.scalar(sa.select(sa.func.min(Clip.id)).where(Clip.sha256 == ref.sha256))
    campaign = s.get(Campaign, campaign_id)
    covering = consent.covering_record(s, worker_id, campaign) if campaign is not None else None
    now = utcnow()
    clip = Clip(
        consent_record_id=covering.id if covering is not None else None,
        campaign_id=campaign_id,
        assignment_id=assignment_id,
        worker_id=worker_id,
        source_ref=source_ref,
        sha256=ref.sha256,
        size=ref.size,
        original_name=sanitize_name(original_name),
        client_meta=_clean_meta(client_meta or {}),
        duplicate_of=first,
        status=ClipStatus.processing,
        created_at=now,
        updated_at=now,
    )
    s.add(clip)
    actor = s.get(User, actor_id if actor_id is not None else worker_id)
    audit.record(
        s,
        actor,
        "clip.uploaded",
        clip,
        {
            "sha256": ref.sha256,
            "size": ref.size,
            "assignment_id": assignment_id,
            "campaign_id": campaign_id,
            "duplicate_of": first,
            "source": source_ref.split(":")[0],
        },
    )
    if assignment_id is not None:
        audit.record(s, actor, "assignment.submitted", assignment_id, {"clip_id": clip.id}, entity_type="assignment")
    enqueue(s, clip)
    return clip


def _clean_meta(meta: dict) -> dict:
    """Client metadata is untrusted: short strings only, a known set of keys."""
    keep = ("device", "recorded_at", "filetype", "app_version", "os", "mount")  # mount: confirmed on the capture page
    return {k: str(meta[k])[:200] for k in keep if meta.get(k)}


def video_files(directory: str | Path) -> list[Path]:
    """The video files under ``directory`` (recursively, by suffix), in a stable order."""
    return sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def ingest_dir(
    db: Database,
    blobs,
    directory: Path,
    *,
    campaign_id: int,
    worker_id: int,
    actor_id: int | None = None,
    progress=None,
) -> dict[str, int]:
    """Bulk ingest of a lab's existing recordings. Rerunning skips files already ingested (by hash)."""
    with db.transaction() as s:
        if s.get(Campaign, campaign_id) is None:
            raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
        if s.get(User, worker_id) is None:
            raise NotFound(f"No user {worker_id}.", code="user.not_found")
    files = video_files(directory)
    counts = Counter(found=len(files))
    for path in files:
        digest, _ = sha256_file(path)  # hashed again while stored: a file changing under us is caught
        ref = f"ingest:{campaign_id}:{digest}"
        with db.transaction() as s:
            seen = s.scalar(sa.select(Clip.id).where(Clip.source_ref == ref)) is not None
        if seen:
            counts["skipped"] += 1
        else:
            finish_upload(
                db,
                blobs,
                source_ref=ref,
                path=path,
                worker_id=worker_id,
                assignment_id=None,
                campaign_id=campaign_id,
                original_name=path.name,
                actor_id=actor_id,
                client_meta={"filetype": path.suffix.lstrip(".")},
            )
            counts["ingested"] += 1
        if progress:
            progress(path)
    return dict(counts)


def _touch_blob(blobs, sha: str) -> None:
    blobs.touch(sha)  # gone: checked again in the transaction


def sweep_orphan_blobs(
    db: Database,
    blobs,
    *,
    grace: timedelta = timedelta(hours=6),
    now: float | None = None,
    chunk: int = 500,
    keep: Callable[[Session], Iterable[str]] | None = None,
) -> list[str]:
    """Delete blobs no clip, derivative or release file references, once they are older than ``grace`` (a crash
    between storing bytes and committing the clip leaves such blobs, and so does a de-identified copy
    whose render result was dropped; the grace covers uploads and renders finishing right now).
    ``keep`` names more blobs in use, for owners in rooms above this one (the catalog's sample
    frames: the worker passes ``releases.buyers.sample_blobs``).
    One query per ``chunk`` old blobs (it was one transaction per blob: 3,000 blobs cost 4.4 s)."""
    now = now or time.time()
    removed: list[str] = []
    kept: set[str] = set()
    if keep is not None:
        with db.transaction(write=False) as s:
            kept = set(keep(s))

    def old_enough(sha: str, modified: float | None = None) -> bool:
        try:
            return now - (modified if modified is not None else blobs.mtime(sha)) >= grace.total_seconds()
        except NotFound:  # another sweeper (another process) got there first
            return False

    old = [r.sha256 for r in blobs.iter_blobs() if r.sha256 not in kept and old_enough(r.sha256, r.modified)]
    for start in range(0, len(old), chunk):
        candidates = old[start : start + chunk]
        with db.transaction(write=False) as s:
            # raw bytes are referenced by their clip, derived media (de-identified copies) by its row, a
            # release's files (and its manifest, one of them) by their ReleaseFile rows (#12); not by a
            # withdrawn clip whose media was purged (releases.withdrawals): bytes that came back (a purge
            # whose deletion failed half-way) are not kept alive by its tombstone
            live = ~sa.exists().where(Withdrawal.clip_id == Clip.id, Withdrawal.purged_at.is_not(None))
            referenced = set(
                s.scalars(
                    sa.union(
                        sa.select(Clip.sha256).where(Clip.sha256.in_(candidates), live),
                        sa.select(Derivative.sha256)
                        .join(Clip, Clip.id == Derivative.clip_id)
                        .where(Derivative.sha256.in_(candidates), live),
                        sa.select(ReleaseFile.sha256).where(ReleaseFile.sha256.in_(candidates)),
                        sa.select(Release.manifest_sha256).where(Release.manifest_sha256.in_(candidates)),
                        sa.select(PayoutBatch.export_sha256).where(PayoutBatch.export_sha256.in_(candidates)),
                        # a long session's log, accepted or refused (kept for the worker and admins, #19)
                        sa.select(FieldSession.blob_sha256).where(FieldSession.blob_sha256.in_(candidates)),
                    )
                )
            )
        for sha in candidates:
            # Re-check the age after the query, right before deleting: finish_upload touches a blob
            # before committing the clip that references it (see there).
            if sha not in referenced and old_enough(sha):
                blobs.delete(sha)
                removed.append(sha)
    # writes killed mid-way: renders (the deidentify stage writes into the store's scratch dir
    # first), spooled puts, downloads to the cache
    blobs.clean_tmp(older_than_s=grace.total_seconds(), now=now)
    return removed


# --- reading ----------------------------------------------------------------------------------------
def list_clips(
    session: Session, user: User, *, campaign_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[Clip]:
    q = sa.select(Clip).where(policy.visible_clips(user)).order_by(Clip.id.desc())
    if campaign_id is not None:
        q = q.where(Clip.campaign_id == campaign_id)
    return list(session.scalars(q.limit(limit).offset(offset)))


def get_clip(session: Session, user: User, clip_id: int) -> Clip:
    """One clip for ``user``: those who list it (visible_clips) and reviewers, who open any clip's
    page and de-identified video (policy ``clip.view_derived``, the same rule); else 404. What a
    reviewer reads of it is what a lab reads (:func:`source_details`)."""
    clip = session.get(Clip, clip_id)
    if clip is None or not policy.can(user, "clip.view_derived", clip):
        raise NotFound(f"No clip {clip_id}.", code="clip.not_found")
    return clip


#: client metadata everyone who sees the clip reads (the rest names the phone or the time of day)
_SHARED_META = ("filetype", "app_version", "mount")


def source_details(user: User, clip: Clip) -> dict[str, Any]:
    """``probe``, ``client_meta`` and ``original_name`` of ``clip`` as ``user`` may read them. The
    de-identified video drops device and owner tags and keeps only the recording date unless the
    campaign needs the time (media.deid.metadata); the API tells a lab or a reviewer no more than
    that. The clip's worker and admins read everything but the server's path of the raw file."""
    probe = {k: v for k, v in clip.probe.items() if k != "path"} if clip.probe else None
    if policy.can(user, "clip.view_source_details", clip):
        return {"probe": probe, "client_meta": dict(clip.client_meta or {}), "original_name": clip.original_name}
    if probe and probe.get("recorded_at") and (clip.campaign.privacy or {}).get("recording_time") != "full":
        probe["recorded_at"] = str(probe["recorded_at"])[:10]  # ISO 8601: the date
    return {
        "probe": probe,
        "client_meta": {k: v for k, v in (clip.client_meta or {}).items() if k in _SHARED_META},
        "original_name": f"clip-{clip.id}{Path(clip.original_name).suffix.lower()}",
    }


class ClipOutcome(Protocol):
    """What feedback is written from: a clip row or its API model."""

    @property
    def status(self) -> ClipStatus: ...
    @property
    def reason_code(self) -> str | None: ...
    @property
    def qc_report(self) -> dict[str, Any] | None: ...


def feedback(clip: ClipOutcome, *, localized: bool = False) -> list[dict[str, Any]]:
    """What the worker reads: each failed (then warned) check in plain words with how to fix it.
    ``message``/``advice`` are English (the API's words, what old reports stored); with
    ``localized`` they are in the language of the moment (a page), from the msgids the report keeps."""
    said: dict[str, Any]
    out: list[dict[str, Any]]
    if clip.status is ClipStatus.rejected:
        said = {
            "message_id": _REJECTION_ADVICE.get(clip.reason_code or "", _UNREADABLE),
            "advice_id": N_("Record the clip again and upload the new file."),
        }
        out = [{"status": "fail", "name": clip.reason_code, **said}]
    elif clip.status is ClipStatus.error:
        said = {
            "message_id": N_("We could not process this clip because of a problem on our side."),
            "advice_id": N_("Nothing to do: we have been alerted. You will not lose this clip."),
        }
        out = [{"status": "fail", "name": clip.reason_code, **said}]
    else:
        report = clip.qc_report or {}
        checks = [c for c in report.get("checks", []) if c.get("status") in ("fail", "warn")]
        checks.sort(key=lambda c: c["status"] != "fail")
        out = [
            {
                "status": c["status"],
                "name": c["name"],
                "message": c.get("message", ""),
                "advice": c.get("advice", ""),
                "message_id": c.get("message_id", ""),
                "params": c.get("params") or {},
                "advice_id": c.get("advice_id", ""),
                "advice_params": c.get("advice_params") or {},
            }
            for c in checks
        ]
    for f in out:
        f.setdefault("message", f["message_id"])
        f.setdefault("advice", f["advice_id"])
        if localized:
            f["message"], f["advice"] = check_words(f), check_words(f, "advice")
    return out


_UNREADABLE = N_("The file could not be read as a video.")
_REJECTION_ADVICE = {
    "video.unreadable": _UNREADABLE,
    "video.empty": N_("The file is empty."),
    "video.not_video": N_("This file is not a video."),
    "video.truncated": N_("The file is cut off: the upload or the recording did not finish."),
    "video.too_short": N_("The video is too short."),
    "video.too_long": N_("The video is far too long."),
    "video.too_large": N_("The picture size is not plausible for a phone video."),
}


def qc_statistics(session: Session, campaign_id: int) -> dict:
    """Pass rate and the most common failures of a campaign's clips (for its requester)."""
    rows = session.execute(
        sa.select(Clip.status, Clip.qc_report, Clip.reason_code).where(Clip.campaign_id == campaign_id)
    ).all()
    by_status = Counter(r.status.value for r in rows)
    failures: Counter[str] = Counter()
    titles: dict[str, str] = {}  # what each failure is called (an N_ msgid: shown translated)
    for status, report, reason in rows:
        if status is ClipStatus.rejected and reason:
            failures[reason] += 1
            titles.setdefault(reason, _REJECTION_ADVICE.get(reason, _UNREADABLE))
        for c in (report or {}).get("checks", []):
            if c.get("status") == "fail":
                failures[c["name"]] += 1
                titles.setdefault(c["name"], c.get("title") or c["name"])
    judged = by_status["qc_passed"] + by_status["qc_failed"] + by_status["rejected"]
    return {
        "clips": len(rows),
        "by_status": dict(by_status),
        "pass_rate": round(by_status["qc_passed"] / judged, 4) if judged else None,
        "top_failures": [{"check": k, "title": titles[k], "clips": v} for k, v in failures.most_common(8)],
    }


def daily_counts(session: Session, campaign_id: int, days: int = 30, *, now: datetime | None = None) -> list[dict]:
    """Clips received and clips that passed QC per UTC day, for the last ``days`` days (today
    included, oldest first, days without clips as zeros). A clip counts as passed on the day its
    status last changed (when QC passed it)."""
    today = (now or utcnow()).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)

    def per_day(col, *where) -> dict[str, int]:
        if session.get_bind().dialect.name == "postgresql":
            day = sa.func.to_char(sa.func.timezone("UTC", col), "YYYY-MM-DD")
        else:  # SQLite keeps UTC text
            day = sa.func.strftime("%Y-%m-%d", col)
        q = sa.select(day, sa.func.count()).where(Clip.campaign_id == campaign_id, col >= since, *where).group_by(day)
        return {str(d): int(n) for d, n in session.execute(q).all()}

    received = per_day(Clip.created_at)
    passed = per_day(Clip.updated_at, Clip.status == ClipStatus.qc_passed)
    out = []
    for i in range(days):
        d = (first + timedelta(days=i)).isoformat()
        out.append({"day": d, "received": received.get(d, 0), "passed": passed.get(d, 0)})
    return out


__all__ = [
    "daily_counts",
    "finish_upload",
    "ingest_dir",
    "video_files",
    "sweep_orphan_blobs",
    "list_clips",
    "get_clip",
    "feedback",
    "qc_statistics",
    "sanitize_name",
]

"""Cutting releases and reading them (docs/releases.md): what the doors call.

:func:`preview` says what a selection comes to without writing anything; :func:`create_release`
cuts one: the next version of its series (organization, name), the clips it holds, what changed
since the previous published version, the formats it will be exported in. The row starts
``building``; :mod:`egocrowd.releases.builder` exports it and publishes it. From ``published`` on,
nothing of it changes: :func:`_refuse_changes` stops any flush that would touch a published release,
its clips or its files (``release.immutable``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session, attributes

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.blobs import Blobs
from egocrowd.db.models import (
    Clip,
    Organization,
    Release,
    ReleaseClip,
    ReleaseFile,
    ReleaseStatus,
    User,
    Withdrawal,
)
from egocrowd.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from egocrowd.releases.exporting import DESCRIBERS, EXPORTERS
from egocrowd.releases.schema import PreviewIn, ReleaseIn, SelectionIn, selection_dict
from egocrowd.releases.selection import Selection, require_all_eligible, select

#: the format version of the Release row's own fields (selection, changes, stats, the manifest)
FORMAT_VERSION = 1


# ---------------------------------------------------------------- whose lab


def _organization(session: Session, user: User | None, organization_id: int | None) -> Organization:
    """The lab a release is cut for: the caller's own, or (admins; the CLI's operator, ``user`` None)
    the one named."""
    org_id = organization_id if organization_id is not None else (user.organization_id if user else None)
    if org_id is None:
        if user is None:
            raise InvalidInput("Name the lab the release is for.", code="release.organization_required")
        if not policy.can(user, "release.create", Organization(id=-1)):  # only admins cut for any lab
            raise Forbidden("Only a lab's owners and editors (and admins) cut releases.", code="auth.forbidden")
        raise InvalidInput("Name the lab (organization_id) the release is for.", code="release.organization_required")
    org = session.get(Organization, org_id)
    if org is None:
        raise NotFound(f"No organization {org_id}.", code="organization.not_found")
    if user is not None:
        policy.require(user, "release.create", org)
    return org


# ---------------------------------------------------------------- formats


def resolve_formats(requested: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """Exporter and describer names → ``{"version": their format version, **options}``. None: every
    registered one with its defaults. An unknown name: ``release.unknown_format`` listing the known."""
    known = {e.name: e for e in EXPORTERS.entries()} | {e.name: e for e in DESCRIBERS.entries()}
    if requested is None:
        return {name: {"version": entry.version} for name, entry in known.items()}
    out: dict[str, Any] = {}
    for name, options in requested.items():
        entry = known.get(name)
        if entry is None:
            raise InvalidInput(
                f"Unknown release format {name!r} (known: {', '.join(sorted(known)) or 'none'}).",
                code="release.unknown_format",
                name=name,
                known=sorted(known),
            )
        out[name] = {**{k: v for k, v in options.items() if k != "version"}, "version": entry.version}
    return out


# ---------------------------------------------------------------- preview and cut


def preview(session: Session, user: User, body: PreviewIn) -> Selection:
    """What ``body.selection`` comes to for the caller's lab: eligible clips, hours, excluded clips
    with reasons. Writes nothing."""
    org = _organization(session, user, body.organization_id)
    return select(session, org, body.selection, body.licence_uses)


def latest_published(session: Session, organization_id: int, name: str) -> Release | None:
    return session.scalar(
        sa.select(Release)
        .where(
            Release.organization_id == organization_id, Release.name == name, Release.status == ReleaseStatus.published
        )
        .order_by(Release.version.desc())
        .limit(1)
    )


def changes_since(session: Session, previous: Release | None, clips: list[Clip]) -> dict[str, list[str]]:
    """By clip sha256: ``added`` (new in this version), ``withdrawn`` (in the previous version, and now
    withdrawn or no longer eligible), ``removed`` (in the previous version, still eligible, but not
    picked this time)."""
    now = sorted({c.sha256 for c in clips})
    if previous is None:
        return {"added": now, "withdrawn": [], "removed": []}
    before_rows = session.execute(
        sa.select(ReleaseClip.clip_id, ReleaseClip.clip_sha256).where(ReleaseClip.release_id == previous.id)
    ).all()
    before = {sha for _, sha in before_rows}
    gone_ids = [cid for cid, sha in before_rows if sha not in set(now)]
    still_ok: set[str] = set()
    if gone_ids:
        org = session.get_one(Organization, previous.organization_id)
        again = select(session, org, SelectionIn.model_construct(clip_ids=gone_ids), previous.licence.get("uses", ()))
        still_ok = {c.sha256 for c in again.clips}
    gone = sorted(before - set(now))
    return {
        "added": sorted(set(now) - before),
        "withdrawn": [s for s in gone if s not in still_ok],
        "removed": [s for s in gone if s in still_ok],
    }


def create_release(session: Session, user: User | None, body: ReleaseIn) -> Release:
    """Cut the next version of ``body.name`` for the caller's lab: status ``building`` (the builder
    exports it). Explicitly picked clips that are not eligible: ``release.clip_ineligible``; nothing
    eligible at all: ``release.empty``. Audited ``release.created``. ``user`` None: the operator at
    the command line (``egocrowd release create``), for the lab ``body.organization_id``."""
    org = _organization(session, user, body.organization_id)
    # one cut of a series at a time (PostgreSQL; SQLite serialises writers anyway): versions never clash
    session.execute(sa.select(Organization.id).where(Organization.id == org.id).with_for_update())
    formats = resolve_formats(body.formats)
    chosen = select(session, org, body.selection, body.licence.uses)
    if body.selection.clip_ids:
        require_all_eligible(chosen)
    if not chosen.clips:
        raise InvalidInput(
            "No eligible clip matches this selection: nothing to release.",
            code="release.empty",
            excluded_reasons=chosen.reason_counts(),
        )
    last_version = session.scalar(
        sa.select(sa.func.max(Release.version)).where(Release.organization_id == org.id, Release.name == body.name)
    )
    previous = latest_published(session, org.id, body.name)
    changes = changes_since(session, previous, chosen.clips)
    licence = body.licence.model_dump(mode="json")
    release = Release(
        organization_id=org.id,
        name=body.name,
        version=(last_version or 0) + 1,
        title=body.title,
        description=body.description,
        previous_id=previous.id if previous else None,
        selection=selection_dict(body.selection),
        licence=licence,
        formats=formats,
        status=ReleaseStatus.building,
        changes=changes,
        progress={"stage": "queued", "done": 0, "total": 0},
        format_version=FORMAT_VERSION,
        created_by=user.id if user else None,
    )
    session.add(release)
    session.flush()
    for c in chosen.clips:
        session.add(
            ReleaseClip(
                release_id=release.id,
                clip_id=c.id,
                clip_sha256=c.sha256,
                media_sha256=c.derived.sha256 if c.derived else "",
                consent_record_id=c.consent_record_id,
            )
        )
    audit.record(
        session,
        user,
        "release.created",
        release,
        {
            "organization_id": org.id,
            "name": release.name,
            "version": release.version,
            "previous_id": release.previous_id,
            "clips": len(chosen.clips),
            "formats": sorted(formats),
            "licence": {"name": licence["name"], "uses": licence["uses"]},
            "added": len(changes["added"]),
            "withdrawn": len(changes["withdrawn"]),
            "removed": len(changes["removed"]),
        },
    )
    session.flush()
    return release


def drop_ineligible(session: Session, release: Release) -> list[dict[str, Any]]:
    """Before a release is built: take out the clips that stopped being eligible since the cut (a
    worker withdrew, an admin removed a clip), and say what changed again. Returns the clips dropped
    with their reasons (audited ``release.clips_dropped``); none left: ``release.empty``."""
    rows = list(session.scalars(sa.select(ReleaseClip).where(ReleaseClip.release_id == release.id)))
    org = session.get_one(Organization, release.organization_id)
    # model_construct: the ids come from our own rows (a release may hold more than a request may name)
    chosen = select(
        session, org, SelectionIn.model_construct(clip_ids=[r.clip_id for r in rows]), release.licence.get("uses", ())
    )
    bad = {e.clip_id: e.reasons for e in chosen.excluded}
    if not bad:
        return []
    if not chosen.clips:
        raise InvalidInput(
            "Every clip of this release stopped being eligible before it was built: nothing to release.",
            code="release.empty",
            excluded_reasons=chosen.reason_counts(),
        )
    for r in rows:
        if r.clip_id in bad:
            session.delete(r)
    previous = session.get(Release, release.previous_id) if release.previous_id else None
    release.changes = changes_since(session, previous, chosen.clips)
    dropped = [{"clip_id": cid, "reasons": reasons} for cid, reasons in sorted(bad.items())]
    audit.record(session, None, "release.clips_dropped", release, {"clips": dropped})
    session.flush()
    return dropped


# ---------------------------------------------------------------- reading


def visible_releases(user: User) -> sa.ColumnElement[bool]:
    """The releases ``user`` may read (policy ``release.view``), as a WHERE clause."""
    if policy.can(user, "release.view", Release(organization_id=user.organization_id or -1)):
        if user.organization_id is None:  # admins read every lab's
            return sa.true()
        return Release.organization_id == user.organization_id
    return sa.false()


def list_releases(
    session: Session, user: User | None, *, organization_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[Release]:
    """The releases the caller may read (``user`` None: the operator, every one), newest first."""
    q = sa.select(Release)
    if user is not None:
        if not policy.can(user, "release.view", Release(organization_id=user.organization_id or -1)):
            raise Forbidden("Only a lab's members and admins see its releases.", code="auth.forbidden")
        q = q.where(visible_releases(user))
    if organization_id is not None:
        q = q.where(Release.organization_id == organization_id)
    return list(session.scalars(q.order_by(Release.id.desc()).limit(limit).offset(offset)))


def get_release(session: Session, user: User | None, release_id: int) -> Release:
    """One release for a member of its lab (or an admin; ``user`` None: the operator); anyone else:
    404, never telling it exists."""
    r = session.get(Release, release_id)
    if r is None or (user is not None and not policy.can(user, "release.view", r)):
        raise NotFound(f"No release {release_id}.", code="release.not_found")
    return r


def release_files(session: Session, release: Release) -> list[ReleaseFile]:
    return list(
        session.scalars(sa.select(ReleaseFile).where(ReleaseFile.release_id == release.id).order_by(ReleaseFile.path))
    )


def release_clip_count(session: Session, release: Release) -> int:
    return session.scalar(sa.select(sa.func.count()).where(ReleaseClip.release_id == release.id)) or 0


def require_published(release: Release) -> None:
    if release.status is not ReleaseStatus.published:
        raise Conflict(
            f"Release {release.id} is {release.status.value}: its files are served once it is published.",
            code="release.not_published",
            status_now=release.status.value,
        )


def manifest_bytes(blobs: Blobs, release: Release) -> bytes:
    """The published manifest, as stored (its sha256 is the release's root hash)."""
    require_published(release)
    assert release.manifest_sha256 is not None  # set together with the published status
    with blobs.open(release.manifest_sha256) as f:
        return f.read()


def manifest(blobs: Blobs, release: Release) -> dict[str, Any]:
    return json.loads(manifest_bytes(blobs, release))


def withdrawals_since(session: Session, release: Release, previous: Release | None) -> list[dict[str, Any]]:
    """The withdrawals a release publishes: clips of any earlier version of its series withdrawn
    since the previous version was published (all of them for a series' first version)."""
    earlier = (
        sa.select(ReleaseClip.clip_id)
        .join(Release, Release.id == ReleaseClip.release_id)
        .where(
            Release.organization_id == release.organization_id,
            Release.name == release.name,
            Release.version < release.version,
            Release.status == ReleaseStatus.published,
        )
    )
    q = sa.select(Withdrawal).where(Withdrawal.clip_id.in_(earlier))
    if previous is not None and previous.published_at is not None:
        q = q.where(Withdrawal.recorded_at >= previous.published_at)
    return [
        {
            "clip_sha256": w.clip_sha256,
            "reason": w.reason,
            "withdrawn_at": w.withdrawn_at.isoformat().replace("+00:00", "Z"),
        }
        for w in session.scalars(q.order_by(Withdrawal.id))
    ]


def export_release(
    session: Session,
    blobs: Blobs,
    release: Release,
    dest: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write a published release's files (and its manifest.json) under ``dest`` from the blob store,
    checking every file's sha256 as it is copied and the manifest's against the root hash.
    ``release.export_mismatch`` names a file whose stored bytes differ; ``release.blob_missing`` one
    that is gone. ``progress(bytes_done, bytes_total)``."""
    require_published(release)
    files = release_files(session, release)
    total = sum(f.size for f in files)
    done = 0
    dest = Path(dest)
    for f in files:
        target = (dest / f.path).resolve()
        if not target.is_relative_to(dest.resolve()):  # paths come from our own build; never trust blindly
            raise InvalidInput(f"Refusing to write outside {dest}: {f.path}", code="release.bad_path")
        target.parent.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        try:
            src = blobs.open(f.sha256)
        except NotFound:
            raise Gone(
                f"The file {f.path} of release {release.id} is missing from the blob store.",
                code="release.blob_missing",
                path=f.path,
            ) from None
        with src, open(target, "wb") as out:
            while chunk := src.read(1024 * 1024):
                h.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        if h.hexdigest() != f.sha256:
            raise Conflict(
                f"The stored bytes of {f.path} hash to {h.hexdigest()}, not {f.sha256}.",
                code="release.export_mismatch",
                path=f.path,
            )
    if release.root_hash != release.manifest_sha256:
        raise Conflict("The manifest does not hash to the release's root hash.", code="release.export_mismatch")
    return {"files": len(files), "bytes": total, "root_hash": release.root_hash}


# ---------------------------------------------------------------- published rows never change

_GUARDED = (Release, ReleaseClip, ReleaseFile)


def _published(session: Session, obj: Any) -> bool:
    if isinstance(obj, Release):
        hist = attributes.get_history(obj, "status")
        was = hist.deleted[0] if hist.deleted else obj.status
        return was is ReleaseStatus.published
    with session.no_autoflush:
        release = session.get(Release, obj.release_id)
    if release is None:
        return False
    hist = attributes.get_history(release, "status")
    was = hist.deleted[0] if hist.deleted else release.status
    return was is ReleaseStatus.published


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    """A published release, its clips and its files never change or go away (``release.immutable``)."""
    for obj in list(session.dirty) + list(session.deleted):
        if (
            isinstance(obj, _GUARDED)
            and (obj in session.deleted or session.is_modified(obj))
            and _published(session, obj)
        ):
            raise Conflict("A published release never changes: cut a new version instead.", code="release.immutable")
    for obj in session.new:  # no new clips or files slipped into a published release
        if isinstance(obj, ReleaseClip | ReleaseFile) and _published(session, obj):
            raise Conflict("A published release never changes: cut a new version instead.", code="release.immutable")


__all__ = [
    "FORMAT_VERSION",
    "changes_since",
    "create_release",
    "drop_ineligible",
    "export_release",
    "get_release",
    "latest_published",
    "list_releases",
    "manifest",
    "manifest_bytes",
    "preview",
    "release_clip_count",
    "release_files",
    "require_published",
    "resolve_formats",
    "visible_releases",
    "withdrawals_since",
]

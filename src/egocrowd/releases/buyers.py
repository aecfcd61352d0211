"""Buyers (#12 part 3): the catalog of published releases, licences, access requests and grants,
signed expiring download links, and the record of every download (docs/buyers.md).

- **Catalog**: every published release of every lab, newest first, with its slices (label counts,
  hours, countries, clips, formats, licence summary) and a few sample frames. Any requester (any
  lab, small ones too) and admins browse it (policy ``catalog.browse``).
- **Licence**: ``Release.licence`` is ``{"name", "terms", "uses", "expires_at"}``. A buyer accepts the
  terms when asking for access; the terms' sha256 goes into the audit event. A buyer's grant may end
  sooner (``ReleaseAccess.expires_at``).
- **Access**: a lab's owners and editors ask for their lab (``release.request_access``); the owning
  lab's owners (``release.manage``) grant or refuse with a note, and may revoke a grant. Each side is
  notified; every change is audited.
- **Downloads**: a granted buyer's member, the owning lab's members and admins ask for links. A link
  is an HMAC signature (itsdangerous, the platform's secret key) over the release, the file's path,
  the user and the expiry; it works without a log-in (``curl -O``), but only for that user's rights
  at the moment of the download: the grant must still hold and the licence be unexpired. Every
  request that serves bytes writes a ``release.downloaded`` event; each download is counted once as
  a ``ReleaseDownload`` row (Range requests continuing one within ``RESUME_WINDOW`` add no row).

Release.stats is read for the slices with these keys (the builder writes them): ``hours`` (float),
``clips`` (int), ``countries`` ({ISO code: clips}), ``labels`` ({"verb noun": spans}). When a key
is missing the slice is counted from the release's clips instead.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.orm import Session

from egocrowd import audit, notifications
from egocrowd.accounts import policy
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    AccessState,
    Clip,
    ClipStatus,
    Derivative,
    Organization,
    OrgRole,
    Release,
    ReleaseAccess,
    ReleaseClip,
    ReleaseDownload,
    ReleaseFile,
    ReleaseStatus,
    Role,
    Span,
    SpanKind,
    User,
)
from egocrowd.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound, Unauthenticated
from egocrowd.i18n import N_
from egocrowd.releases import withdrawals

#: sample frames per release (one per clip, clips spread over the release)
SAMPLE_COUNT = 3
#: sample frames are scaled down to this width (pixels) before JPEG encoding
SAMPLE_WIDTH = 480
SAMPLE_QUALITY = 80
SAMPLE_VERSION = 1
MESSAGE_MAX = 2000
NOTE_MAX = 2000
_LINK_SALT = "egocrowd-release-link"


# --- licence --------------------------------------------------------------------------------------------
def terms_sha256(licence: dict[str, Any]) -> str:
    """The sha256 of the licence terms' UTF-8 text: what a buyer accepted, in their audit event."""
    return hashlib.sha256(str(licence.get("terms") or "").encode()).hexdigest()


def _parse_time(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def licence_expires_at(release: Release) -> datetime | None:
    return _parse_time((release.licence or {}).get("expires_at"))


def licence_summary(release: Release) -> dict[str, Any]:
    """What the catalog shows of a licence: name, uses, expiry, the terms' hash (not the terms)."""
    lic = release.licence or {}
    return {
        "name": lic.get("name") or None,
        "uses": list(lic.get("uses") or []),
        "expires_at": licence_expires_at(release),
        "terms_sha256": terms_sha256(lic) if lic.get("terms") else None,
    }


def _require_licence(release: Release, now: datetime) -> None:
    lic = release.licence or {}
    if not lic.get("terms"):
        raise Forbidden(
            f"Release {release.id} has no licence: nobody outside its lab can use it.", code="release.no_licence"
        )
    ends = licence_expires_at(release)
    if ends is not None and ends <= now:
        raise Forbidden(
            f"The licence of release {release.id} expired on {ends:%Y-%m-%d}.",
            code="release.licence_expired",
            expired_at=ends.isoformat(),
        )


# --- the catalog ----------------------------------------------------------------------------------------
def _published(session: Session, release_id: int) -> Release:
    r = session.get(Release, release_id)
    if r is None or r.status is not ReleaseStatus.published:
        raise NotFound(f"No published release {release_id}.", code="release.not_found")
    return r


def get_release(session: Session, user: User | None, release_id: int) -> Release:
    """A published release for someone who may browse the catalog (404 for a release not published)."""
    policy.require(user, "catalog.browse")
    return _published(session, release_id)


def slices(session: Session, release: Release) -> dict[str, Any]:
    """Clips, hours, countries and label counts: from ``Release.stats``, else counted from its clips."""
    stats = release.stats or {}
    out: dict[str, Any] = {}
    need = [k for k in ("clips", "hours", "countries", "labels") if k not in stats]
    counted = _count(session, release.id, need) if need else {}
    out["clips"] = int(stats["clips"]) if "clips" in stats else counted["clips"]
    out["hours"] = round(float(stats["hours"]), 3) if "hours" in stats else counted["hours"]
    out["countries"] = _counts(stats["countries"], "country") if "countries" in stats else counted["countries"]
    labels = stats.get("labels")
    if isinstance(labels, dict) and isinstance(labels.get("labels"), dict):  # releases.composition's shape
        labels = labels["labels"]
    out["labels"] = _counts(labels) if "labels" in stats else counted["labels"]
    return out


def _counts(value: Any, key: str = "name") -> dict[str, int]:
    """A {name: count} dict, most first, from {name: count}, a list of names (one each), or
    releases.composition's rows ([{"country": "KE", "clips": 3}, ...], named by ``key``)."""
    if isinstance(value, dict):
        pairs = {str(k): int(v) if isinstance(v, int | float) else 0 for k, v in value.items()}
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        pairs = {str(v.get(key)): int(v.get("clips") or 0) for v in value}
    elif isinstance(value, list):
        pairs = dict(Counter(str(v) for v in value))
    else:
        pairs = {}
    return dict(sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])))


def _count(session: Session, release_id: int, need: Sequence[str]) -> dict[str, Any]:
    rows = session.execute(
        sa.select(Clip.id, Clip.probe, User.country)
        .join(ReleaseClip, ReleaseClip.clip_id == Clip.id)
        .join(User, User.id == Clip.worker_id)
        .where(ReleaseClip.release_id == release_id)
    ).all()
    seconds = sum(float((probe or {}).get("duration_s") or 0) for _, probe, _ in rows)
    countries = Counter(c for _, _, c in rows if c)
    labels: Counter[str] = Counter()
    if "labels" in need and rows:
        spans = session.execute(
            sa.select(Span.verb, Span.noun).where(
                Span.clip_id.in_([r[0] for r in rows]), Span.kind == SpanKind.consensus, Span.superseded_at.is_(None)
            )
        )
        labels.update(f"{v} {n}" for v, n in spans)
    return {
        "clips": len(rows),
        "hours": round(seconds / 3600, 3),
        "countries": _counts(dict(countries)),
        "labels": _counts(dict(labels)),
    }


@dataclass(frozen=True)
class Entry:
    """One release as the catalog shows it."""

    release: Release
    organization: str
    slices: dict[str, Any]
    formats: list[str]
    licence: dict[str, Any]
    samples: int  # how many sample frames (GET .../samples/{0..n-1})
    access: ReleaseAccess | None  # the caller's lab's access, if it asked
    owned: bool  # the caller's own lab published it

    def as_dict(self) -> dict[str, Any]:
        r = self.release
        return {
            "id": r.id,
            "name": r.name,
            "version": r.version,
            "title": r.title,
            "description": r.description,
            "organization": self.organization,
            "published_at": r.published_at,
            "root_hash": r.root_hash,
            **self.slices,
            "formats": self.formats,
            "licence": self.licence,
            "samples": [f"/api/v1/catalog/{r.id}/samples/{i}" for i in range(self.samples)],
            "access": access_dict(self.access) if self.access is not None else None,
            "owned": self.owned,
        }


def _entry(session: Session, user: User | None, release: Release) -> Entry:
    """``user`` None: the operator's view (the command line), with no lab of its own."""
    org_id = user.organization_id if user is not None else None
    access = None
    if org_id is not None and org_id != release.organization_id:
        access = _access_of(session, release.id, org_id)
    org = session.get(Organization, release.organization_id)
    return Entry(
        release=release,
        organization=org.name if org else "",
        slices=slices(session, release),
        formats=sorted((release.formats or {}).keys()),
        licence=licence_summary(release),
        samples=len(_sample_sources(session, release)),
        access=access,
        owned=org_id is not None and org_id == release.organization_id,
    )


def list_catalog(
    session: Session,
    user: User | None,
    *,
    label: str | None = None,
    country: str | None = None,
    min_hours: float | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Entry]:
    """Published releases, newest first, that match every filter given: a label among their label
    counts, a country among their countries, at least ``min_hours`` of video, ``q`` in the title,
    name, description or lab's name (case-insensitive)."""
    policy.require(user, "catalog.browse")
    return _catalog(session, user, label=label, country=country, min_hours=min_hours, q=q, limit=limit, offset=offset)


def operator_catalog(session: Session, **filters: Any) -> list[Entry]:
    """:func:`list_catalog` for the operator at the command line (no user: no lab, every release)."""
    return _catalog(session, None, **filters)


def _catalog(
    session: Session,
    user: User | None,
    *,
    label: str | None = None,
    country: str | None = None,
    min_hours: float | None = None,
    q: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Entry]:
    query = (
        sa.select(Release)
        .join(Organization, Organization.id == Release.organization_id)
        .where(Release.status == ReleaseStatus.published)
        .order_by(Release.published_at.desc(), Release.id.desc())
    )
    if q and q.strip():
        needle = f"%{q.strip().lower()}%"
        query = query.where(
            sa.or_(
                sa.func.lower(Release.title).like(needle),
                sa.func.lower(Release.name).like(needle),
                sa.func.lower(Release.description).like(needle),
                sa.func.lower(Organization.name).like(needle),
            )
        )
    label_n = " ".join(label.split()).lower() if label else None
    country_n = country.strip().upper() if country else None
    out: list[Entry] = []
    skipped = 0
    # The slice filters read each release's stats (a JSON the databases query differently): the
    # catalog holds releases by the hundreds, not millions, so they are checked here.
    for release in session.scalars(query):
        entry = _entry(session, user, release)
        s = entry.slices
        if label_n and label_n not in {k.lower() for k in s["labels"]}:
            continue
        if country_n and country_n not in s["countries"]:
            continue
        if min_hours is not None and s["hours"] < min_hours:
            continue
        if skipped < offset:
            skipped += 1
            continue
        out.append(entry)
        if len(out) >= limit:
            break
    return out


def catalog_entry(session: Session, user: User | None, release_id: int) -> Entry:
    release = get_release(session, user, release_id)
    assert user is not None
    return _entry(session, user, release)


def data_card(session: Session, release: Release, blobs) -> str | None:
    """The release's Markdown data card, if the build wrote one and its blob is still there."""
    rows = session.scalars(
        sa.select(ReleaseFile).where(ReleaseFile.release_id == release.id, ReleaseFile.path.like("%.md"))
    ).all()
    cards = [f for f in rows if Path(f.path).name.lower() in ("card.md", "data_card.md", "datacard.md", "readme.md")]
    for f in sorted(cards, key=lambda f: (f.path.count("/"), f.path)):
        if f.size <= 512 * 1024 and blobs.exists(f.sha256):
            return blobs.read_range(f.sha256, 0, f.size).decode("utf-8", errors="replace")
    return None


# --- sample frames --------------------------------------------------------------------------------------
def _sample_sources(session: Session, release: Release) -> list[tuple[int, str]]:
    """(clip id, de-identified media sha256) of up to SAMPLE_COUNT clips spread over the release:
    only clips whose released media is their de-identified derivative (never the raw upload) and
    that are not withdrawn."""
    rows = session.execute(
        sa.select(ReleaseClip.clip_id, ReleaseClip.media_sha256, ReleaseClip.clip_sha256)
        .join(Clip, Clip.id == ReleaseClip.clip_id)
        .join(Derivative, sa.and_(Derivative.clip_id == Clip.id, Derivative.sha256 == ReleaseClip.media_sha256))
        .where(
            ReleaseClip.release_id == release.id,
            Clip.status != ClipStatus.withdrawn,
            ReleaseClip.media_sha256 != ReleaseClip.clip_sha256,
            ReleaseClip.media_sha256 != Clip.sha256,
        )
        .order_by(ReleaseClip.clip_id)
    ).all()
    unique = list(dict.fromkeys((cid, sha) for cid, sha, _ in rows))
    if len(unique) <= SAMPLE_COUNT:
        return unique
    step = len(unique) / SAMPLE_COUNT
    return [unique[int(i * step + step / 2)] for i in range(SAMPLE_COUNT)]


def decode_sample(path: str, width: int = SAMPLE_WIDTH, quality: int = SAMPLE_QUALITY) -> bytes:
    """One JPEG frame from the middle of a video: decoded with PyAV (through the hardened opener),
    scaled to ``width`` and encoded with OpenCV. Pure and picklable: runs in the decoding sandbox."""
    import cv2  # the media stack loads only where a frame is decoded (call_bounded's process)

    from egocrowd.media.opener import open_media

    with open_media(path) as container:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        if duration is None and container.duration:
            duration = container.duration / 1_000_000
        if duration and stream.time_base:
            container.seek(int((duration / 2) / stream.time_base), stream=stream, backward=True)
        frame = None
        for frame in container.decode(stream):  # noqa: B007 - the first frame at or after the seek point
            break
        if frame is None:
            raise InvalidInput("the video has no frame to show", code="release.sample_failed")
        bgr = frame.to_ndarray(format="bgr24")
    h, w = bgr.shape[:2]
    if w > width:
        bgr = cv2.resize(bgr, (width, max(2, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidInput("the frame could not be encoded", code="release.sample_failed")
    return jpeg.tobytes()


def _recorded_samples(session: Session, release_id: int) -> list[str] | None:
    events = audit.find(session, action="release.samples_made", entity_type="release", entity_id=release_id)
    for e in reversed(events):
        if e.payload.get("version") == SAMPLE_VERSION:
            return list(e.payload.get("frames") or [])
    return None


def sample_blobs(session: Session) -> set[str]:
    """Every stored sample frame still named by its release (the orphan sweep keeps them)."""
    return {
        sha
        for e in audit.find(session, action="release.samples_made", entity_type="release")
        for sha in (e.payload or {}).get("frames") or ()
    }


def cached_sample(session: Session, user: User | None, release_id: int, n: int, blobs) -> str | None:
    """The n-th sample frame's blob (its sha256) if it was made and is still stored (None: make them first)."""
    release = get_release(session, user, release_id)
    frames = _recorded_samples(session, release.id)
    if frames is None or not all(blobs.exists(s) for s in frames):
        return None
    return pick_sample(frames, release_id, n, blobs)


def pick_sample(frames: Sequence[str], release_id: int, n: int, blobs) -> str:
    if not 0 <= n < len(frames):
        raise NotFound(f"Release {release_id} has no sample frame {n}.", code="release.sample_not_found")
    return frames[n]


def sample_sources(session: Session, release_id: int, blobs) -> list[tuple[int, str]] | None:
    """What :func:`render_samples` must decode for a published release, or None when its sample
    frames are made and stored already."""
    release = _published(session, release_id)
    frames = _recorded_samples(session, release.id)
    if frames is not None and all(blobs.exists(s) for s in frames):
        return None
    return [(cid, sha) for cid, sha in _sample_sources(session, release) if blobs.exists(sha)]


def render_samples(sources: Sequence[tuple[int, str]], blobs, *, decode=None) -> list[tuple[int, str]]:
    """Decode one JPEG frame per (clip id, media sha256) and store each as a blob; no database
    here, so a web request decodes outside its write transaction. ``decode(path) -> jpeg bytes``
    defaults to :func:`decode_sample` in the decoding sandbox."""
    if decode is None:
        from egocrowd.media.bounded import call_bounded  # the sandbox pool starts only when needed

        def decode(path: str) -> bytes:
            return call_bounded(decode_sample, path, timeout_s=30)

    return [(cid, blobs.put_bytes(decode(str(blobs.local_path(sha)))).sha256) for cid, sha in sources]


def record_samples(session: Session, release_id: int, made: Sequence[tuple[int, str]]) -> list[str]:
    """Remember the sample frames made (``release.samples_made``: later requests read it)."""
    release = _published(session, release_id)
    frames = [sha for _, sha in made]
    audit.record(
        session,
        None,
        "release.samples_made",
        release,
        {"version": SAMPLE_VERSION, "frames": frames, "clips": [cid for cid, _ in made], "width": SAMPLE_WIDTH},
    )
    return frames


def make_missing_samples(db, blobs, *, limit: int = 5, progress=None) -> int:
    """Sample frames for published releases that have none yet: for each, the sources are read in
    a read-only transaction, decoded outside any, and recorded in a short write. ``progress(done,
    total)`` is called after each release. Returns how many releases got theirs."""
    with db.transaction(write=False) as s:
        todo = releases_without_samples(s, limit=limit)
    done = 0
    for i, release_id in enumerate(todo, 1):
        with db.transaction(write=False) as s:
            sources = sample_sources(s, release_id, blobs)
        if sources is not None:
            made = render_samples(sources, blobs)
            with db.transaction() as s:
                record_samples(s, release_id, made)
            done += 1
        if progress is not None:
            progress(i, len(todo))
    return done


def releases_without_samples(session: Session, limit: int = 5) -> list[int]:
    """Published releases whose sample frames were never made (the worker's housekeeping makes them)."""
    made = {
        int(e.entity_id)
        for e in audit.find(session, action="release.samples_made", entity_type="release")
        if e.payload.get("version") == SAMPLE_VERSION
    }
    ids = session.scalars(
        sa.select(Release.id).where(Release.status == ReleaseStatus.published).order_by(Release.id.desc())
    )
    return [i for i in ids if i not in made][:limit]


# --- access ---------------------------------------------------------------------------------------------
def access_dict(a: ReleaseAccess) -> dict[str, Any]:
    return {
        "id": a.id,
        "release_id": a.release_id,
        "organization_id": a.organization_id,
        "state": a.state.value,
        "requested_by": a.requested_by,
        "requested_at": a.requested_at,
        "message": a.message,
        "decided_by": a.decided_by,
        "decided_at": a.decided_at,
        "note": a.note,
        "expires_at": a.expires_at,
    }


def _access_of(session: Session, release_id: int, org_id: int) -> ReleaseAccess | None:
    return session.scalar(
        sa.select(ReleaseAccess).where(ReleaseAccess.release_id == release_id, ReleaseAccess.organization_id == org_id)
    )


def _clean(text: str | None, limit: int) -> str:
    return (text or "").strip()[:limit]


def _lab_people(session: Session, org_id: int, roles: Iterable[OrgRole]) -> list[int]:
    return list(
        session.scalars(
            sa.select(User.id).where(
                User.organization_id == org_id,
                User.role == Role.requester,
                User.org_role.in_(list(roles)),
                User.is_active.is_(True),
            )
        )
    )


def request_access(
    session: Session, user: User | None, release_id: int, *, message: str, accept_terms: bool
) -> ReleaseAccess:
    """The caller's lab asks for access to a release, accepting its licence terms (their sha256 is
    recorded). Asking again after a refusal or a revocation opens the request again."""
    policy.require(user, "release.request_access")
    assert user is not None and user.organization_id is not None
    release = get_release(session, user, release_id)
    if release.organization_id == user.organization_id:
        raise Conflict("This is your own lab's release: you have access already.", code="release.own_release")
    now = utcnow()
    _require_licence(release, now)
    if not accept_terms:
        raise InvalidInput(
            "Read the licence terms and accept them to ask for access.",
            code="release.terms_not_accepted",
            field="accept_terms",
        )
    text = _clean(message, MESSAGE_MAX)
    if len(text) < 10:
        raise InvalidInput(
            "Say what your lab means to do with the data (at least 10 characters).",
            code="release.message_required",
            field="message",
        )
    access = _access_of(session, release.id, user.organization_id)
    if access is not None and access.state in (AccessState.requested, AccessState.granted):
        raise Conflict(
            f"Your lab's access to release {release.id} is already {access.state.value}.",
            code="release.access_exists",
            state=access.state.value,
        )
    if access is None:
        access = ReleaseAccess(release_id=release.id, organization_id=user.organization_id)
        session.add(access)
    access.state = AccessState.requested
    access.requested_by, access.requested_at, access.message = user.id, now, text
    access.decided_by = access.decided_at = access.expires_at = None
    access.note = ""
    session.flush()
    sha = terms_sha256(release.licence)
    audit.record(
        session,
        user,
        "release.access_requested",
        access,
        {
            "release_id": release.id,
            "organization_id": user.organization_id,
            "licence": (release.licence or {}).get("name"),
            "terms_sha256": sha,
            "message": text,
        },
    )
    buyer = session.get(Organization, user.organization_id)
    for uid in _lab_people(session, release.organization_id, (OrgRole.owner,)):
        notifications.notify(
            session,
            uid,
            "release.access_requested",
            N_("{lab} asks for access to {release} v{version}")
            if buyer
            else N_("A lab asks for access to {release} v{version}"),
            N_("Intended use: {text}"),
            link=f"/catalog/{release.id}",
            params={
                "lab": buyer.name if buyer else "",
                "release": release.title,
                "version": release.version,
                "text": text,
            },
        )
    return access


def _logged_in(user: User | None) -> None:
    if user is None:
        raise Unauthenticated("Log in first.", code="auth.required")


def _managed_access(session: Session, user: User | None, access_id: int) -> tuple[ReleaseAccess, Release]:
    _logged_in(user)
    access = session.get(ReleaseAccess, access_id)
    release = session.get(Release, access.release_id) if access else None
    if access is None or release is None or not policy.can(user, "release.view", release):
        raise NotFound(f"No access request {access_id}.", code="release.access_not_found")
    policy.require(user, "release.manage", release)
    return access, release


def _tell_buyer(session: Session, access: ReleaseAccess, release: Release, subject: str, body: list[str]) -> None:
    """``subject`` and ``body``: msgids (notify translates them for each person), filled with the
    release's title and version and the owning lab's note."""
    people = set(_lab_people(session, access.organization_id, (OrgRole.owner, OrgRole.editor)))
    if access.requested_by:
        people.add(access.requested_by)
    params = {"release": release.title, "version": release.version, "note": access.note or ""}
    for uid in sorted(people):
        notifications.notify(
            session, uid, "release.access_decided", subject, body, link=f"/catalog/{release.id}", params=params
        )


def decide(
    session: Session,
    user: User | None,
    access_id: int,
    *,
    grant: bool,
    note: str = "",
    expires_at: datetime | None = None,
) -> ReleaseAccess:
    """The owning lab grants (optionally until ``expires_at``) or refuses a pending request."""
    access, release = _managed_access(session, user, access_id)
    if access.state is not AccessState.requested:
        raise Conflict(
            f"This request was already decided ({access.state.value}).",
            code="release.access_decided",
            state=access.state.value,
        )
    now = utcnow()
    ends = _parse_time(expires_at)
    if grant:
        _require_licence(release, now)
        if ends is not None and ends <= now:
            raise InvalidInput("The grant's end must be in the future.", code="release.bad_expiry", field="expires_at")
    access.state = AccessState.granted if grant else AccessState.refused
    access.decided_by, access.decided_at = user.id if user else None, now
    access.note = _clean(note, NOTE_MAX)
    access.expires_at = ends if grant else None
    audit.record(
        session,
        user,
        "release.access_granted" if grant else "release.access_refused",
        access,
        {"release_id": release.id, "organization_id": access.organization_id, "note": access.note, "expires_at": ends},
    )
    _tell_buyer(
        session,
        access,
        release,
        N_("Access to {release} v{version} granted") if grant else N_("Access to {release} v{version} refused"),
        [N_("The lab's note: {note}") if access.note else "", N_("You can now download it.") if grant else ""],
    )
    return access


def revoke(session: Session, user: User | None, access_id: int, *, note: str = "") -> ReleaseAccess:
    """End a grant: links already handed out stop working at once."""
    access, release = _managed_access(session, user, access_id)
    if access.state is not AccessState.granted:
        raise Conflict(
            f"Only granted access can be revoked (this one is {access.state.value}).",
            code="release.access_not_granted",
            state=access.state.value,
        )
    access.state = AccessState.revoked
    access.decided_by, access.decided_at = user.id if user else None, utcnow()
    access.note = _clean(note, NOTE_MAX)
    audit.record(
        session,
        user,
        "release.access_revoked",
        access,
        {"release_id": release.id, "organization_id": access.organization_id, "note": access.note},
    )
    _tell_buyer(
        session,
        access,
        release,
        N_("Access to {release} v{version} revoked"),
        [N_("The lab's note: {note}") if access.note else ""],
    )
    return access


def list_access(session: Session, user: User | None, release_id: int) -> list[tuple[ReleaseAccess, str]]:
    """Every buyer's request for one release with the buyer lab's name, pending first: the owning
    lab's members and admins."""
    _logged_in(user)
    release = session.get(Release, release_id)
    if release is None or not policy.can(user, "release.view", release):
        raise NotFound(f"No release {release_id}.", code="release.not_found")
    rows = session.execute(
        sa.select(ReleaseAccess, Organization.name)
        .join(Organization, Organization.id == ReleaseAccess.organization_id)
        .where(ReleaseAccess.release_id == release.id)
    )
    return sorted(((a, name) for a, name in rows), key=lambda p: (p[0].state is not AccessState.requested, -p[0].id))


def pending_requests(
    session: Session, user: User | None, *, operator: bool = False
) -> list[tuple[ReleaseAccess, Release, str]]:
    """The requests waiting for the caller's lab (an admin, or the ``operator`` at the command line:
    every lab), oldest first, with the release and the asking lab's name."""
    if operator:
        return _pending(session, None)
    policy.require(user, "catalog.browse")
    return _pending(session, user)


def _pending(session: Session, user: User | None) -> list[tuple[ReleaseAccess, Release, str]]:
    q = (
        sa.select(ReleaseAccess, Release, Organization.name)
        .join(Release, Release.id == ReleaseAccess.release_id)
        .join(Organization, Organization.id == ReleaseAccess.organization_id)
        .where(ReleaseAccess.state == AccessState.requested)
        .order_by(ReleaseAccess.requested_at, ReleaseAccess.id)
    )
    if user is None:  # the operator
        return [(a, r, name) for a, r, name in session.execute(q)]
    if user.role is not Role.admin:
        q = q.where(Release.organization_id == user.organization_id)
    return [(a, r, name) for a, r, name in session.execute(q) if policy.can(user, "release.view", r)]


def my_access(session: Session, user: User | None) -> list[tuple[ReleaseAccess, Release]]:
    """The caller's lab's requests and grants, newest first."""
    policy.require(user, "catalog.browse")
    assert user is not None
    if user.organization_id is None:
        return []
    q = (
        sa.select(ReleaseAccess, Release)
        .join(Release, Release.id == ReleaseAccess.release_id)
        .where(ReleaseAccess.organization_id == user.organization_id)
        .order_by(ReleaseAccess.id.desc())
    )
    return [(a, r) for a, r in session.execute(q)]


# --- downloads ------------------------------------------------------------------------------------------
def _download_right(session: Session, user: User | None, release: Release, now: datetime) -> int | None:
    """Whether ``user`` may download ``release`` now; returns the buyer organization's id (None for
    the owning lab's members and admins), or raises the reason they may not."""
    if user is None or not user.is_active:
        raise Forbidden("This link's user can no longer download.", code="release.no_access")
    if policy.can(user, "release.view", release):
        return None
    policy.require(user, "catalog.browse")
    access = _access_of(session, release.id, user.organization_id) if user.organization_id else None
    if access is None or access.state in (AccessState.requested, AccessState.refused):
        raise Forbidden(
            f"Your lab has no access to release {release.id}: ask for it on its catalog page.",
            code="release.no_access",
            state=access.state.value if access else None,
        )
    if access.state is AccessState.revoked:
        raise Forbidden(
            f"Your lab's access to release {release.id} was revoked.", code="release.access_revoked", note=access.note
        )
    _require_licence(release, now)
    ends = _parse_time(access.expires_at)
    if ends is not None and ends <= now:
        raise Forbidden(
            f"Your lab's licence for release {release.id} ended on {ends:%Y-%m-%d}.",
            code="release.licence_expired",
            expired_at=ends.isoformat(),
        )
    return access.organization_id


def list_files(session: Session, user: User | None, release_id: int) -> list[ReleaseFile]:
    """A release's files, for whoever may download it."""
    release = _published_for(session, user, release_id)
    _download_right(session, user, release, utcnow())
    return list(
        session.scalars(sa.select(ReleaseFile).where(ReleaseFile.release_id == release.id).order_by(ReleaseFile.path))
    )


def _published_for(session: Session, user: User | None, release_id: int) -> Release:
    """The published release, for a requester or an admin (everyone else may download nothing)."""
    policy.require(user, "catalog.browse")  # every owning lab's member and admin browses the catalog too
    return _published(session, release_id)


@dataclass(frozen=True)
class Link:
    path: str
    url: str
    size: int
    sha256: str
    expires_at: datetime


def _signer(secret: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret, salt=_LINK_SALT)


def link_url(release_id: int, path: str, token: str) -> str:
    return f"/api/v1/catalog/{release_id}/download/{quote(path)}?token={token}"


def sign_link(secret: str, release_id: int, path: str, user_id: int, expires_at: datetime) -> str:
    """The token of a download link: release, path, user and expiry (epoch seconds), signed."""
    return _signer(secret).dumps({"r": release_id, "p": path, "u": user_id, "x": int(expires_at.timestamp())})


def issue_links(
    session: Session,
    user: User | None,
    release_id: int,
    *,
    secret: str,
    minutes: float,
    paths: Sequence[str] | None = None,
    manifest: bool = False,
) -> list[Link]:
    """Signed links for ``user``: to the files named in ``paths``, to the manifest, or (neither) to
    every file of the release. Audited once per request (``release.links_issued``)."""
    release = _published_for(session, user, release_id)
    assert user is not None
    now = utcnow()
    _download_right(session, user, release, now)
    files = {f.path: f for f in session.scalars(sa.select(ReleaseFile).where(ReleaseFile.release_id == release.id))}
    if manifest:
        chosen = [f for f in files.values() if f.format == "manifest" or f.sha256 == release.manifest_sha256]
        if not chosen:
            raise NotFound(f"Release {release.id} has no manifest file.", code="release.file_not_found")
    elif paths:
        missing = [p for p in paths if p not in files]
        if missing:
            raise NotFound(
                f"Release {release.id} has no file {missing[0]!r}.", code="release.file_not_found", paths=missing[:20]
            )
        chosen = [files[p] for p in dict.fromkeys(paths)]
    else:
        chosen = sorted(files.values(), key=lambda f: f.path)
    expires = now + timedelta(minutes=minutes)
    links = [
        Link(
            f.path,
            link_url(release.id, f.path, sign_link(secret, release.id, f.path, user.id, expires)),
            f.size,
            f.sha256,
            expires,
        )
        for f in chosen
    ]
    audit.record(
        session,
        user,
        "release.links_issued",
        release,
        {"files": len(links), "paths": [f.path for f in chosen][:50], "expires_at": expires},
    )
    return links


def read_link(secret: str, token: str, release_id: int, path: str, *, now: datetime | None = None) -> int:
    """The user a valid link was issued to, or the problem: tampered (403 ``release.link_invalid``),
    for another file (403 ``release.link_invalid``), expired (410 ``release.link_expired``)."""
    try:
        data = _signer(secret).loads(token or "")
    except BadSignature:
        raise Forbidden(
            "This download link is not valid (changed or incomplete): ask for a new one.", code="release.link_invalid"
        ) from None
    if not isinstance(data, dict) or not {"r", "p", "u", "x"} <= set(data):
        raise Forbidden("This download link is not valid.", code="release.link_invalid")
    if data["r"] != release_id or data["p"] != path:
        raise Forbidden("This download link was issued for another file.", code="release.link_invalid")
    now = now or utcnow()
    if int(data["x"]) <= now.timestamp():
        raise Gone(
            "This download link expired: ask for a new one (links last a limited time).",
            code="release.link_expired",
            expired_at=datetime.fromtimestamp(int(data["x"]), UTC).isoformat(),
        )
    return int(data["u"])


#: a Range request for a file the same user downloaded this recently continues that download (a
#: resumed transfer, or a client fetching parts in parallel): audited, but not counted again
RESUME_WINDOW = timedelta(hours=24)


def _downloaded_lately(session: Session, release_id: int, user_id: int, sha256: str, now: datetime) -> bool:
    return (
        session.scalar(
            sa.select(ReleaseDownload.id)
            .where(
                ReleaseDownload.release_id == release_id,
                ReleaseDownload.user_id == user_id,
                ReleaseDownload.sha256 == sha256,
                ReleaseDownload.at >= now - RESUME_WINDOW,
            )
            .limit(1)
        )
        is not None
    )


@dataclass(frozen=True)
class Download:
    filename: str
    size: int
    sha256: str
    #: an object store's presigned GET for this blob (None on file://: the app serves the bytes)
    redirect: str | None = None


def open_download(
    session: Session,
    caller_id: int | None,
    release_id: int,
    path: str,
    token: str,
    blobs,
    *,
    secret: str,
    byte_range: str | None = None,
    link_lifetime: timedelta = timedelta(minutes=5),
) -> Download:
    """Check a signed link and record the download (a ``ReleaseDownload`` row and an event) in
    ``session``'s write transaction, before any byte is served. ``caller_id`` is whoever the request
    authenticated as (None: an anonymous ``curl``): a link used by another logged-in user is refused."""
    user_id = read_link(secret, token, release_id, path)
    if caller_id is not None and caller_id != user_id:
        raise Forbidden(
            "This download link was issued to someone else: ask for your own.", code="release.link_not_yours"
        )
    user = session.get(User, user_id)
    release = _published(session, release_id)
    now = utcnow()
    buyer = _download_right(session, user, release, now)
    f = session.scalar(sa.select(ReleaseFile).where(ReleaseFile.release_id == release.id, ReleaseFile.path == path))
    if f is None:
        raise NotFound(f"Release {release.id} has no file {path!r}.", code="release.file_not_found")
    if not blobs.exists(f.sha256):
        raise Gone(
            f"The file {path!r} of release {release.id} was withdrawn (its clips' consent ended) and deleted.",
            code="release.file_withdrawn",
            sha256=f.sha256,
        )
    continued = bool(byte_range) and _downloaded_lately(session, release.id, user_id, f.sha256, now)
    if not continued:
        session.add(
            ReleaseDownload(
                release_id=release.id, organization_id=buyer, user_id=user_id, path=path, sha256=f.sha256, at=now
            )
        )
        if buyer is not None:  # a release holding clips withdrawn before this download: told now, not next round
            withdrawals.notices_after_download(session, release.id, buyer)
    audit.record(  # every request that serves bytes, continuations included: the access log is whole
        session,
        user,
        "release.downloaded",
        release,
        {
            "path": path,
            "sha256": f.sha256,
            "organization_id": buyer,
            "range": (byte_range or "")[:100] or None,
            "continued": continued,
        },
    )
    # recorded above before any byte leaves, whether the app or the object store then sends them
    return Download(
        Path(path).name or "file", f.size, f.sha256, redirect=blobs.signed_url(f.sha256, expires=link_lifetime)
    )


def downloads(session: Session, user: User | None, release_id: int, *, limit: int = 200) -> list[ReleaseDownload]:
    """The release's downloads, newest first: the owning lab's members and admins."""
    _logged_in(user)
    release = session.get(Release, release_id)
    if release is None or not policy.can(user, "release.view", release):
        raise NotFound(f"No release {release_id}.", code="release.not_found")
    return list(
        session.scalars(
            sa.select(ReleaseDownload)
            .where(ReleaseDownload.release_id == release.id)
            .order_by(ReleaseDownload.id.desc())
            .limit(limit)
        )
    )


__all__ = [
    "Download",
    "Entry",
    "Link",
    "access_dict",
    "cached_sample",
    "catalog_entry",
    "data_card",
    "decide",
    "decode_sample",
    "downloads",
    "get_release",
    "issue_links",
    "licence_summary",
    "list_access",
    "list_catalog",
    "list_files",
    "make_missing_samples",
    "record_samples",
    "render_samples",
    "sample_sources",
    "my_access",
    "operator_catalog",
    "open_download",
    "pending_requests",
    "pick_sample",
    "read_link",
    "releases_without_samples",
    "request_access",
    "revoke",
    "sign_link",
    "slices",
    "terms_sha256",
]

"""Building a release: from a ``building`` row to a published, immutable dataset (docs/releases.md).

One build, in order:

1. **Claim** the release with a lease (``lease_expires_at``, ``attempts`` + 1), by a conditional
   UPDATE: two builders never build one release; a builder that died leaves a lease that runs out,
   and the next one picks the release up again (``build_next``).
2. **Spec**: one :class:`~egocrowd.releases.exporting.ReleaseItem` per clip: its de-identified video
   (a path into the blob store; a blob missing fails the build with ``release.blob_missing`` naming
   the clips), pseudonyms (HMAC of the secret key, stable across a series), spans (the live consensus
   or reviewed spans), agreement, QC, probe, consent, de-identification parameters.
3. **Export**: every exporter of ``Release.formats`` into its own folder of a scratch directory,
   then every describer (which gets the files written so far, hashed); progress is written to the row
   (at most once a second, renewing the lease).
4. **Manifest**: every file's path, size and sha256, the release's identity, licence, formats, what
   changed and the withdrawals since the previous version; stored as canonical JSON, so the **root
   hash** is simply its sha256 (``sha256sum manifest.json``).
5. **Publish**, in one transaction: every file stored as a blob beforehand, ``ReleaseFile`` rows,
   ``ReleaseClip.files``, stats, root hash, status ``published``, the audit event, and a signed audit
   checkpoint (``release:<id>``) committed with it. Until then nothing of the release is served.

Errors of ours (``EgocrowdError``) fail the build for good (status ``failed``, ``error``: the problem);
anything else (a crash, the database gone a moment) gives the lease back for another attempt, up to
:data:`MAX_ATTEMPTS`. A killed process leaves the release ``building`` until its lease runs out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.audit.checkpoints import checkpoint_at_commit, signing_key
from egocrowd.blobs import Blobs, sha256_file
from egocrowd.clock import db_now
from egocrowd.db.models import (
    AnnotationTask,
    AnnotationTaskStatus,
    Assignment,
    Campaign,
    Clip,
    ClipStatus,
    ConsentRecord,
    Release,
    ReleaseClip,
    ReleaseFile,
    ReleaseStatus,
    Span,
    SpanKind,
    User,
    Withdrawal,
)
from egocrowd.errors import Conflict, EgocrowdError, Gone
from egocrowd.pay import rates
from egocrowd.pay.money import Money
from egocrowd.releases import credentials, service
from egocrowd.releases.composition import composition
from egocrowd.releases.exporting import DESCRIBERS, EXPORTERS, FileEntry, ReleaseItem, ReleaseSpec, SpanLabel
from egocrowd.releases.lineage import clip_lineage, prov_document, pseudonym
from egocrowd.releases.selection import duration_s, qc_value

log = logging.getLogger("egocrowd.releases")

#: a build not finished after this many attempts is failed (``release.build_gave_up``)
MAX_ATTEMPTS = 3
#: how long a claim holds; the build renews it with every progress write
LEASE = timedelta(minutes=10)
#: clips signed at once: signing is most of a build's time and uses a core each (the library reads
#: and writes the files itself, without the GIL: credentials.sign_video)
SIGNING_THREADS = min(4, os.cpu_count() or 1)
#: files hashed at once for the manifest (hashlib lets go of the GIL: a core each)
HASHING_THREADS = SIGNING_THREADS
#: the manifest's own format (the fields below); bump it when they change
MANIFEST_FORMAT_VERSION = 1
MANIFEST_PATH = "manifest.json"

#: what the build reports as it goes: (stage, done, total)
BuildProgress = Callable[[str, int, int], None]


class BuildLost(Exception):
    """Another builder holds the release now (our lease ran out): stop without writing anything."""


class _Again(Exception):
    """A clip of the release was withdrawn while it was being exported: give the lease back, so that
    the next attempt leaves it out (``service.drop_ineligible``)."""


def _withdrawn_meanwhile(session: Session, release_id: int) -> bool:
    ids = sa.select(ReleaseClip.clip_id).where(ReleaseClip.release_id == release_id)
    withdrawn = sa.or_(Clip.status == ClipStatus.withdrawn, Clip.id.in_(sa.select(Withdrawal.clip_id)))
    return session.scalar(sa.select(Clip.id).where(Clip.id.in_(ids), withdrawn).limit(1)) is not None


# ---------------------------------------------------------------- pure parts


def median_hourly(pay: Money, seconds: Sequence[float]) -> Money | None:
    """What ``pay`` per task comes to per hour at the median of the tasks' working ``seconds``; None
    without a time. The campaigns' own rule (``pay.rates``: exact median, rounded down), applied to
    the released clips' tasks only."""
    worked = [int(s) for s in seconds if s > 0]
    return rates.hourly(pay, rates.median(worked)) if worked else None


def canonical_json(value: Any) -> bytes:
    """The manifest's bytes: sorted keys, no spaces, UTF-8. Its sha256 is the root hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def root_hash(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()


def verify_folder(folder: Path, expected_root: str | None = None) -> dict[str, Any]:
    """Check an exported release offline: the manifest's sha256 is the root hash, every file it lists
    is there with its size and sha256. Raises ``release.verify_failed`` naming what differs."""
    data = (folder / MANIFEST_PATH).read_bytes()
    got = root_hash(data)
    problems = []
    if expected_root is not None and got != expected_root:
        problems.append(f"{MANIFEST_PATH}: sha256 {got}, the root hash is {expected_root}")
    m = json.loads(data)
    for f in m["files"]:
        p = folder / f["path"]
        if not p.is_file():
            problems.append(f"{f['path']}: missing")
            continue
        sha, size = sha256_file(p)
        if sha != f["sha256"] or size != f["size"]:
            problems.append(f"{f['path']}: sha256 {sha} ({size} bytes), the manifest says {f['sha256']} ({f['size']})")
    if problems:
        raise Conflict(
            "The release does not match its manifest: " + "; ".join(problems[:10]),
            code="release.verify_failed",
            problems=problems,
        )
    return {"root_hash": got, "files": len(m["files"])}


# ---------------------------------------------------------------- claiming


@dataclass(frozen=True)
class Claim:
    release_id: int
    attempt: int


def _pending(now: Any) -> sa.ColumnElement[bool]:
    return sa.and_(
        Release.status == ReleaseStatus.building,
        sa.or_(Release.lease_expires_at.is_(None), Release.lease_expires_at < now),
    )


def claim(session: Session, release_id: int | None = None, *, lease: timedelta = LEASE) -> Claim | None:
    """Take the oldest buildable release (or ``release_id``) for ``lease``; None when there is none or
    another builder holds it. A release past :data:`MAX_ATTEMPTS` is failed here."""
    now = db_now(session)
    q = sa.select(Release.id, Release.attempts).where(_pending(now)).order_by(Release.id)
    if release_id is not None:
        q = q.where(Release.id == release_id)
    for rid, attempts in session.execute(q.limit(5)).all():
        if attempts >= MAX_ATTEMPTS:
            _fail(
                session,
                rid,
                attempts,
                Gone(
                    f"The build of release {rid} was interrupted {attempts} times; it is given up.",
                    code="release.build_gave_up",
                ),
            )
            continue
        won = session.execute(
            sa.update(Release)
            .where(Release.id == rid, Release.attempts == attempts, _pending(now))
            .values(attempts=attempts + 1, lease_expires_at=now + lease)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(won) == 1:
            return Claim(rid, attempts + 1)
    return None


def next_buildable(session: Session) -> int | None:
    """The oldest release waiting for a builder (building, no live lease), if any."""
    return session.scalar(sa.select(Release.id).where(_pending(db_now(session))).order_by(Release.id).limit(1))


def _still_ours(session: Session, c: Claim, *, lock: bool = False) -> Release:
    q = sa.select(Release).where(
        Release.id == c.release_id, Release.attempts == c.attempt, Release.status == ReleaseStatus.building
    )
    release = session.scalar(q.with_for_update() if lock else q)
    if release is None:
        raise BuildLost(c.release_id)
    return release


def _fail(session: Session, release_id: int, attempt: int, err: EgocrowdError) -> None:
    """Status ``failed`` with the problem (only while still building under this attempt)."""
    error = {"code": err.code, "message": err.message, **{k: v for k, v in err.extra.items() if _jsonable(v)}}
    done = session.execute(
        sa.update(Release)
        .where(Release.id == release_id, Release.attempts == attempt, Release.status == ReleaseStatus.building)
        .values(status=ReleaseStatus.failed, error=error, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(done):
        audit.record(session, None, "release.failed", release_id, {"error": error}, entity_type="release")


def _rowcount(result: Any) -> int:
    """Rows a conditional UPDATE changed (a CursorResult's; typed as a plain Result)."""
    return int(getattr(result, "rowcount", 0) or 0)


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------- the spec


def _probe_facts(probe: Mapping[str, Any] | None) -> dict[str, Any]:
    """The probe without what says where the raw file lives or when its camera says it was made."""
    return {k: v for k, v in (probe or {}).items() if k not in ("path", "size_bytes", "recorded_at")}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def spans_of(session: Session, clip_ids: Sequence[int]) -> dict[int, list[Span]]:
    """The live labels of each clip: consensus spans (or a reviewer's fix of them), not superseded."""
    out: dict[int, list[Span]] = {}
    for start in range(0, len(clip_ids), 1000):
        for s in session.scalars(
            sa.select(Span)
            .where(
                Span.clip_id.in_(clip_ids[start : start + 1000]),
                Span.kind.in_((SpanKind.consensus, SpanKind.review)),
                Span.superseded_at.is_(None),
            )
            .order_by(Span.clip_id, Span.start_ms, Span.id)
        ):
            out.setdefault(s.clip_id, []).append(s)
    return out


def build_spec(
    session: Session, blobs: Blobs, release: Release, secret: str, *, with_lineage: bool = True
) -> ReleaseSpec:
    """Everything exporters see of ``release``, each clip with its lineage (PROV) unless
    ``with_lineage`` is off. A clip whose de-identified video is missing from the blob store:
    ``release.blob_missing`` (Gone) naming every such clip."""
    rows = list(
        session.scalars(
            sa.select(ReleaseClip).where(ReleaseClip.release_id == release.id).order_by(ReleaseClip.clip_id)
        )
    )
    ids = [r.clip_id for r in rows]
    clips = {c.id: c for c in session.scalars(sa.select(Clip).where(Clip.id.in_(ids)))} if ids else {}
    missing = [r.clip_id for r in rows if not r.media_sha256 or not blobs.exists(r.media_sha256)]
    if missing:
        raise Gone(
            f"The de-identified video of clip{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} "
            "is missing from the blob store: the release cannot be built.",
            code="release.blob_missing",
            clip_ids=missing,
        )
    spans = spans_of(session, ids)
    annotators: dict[int, list[int]] = {}
    for cid, uid in session.execute(
        sa.select(AnnotationTask.clip_id, AnnotationTask.annotator_id)
        .where(AnnotationTask.clip_id.in_(ids), AnnotationTask.status == AnnotationTaskStatus.submitted)
        .order_by(AnnotationTask.id)
    ):
        annotators.setdefault(cid, []).append(uid)
    campaigns = {
        c.id: c
        for c in session.scalars(sa.select(Campaign).where(Campaign.id.in_({c.campaign_id for c in clips.values()})))
    }
    countries = dict(
        session.execute(
            sa.select(User.id, User.country).where(User.id.in_({c.worker_id for c in clips.values()}))
        ).all()
    )
    records = {
        r.id: r
        for r in session.scalars(
            sa.select(ConsentRecord).where(
                ConsentRecord.id.in_({r.consent_record_id for r in rows if r.consent_record_id})
            )
        )
    }
    items = []
    for r in rows:
        c = clips[r.clip_id]
        d = c.derived
        assert d is not None  # eligibility required it; the blob check above found its bytes
        camp = campaigns[c.campaign_id]
        rec = records.get(r.consent_record_id) if r.consent_record_id else None
        probe = c.probe or {}
        items.append(
            ReleaseItem(
                clip_id=c.id,
                clip_sha256=c.sha256,
                media_path=blobs.local_path(r.media_sha256),  # exporters read files: a cached copy on s3://
                media_sha256=r.media_sha256,
                media_size=blobs.size(r.media_sha256),
                campaign_id=camp.id,
                campaign_title=camp.title,
                task=camp.title,
                worker=pseudonym(secret, "worker", c.worker_id),
                country=countries.get(c.worker_id),
                recorded_at=c.created_at,
                duration_s=duration_s(c),
                width=int(w) if (w := qc_value(c.qc_report, "width") or _num(probe.get("width"))) else None,
                height=int(h) if (h := qc_value(c.qc_report, "height") or _num(probe.get("height"))) else None,
                fps=_num(probe.get("fps")) or qc_value(c.qc_report, "fps"),
                probe=_probe_facts(probe),
                qc=dict(c.qc_report or {}),
                spans=tuple(SpanLabel(s.start_ms, s.end_ms, s.verb, s.noun, s.confidence) for s in spans.get(c.id, ())),
                agreement=dict(c.agreement) if c.agreement else None,
                annotators=tuple(dict.fromkeys(pseudonym(secret, "annotator", u) for u in annotators.get(c.id, ()))),
                consent={
                    "version": rec.document.version,
                    "sha256": rec.document.sha256,
                    "scopes": sorted(rec.scopes or ()),
                    "language": rec.document.language,
                }
                if rec is not None
                else {},
                deid={
                    "stage_version": d.stage_version,
                    "format_version": d.format_version,
                    "params": d.params,
                    "summary": d.summary,
                },
                lineage=prov_document(clip_lineage(session, c, secret=secret), clip_sha256=c.sha256)
                if with_lineage
                else None,
            )
        )
    pay = pay_figures(session, list(clips.values()), campaigns)
    previous = session.get(Release, release.previous_id) if release.previous_id else None
    spec = ReleaseSpec(
        release_id=release.id,
        name=release.name,
        version=release.version,
        title=release.title,
        description=release.description,
        organization=release.organization.name,
        licence=dict(release.licence),
        created_at=release.created_at,
        items=tuple(items),
        previous={"id": previous.id, "version": previous.version, "root_hash": previous.root_hash}
        if previous
        else None,
        changes=dict(release.changes),
        campaigns=tuple(
            {
                "id": c.id,
                "title": c.title,
                "instructions": c.instructions,
                "taxonomy": c.taxonomy,
                "data_use": c.data_use,
                "buyer": c.buyer_name,
                "annotation": c.annotation,
                "pay": next((p for p in pay if p["campaign_id"] == c.id), None),
            }
            for c in sorted(campaigns.values(), key=lambda c: c.id)
        ),
    )
    # the one composition (Release.stats, the catalog's slices, the data card, the Croissant RAI text)
    return replace(spec, stats=composition(spec))


def pay_figures(session: Session, clips: Sequence[Clip], campaigns: Mapping[int, Campaign]) -> list[dict[str, Any]]:
    """Per campaign: the pay per accepted clip and the median hourly rate it came to for the
    released clips' assignments (claimed → submitted, minus the idle time the app measured)."""
    by_campaign: dict[int, list[float]] = {cid: [] for cid in campaigns}
    a_ids = [c.assignment_id for c in clips if c.assignment_id]
    for a in session.scalars(sa.select(Assignment).where(Assignment.id.in_(a_ids))) if a_ids else ():
        if a.submitted_at is not None:
            worked = rates.working_seconds(a.claimed_at, a.submitted_at, a.idle_seconds)
            by_campaign.setdefault(a.campaign_id, []).append(worked)
    out = []
    for cid, camp in sorted(campaigns.items()):
        per_clip = Money(camp.pay_cents, camp.currency)
        hourly = median_hourly(per_clip, by_campaign.get(cid, []))
        out.append(
            {
                "campaign_id": cid,
                "currency": camp.currency,
                "per_clip": per_clip.format(),
                "median_hourly": hourly.format() if hourly else None,
                "timed_assignments": len([s for s in by_campaign.get(cid, []) if s > 0]),
            }
        )
    return out


# ---------------------------------------------------------------- the build


def _files_under(root: Path, fmt: str) -> list[FileEntry]:
    """Every file an exporter wrote, hashed (several at once: a release's shards are large)."""
    paths = []
    for dirpath, _dirs, names in os.walk(root / fmt):
        for n in sorted(names):
            p = Path(dirpath) / n
            if p.is_symlink():  # an exporter writes files, never links to elsewhere
                raise EgocrowdError(f"The {fmt} exporter left a link: {p.name}", code="release.bad_export")
            paths.append(p)
    with ThreadPoolExecutor(HASHING_THREADS) as pool, ThreadPoolExecutor(1) as disk:
        # written to disk while they are hashed (the disk works while the cores hash): storing
        # them (an fsync each) then finds them written
        written = [disk.submit(_write_out, p) for p in paths]
        hashed = list(pool.map(sha256_file, paths))
        for w in written:
            w.result()
    out = [
        FileEntry(p.relative_to(root).as_posix(), size, sha, fmt) for p, (sha, size) in zip(paths, hashed, strict=True)
    ]
    return sorted(out, key=lambda f: f.path)


def _write_out(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: exporter name → {option: the setting that gives its default}: filled in at the build, when the
#: release's formats do not say (e.g. LeRobot's constant frame rate, ``release_fps``)
SETTING_DEFAULTS: dict[str, dict[str, str]] = {"lerobot": {"fps": "release_fps"}}


def with_settings(formats: Mapping[str, Any], settings: Any) -> dict[str, Any]:
    """``formats`` with the options the platform's settings decide when a release does not."""
    out = {name: dict(options) for name, options in formats.items()}
    for name, defaults in SETTING_DEFAULTS.items():
        if name in out:
            for option, setting in defaults.items():
                out[name].setdefault(option, getattr(settings, setting))
    return out


def scratch_root(settings: Any) -> Path:
    return Path(settings.data_dir).resolve() / "release-builds"


class _Reporter:
    """Writes progress to the row (throttled) and renews the lease; notices a lost lease."""

    def __init__(self, db: Any, c: Claim, lease: timedelta, progress: BuildProgress | None, every_s: float = 1.0):
        self.db, self.c, self.lease, self.progress, self.every_s = db, c, lease, progress, every_s
        self.stage, self.done, self.total = "starting", 0, 0
        self._last = 0.0

    def set(self, stage: str, done: int, total: int, *, force: bool = False) -> None:
        self.stage, self.done, self.total = stage, done, total
        if self.progress is not None:
            self.progress(stage, done, total)
        if force or time.monotonic() - self._last >= self.every_s:
            self._last = time.monotonic()
            with self.db.transaction() as s:
                now = db_now(s)
                n = s.execute(
                    sa.update(Release)
                    .where(
                        Release.id == self.c.release_id,
                        Release.attempts == self.c.attempt,
                        Release.status == ReleaseStatus.building,
                    )
                    .values(progress={"stage": stage, "done": done, "total": total}, lease_expires_at=now + self.lease)
                    .execution_options(synchronize_session=False)
                )
            if _rowcount(n) != 1:
                raise BuildLost(self.c.release_id)

    def step(self, n: int = 1) -> None:
        self.set(self.stage, self.done + n, self.total)


def signed_spec(
    spec: ReleaseSpec, folder: Path, authority: credentials.Authority, *, progress: Callable[[int], None]
) -> ReleaseSpec:
    """``spec`` with each clip's de-identified video replaced by a signed copy (its Content
    Credentials: captured, de-identified, this release; releases.credentials) made in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    release = _release_facts(spec)
    items = []
    with credentials.signers_of(authority) as signer, ThreadPoolExecutor(SIGNING_THREADS) as pool:

        def sign(item: ReleaseItem) -> ReleaseItem:
            dst = folder / f"{item.clip_sha256}.mp4"
            manifest = credentials.manifest_for(
                [item], title=f"{item.clip_sha256}.mp4", release=release, licence=spec.licence
            )
            sha, size = credentials.sign_video(item.media_path, dst, manifest, authority, signer=signer())
            return replace(item, media_path=dst, media_sha256=sha, media_size=size)

        for signed in pool.map(sign, spec.items):  # in order; progress from this thread only
            items.append(signed)
            progress(1)
    return replace(spec, items=tuple(items))


def sign_new_videos(
    root: Path,
    written: Sequence[FileEntry],
    carries: Mapping[str, set[int]],
    spec: ReleaseSpec,
    authority: credentials.Authority,
) -> list[FileEntry]:
    """Sign the videos an exporter wrote that carry no Content Credentials yet (it joined or
    re-encoded the signed copies), with a manifest naming the clips each carries. Returns
    ``written`` with the signed files' new sizes and hashes."""
    by_id = {i.clip_id: i for i in spec.items}
    # a signed copy delivered as it is (its hash is ours, taken when we signed it): no need to
    # read and validate it again to know it carries its credentials
    signed_copies = {i.media_sha256 for i in spec.items}
    release = _release_facts(spec)
    out = list(written)
    with credentials.signer_of(authority) as signer:
        for k, f in enumerate(written):
            path = root / f.path
            if path.suffix.lower() != ".mp4" or f.sha256 in signed_copies:
                continue
            if credentials.read_credentials(path).state is not None:
                continue
            items = [by_id[i] for i in sorted(carries.get(f.path, ())) if i in by_id] or list(spec.items)
            manifest = credentials.manifest_for(items, title=path.name, release=release, licence=spec.licence)
            tmp = path.with_name(path.name + ".signing")
            sha, size = credentials.sign_video(path, tmp, manifest, authority, signer=signer)
            tmp.replace(path)
            out[k] = replace(f, sha256=sha, size=size)
    return out


def _release_facts(spec: ReleaseSpec) -> dict[str, Any]:
    return {
        "id": spec.release_id,
        "name": spec.name,
        "version": spec.version,
        "organization": spec.organization,
        "created_at": spec.created_at,
    }


def build_next(
    db: Any,
    blobs: Blobs,
    settings: Any,
    *,
    release_id: int | None = None,
    progress: BuildProgress | None = None,
    lease: timedelta = LEASE,
) -> Release | None:
    """Claim one buildable release (the oldest, or ``release_id``) and build it; returns the row as it
    ended (published, failed, or still building after a crash of ours), or None when nothing was due."""
    with db.transaction() as s:
        c = claim(s, release_id, lease=lease)
    if c is None:
        return None
    try:
        _build(db, blobs, settings, c, progress, lease)
    except BuildLost:
        log.warning("release %s: another builder took it over", c.release_id)
    except _Again:
        log.info("release %s: a clip was withdrawn during the build; building again without it", c.release_id)
        _give_back(db, c)
    except EgocrowdError as e:
        with db.transaction() as s:
            _fail(s, c.release_id, c.attempt, e)
    except Exception:  # a crash of ours or a hiccup: give the lease back, another attempt follows
        log.exception("release %s: build attempt %s failed", c.release_id, c.attempt)
        _give_back(db, c)
    finally:
        shutil.rmtree(scratch_root(settings) / str(c.release_id), ignore_errors=True)
        shutil.rmtree(scratch_root(settings) / f"{c.release_id}-signed", ignore_errors=True)
    with db.transaction(write=False) as s:
        r = s.get_one(Release, c.release_id)
        s.expunge(r)
        return r


def _give_back(db: Any, c: Claim) -> None:
    with db.transaction() as s:
        s.execute(
            sa.update(Release)
            .where(Release.id == c.release_id, Release.attempts == c.attempt, Release.status == ReleaseStatus.building)
            .values(lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )


def _build(db: Any, blobs: Blobs, settings: Any, c: Claim, progress: BuildProgress | None, lease: timedelta) -> None:
    rep = _Reporter(db, c, lease, progress)
    key = signing_key(settings)  # before any work: no key, no release (audit.signing_key_missing)
    authority = credentials.authority(settings)  # no signing authority, no unsigned video (c2pa.no_authority)
    with db.transaction() as s:
        release = _still_ours(s, c)
        service.drop_ineligible(s, release)  # withdrawn since the cut: never in the release
        formats = with_settings(release.formats, settings)
        if formats != release.formats:  # recorded on the row (and so in the manifest) before it is used
            release.formats = formats
        spec = build_spec(s, blobs, release, settings.resolved_secret_key(), with_lineage="provenance" in formats)
    exporters = [(n, EXPORTERS.get(n)) for n in formats if n in EXPORTERS]
    describers = [(n, DESCRIBERS.get(n)) for n in formats if n not in EXPORTERS]
    for name in formats:  # a format uninstalled since the cut: a clear error, before any work
        if name not in EXPORTERS:
            DESCRIBERS.get(name)
    n = len(spec.items)
    total = n * (1 + len(exporters) + len(describers))
    root = scratch_root(settings) / str(c.release_id)
    shutil.rmtree(root, ignore_errors=True)  # what an interrupted attempt left
    root.mkdir(parents=True)
    carries: dict[str, set[int]] = {}
    files: list[FileEntry] = []
    rep.set("sign", 0, total, force=True)
    # Every clip's video is signed (C2PA) before any exporter sees it: exporters that copy bytes
    # (WebDataset, Hugging Face) deliver the signed copy as it is.
    spec = signed_spec(spec, root.with_name(f"{c.release_id}-signed"), authority, progress=rep.step)
    for group in (exporters, describers):
        for name, entry in group:
            out = root / name
            out.mkdir()
            rep.set(f"export:{name}", rep.done, total)
            options = {k: v for k, v in formats[name].items() if k != "version"}
            returned = entry.obj(spec, out, options=options, files=tuple(files), progress=rep.step) or {}
            written = _files_under(root, name)
            paths = {f.path for f in written}
            returned_here: dict[str, set[int]] = {}
            for path, clip_ids in returned.items():
                # the contract says "relative to the release root"; a path relative to the exporter's
                # own folder names the same file, so it is taken too
                path = path if path in paths or f"{name}/{path}" not in paths else f"{name}/{path}"
                returned_here.setdefault(path, set()).update(int(i) for i in clip_ids)
            for path, ids in returned_here.items():
                carries.setdefault(path, set()).update(ids)
            # videos an exporter made itself (LeRobot's joined chunks) are signed as it left them
            files.extend(sign_new_videos(root, written, returned_here, spec, authority))
    unknown = sorted(p for p in carries if p not in {f.path for f in files})
    if unknown:
        raise EgocrowdError(
            f"An exporter named files it did not write: {', '.join(unknown[:5])}", code="release.bad_export"
        )
    rep.set("store", 0, len(files) + 1, force=True)
    with db.transaction(write=False) as s:
        release = _still_ours(s, c)
        previous = s.get(Release, release.previous_id) if release.previous_id else None
        manifest = {
            "format_version": MANIFEST_FORMAT_VERSION,
            "release": {
                "id": release.id,
                "organization": spec.organization,
                "name": release.name,
                "version": release.version,
                "title": release.title,
                "created_at": release.created_at.isoformat().replace("+00:00", "Z"),
                "licence": release.licence,
                "formats": release.formats,
                "clips": len(spec.items),
            },
            "previous": spec.previous,
            "changes": release.changes,
            "withdrawals": service.withdrawals_since(s, release, previous),
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "format": f.format}
                for f in sorted(files, key=lambda f: f.path)
            ],
        }
    data = canonical_json(manifest)
    for i, f in enumerate(files):
        # moved, not copied, and not hashed a second time: f.sha256 is our own hash of the finished
        # file in our private scratch folder (a store on another disk copies, hashing as it goes)
        blobs.put_file(root / f.path, sha256=f.sha256, move=True, verify=False)
        rep.set("store", i + 1, len(files) + 1)
    ref = blobs.put_bytes(data)
    with db.transaction() as s:
        release = _still_ours(s, c, lock=True)
        if _withdrawn_meanwhile(s, release.id):  # during the export: start again, without them
            raise _Again(release.id)
        for f in files:
            s.add(ReleaseFile(release_id=release.id, path=f.path, sha256=f.sha256, size=f.size, format=f.format))
        s.add(
            ReleaseFile(release_id=release.id, path=MANIFEST_PATH, sha256=ref.sha256, size=ref.size, format="manifest")
        )
        by_clip: dict[int, list[str]] = {}
        for path, ids in sorted(carries.items()):
            for cid in ids:
                by_clip.setdefault(cid, []).append(path)
        for rc in s.scalars(sa.select(ReleaseClip).where(ReleaseClip.release_id == release.id)):
            rc.files = by_clip.get(rc.clip_id, [])
        s.flush()
        now = db_now(s)  # first: on PostgreSQL it queries, and a query flushes what is pending
        release.manifest_sha256 = ref.sha256
        release.root_hash = root_hash(data)
        release.stats = dict(spec.stats)
        release.progress = {"stage": "published", "done": len(files) + 1, "total": len(files) + 1}
        release.status = ReleaseStatus.published
        release.published_at = now
        release.lease_expires_at = None
        release.error = None
        audit.record(
            s,
            None,
            "release.published",
            release,
            {
                "root_hash": release.root_hash,
                "files": len(files) + 1,
                "bytes": sum(f.size for f in files) + ref.size,
                "clips": len(spec.items),
                "attempt": c.attempt,
            },
        )
        checkpoint_at_commit(s, key, f"release:{release.id}")
    if progress is not None:
        progress("published", len(files) + 1, len(files) + 1)


# ---------------------------------------------------------------- running builds in the background

_running = threading.Lock()


def start_pending(db: Any, blobs: Blobs, settings: Any) -> int:
    """Housekeeping's step (and the API's nudge after a cut): start building the next buildable
    release in a daemon thread of this process, unless this process is already building one.
    Returns 1 when a build started. A thread, so that a long export never holds back the other
    housekeeping steps; a build killed with its process is claimed again once its lease runs out."""
    with db.transaction(write=False) as s:
        due = next_buildable(s)
    if due is None or not _running.acquire(blocking=False):
        return 0

    def run() -> None:
        try:
            while build_next(db, blobs, settings) is not None:
                pass
        except Exception:  # never take the process down; the next round tries again
            log.exception("release build thread failed")
        finally:
            _running.release()

    threading.Thread(target=run, name="egocrowd-release-build", daemon=True).start()
    return 1


__all__ = [
    "LEASE",
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_PATH",
    "MAX_ATTEMPTS",
    "BuildLost",
    "Claim",
    "build_next",
    "build_spec",
    "canonical_json",
    "claim",
    "median_hourly",
    "next_buildable",
    "pay_figures",
    "root_hash",
    "spans_of",
    "start_pending",
    "verify_folder",
]

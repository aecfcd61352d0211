"""Fixtures for the release tests: a lab with accepted, de-identified, consented clips (real video in
the blob store), and the tiny exporter the build tests register inside ``registry.scratch()``.

``release_lab`` (a :class:`ReleaseLab`) gives: the lab's owner and an editor, viewer and outsider (real
users with API tokens), one campaign, the settings and blob store the app uses, and ``clip(...)`` to
add a clip in any state. ``tiny_formats`` registers the test exporter ``copy`` (each clip's video plus
an index) and the describer ``card`` (a JSON list of the files written before it)."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from egocrowd import consent
from egocrowd.blobs import BlobStore
from egocrowd.clock import utcnow
from egocrowd.db.models import (
    Assignment,
    AssignmentStatus,
    Campaign,
    Clip,
    ClipStatus,
    DeidStatus,
    Derivative,
    Organization,
    Span,
    SpanKind,
    User,
)
from egocrowd.demo import CONSENT_VERSION
from tests.platform.helpers import Actor, make_user, publish_consent

_n = itertools.count(1)
ALL_SCOPES = ("record_hands", "commercial_use", "redistribution")


@pytest.fixture(scope="session")
def release_videos(tmp_path_factory) -> list[Path]:
    """Six tiny real H.264 videos (1 s, 10 fps, 64×48), each a different picture (distinct hashes)."""
    from egocrowd.media.testmedia import write_video

    folder = tmp_path_factory.mktemp("release-videos")
    out = []
    for k in range(6):
        frames = []
        for i in range(10):
            f = np.full((48, 64, 3), 30 + 35 * k, np.uint8)
            f[10:30, i * 5 : i * 5 + 12] = (230, 200, 60)
            frames.append(f)
        out.append(write_video(folder / f"v{k}.mp4", frames, 10, faststart=True))
    return out


@dataclass
class ReleaseLab:
    db: Any
    settings: Any
    blobs: BlobStore
    videos: Sequence[Path]
    org_id: int
    owner: Actor
    editor: Actor
    viewer: Actor
    outsider: Actor  # a requester of another lab
    admin: Actor
    campaign_id: int
    workers: dict[tuple[str, ...], int] = field(default_factory=dict)

    def worker(self, scopes: Sequence[str] = ALL_SCOPES, country: str = "KE") -> int:
        """A worker who signed the consent with ``scopes`` (one per scope set and country)."""
        key = (*sorted(scopes), country)
        if key not in self.workers:
            w = make_user(self.db, "worker", country=country, token=False)
            with self.db.transaction() as s:
                consent.sign(s, s.get_one(User, w.id), CONSENT_VERSION, list(scopes))
            self.workers[key] = w.id
        return self.workers[key]

    def campaign(self, title: str | None = None) -> int:
        with self.db.transaction() as s:
            c = Campaign(
                organization_id=self.org_id,
                created_by=self.owner.id,
                title=title or f"Open a jar {next(_n)}",
                instructions="Open a jar with both hands in view.",
                target_clips=100,
                pay_cents=120,
                currency="USD",
                expected_minutes=3.0,
                buyer_name="A lab",
                consent_version=CONSENT_VERSION,
                data_use={"train": True, "commercial": True},
            )
            s.add(c)
            s.flush()
            return c.id

    def clip(
        self,
        *,
        campaign_id: int | None = None,
        worker_id: int | None = None,
        scopes: Sequence[str] = ALL_SCOPES,
        country: str = "KE",
        status: ClipStatus = ClipStatus.accepted,
        derived: bool = True,
        video: int = 0,
        own_video: bool = False,
        spans: Sequence[tuple[str, str, int, int]] = (("open", "jar", 0, 600),),
        alpha: float | None = 0.8,
        duration_s: float = 1.0,
        qc: Mapping[str, Any] | None = None,
        consent_record: bool = True,
        worked_s: float | None = 300.0,
    ) -> int:
        """One clip of the lab, accepted and de-identified unless told otherwise. ``own_video``: its
        de-identified bytes are a copy no other clip shares (re-encoded with a marker frame)."""
        wid = worker_id or self.worker(scopes, country)
        src = self.videos[video % len(self.videos)]
        if own_video:
            src = _unique_copy(src, next(_n))
        ref = self.blobs.put_file(src)
        i = next(_n)
        with self.db.transaction() as s:
            cid = campaign_id or self.campaign_id
            a = None
            if worked_s is not None:
                now = utcnow()
                a = Assignment(
                    campaign_id=cid,
                    worker_id=wid,
                    status=AssignmentStatus.accepted,
                    claimed_at=now - timedelta(seconds=worked_s + 30),
                    lease_expires_at=now + timedelta(hours=1),
                    submitted_at=now,
                    idle_seconds=30,
                )
                s.add(a)
                s.flush()
            camp = s.get_one(Campaign, cid)
            rec = consent.covering_record(s, wid, camp) if consent_record else None
            clip = Clip(
                campaign_id=cid,
                assignment_id=a.id if a else None,
                worker_id=wid,
                source_ref=f"release-test:{i}",
                sha256=f"{i:064x}",  # the raw upload's hash (its bytes are never released)
                size=1,
                original_name="c.mp4",
                status=status,
                probe={"width": 64, "height": 48, "fps": 10.0, "duration_s": duration_s, "path": "/secret/raw"},
                qc_report={
                    "status": "qc_passed",
                    "clip": {"width": 64, "height": 48, "fps": 10.0, "duration_s": duration_s},
                    "checks": [{"name": "too_dark", "value": (qc or {}).get("too_dark", 0.1)}],
                    "warnings": [],
                },
                agreement={"alpha": alpha, "mean_iou": 0.7} if alpha is not None else None,
                deid_status=DeidStatus.clean if derived else None,
                consent_record_id=rec.id if rec else None,
            )
            s.add(clip)
            s.flush()
            if derived:
                d = Derivative(
                    clip_id=clip.id,
                    kind="deid",
                    sha256=ref.sha256,
                    size=ref.size,
                    source_sha256=clip.sha256,
                    stage_version="test",
                    params={"faces": "blur"},
                )
                s.add(d)
                s.flush()
                clip.derived_id = d.id
            for verb, noun, start, end in spans:
                s.add(Span(clip_id=clip.id, kind=SpanKind.consensus, start_ms=start, end_ms=end, verb=verb, noun=noun))
            return clip.id


def _unique_copy(src: Path, k: int) -> Path:
    from egocrowd.media.testmedia import write_video

    out = src.with_name(f"unique-{k}.mp4")
    frames = [np.full((48, 64, 3), (k * 37) % 255, np.uint8) for _ in range(3)]
    frames[0][0:8, 0:8] = (k % 255, 10, 200)
    return write_video(out, frames, 10)


@pytest.fixture
def release_lab(db, settings, release_videos) -> ReleaseLab:
    publish_consent(db)
    owner = make_user(db, "requester", org="Release Lab")
    editor = make_user(db, "requester", org="Release Lab", org_role="editor")
    viewer = make_user(db, "requester", org="Release Lab", org_role="viewer")
    outsider = make_user(db, "requester", org="Other Lab")
    admin = make_user(db, "admin")
    with db.transaction() as s:
        org_id = s.scalar(sa.select(Organization.id).where(Organization.name == "Release Lab"))
    lab = ReleaseLab(
        db=db,
        settings=settings,
        blobs=BlobStore(settings.blobs_path),
        videos=release_videos,
        org_id=org_id,
        owner=owner,
        editor=editor,
        viewer=viewer,
        outsider=outsider,
        admin=admin,
        campaign_id=0,
    )
    lab.campaign_id = lab.campaign("Open a screw-top jar")
    # a release signs an audit checkpoint: PostgreSQL setups need a key made beforehand (`egocrowd audit keygen`)
    from egocrowd.audit.checkpoints import generate_key, key_path

    if not key_path(settings).exists():
        generate_key(key_path(settings))
    # ...and a signing authority for the Content Credentials of released video (`egocrowd c2pa init`)
    from egocrowd.releases import credentials

    if not (credentials.authority_dir(settings) / credentials.KEY_FILE).exists():
        credentials.init_authority(credentials.authority_dir(settings))
    return lab


# ---------------------------------------------------------------- a tiny exporter and describer (tests only)


def copy_exporter(spec, out: Path, *, options, files, progress) -> dict[str, list[int]]:
    """Each clip's de-identified video under clips/, plus index.jsonl (one line per clip)."""
    carries: dict[str, list[int]] = {}
    (out / "clips").mkdir()
    lines = []
    for item in spec.items:
        name = f"clips/{item.media_sha256[:16]}-{item.clip_id}.mp4"
        shutil.copyfile(item.media_path, out / name)
        carries[f"{out.name}/{name}"] = [item.clip_id]
        lines.append(
            json.dumps(
                {
                    "clip": item.clip_sha256,
                    "worker": item.worker,
                    "labels": [s.label for s in item.spans],
                    "consent": dict(item.consent),
                    "probe": dict(item.probe),
                }
            )
        )
        progress(1)
    (out / "index.jsonl").write_text("\n".join(lines) + "\n")
    carries["index.jsonl"] = [i.clip_id for i in spec.items]  # relative to its own folder: taken too
    if options.get("boom"):
        raise KeyboardInterrupt  # stands for the process being killed half-way
    return carries


def card_describer(spec, out: Path, *, options, files, progress) -> dict[str, list[int]]:
    """A JSON list of the files written before it, with their sha256."""
    (out / "card.json").write_text(
        json.dumps({"title": spec.title, "files": [[f.path, f.sha256] for f in files], "stats": dict(spec.stats)})
    )
    progress(len(spec.items))
    return {}


@pytest.fixture
def tiny_formats():
    from egocrowd.registry import scratch
    from egocrowd.releases.exporting import DESCRIBERS, EXPORTERS

    with scratch():
        for name in EXPORTERS.names():
            EXPORTERS.remove(name)
        for name in DESCRIBERS.names():
            DESCRIBERS.remove(name)
        EXPORTERS.add("copy", copy_exporter, version=1, description="test: each clip's video")
        DESCRIBERS.add("card", card_describer, version=1, description="test: a list of files")
        yield


def release_body(**over) -> dict:
    body = {
        "name": "jar-opening",
        "title": "Jar opening",
        "description": "Hands opening jars.",
        "licence": {"name": "Research licence", "terms": "Research only.", "uses": ["training"]},
    }
    body.update(over)
    return body

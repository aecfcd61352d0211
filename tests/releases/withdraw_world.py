"""A world for the withdrawal tests: a lab (the seller) with consented clips of real video in the blob
store, a published release of them written straight into the tables (the release build is another
part's: these rows look like its results), and buyer labs: ``buyer`` downloaded the release,
``bystander`` never did.

Releases, their files and downloads are inserted directly (as the brief of this part asks); consent,
withdrawal and everything after go through the real API and services."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from egocrowd.clock import utcnow
from egocrowd.db.models import (
    Clip,
    ClipStatus,
    ConsentRecord,
    Derivative,
    Organization,
    Release,
    ReleaseClip,
    ReleaseDownload,
    ReleaseFile,
    ReleaseStatus,
    User,
)
from tests.platform.helpers import Actor, make_user
from tests.support.deid import add_clip, make_video

_n = itertools.count(1)


@dataclass
class Buyer:
    org_id: int
    owner: Actor
    viewer: Actor


@dataclass
class WithdrawWorld:
    world: object  # tests.support.world.World: lab (the seller), worker (signed the consent)
    db: object
    blobs: object
    tmp: Path
    admin: Actor
    buyer: Buyer
    bystander: Buyer
    consent_id: int
    clips: list[int] = field(default_factory=list)

    @property
    def client(self):
        return self.world.client

    @property
    def lab_org(self) -> int:
        with self.db.transaction(write=False) as s:
            return s.get_one(User, self.world.lab.id).organization_id

    def video(self, shade: int) -> Path:
        path = self.tmp / f"v{shade}.mp4"
        return path if path.exists() else make_video(path, seconds=1, size=(64, 48), shade=shade)

    def clip(
        self,
        campaign_id: int,
        *,
        shade: int | None = None,
        raw: Path | None = None,
        worker: Actor | None = None,
        consent_id: int | None = None,
    ) -> int:
        """An accepted, de-identified clip covered by the worker's signature (distinct bytes unless
        ``raw`` is shared on purpose)."""
        k = shade if shade is not None else 10 * next(_n)
        cid = add_clip(
            self.db,
            self.blobs,
            campaign_id=campaign_id,
            worker_id=(worker or self.world.worker).id,
            raw=raw or self.video(k),
            derived=self.video(k + 3),
            status=ClipStatus.accepted,
            seconds=1,
        )
        with self.db.transaction() as s:
            s.get_one(Clip, cid).consent_record_id = consent_id or self.consent_id
        self.clips.append(cid)
        return cid

    def release(self, clip_ids: list[int], *, name: str = "kitchen", shard_per_clip: bool = True) -> int:
        """A published release of ``clip_ids``: one shard per clip (or one shard for all), a shared
        metadata file, a manifest; each file a real blob."""
        with self.db.transaction() as s:
            org = self.lab_org
            version = (
                s.scalar(
                    sa.select(sa.func.max(Release.version)).where(Release.organization_id == org, Release.name == name)
                )
                or 0
            ) + 1
            clips = [s.get_one(Clip, c) for c in clip_ids]
            files: dict[str, bytes] = {"meta/info.json": b'{"codebase_version": "v3.0"}'}
            carried: dict[int, list[str]] = {}
            for i, c in enumerate(clips):
                d = s.get_one(Derivative, c.derived_id)
                path = f"webdataset/shard-{i if shard_per_clip else 0:06d}.tar"
                head = files.get(path, f"shard {path} of {name} v{version}\n".encode())
                files[path] = head + self.blobs.path(d.sha256).read_bytes()
                carried[c.id] = [path, f"lerobot/data/chunk-000/episode_{i:06d}.parquet"]
                # the per-clip rows depend on the clip's bytes only: duplicates share them
                files[carried[c.id][1]] = f"rows of the clip whose raw upload is {c.sha256}".encode()
            manifest = "\n".join(f"{hashlib.sha256(b).hexdigest()}  {p}" for p, b in sorted(files.items())).encode()
            m = self.blobs.put_bytes(manifest)
            r = Release(
                organization_id=org,
                name=name,
                version=version,
                title=f"Kitchen chores v{version}",
                status=ReleaseStatus.building,  # files and clips first: a published release never changes
                manifest_sha256=m.sha256,
                root_hash=hashlib.sha256(manifest).hexdigest(),
                published_at=utcnow(),
            )
            s.add(r)
            s.flush()
            for path, data in files.items():
                ref = self.blobs.put_bytes(data)
                s.add(
                    ReleaseFile(release_id=r.id, path=path, sha256=ref.sha256, size=ref.size, format=path.split("/")[0])
                )
            s.add(ReleaseFile(release_id=r.id, path="manifest.txt", sha256=m.sha256, size=m.size, format="manifest"))
            for c in clips:
                d = s.get_one(Derivative, c.derived_id)
                s.add(
                    ReleaseClip(
                        release_id=r.id,
                        clip_id=c.id,
                        clip_sha256=c.sha256,
                        media_sha256=d.sha256,
                        consent_record_id=c.consent_record_id,
                        files=carried[c.id],
                    )
                )
            s.flush()
            r.status = ReleaseStatus.published  # as the builder publishes it, once complete
            return r.id

    def download(
        self, release_id: int, buyer: Buyer, path: str = "webdataset/shard-000000.tar", *, ago: timedelta = timedelta()
    ) -> None:
        """A buyer's download of one file, as the download door records it."""
        with self.db.transaction() as s:
            f = s.scalar(sa.select(ReleaseFile).where(ReleaseFile.release_id == release_id, ReleaseFile.path == path))
            s.add(
                ReleaseDownload(
                    release_id=release_id,
                    organization_id=buyer.org_id,
                    user_id=buyer.owner.id,
                    path=path,
                    sha256=f.sha256 if f else "0" * 64,
                    at=utcnow() - ago,
                )
            )

    def file_sha(self, release_id: int, path: str) -> str:
        with self.db.transaction(write=False) as s:
            return s.scalar(
                sa.select(ReleaseFile.sha256).where(ReleaseFile.release_id == release_id, ReleaseFile.path == path)
            )


def buyer(db, name: str) -> Buyer:
    owner = make_user(db, "requester", org=name)
    viewer = make_user(db, "requester", org=name, org_role="viewer")
    with db.transaction(write=False) as s:
        org_id = s.scalar(sa.select(Organization.id).where(Organization.name == name))
    return Buyer(org_id, owner, viewer)


def build(world, db, blobs, tmp: Path) -> WithdrawWorld:
    with db.transaction(write=False) as s:
        consent_id = s.scalar(
            sa.select(ConsentRecord.id)
            .where(ConsentRecord.user_id == world.worker.id)
            .order_by(ConsentRecord.id.desc())
        )
    return WithdrawWorld(
        world=world,
        db=db,
        blobs=blobs,
        tmp=tmp,
        admin=make_user(db, "admin"),
        buyer=buyer(db, f"Buyer Lab {next(_n)}"),
        bystander=buyer(db, f"Bystander Lab {next(_n)}"),
        consent_id=consent_id,
    )

#!/usr/bin/env python
"""Release export throughput: LeRobot v3.0 and WebDataset against an in-kernel copy of the same
media, a full release build (with C2PA signing) against it too, and LeRobot again on
variable-rate clips against a plain PyAV decode + encode.

    .venv/bin/python benchmarks/export.py [--clips 200] [--seconds 10] [--resample-clips 5] [--repeat 3]
    .venv/bin/python benchmarks/export.py --quick      # 24 clips, 2 resampled, the build once: a smoke run

1. The clips (made once, cached under /tmp/egocrowd-bench-export/): 1280x720 H.264 at a constant
   30 fps, about 2.5 Mbit/s, so 200 clips of 10 s are about 1 GB. Encoding 2,000 s of 720p on two
   cores would take most of the time budget, so twelve one-second segments of a moving, noisy
   picture are encoded once (x264, every segment opening with a keyframe and no B-frames) and each
   clip is a different sequence of those segments, remuxed (a valid, distinct mp4 per clip).
   The variable-rate clips (``--resample-clips`` of them) are the same packets with irregular
   timestamps (25 to 45 ms apart), as phones record.
2. No re-encode needed: the wall time of an in-kernel copy of every clip (``shutil.copyfile``:
   sendfile, the bytes never reach the process; what a user compares an export with) against the
   LeRobot exporter (coded frames joined into concatenated files, frame parquet, metadata) and
   the WebDataset exporter (tar shards). Ratio = copy time / export time (1.0: as fast as copying
   the bytes). Before every measurement the clips are read into the page cache and ``os.sync``
   writes back whatever the previous one left, so each starts from the same state; the
   measurements alternate and the best of ``--repeat`` runs counts, so load from others cancels
   out. A copy through the process (``shutil.copyfileobj``, 1 MiB buffer) is printed for reference.
3. The build: a real lab on SQLite (the release tests' fixtures: users, consent, campaign, one
   accepted, de-identified clip per video in the blob store), a release cut with the formats of
   ``--build-formats`` (default: WebDataset plus the Croissant and card describers, so each clip is
   delivered once) and built by ``releases.builder.build_next``: every clip signed (C2PA, a copy
   each), exported, described, hashed into the manifest, stored, published. Ratio = in-kernel copy
   of the clips / build wall time; each stage's time is printed. Beside it, the floor: the build's
   signing alone (``credentials.sign_video`` on every clip, ``builder.SIGNING_THREADS`` at once,
   our hash of each signed copy included) and a plain sha256 of every clip, with the ratio the
   copy reaches against that signing (a build cannot beat it).
4. Resampling: the LeRobot exporter on the variable-rate clips (decode, resample to 30 fps, one
   encode) against a plain PyAV decode + encode of each clip with the exporter's encoder settings.
   Ratio = plain CPU time / export CPU time: both are CPU-bound, and on a shared two-core machine
   wall time mostly measures the neighbours (both are printed). Five clips by default: a full run
   stays within ten minutes on two cores.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from _common import target  # benchmarks/_common.py: the one format of target lines

from egocrowd.releases.exporters.lerobot import export_lerobot
from egocrowd.releases.exporters.webdataset import export_webdataset
from egocrowd.releases.exporting import ReleaseItem, ReleaseSpec, SpanLabel

REPO = Path(__file__).resolve().parents[1]
CACHE = Path("/tmp/egocrowd-bench-export")  # one folder per set of clips, made once
SIZE = (1280, 720)
FPS = 30
SEGMENTS = 12
TICKS = 512  # time base 1/15360: 512 ticks a frame at 30 fps (what FFmpeg's mp4 muxer picks)
BIT_RATE = 2_500_000
COPY_BUFFER = 1024 * 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Timed:
    def __enter__(self) -> Timed:
        self._wall, self._cpu = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._wall, _cpu() - self._cpu


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


# -- the clips ---------------------------------------------------------------------------------------


def _segments(folder: Path) -> list[Path]:
    """Twelve one-second 720p segments, each its own x264 encode with identical settings."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"segment-{i:02d}.mp4" for i in range(SEGMENTS)]
    if all(p.exists() for p in paths):
        return paths
    rng = np.random.default_rng(0)
    w, h = SIZE
    texture = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8).repeat(4, axis=0).repeat(4, axis=1)
    for i, path in enumerate(paths):
        tint = rng.integers(-40, 40, 3)
        with av.open(str(path), "w") as out:
            s = out.add_stream("libx264", rate=FPS)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.bit_rate = BIT_RATE
            s.options = {"preset": "ultrafast", "bf": "0", "g": str(FPS), "keyint_min": str(FPS)}
            for k in range(FPS):
                rgb = np.clip(np.roll(texture, (3 * k + 50 * i, 2 * k), axis=(1, 0)).astype(np.int16) + tint, 0, 255)
                frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
                for p in s.encode(frame):
                    out.mux(p)
            for p in s.encode():
                out.mux(p)
    return paths


def _packets(path: Path) -> tuple[bytes, list[tuple[bytes, bool]]]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return bytes(s.codec_context.extradata), [(bytes(p), p.is_keyframe) for p in c.demux(s) if p.size]


def make_clips(n: int, seconds: int, *, variable: bool) -> list[Path]:
    """``n`` distinct clips of ``seconds`` segments (cached); variable-rate ones when asked."""
    folder = CACHE / f"{'vfr' if variable else 'cfr'}-{n}x{seconds}s-{BIT_RATE}"
    paths = [folder / f"clip-{i:04d}.mp4" for i in range(n)]
    if all(p.exists() for p in paths):
        return paths
    segments = _segments(CACHE / f"segments-{BIT_RATE}")
    packets = [_packets(p) for p in segments]
    assert len({extra for extra, _ in packets}) == 1, "the segments' H.264 parameter sets differ"
    template_path = segments[0]
    folder.mkdir(parents=True, exist_ok=True)
    seen = set()
    for i, path in enumerate(paths):
        rng = np.random.default_rng(1000 + i + (10**6 if variable else 0))
        order = tuple(int(x) for x in rng.integers(0, SEGMENTS, seconds))
        assert order not in seen
        seen.add(order)
        with av.open(str(template_path)) as tmpl, av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream_from_template(tmpl.streams.video[0])
            tb = Fraction(1, 90000) if variable else Fraction(1, FPS * TICKS)
            stream.time_base = tb
            t = 0
            for seg in order:
                for data, key in packets[seg][1]:
                    p = av.Packet(data)
                    step = int(rng.integers(2250, 4050)) if variable else TICKS  # 25-45 ms at 1/90000
                    p.pts = p.dts = t
                    p.duration = step
                    p.time_base = tb
                    p.is_keyframe = key
                    p.stream = stream
                    out.mux(p)
                    t += step
    return paths


def items(paths: list[Path]) -> list[ReleaseItem]:
    out = []
    for i, path in enumerate(paths):
        size = path.stat().st_size
        out.append(
            ReleaseItem(
                clip_id=i + 1,
                clip_sha256=hashlib.sha256(f"raw-{i}".encode()).hexdigest(),
                media_path=path,
                media_sha256=hashlib.sha256(path.name.encode()).hexdigest(),  # not checked by exporters
                media_size=size,
                campaign_id=1,
                campaign_title="Benchmark",
                task="tidy the kitchen",
                worker=f"w-{i % 17}",
                country="KE",
                recorded_at=datetime(2026, 11, 1, tzinfo=UTC),
                duration_s=None,
                width=SIZE[0],
                height=SIZE[1],
                fps=float(FPS),
                spans=(SpanLabel(0, 2000, "open", "drawer"), SpanLabel(2500, 6000, "wipe", "table")),
            )
        )
    return out


def spec(its: list[ReleaseItem]) -> ReleaseSpec:
    return ReleaseSpec(
        release_id=1,
        name="bench",
        version=1,
        title="Benchmark",
        description="",
        organization="Lab",
        licence={"name": "research"},
        created_at=datetime(2026, 11, 1, tzinfo=UTC),
        items=tuple(its),
    )


# -- the measurements --------------------------------------------------------------------------------


def warm(paths: list[Path]) -> int:
    """Every clip in the page cache, and nothing left to write back from what ran before (the
    kernel slows down writers while it flushes): each measurement starts from the same state."""
    size = sum(len(p.read_bytes()) for p in paths)
    os.sync()
    return size


def byte_copy(paths: list[Path], work: Path, *, in_kernel: bool = False) -> Timed:
    """Every clip copied to a new file: ``in_kernel``, ``shutil.copyfile`` (sendfile: the bytes never
    reach the process), else read into this process and written through one 1 MiB buffer."""
    dest = work / "copy"
    dest.mkdir()
    with Timed() as t:
        for p in paths:
            if in_kernel:
                shutil.copyfile(p, dest / p.name)
            else:
                with open(p, "rb") as src, open(dest / p.name, "wb") as dst:
                    shutil.copyfileobj(src, dst, COPY_BUFFER)
    shutil.rmtree(dest)
    return t


def run_export(kind: str, s: ReleaseSpec, work: Path, options: dict) -> Timed:
    out = work / kind
    fn = export_lerobot if kind == "lerobot" else export_webdataset
    with Timed() as t:
        fn(s, out, options=options, files=(), progress=lambda n: None)
    if kind == "lerobot":
        import pyarrow.parquet as pq

        eps = (
            pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet", columns=["reencoded"]).column(0).to_pylist()
        )
        t.reencoded = sum(eps)  # type: ignore[attr-defined]
    shutil.rmtree(out)
    return t


def plain_transcode(paths: list[Path], work: Path) -> Timed:
    """Decode + encode each clip with the exporter's encoder settings, nothing else."""
    dest = work / "plain"
    dest.mkdir()
    with Timed() as t:
        for p in paths:
            with av.open(str(p)) as inp, av.open(str(dest / p.name), "w") as out:
                src = inp.streams.video[0]
                src.thread_type = "AUTO"
                s = out.add_stream("libx264", rate=FPS)
                s.width, s.height, s.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
                s.codec_context.time_base = src.time_base  # each frame keeps its own (variable) time
                s.options = {"crf": "23", "preset": "veryfast", "g": str(FPS)}
                for frame in inp.decode(src):
                    frame.pict_type = av.video.frame.PictureType.NONE
                    for pk in s.encode(frame.reformat(format="yuv420p")):
                        out.mux(pk)
                for pk in s.encode():
                    out.mux(pk)
    shutil.rmtree(dest)
    return t


# -- the build ---------------------------------------------------------------------------------------


class BuildWorld:
    """A lab with one accepted, de-identified, consented clip per video, on SQLite in ``folder``
    (the release tests' fixtures, so the rows are the ones the build meets in the tests)."""

    def __init__(self, paths: list[Path], folder: Path):
        sys.path.insert(0, str(REPO))
        import sqlalchemy as sa

        from egocrowd.audit.checkpoints import generate_key, key_path
        from egocrowd.blobs import BlobStore
        from egocrowd.db import Database, upgrade
        from egocrowd.db.models import Clip, Organization
        from egocrowd.releases import credentials
        from egocrowd.settings import Settings
        from tests.platform.helpers import make_user, publish_consent
        from tests.releases.conftest import ReleaseLab

        url = f"sqlite:///{folder / 'egocrowd.db'}"
        upgrade(url)
        self.settings = Settings(
            data_dir=folder / "data", database_url=url, secret_key="bench-" + "x" * 40, run_pipeline_in_server=False
        )
        self.db = Database(url)
        publish_consent(self.db)
        owner = make_user(self.db, "requester", org="Bench Lab")
        with self.db.transaction() as s:
            org_id = s.scalar(sa.select(Organization.id).where(Organization.name == "Bench Lab"))
        self.lab = ReleaseLab(
            db=self.db, settings=self.settings, blobs=BlobStore(self.settings.blobs_path), videos=paths,
            org_id=org_id, owner=owner, editor=owner, viewer=owner, outsider=owner, admin=owner, campaign_id=0,
        )  # fmt: skip
        self.lab.campaign_id = self.lab.campaign("Tidy the kitchen")
        generate_key(key_path(self.settings))
        credentials.init_authority(credentials.authority_dir(self.settings))
        ids = [self.lab.clip(video=i, duration_s=float(10)) for i in range(len(paths))]
        facts = {"width": SIZE[0], "height": SIZE[1], "fps": float(FPS)}
        with self.db.transaction() as s:  # the fixture's probe says 64x48: the clips' own facts instead
            for c in s.scalars(sa.select(Clip).where(Clip.id.in_(ids))):
                c.probe = {**c.probe, **facts}
                c.qc_report = {**c.qc_report, "clip": {**c.qc_report["clip"], **facts}}
        self.owner_id = owner.id

    def build(self, formats: dict[str, dict]) -> tuple[Timed, dict[str, float]]:
        """Cut a release of every clip and build it; the wall time and each stage's share."""
        from egocrowd.db.models import User
        from egocrowd.releases import builder, service
        from egocrowd.releases.schema import ReleaseIn
        from tests.releases.conftest import release_body

        with self.db.transaction() as s:
            rid = service.create_release(
                s, s.get_one(User, self.owner_id), ReleaseIn(**release_body(formats=formats))
            ).id
        stages: dict[str, float] = {}
        last = [time.perf_counter(), "claim"]

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            stages[str(last[1])] = stages.get(str(last[1]), 0.0) + now - float(last[0])
            last[:] = [now, stage]

        with Timed() as t:
            r = builder.build_next(self.db, self.lab.blobs, self.settings, release_id=rid, progress=progress)
        assert r is not None and r.status.value == "published", (r and r.error) or "no release"
        return t, stages


def sign_alone(paths: list[Path], work: Path, authority: Any) -> Timed:
    """Only the C2PA signing of every clip, as the build does it (``credentials.sign_video``: the
    library reads, hashes and writes each clip itself; our sha256 of the signed copy; as many clips
    at once as ``builder.SIGNING_THREADS``), one small manifest each: the floor of a signed build."""
    from concurrent.futures import ThreadPoolExecutor

    from egocrowd.releases import builder, credentials

    dest = work / "signed"
    dest.mkdir()
    manifest = {
        "claim_generator_info": [{"name": "egocrowd-bench", "version": "1"}],
        "title": "clip.mp4",
        "format": credentials.MIME,
        "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": credentials.DIGITAL_CAPTURE}]}}
        ],
    }  # fmt: skip
    threads = builder.SIGNING_THREADS
    with credentials.signers_of(authority) as signer, ThreadPoolExecutor(threads) as pool, Timed() as t:

        def sign(p: Path) -> tuple[str, int]:
            return credentials.sign_video(p, dest / p.name, manifest, authority, signer=signer())

        list(pool.map(sign, paths))
    shutil.rmtree(dest)
    return t


def hash_alone(paths: list[Path]) -> Timed:
    """sha256 of every clip (hashlib, one core): what any full read-and-hash of the bytes costs."""
    from egocrowd.blobs import sha256_file

    with Timed() as t:
        for p in paths:
            sha256_file(p)
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=200, help="clips already at a constant rate (default 200)")
    ap.add_argument("--seconds", type=int, default=10, help="seconds per clip (default 10: about 5 MB each)")
    ap.add_argument("--resample-clips", type=int, default=5, help="variable-rate clips to resample (default 5)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each copy-speed measurement; the best counts")
    ap.add_argument("--build-formats", default="webdataset,croissant,card",
                    help="formats of the measured release build (default: webdataset,croissant,card)")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="24 clips, 2 resampled, the build once: a smoke run")
    args = ap.parse_args()
    if args.quick:
        args.clips, args.resample_clips, args.repeat = min(args.clips, 24), min(args.resample_clips, 2), 2

    log(f"clips: made once, kept in {CACHE}")
    cfr = make_clips(args.clips, args.seconds, variable=False)
    vfr = make_clips(args.resample_clips, args.seconds, variable=True) if args.resample_clips else []
    total = warm(cfr)
    log(f"{len(cfr)} clips, {total / 1e6:.0f} MB")

    with tempfile.TemporaryDirectory(prefix="bench-export-", dir="/tmp") as tmp:
        work = Path(tmp)
        s = spec(items(cfr))
        copies, kernel_copies, lerobots, wdss = [], [], [], []
        for _ in range(args.repeat):
            warm(cfr)
            kernel_copies.append(byte_copy(cfr, work, in_kernel=True))
            warm(cfr)
            lerobots.append(run_export("lerobot", s, work, {"fps": FPS}))
            warm(cfr)
            wdss.append(run_export("webdataset", s, work, {}))
            warm(cfr)
            copies.append(byte_copy(cfr, work))
        copy = min(copies, key=lambda t: t.wall)
        kernel = min(kernel_copies, key=lambda t: t.wall)
        lr = min(lerobots, key=lambda t: t.wall)
        wd = min(wdss, key=lambda t: t.wall)
        print(f"in-kernel copy (shutil.copyfile): {kernel.wall:6.2f} s wall, {kernel.cpu:6.2f} s CPU ({total / 1e6 / kernel.wall:.0f} MB/s)")  # fmt: skip
        print(f"LeRobot v3.0 export:  {lr.wall:6.2f} s wall, {lr.cpu:6.2f} s CPU; re-encoded clips: {lr.reencoded}")  # type: ignore[attr-defined]
        print(f"WebDataset export:    {wd.wall:6.2f} s wall, {wd.cpu:6.2f} s CPU")
        print(
            f"copy through the process (copyfileobj, 1 MiB): {copy.wall:.2f} s wall, {copy.cpu:.2f} s CPU; "
            f"exports against it: LeRobot {copy.wall / lr.wall:.2f}, WebDataset {copy.wall / wd.wall:.2f}"
        )

        formats = {name: {"fps": FPS} if name == "lerobot" else {} for name in args.build_formats.split(",") if name}
        log(f"build: a lab of {len(cfr)} clips on SQLite, formats {', '.join(formats)}")
        world = BuildWorld(cfr, work / "build")
        from egocrowd.releases import builder, credentials

        authority = credentials.authority(world.settings)
        builds, build_copies, signs, hashes = [], [], [], []
        for _ in range(1 if args.quick else max(1, args.repeat - 1)):
            warm(cfr)
            build_copies.append(byte_copy(cfr, work, in_kernel=True))
            warm(cfr)
            builds.append(world.build(formats))
            warm(cfr)
            signs.append(sign_alone(cfr, work, authority))
            warm(cfr)
            hashes.append(hash_alone(cfr))
        build, stages = min(builds, key=lambda b: b[0].wall)
        build_copy = min(build_copies, key=lambda t: t.wall)
        signed = min(signs, key=lambda t: t.wall)
        hashed = min(hashes, key=lambda t: t.wall)
        shares = ", ".join(f"{k} {v:.2f} s" for k, v in stages.items() if v >= 0.005)
        print(f"release build ({', '.join(formats)}; signed): {build.wall:.2f} s wall, {build.cpu:.2f} s CPU ({shares}); "
              f"in-kernel copy beside it {build_copy.wall:.2f} s")  # fmt: skip
        print(f"c2pa sign alone ({builder.SIGNING_THREADS} at once, our sha256 of each signed copy included): "
              f"{signed.wall:.2f} s wall, {signed.cpu:.2f} s CPU ({total / 1e6 / signed.wall:.0f} MB/s); "
              f"sha256 of every clip alone (one core): {hashed.wall:.2f} s ({total / 1e6 / hashed.wall:.0f} MB/s)")  # fmt: skip
        print(f"floor of a signed build (in-kernel copy / c2pa sign alone): {build_copy.wall / signed.wall:.2f}; "
              f"the build reaches {signed.wall / build.wall:.2f} of the speed of its signing alone")  # fmt: skip

        resample_ratio = None
        if vfr:
            warm(vfr)
            rs = spec(items(vfr))
            plain = plain_transcode(vfr, work)
            warm(vfr)
            res = run_export("lerobot", rs, work, {"fps": FPS})
            resample_ratio = plain.cpu / res.cpu
            print(f"{len(vfr)} variable-rate clips: plain decode + encode {plain.wall:.2f} s wall ({plain.cpu:.2f} s CPU), "
                  f"LeRobot export with resampling {res.wall:.2f} s wall ({res.cpu:.2f} s CPU); re-encoded clips: {res.reencoded}")  # type: ignore[attr-defined]  # fmt: skip

    print(
        f"CPU-time ratios (less sensitive to a busy machine): LeRobot {kernel.cpu / lr.cpu:.2f}, "
        f"WebDataset {kernel.cpu / wd.cpu:.2f}, signed build {build_copy.cpu / build.cpu:.2f} "
        f"(its signing alone {build_copy.cpu / signed.cpu:.2f})"
    )
    target("lerobot_vs_byte_copy", kernel.wall / lr.wall, 0.5)
    target("webdataset_vs_byte_copy", kernel.wall / wd.wall, 0.5)
    target("build_with_signing_vs_byte_copy", build_copy.wall / build.wall, 0.3)
    if resample_ratio is not None:
        target("lerobot_resample_vs_plain_transcode", resample_ratio, 0.5)


if __name__ == "__main__":
    main()

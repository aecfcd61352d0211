"""A small release to describe, built without a database: real video files (testmedia), a
ReleaseSpec around them, and real files standing in for the exporters' output (a LeRobot-like
folder with a real parquet and mp4, a real WebDataset tar shard, a Hugging Face parquet), each with
its true size and sha256, as the build hands them to the describers."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from egocrowd.media.testmedia import write_video
from egocrowd.releases.exporting import DESCRIBERS, FileEntry, ReleaseItem, ReleaseSpec, SpanLabel

T0 = datetime(2026, 9, 1, 9, 30, tzinfo=UTC)


@dataclass
class World:
    spec: ReleaseSpec
    root: Path  # the release root: exporters' folders and the describers' beside them
    files: list[FileEntry]  # what the exporters wrote


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _video(path: Path, seconds: float, shade: int) -> Path:
    n = int(seconds * 10)
    frames = [np.full((48, 64, 3), (shade + 3 * k) % 256, np.uint8) for k in range(n)]
    return write_video(path, frames, fps=10)


def _qc(brightness: float, status: str = "qc_passed") -> dict:
    return {
        "status": status,
        "checks": [
            {"name": "too_dark", "title": "Too dark", "status": "pass", "value": brightness, "unit": ""},
            {"name": "too_short", "title": "Too short", "status": "pass", "value": 20.0, "unit": "s"},
            {"name": "shaky", "title": "Shaky", "status": "warn" if brightness < 0.3 else "pass", "value": 0.2},
        ],
    }


CAMPAIGNS = (
    {
        "id": 1,
        "title": "Open jars",
        "setting": "kitchen",
        "taxonomy": {"verbs": ["open", "close", "pour"], "nouns": ["jar", "lid", "cup"]},
        "data_use": {"train": True, "commercial": True, "redistribute": True},
        "annotation": {"enabled": True, "per_clip": 3, "gold_rate": 0.1},
        "pay_cents": 150,
        "currency": "USD",
        "expected_minutes": 5,
    },
    {
        "id": 2,
        "title": "Fold <shirts> & towels",
        "taxonomy": {"verbs": ["fold"], "nouns": ["shirt", "towel"]},
        "data_use": {"train": True},
        "annotation": {"enabled": True, "per_clip": 3},
        # the release build's shape: amounts as text, the hourly rate measured from working time
        "pay": {"campaign_id": 2, "currency": "USD", "per_clip": "2.00", "median_hourly": "14.40"},
    },
)


def build_world(folder: Path, *, previous: bool = True, n: int = 4) -> World:
    """``n`` clips in two campaigns and three countries (one clip with no labels and no country)."""
    media = folder / "media"
    media.mkdir(parents=True)
    root = folder / "release"
    countries = ["KE", "KE", "IN", None, "BR", "KE"]
    items = []
    for k in range(n):
        path = _video(media / f"clip{k}.mp4", 1.0 + 0.5 * k, 40 * k)
        campaign = CAMPAIGNS[0] if k % 3 != 2 else CAMPAIGNS[1]
        labelled = k != 3
        spans = (
            (
                SpanLabel(0, 400, "open", "jar", 0.93),
                SpanLabel(400, 900, "pour", "cup", 0.81),
            )
            if campaign["id"] == 1
            else (SpanLabel(100, 800, "fold", "shirt", 0.7),)
        )
        items.append(
            ReleaseItem(
                clip_id=100 + k,
                clip_sha256=hashlib.sha256(f"raw-{k}".encode()).hexdigest(),
                media_path=path,
                media_sha256=sha256(path),
                media_size=path.stat().st_size,
                campaign_id=campaign["id"],
                campaign_title=campaign["title"],
                task=f"{campaign['title']} at home",
                worker=f"w-{k % 3:02d}",
                country=countries[k % len(countries)],
                recorded_at=T0 + timedelta(days=3 * k, hours=k),
                duration_s=1.0 + 0.5 * k,
                width=64,
                height=48,
                fps=10.0,
                qc=_qc(0.2 + 0.1 * k),
                spans=spans if labelled else (),
                agreement={"alpha": 0.6 + 0.1 * (k % 3), "mean_iou": 0.7, "annotators": 3} if labelled else None,
                annotators=(f"a-{k}", f"a-{k + 1}", f"a-{k + 2}") if labelled else (),
                consent={
                    "version": "1.2",
                    "sha256": "c" * 64,
                    "scopes": ["training", "commercial_use", "redistribution"] + (["audio_kept"] if k == 0 else []),
                    "language": "en",
                },
                deid={  # the Derivative's record as the release build passes it
                    "stage_version": 3,
                    "format_version": 1,
                    "params": {
                        "face_mode": "blur" if k != 1 else "fill",
                        "audio": "drop" if k != 0 else "keep",
                        "detection": {
                            "centerface": {"version": "2", "params": {"threshold": 0.4}, "every": 1},
                            "rapidocr": {"version": "1", "params": {}, "every": 5},
                            "tracking": {"face": {"iou": 0.3}},
                        },
                    },
                    "summary": {
                        "audio": "drop" if k != 0 else "kept",
                        "tracks": {"face": k, "text": 1 if k == 2 else 0},
                    },
                },
            )
        )
    spec = ReleaseSpec(
        release_id=7,
        name="kitchen-chores",
        version=2 if previous else 1,
        title="Kitchen chores, egocentric",
        description="People opening jars and folding clothes, filmed from a phone on their head.",
        organization="Robot Hands Lab",
        licence={
            "name": "egocrowd data licence 1.0",
            "terms": "Train models; no re-identification.",
            "uses": ["training", "commercial"],
            "expires_at": None,
        },
        created_at=T0 + timedelta(days=40),
        items=tuple(items),
        previous={"id": 6, "version": 1, "root_hash": "ab" * 32} if previous else None,
        changes={"added": [i.clip_sha256 for i in items[:2]], "withdrawn": ["de" * 32]} if previous else {},
        campaigns=CAMPAIGNS,
    )
    return World(spec, root, _exporter_files(spec, root))


def _exporter_files(spec: ReleaseSpec, root: Path) -> list[FileEntry]:
    written: list[tuple[Path, str]] = []

    def put(rel: str, fmt: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        written.append((path, fmt))
        return path

    info = put("lerobot/meta/info.json", "lerobot")
    info.write_text(json.dumps({"codebase_version": "v3.0", "fps": 30, "total_episodes": len(spec.items)}))
    table = pa.table(
        {
            "episode_index": pa.array(range(len(spec.items)), pa.int64()),
            "clip_sha256": [i.clip_sha256 for i in spec.items],
        }
    )
    pq.write_table(table, put("lerobot/data/chunk-000/file-000.parquet", "lerobot"))
    shutil.copyfile(
        spec.items[0].media_path, put("lerobot/videos/observation.images.ego/chunk-000/file-000.mp4", "lerobot")
    )
    shard = put("webdataset/shard-000000.tar", "webdataset")
    with tarfile.open(shard, "w") as tar:
        for item in spec.items:
            tar.add(item.media_path, arcname=f"{item.clip_sha256}.mp4")
            meta = json.dumps({"clip_sha256": item.clip_sha256}).encode()
            member = tarfile.TarInfo(f"{item.clip_sha256}.json")
            member.size = len(meta)
            tar.addfile(member, io.BytesIO(meta))
    pq.write_table(table, put("hf/data/train-00000-of-00001.parquet", "hf"))
    return [
        FileEntry(path.relative_to(root).as_posix(), path.stat().st_size, sha256(path), fmt) for path, fmt in written
    ]


def describe(world: World, name: str, **options) -> dict[str, list[int]]:
    """Run the registered describer ``name`` the way the build does: into ``root/name``."""
    done: list[int] = []
    entry = DESCRIBERS.get(name)
    carried = entry.obj(world.spec, world.root / name, options=options, files=world.files, progress=done.append)
    assert sum(done) == len(world.spec.items), "progress counts every clip once"
    return {path: list(ids) for path, ids in carried.items()}

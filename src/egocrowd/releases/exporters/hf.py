"""Hugging Face ``datasets``: a folder that ``datasets.load_dataset(path)`` reads offline.

    README.md                     YAML header: ``configs`` → ``data_files`` (the train split), licence
    data/train-00000-of-00001.parquet   one row per clip
    videos/clip-00000042.mp4      the de-identified videos, bytes as stored

Each row names its video by a path relative to the folder (``video``) with the video's sha256 and
size, rather than holding the bytes: the rows stay small (the table loads and filters in an
instant, and ``datasets`` never copies gigabytes of video into its Arrow cache), the mp4 files are
the same bytes as everywhere else in the release, and reading one needs no decoder from
``datasets`` (its ``Video`` feature decodes with torchcodec, which a loader may not have). Spans
are a list of structs; QC, agreement and de-identification details, whose keys vary, are JSON text.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from egocrowd.errors import MediaError
from egocrowd.i18n import N_
from egocrowd.releases.exporters._meta import METADATA_VERSION, clip_metadata, sample_key
from egocrowd.releases.exporting import EXPORTERS, FileEntry, Progress, ReleaseSpec

DATA_FILE = "data/train-00000-of-00001.parquet"

SPAN = pa.struct(
    [
        ("start_ms", pa.int64()),
        ("end_ms", pa.int64()),
        ("verb", pa.string()),
        ("noun", pa.string()),
        ("label", pa.string()),
        ("confidence", pa.float64()),
    ]
)
_COLUMNS: list[tuple[str, pa.DataType]] = [
    ("key", pa.string()),
    ("video", pa.string()),
    ("video_sha256", pa.string()),
    ("video_size", pa.int64()),
    ("clip_id", pa.int64()),
    ("clip_sha256", pa.string()),
    ("release_id", pa.int64()),
    ("release_name", pa.string()),
    ("release_version", pa.int64()),
    ("campaign_id", pa.int64()),
    ("campaign_title", pa.string()),
    ("task", pa.string()),
    ("worker", pa.string()),
    ("annotators", pa.list_(pa.string())),
    ("country", pa.string()),
    ("recorded_at", pa.timestamp("us", tz="UTC")),
    ("duration_s", pa.float64()),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("fps", pa.float64()),
    ("spans", pa.list_(SPAN)),
    ("consent_scopes", pa.list_(pa.string())),
    ("consent_version", pa.string()),
    ("consent_sha256", pa.string()),
    ("qc", pa.string()),
    ("agreement", pa.string()),
    ("deid", pa.string()),
    ("format_version", pa.int64()),
]
SCHEMA = pa.schema(_COLUMNS)


@EXPORTERS.register("hf", version=1, description=N_("Hugging Face datasets (parquet + README configs, offline)"))
def export_hf(
    spec: ReleaseSpec,
    out: Path,
    *,
    options: Mapping[str, Any],
    files: Sequence[FileEntry],
    progress: Progress,
) -> Mapping[str, Sequence[int]]:
    """Write the release as a Hugging Face dataset folder under ``out``; returns file → clip ids."""
    (out / "videos").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    carried: dict[str, list[int]] = {}
    rows = []
    for item in spec.items:
        video = f"videos/{sample_key(item)}.mp4"
        try:
            shutil.copyfile(item.media_path, out / video)
        except OSError as exc:
            raise MediaError(
                f"the de-identified video of clip {item.clip_id} cannot be read: {exc.strerror}",
                code="video.unreadable",
                clip_id=item.clip_id,
            ) from exc
        meta = clip_metadata(spec, item)
        consent = meta["consent"] or {}
        rows.append(
            {
                "key": meta["key"],
                "video": video,
                "video_sha256": item.media_sha256,
                "video_size": item.media_size,
                "clip_id": item.clip_id,
                "clip_sha256": item.clip_sha256,
                "release_id": spec.release_id,
                "release_name": spec.name,
                "release_version": spec.version,
                "campaign_id": item.campaign_id,
                "campaign_title": item.campaign_title,
                "task": item.task,
                "worker": item.worker,
                "annotators": list(item.annotators),
                "country": item.country,
                "recorded_at": item.recorded_at,
                "duration_s": item.duration_s,
                "width": item.width,
                "height": item.height,
                "fps": item.fps,
                "spans": meta["spans"],
                "consent_scopes": [str(s) for s in consent.get("scopes") or []],
                "consent_version": None if consent.get("version") is None else str(consent["version"]),
                "consent_sha256": consent.get("sha256"),
                "qc": json.dumps(meta["qc"], sort_keys=True),
                "agreement": None if meta["agreement"] is None else json.dumps(meta["agreement"], sort_keys=True),
                "deid": json.dumps(meta["deid"], sort_keys=True),
                "format_version": METADATA_VERSION,
            }
        )
        carried[f"{out.name}/{video}"] = [item.clip_id]
        progress(1)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), out / DATA_FILE)
    carried[f"{out.name}/{DATA_FILE}"] = [item.clip_id for item in spec.items]
    (out / "README.md").write_text(_readme(spec))
    return carried


def _readme(spec: ReleaseSpec) -> str:
    """The dataset card's YAML header (what ``load_dataset`` reads) and a few lines for people."""
    licence = spec.licence.get("name") or "other"
    header = {
        "license": "other",
        "license_name": str(licence),
        "pretty_name": spec.title or spec.name,
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
    }
    # JSON is YAML: no YAML writer needed, and every string is quoted safely.
    lines = ["---", *(f"{k}: {json.dumps(v)}" for k, v in header.items()), "---", ""]
    lines += [
        f"# {spec.title or spec.name} (version {spec.version})",
        "",
        f"Published by {spec.organization}. {len(spec.items)} clips of egocentric video, one row per clip.",
        "",
        "Each row's `video` is the path of its mp4 file relative to this folder; `video_sha256` is its hash.",
        "`spans` lists the clip's action spans (milliseconds of the clip's own time, verb and noun).",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_dataset("path/to/this/folder", split="train")',
        "```",
        "",
    ]
    return "\n".join(lines)


__all__ = ["DATA_FILE", "export_hf"]

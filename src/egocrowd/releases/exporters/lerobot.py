"""LeRobot v3.0 (``codebase_version: "v3.0"``): one episode per clip, one egocentric camera.

Layout (paths relative to the exporter's folder; docs/release-formats.md has the full reference)::

    meta/info.json                               features, fps, sizes, path templates, totals, splits
    meta/stats.json                              per-feature min/max/mean/std/count (+ quantiles)
    meta/tasks.parquet                           task string (pandas index "task") -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode
    data/chunk-000/file-000.parquet              one row per frame, many episodes per file
    videos/observation.images.egocentric/chunk-000/file-000.mp4   episodes concatenated

Every clip becomes a constant ``fps`` H.264 video (LeRobot indexes frames by ``frame_index / fps``).
A clip that already is H.264 yuv420p at exactly that rate, at the dataset's size, is copied packet
by packet (no re-encode); any other clip (phone video is variable frame rate) is decoded and
resampled, showing at each output tick the latest source frame at or before it, and encoded once
into the concatenated file. Each frame keeps its time in the source clip (``source_timestamp``)
and the clip's provenance (``clip_sha256``, ``campaign_id``, ``release_id``); the annotation span
covering that source time gives ``subtask_index`` (an index into ``meta/tasks.parquet``, -1 where
no span covers the frame).

:func:`check_layout` applies LeRobot's layout rules to a folder and lists what breaks them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from egocrowd.errors import InvalidInput
from egocrowd.i18n import N_
from egocrowd.releases.exporters._mp4 import read_track
from egocrowd.releases.exporters._video import (
    ImageStats,
    JoinedFile,
    VideoFile,
    first_keyframe,
    inspect_clip,
    joinable,
    labels_at,
    track_timing,
)
from egocrowd.releases.exporting import EXPORTERS, FileEntry, Progress, ReleaseItem, ReleaseSpec

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v3.0"
CAMERA = "observation.images.egocentric"
CHUNKS_SIZE = 1000  # files per chunk folder (LeRobot's default)
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
#: frames per data parquet file: our rows are small (about 40 bytes compressed), so this keeps a
#: file far under DATA_FILES_SIZE_IN_MB without measuring it while it is written
DATA_FILE_FRAMES = 1_000_000
#: what LeRobot's DatasetInfo knows; it warns about any other key of meta/info.json
INFO_KEYS = {
    "codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks", "chunks_size",
    "data_files_size_in_mb", "video_files_size_in_mb", "data_path", "video_path", "robot_type", "splits", "tools",
}  # fmt: skip
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
TOLERANCE_S = 1e-4
STATS_CLIPS = 10  # LeRobot's default tolerance between a timestamp and frame_index / fps

#: the frame columns every LeRobot dataset has, then ours
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
EXTRA_FEATURES: dict[str, dict[str, Any]] = {
    "subtask_index": {"dtype": "int64", "shape": [1], "names": None},
    "source_timestamp": {"dtype": "float64", "shape": [1], "names": None},
    "clip_sha256": {"dtype": "string", "shape": [1], "names": None},
    "campaign_id": {"dtype": "int64", "shape": [1], "names": None},
    "release_id": {"dtype": "int64", "shape": [1], "names": None},
}
_ARROW: dict[str, pa.DataType] = {
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int64": pa.int64(),
    "string": pa.string(),
}
FRAME_SCHEMA = pa.schema([(k, _ARROW[v["dtype"]]) for k, v in {**DEFAULT_FEATURES, **EXTRA_FEATURES}.items()])


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    fps = options.get("fps")
    if fps is None:
        from egocrowd.settings import Settings

        fps = Settings().release_fps
    if not isinstance(fps, int) or isinstance(fps, bool) or not 1 <= fps <= 240:
        raise InvalidInput("LeRobot's fps must be a whole number from 1 to 240", field="fps", value=str(fps))
    size_mb = options.get("video_files_size_in_mb", VIDEO_FILES_SIZE_IN_MB)
    if not isinstance(size_mb, int | float) or size_mb <= 0:
        raise InvalidInput("video_files_size_in_mb must be a positive number", field="video_files_size_in_mb")
    return {
        "fps": fps,
        "video_files_size_in_mb": size_mb,
        "encoder": {
            "codec": "libx264",
            "crf": _whole(options, "crf", 23, 0, 51),
            "preset": _choice(options, "preset", "veryfast", X264_PRESETS),
            "g": _whole(options, "gop", fps, 1, 10_000),  # a keyframe a second: random access stays cheap
        },
    }


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def _whole(options: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = options.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"LeRobot's {name} must be a whole number from {low} to {high}", field=name)
    return value


def _choice(options: Mapping[str, Any], name: str, default: str, choices: Sequence[str]) -> str:
    value = options.get(name, default)
    if value not in choices:
        raise InvalidInput(f"LeRobot's {name} must be one of {', '.join(choices)}", field=name)
    return str(value)


def _size(items: Sequence[ReleaseItem]) -> tuple[int, int]:
    """The camera's size: the most common clip size (ties: the first), made even for yuv420p."""
    sizes = Counter((i.width, i.height) for i in items if i.width and i.height)
    if not sizes:
        return (0, 0)
    (w, h), _ = sizes.most_common(1)[0]
    return (w - w % 2, h - h % 2)


@EXPORTERS.register("lerobot", version=1, description=N_("LeRobot v3.0 (constant-rate video chunks, frame parquet)"))
def export_lerobot(
    spec: ReleaseSpec,
    out: Path,
    *,
    options: Mapping[str, Any],
    files: Sequence[FileEntry],
    progress: Progress,
) -> Mapping[str, Sequence[int]]:
    """Write a LeRobot v3.0 dataset of the release under ``out``; returns file → clip ids."""
    opts = _options(options)
    fps: int = opts["fps"]
    limit_bytes = opts["video_files_size_in_mb"] * 1_000_000
    prefix = out.name
    carried: dict[str, list[int]] = {}

    tasks: dict[str, int] = {}

    def task_index(text: str) -> int:
        return tasks.setdefault(text, len(tasks))

    for item in spec.items:  # the episodes' tasks first, then the span labels
        task_index(item.task)
    for item in spec.items:
        for span in sorted(item.spans, key=lambda s: (s.start_ms, s.end_ms)):
            task_index(span.label)

    size = _size(spec.items)
    # Image statistics come from frames already decoded (re-encoded clips) or, for copied clips,
    # from their first keyframe: decoding is what copying avoids, so at most STATS_CLIPS of them.
    stats_every = max(1, len(spec.items) // STATS_CLIPS)
    stats = ImageStats()
    columns: dict[str, list[Any]] = {name: [] for name in FRAME_SCHEMA.names}
    episodes: list[dict[str, Any]] = []
    video: VideoFile | JoinedFile | None = None
    video_chunk, video_file = 0, -1
    data_writer: pq.ParquetWriter | None = None
    data_chunk, data_file, data_frames = 0, -1, 0
    total = 0
    reencoded: list[str] = []

    def next_index(chunk: int, file: int) -> tuple[int, int]:
        file += 1
        if file >= CHUNKS_SIZE:
            return chunk + 1, 0
        return chunk, file

    def next_video_path() -> Path:
        nonlocal video_chunk, video_file
        if video is not None:
            video.close()
        video_chunk, video_file = next_index(video_chunk, video_file)
        return out / VIDEO_PATH.format(video_key=CAMERA, chunk_index=video_chunk, file_index=video_file)

    try:
        for episode, item in enumerate(spec.items):
            sample = episode % stats_every == 0
            # the plain case (one H.264 track, constant rate): joined from its sample table, its
            # bytes copied in the kernel; anything else goes through PyAV below
            track = read_track(item.media_path)
            joined = track_timing(track) if track is not None else None
            if joined is not None and size == (0, 0):
                size = (joined.width - joined.width % 2, joined.height - joined.height % 2)
            if (
                track is not None
                and joined is not None
                and joined.copy_reason(fps, size) is None
                and joinable(track, joined, fps)
            ):
                full = video is not None and video.frames > 0 and video.bytes + item.media_size > limit_bytes
                if full or not (isinstance(video, JoinedFile) and video.fits(track, joined)):
                    video = JoinedFile(next_video_path(), fps, track, joined)
                start_frame = video.frames
                placed = video.append(item.media_path, track, joined)
                keyframe = first_keyframe(item.media_path) if sample else None
                if keyframe is not None:
                    stats.add(keyframe)
            else:
                with inspect_clip(item.media_path, keep_packets=True, sample=sample) as read:
                    timing = read.timing
                    if size == (0, 0):
                        size = (timing.width - timing.width % 2, timing.height - timing.height % 2)
                    reason = timing.copy_reason(fps, size)
                    copy = reason is None
                    # a new video file: none yet, another kind of episode, or the size limit reached
                    full = video is not None and video.frames > 0 and video.bytes + item.media_size > limit_bytes
                    fits = isinstance(video, VideoFile) and (
                        video.fits_copy(timing, fps) if copy else video.signature[0] == "encode"
                    )
                    if video is None or full or not fits:
                        path = next_video_path()
                        video = VideoFile(
                            path, fps, copy_of=timing if copy else None, size=size, encoder=opts["encoder"]
                        )
                    assert isinstance(video, VideoFile)
                    start_frame = video.frames
                    if copy:
                        placed = video.copy(item.media_path, read)
                        if read.keyframe is not None:
                            stats.add(read.keyframe)
                if not copy:
                    placed = video.resample(item.media_path, stats, reason)
                    reencoded.append(f"clip {item.clip_id}: {reason}")
            video_rel = video.path.relative_to(out).as_posix()

            if data_writer is None or data_frames + placed.frames > DATA_FILE_FRAMES and data_frames:
                if data_writer is not None:
                    data_writer.close()
                data_chunk, data_file = next_index(data_chunk, data_file)
                data_path = out / DATA_PATH.format(chunk_index=data_chunk, file_index=data_file)
                data_path.parent.mkdir(parents=True, exist_ok=True)
                data_writer = pq.ParquetWriter(data_path, FRAME_SCHEMA)
                data_frames = 0
            data_rel = DATA_PATH.format(chunk_index=data_chunk, file_index=data_file)
            n = placed.frames
            table = _frame_table(spec, item, episode, total, n, fps, placed.source_times, tasks)
            data_writer.write_table(table, row_group_size=max(n, 1))  # a row group per episode
            for name in FRAME_SCHEMA.names:
                if FRAME_SCHEMA.field(name).type != pa.string():
                    columns[name].append(table.column(name).to_numpy())
            data_frames += n
            episodes.append(
                {
                    "episode_index": episode,
                    "tasks": [item.task],
                    "length": n,
                    "dataset_from_index": total,
                    "dataset_to_index": total + n,
                    "data/chunk_index": data_chunk,
                    "data/file_index": data_file,
                    f"videos/{CAMERA}/chunk_index": video_chunk,
                    f"videos/{CAMERA}/file_index": video_file,
                    f"videos/{CAMERA}/from_timestamp": start_frame / fps,
                    f"videos/{CAMERA}/to_timestamp": (start_frame + n) / fps,
                    "meta/episodes/chunk_index": 0,
                    "meta/episodes/file_index": 0,
                    "clip_id": item.clip_id,
                    "clip_sha256": item.clip_sha256,
                    "media_sha256": item.media_sha256,
                    "campaign_id": item.campaign_id,
                    "worker": item.worker,
                    "country": item.country,
                    "source_duration_s": item.duration_s,
                    "reencoded": not placed.copied,
                }
            )
            total += n
            for rel in (video_rel, data_rel):
                carried.setdefault(f"{prefix}/{rel}", []).append(item.clip_id)
            progress(1)
    finally:
        if video is not None:
            video.close()
        if data_writer is not None:
            data_writer.close()
    if reencoded:
        log.info("lerobot: %d of %d clips re-encoded: %s", len(reencoded), len(spec.items), "; ".join(reencoded[:20]))

    episodes_rel = EPISODES_PATH.format(chunk_index=0, file_index=0)
    (out / episodes_rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episodes, schema=_episode_schema()), out / episodes_rel)
    carried[f"{prefix}/{episodes_rel}"] = [item.clip_id for item in spec.items]
    _write_tasks(out, tasks)

    features = {
        CAMERA: {
            "dtype": "video",
            "shape": [size[1], size[0], 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": size[1],
                "video.width": size[0],
                "video.codec": "h264",
                "video.pix_fmt": "yuv420p",
                "is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        },
        **DEFAULT_FEATURES,
        **EXTRA_FEATURES,
    }
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": None,
        "total_episodes": len(episodes),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": max(1, round(opts["video_files_size_in_mb"])),  # LeRobot: a positive int
        "fps": fps,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH,
        "features": features,
    }
    # Ours beside LeRobot's files, not inside info.json: LeRobot warns about every key it does not know.
    ours = {
        "release_id": spec.release_id,
        "release": spec.name,
        "version": spec.version,
        "format_version": 1,
        "fps": fps,
        "reencoded_episodes": sum(1 for e in episodes if e["reencoded"]),
        "columns": {
            "subtask_index": "index into meta/tasks.parquet of the span label at the frame's source time, -1 when none",
            "source_timestamp": "seconds from the source clip's first frame to the frame shown",
            "clip_sha256": "sha256 of the raw upload (provenance; its bytes are not in the release)",
        },
    }
    (out / "meta").mkdir(parents=True, exist_ok=True)
    (out / "meta" / "egocrowd.json").write_text(json.dumps(ours, indent=2) + "\n")
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=2) + "\n")
    frame_stats = {name: _numeric_stats(np.concatenate(values)) for name, values in columns.items() if values}
    image = stats.as_lerobot()
    if image:
        frame_stats[CAMERA] = image
    (out / "meta" / "stats.json").write_text(json.dumps(frame_stats, indent=2) + "\n")
    return carried


def _frame_table(
    spec: ReleaseSpec,
    item: ReleaseItem,
    episode: int,
    start: int,
    n: int,
    fps: int,
    source_times: list[float],
    tasks: Mapping[str, int],
) -> pa.Table:
    frame_index = np.arange(n, dtype=np.int64)
    spans = sorted((s.start_ms, s.end_ms, tasks[s.label]) for s in item.spans)
    source = np.asarray(source_times, dtype=np.float64)
    subtasks = labels_at(spans, source * 1000.0)
    return pa.table(
        {
            "timestamp": pa.array((frame_index / fps).astype(np.float32)),
            "frame_index": pa.array(frame_index),
            "episode_index": pa.array(np.full(n, episode, dtype=np.int64)),
            "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "task_index": pa.array(np.full(n, tasks[item.task], dtype=np.int64)),
            "subtask_index": pa.array(subtasks),
            "source_timestamp": pa.array(source),
            "clip_sha256": pa.array([item.clip_sha256] * n, pa.string()),
            "campaign_id": pa.array(np.full(n, item.campaign_id, dtype=np.int64)),
            "release_id": pa.array(np.full(n, spec.release_id, dtype=np.int64)),
        },
        schema=FRAME_SCHEMA,
    )


def _episode_schema() -> pa.Schema:
    return pa.schema(
        [
            ("episode_index", pa.int64()),
            ("tasks", pa.list_(pa.string())),
            ("length", pa.int64()),
            ("dataset_from_index", pa.int64()),
            ("dataset_to_index", pa.int64()),
            ("data/chunk_index", pa.int64()),
            ("data/file_index", pa.int64()),
            (f"videos/{CAMERA}/chunk_index", pa.int64()),
            (f"videos/{CAMERA}/file_index", pa.int64()),
            (f"videos/{CAMERA}/from_timestamp", pa.float64()),
            (f"videos/{CAMERA}/to_timestamp", pa.float64()),
            ("meta/episodes/chunk_index", pa.int64()),
            ("meta/episodes/file_index", pa.int64()),
            ("clip_id", pa.int64()),
            ("clip_sha256", pa.string()),
            ("media_sha256", pa.string()),
            ("campaign_id", pa.int64()),
            ("worker", pa.string()),
            ("country", pa.string()),
            ("source_duration_s", pa.float64()),
            ("reencoded", pa.bool_()),
        ]
    )


def _write_tasks(out: Path, tasks: Mapping[str, int]) -> None:
    """LeRobot reads this with pandas and looks tasks up by the index (named "task"), so the
    parquet carries pandas' index metadata, exactly as ``DataFrame.to_parquet`` writes it."""
    import pandas as pd

    frame = pd.DataFrame({"task_index": list(tasks.values())}, index=pd.Index(list(tasks), name="task"))
    frame.to_parquet(out / "meta" / "tasks.parquet")


def _numeric_stats(values: np.ndarray) -> dict[str, list[float] | list[int]]:
    v = values.astype(np.float64)
    if not v.size:
        return {"count": [0]}
    stats: dict[str, list[float] | list[int]] = {
        "min": [float(v.min())],
        "max": [float(v.max())],
        "mean": [float(v.mean())],
        "std": [float(v.std())],
        "count": [int(v.size)],
    }
    for q, value in zip(QUANTILES, np.quantile(v, QUANTILES), strict=True):
        stats[f"q{round(q * 100):02d}"] = [float(value)]
    return stats


# -- checking a folder against LeRobot's layout rules ------------------------------------------------


def check_layout(root: Path, *, decode_videos: bool = True) -> list[str]:
    """What in ``root`` breaks LeRobot v3.0's layout rules (empty: none). With ``decode_videos``,
    every episode's span of its video file is decoded: it must hold exactly ``length`` frames at
    ``from_timestamp + frame_index / fps`` (within LeRobot's 1e-4 s)."""
    import pandas as pd

    problems: list[str] = []
    try:
        info = json.loads((root / "meta" / "info.json").read_text())
    except (OSError, ValueError) as exc:
        return [f"meta/info.json: {exc}"]
    for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks",
                "chunks_size", "data_path", "video_path", "splits"):  # fmt: skip
        if key not in info:
            problems.append(f"meta/info.json has no {key}")
    if problems:
        return problems
    unknown = sorted(set(info) - INFO_KEYS)
    if unknown:
        problems.append(f"meta/info.json has keys LeRobot does not know (it warns): {unknown}")
    for key in ("chunks_size", "data_files_size_in_mb", "video_files_size_in_mb"):
        if not isinstance(info.get(key), int) or info[key] <= 0:
            problems.append(f"{key} must be a positive whole number")
    if info["codebase_version"] != CODEBASE_VERSION:
        problems.append(f"codebase_version is {info['codebase_version']!r}, not {CODEBASE_VERSION!r}")
    fps = info["fps"]
    if not isinstance(fps, int) or fps <= 0:
        return [*problems, f"fps {fps!r} is not a positive whole number"]
    features = info["features"]
    for name, feature in DEFAULT_FEATURES.items():
        if features.get(name, {}).get("dtype") != feature["dtype"]:
            problems.append(f"feature {name} must be {feature['dtype']}")
    videos = [k for k, f in features.items() if f.get("dtype") == "video"]
    for key in videos:
        if len(features[key].get("shape", [])) != 3 or "info" not in features[key]:
            problems.append(f"video feature {key} needs a (height, width, channels) shape and info")

    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    if tasks.index.name != "task" or "task_index" not in tasks.columns:
        problems.append("meta/tasks.parquet must be indexed by task with a task_index column")
    elif sorted(tasks["task_index"]) != list(range(len(tasks))):
        problems.append("task_index values must be 0..total_tasks-1")
    if len(tasks) != info["total_tasks"]:
        problems.append(f"total_tasks is {info['total_tasks']} but meta/tasks.parquet has {len(tasks)}")
    known_tasks = set(tasks.index)

    episode_files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not episode_files:
        return [*problems, "no meta/episodes/chunk-*/file-*.parquet"]
    eps = pa.concat_tables([pq.read_table(p) for p in episode_files]).to_pylist()
    eps.sort(key=lambda e: e["episode_index"])
    if [e["episode_index"] for e in eps] != list(range(info["total_episodes"])):
        problems.append("episode_index must run 0..total_episodes-1")
    if info["splits"].get("train") != f"0:{len(eps)}":
        problems.append(f"splits.train should be 0:{len(eps)}")
    if sum(e["length"] for e in eps) != info["total_frames"]:
        problems.append("the episodes' lengths do not add up to total_frames")
    expected_from = 0
    data_cache: dict[str, pa.Table] = {}
    for e in eps:
        i = e["episode_index"]
        if e["dataset_from_index"] != expected_from or e["dataset_to_index"] != expected_from + e["length"]:
            problems.append(f"episode {i}: dataset_from/to_index are not contiguous")
        expected_from = e["dataset_to_index"]
        if not set(e["tasks"]) <= known_tasks:
            problems.append(f"episode {i}: tasks not in meta/tasks.parquet")
        for key in ("data/chunk_index", "data/file_index"):
            if not 0 <= e[key] < info["chunks_size"]:
                problems.append(f"episode {i}: {key} out of range")
        data_rel = info["data_path"].format(chunk_index=e["data/chunk_index"], file_index=e["data/file_index"])
        if data_rel not in data_cache:
            try:
                data_cache[data_rel] = pq.read_table(root / data_rel)
            except OSError as exc:
                problems.append(f"episode {i}: {data_rel}: {exc}")
                continue
        problems += _check_frames(data_cache[data_rel], e, fps, len(tasks), data_rel)
        for key in videos:
            problems += _check_video(root, info, e, key, fps, decode_videos)
    return problems


def _check_frames(table: pa.Table, e: dict[str, Any], fps: int, n_tasks: int, data_rel: str) -> list[str]:
    i, n = e["episode_index"], e["length"]
    ep = table.filter(pa.compute.equal(table["episode_index"], i))
    problems = []
    if ep.num_rows != n:
        return [f"episode {i}: {ep.num_rows} rows in {data_rel}, length says {n}"]
    frame_index = ep["frame_index"].to_numpy()
    if not np.array_equal(frame_index, np.arange(n)):
        problems.append(f"episode {i}: frame_index is not 0..length-1")
    if not np.array_equal(ep["index"].to_numpy(), np.arange(e["dataset_from_index"], e["dataset_to_index"])):
        problems.append(f"episode {i}: index does not match dataset_from/to_index")
    ts = ep["timestamp"].to_numpy().astype(np.float64)
    if n and np.abs(ts - frame_index / fps).max() > TOLERANCE_S:
        problems.append(f"episode {i}: timestamp differs from frame_index / fps by more than {TOLERANCE_S} s")
    task = ep["task_index"].to_numpy()
    if n and (task.min() < 0 or task.max() >= n_tasks):
        problems.append(f"episode {i}: task_index out of range")
    return problems


def _check_video(root: Path, info: dict[str, Any], e: dict[str, Any], key: str, fps: int, decode: bool) -> list[str]:
    i, n = e["episode_index"], e["length"]
    chunk, file = e[f"videos/{key}/chunk_index"], e[f"videos/{key}/file_index"]
    start, end = e[f"videos/{key}/from_timestamp"], e[f"videos/{key}/to_timestamp"]
    rel = info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
    problems = []
    if not (root / rel).is_file():
        return [f"episode {i}: {rel} is missing"]
    if abs((end - start) - n / fps) > TOLERANCE_S or start < 0:
        problems.append(f"episode {i}: from/to_timestamp do not span length / fps")
    if decode:
        times = decoded_times(root / rel)
        got = [t for t in times if start - TOLERANCE_S <= t < end - TOLERANCE_S]
        if len(got) != n:
            problems.append(f"episode {i}: {len(got)} frames in {rel} between from and to_timestamp, length says {n}")
        elif any(abs(t - (start + k / fps)) > TOLERANCE_S for k, t in enumerate(got)):
            problems.append(f"episode {i}: frames in {rel} are not at from_timestamp + frame_index / fps")
    return problems


def decoded_times(path: Path) -> list[float]:
    """Every decoded frame's presentation time in a video file we wrote, in seconds."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        return [float(frame.time) for frame in container.decode(stream) if frame.time is not None]


__all__ = ["CAMERA", "CODEBASE_VERSION", "check_layout", "decoded_times", "export_lerobot"]

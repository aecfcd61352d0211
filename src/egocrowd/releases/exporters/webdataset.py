"""WebDataset: tar shards ``shard-000000.tar``, ``shard-000001.tar``… with one sample per clip:
``<key>.mp4`` (the de-identified video, its bytes as stored) and ``<key>.json`` (the clip's record:
provenance, spans, QC, agreement, consent scopes, pseudonyms; see ``_meta.clip_metadata``).

A shard closes after ``maxcount`` samples (default 1000) or once it holds ``maxsize`` bytes
(default 1 GB), whichever comes first. Written with the ``webdataset`` package's own
``ShardWriter``; members carry the release's creation time, so the same release gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import webdataset as wds

from egocrowd.errors import InvalidInput
from egocrowd.i18n import N_
from egocrowd.releases.exporters._meta import clip_metadata, read_media, sample_key
from egocrowd.releases.exporting import EXPORTERS, FileEntry, Progress, ReleaseSpec

SHARD_PATTERN = "shard-%06d.tar"
MAXCOUNT = 1000
MAXSIZE = 1_000_000_000


@EXPORTERS.register("webdataset", version=1, description=N_("WebDataset tar shards (mp4 + json per clip)"))
def export_webdataset(
    spec: ReleaseSpec,
    out: Path,
    *,
    options: Mapping[str, Any],
    files: Sequence[FileEntry],
    progress: Progress,
) -> Mapping[str, Sequence[int]]:
    """Write the release's clips as WebDataset shards under ``out``; returns shard → clip ids."""
    maxcount = options.get("maxcount", MAXCOUNT)
    maxsize = options.get("maxsize", MAXSIZE)
    if not isinstance(maxcount, int) or maxcount < 1:
        raise InvalidInput("maxcount must be a whole number of at least 1", field="maxcount")
    if not isinstance(maxsize, int | float) or maxsize < 1:
        raise InvalidInput("maxsize must be a positive number of bytes", field="maxsize")
    out.mkdir(parents=True, exist_ok=True)
    carried: dict[str, list[int]] = {}
    mtime = spec.created_at.timestamp()
    with wds.ShardWriter(
        str(out / SHARD_PATTERN),
        maxcount=maxcount,
        maxsize=maxsize,
        verbose=0,
        mtime=mtime,
        user="egocrowd",
        group="egocrowd",
    ) as sink:
        for item in spec.items:
            sink.write({"__key__": sample_key(item), "mp4": read_media(item), "json": clip_metadata(spec, item)})
            shard = Path(str(sink.fname)).name
            carried.setdefault(f"{out.name}/{shard}", []).append(item.clip_id)
            progress(1)
    return carried


__all__ = ["SHARD_PATTERN", "export_webdataset"]

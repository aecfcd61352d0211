"""WebDataset: tar shards ``shard-000000.tar``, ``shard-000001.tar``… with one sample per clip:
``<key>.mp4`` (the de-identified video, its bytes as stored) and ``<key>.json`` (the clip's record:
provenance, spans, QC, agreement, consent scopes, pseudonyms; see ``_meta.clip_metadata``).

A shard closes after ``maxcount`` samples (default 1000) or once it holds ``maxsize`` bytes
(default 1 GB), whichever comes first. The shards are byte for byte what the ``webdataset``
package's ``ShardWriter`` writes (members in key order, ustar headers from ``tarfile``, the
release's creation time on every member, so the same release gives the same bytes), but each
video's bytes are copied in the kernel after its 512-byte header: ``tarfile.addfile`` would take
every byte through the process, four times the time of the copy itself.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from egocrowd.errors import InvalidInput, MediaError
from egocrowd.i18n import N_
from egocrowd.releases.exporters._meta import clip_metadata, sample_key
from egocrowd.releases.exporters._mp4 import copy_range
from egocrowd.releases.exporting import EXPORTERS, FileEntry, Progress, ReleaseItem, ReleaseSpec

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
    shard: _Shard | None = None
    number = 0
    try:
        for item in spec.items:
            if shard is None or shard.count >= maxcount or shard.size >= maxsize:  # ShardWriter's rule
                if shard is not None:
                    shard.close()
                shard = _Shard(out / (SHARD_PATTERN % number), mtime)
                number += 1
            shard.write(item, json.dumps(clip_metadata(spec, item)).encode("utf-8"))
            carried.setdefault(f"{out.name}/{shard.path.name}", []).append(item.clip_id)
            progress(1)
    finally:
        if shard is not None:
            shard.close()
    return carried


class _Shard:
    """One tar being written as ``webdataset.TarWriter`` writes it (stream mode, pax, mode 0444,
    user and group "egocrowd"): a member is its header, its bytes, zeros to the next 512."""

    def __init__(self, path: Path, mtime: float):
        self.path = path
        self.mtime = mtime
        self.count = 0
        self.size = 0  # members' bytes, headers left out (ShardWriter's measure)
        self._offset = 0
        self._file: BinaryIO = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()

    def _header(self, name: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.mtime = self.mtime  # a float, as TarWriter sets it: a pax record keeps it
        info.mode = 0o444
        info.uname = info.gname = "egocrowd"
        # tarfile's default format (pax), which TarWriter's stream gets: its format argument is unused
        self._put(info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape"))

    def _put(self, data: bytes) -> None:
        self._file.write(data)
        self._offset += len(data)

    def _pad(self) -> None:
        rest = self._offset % tarfile.BLOCKSIZE
        if rest:
            self._put(tarfile.NUL * (tarfile.BLOCKSIZE - rest))

    def write(self, item: ReleaseItem, metadata: bytes) -> None:
        key = sample_key(item)
        try:
            media = open(item.media_path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise _unreadable(item, exc) from exc
        with media:
            size = os.fstat(media.fileno()).st_size
            self._header(f"{key}.json", len(metadata))  # members in sorted order: json, then mp4
            self._put(metadata)
            self._pad()
            self._header(f"{key}.mp4", size)
            try:
                copy_range(media.fileno(), self._file.fileno(), 0, size)
            except OSError as exc:
                raise _unreadable(item, exc) from exc
            self._offset += size
            self._pad()
        self.count += 1
        self.size += len(metadata) + size

    def close(self) -> None:
        if self._file.closed:
            return
        # the end of the archive, as tarfile closes a stream: two zero blocks, then zeros to a record
        self._put(tarfile.NUL * (tarfile.BLOCKSIZE * 2))
        rest = self._offset % tarfile.RECORDSIZE
        if rest:
            self._put(tarfile.NUL * (tarfile.RECORDSIZE - rest))
        self._file.close()


def _unreadable(item: ReleaseItem, exc: OSError) -> MediaError:
    return MediaError(
        f"the de-identified video of clip {item.clip_id} cannot be read: {exc.strerror or exc}",
        code="video.unreadable",
        clip_id=item.clip_id,
    )


__all__ = ["SHARD_PATTERN", "export_webdataset"]

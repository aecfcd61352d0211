"""The contract between a release build and its exporters (docs/releases.md, "Writing an exporter").

The build hands every exporter the same :class:`ReleaseSpec`: the release's identity and licence and,
per clip, a :class:`ReleaseItem` whose only media is the de-identified video (``media_path``; raw
bytes never reach an exporter). An exporter writes files under the folder it is given (the build
puts each exporter in its own folder, named after it, inside a scratch directory) and calls
``progress(1)`` once per clip done. It returns which of its files carry which clips (path relative
to the release root, e.g. "webdataset/shard-000000.tar" → [clip ids]): the media, the per-clip
rows, anything a withdrawal notice must name when one of those clips is withdrawn. The build then
hashes every file into the manifest; exporters never write the manifest or touch the database.

Two registries, one signature::

    @EXPORTERS.register("webdataset", version=1, description="WebDataset tar shards (mp4 + json per clip)")
    def webdataset(spec: ReleaseSpec, out: Path, *, options: Mapping[str, Any],
                   files: Sequence[FileEntry], progress: Progress) -> Mapping[str, Sequence[int]]: ...

``EXPORTERS`` (data formats) run first, with ``files`` empty; ``DESCRIBERS`` (Croissant, the data
card) run after them and get ``files``: everything the exporters wrote, with sizes and sha256, so that
metadata can describe and checksum it. ``options`` are the release's settings for that exporter
(``Release.formats[name]`` minus ``version``; e.g. ``{"fps": 30}`` for LeRobot). The registered
``version`` is the exporter's format version, stored in ``Release.formats``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from egocrowd.registry import Registry

#: called with the number of clips just finished
Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class SpanLabel:
    """One consensus (or reviewed) action span: ``start_ms`` to ``end_ms`` of the clip's own time."""

    start_ms: int
    end_ms: int
    verb: str
    noun: str
    confidence: float | None = None

    @property
    def label(self) -> str:
        return f"{self.verb} {self.noun}"


@dataclass(frozen=True, slots=True)
class ReleaseItem:
    """One clip as exporters see it. Identifiers of people are pseudonyms, stable across a release
    series and meaningless outside it (``worker``, ``annotators``)."""

    clip_id: int
    clip_sha256: str  # the raw upload's hash: provenance only, its bytes are never exported
    media_path: Path  # the de-identified video, a local file
    media_sha256: str
    media_size: int
    campaign_id: int
    campaign_title: str
    task: str  # what the worker was asked to do, one line (LeRobot's "task")
    worker: str  # pseudonym
    country: str | None  # ISO 3166 alpha-2 of the worker's profile
    recorded_at: datetime  # when the clip arrived
    duration_s: float | None
    width: int | None
    height: int | None
    fps: float | None  # the probe's average rate; phone video is often variable
    probe: Mapping[str, Any] = field(default_factory=dict)
    qc: Mapping[str, Any] = field(default_factory=dict)  # the QC report (checks, values)
    spans: tuple[SpanLabel, ...] = ()
    agreement: Mapping[str, Any] | None = None  # {"alpha": .., "mean_iou": .., "annotators": n, "round": r}
    annotators: tuple[str, ...] = ()  # pseudonyms of whoever labelled it
    consent: Mapping[str, Any] = field(default_factory=dict)  # {"version", "sha256", "scopes", "language"}
    deid: Mapping[str, Any] = field(default_factory=dict)  # the derivative's detectors, versions, params
    #: the clip's lineage as a W3C PROV-JSON document (releases.lineage), None when not asked for
    lineage: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class FileEntry:
    """A file written by an exporter, relative to the release root ("lerobot/meta/info.json")."""

    path: str
    size: int
    sha256: str
    format: str  # the exporter that wrote it


@dataclass(frozen=True, slots=True)
class ReleaseSpec:
    release_id: int
    name: str
    version: int
    title: str
    description: str
    organization: str  # the lab that publishes it
    licence: Mapping[str, Any]  # {"name", "terms", "uses": [...], "expires_at"}
    created_at: datetime
    items: tuple[ReleaseItem, ...]
    #: the previous version and what changed since it: {"id", "version", "root_hash"} | None and
    #: {"added": [clip sha256...], "withdrawn": [clip sha256...]}
    previous: Mapping[str, Any] | None = None
    changes: Mapping[str, Any] = field(default_factory=dict)
    #: the campaigns the clips come from: id, title, instructions, taxonomy, data_use, buyer, pay figures
    campaigns: tuple[Mapping[str, Any], ...] = ()
    #: composition (hours, clips, countries, labels, QC and agreement figures, pay) as Release.stats
    stats: Mapping[str, Any] = field(default_factory=dict)


class Exporter(Protocol):
    def __call__(
        self,
        spec: ReleaseSpec,
        out: Path,
        *,
        options: Mapping[str, Any],
        files: Sequence[FileEntry],
        progress: Progress,
    ) -> Mapping[str, Sequence[int]]: ...


EXPORTERS: Registry[Exporter] = Registry("release.exporter", builtins="egocrowd.releases.exporters")
DESCRIBERS: Registry[Exporter] = Registry("release.describer", builtins="egocrowd.releases.describers")

__all__ = ["DESCRIBERS", "EXPORTERS", "Exporter", "FileEntry", "Progress", "ReleaseItem", "ReleaseSpec", "SpanLabel"]

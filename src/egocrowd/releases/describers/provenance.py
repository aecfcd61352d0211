"""Each clip's lineage in the release (#13): ``provenance/<clip sha256>.prov.json``, the W3C PROV-JSON
document of :mod:`egocrowd.releases.lineage` (consent, upload, every stage with its version,
de-identification, acceptance, annotation, earlier releases), and ``provenance/index.json`` mapping
clip hashes to their files. A buyer reads them with the ``prov`` package; the steps that carry an
``ego:audit_seq`` can be checked against the platform's audit export."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from egocrowd.i18n import N_
from egocrowd.releases.exporting import DESCRIBERS, FileEntry, Progress, ReleaseSpec

FORMAT_VERSION = 1


@DESCRIBERS.register("provenance", version=FORMAT_VERSION, description=N_("Each clip's lineage (W3C PROV-JSON)"))
def describe(
    spec: ReleaseSpec, out: Path, *, options: Mapping[str, Any], files: Sequence[FileEntry], progress: Progress
) -> dict[str, list[int]]:
    carries: dict[str, list[int]] = {}
    index = {}
    for item in spec.items:
        if item.lineage is not None:
            name = f"{item.clip_sha256}.prov.json"
            (out / name).write_text(json.dumps(item.lineage, sort_keys=True, indent=1) + "\n", encoding="utf-8")
            carries[f"{out.name}/{name}"] = [item.clip_id]
            index[item.clip_sha256] = name
        progress(1)
    (out / "index.json").write_text(
        json.dumps({"format_version": FORMAT_VERSION, "clips": index}, sort_keys=True, indent=1) + "\n",
        encoding="utf-8",
    )
    return carries

"""What every per-clip export says about a clip (WebDataset's ``.json``, the Hugging Face rows):
one function, so the formats agree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from egocrowd.releases.exporting import ReleaseItem, ReleaseSpec

#: the version of the per-clip metadata below (stored in every record as ``format_version``)
METADATA_VERSION = 1


def sample_key(item: ReleaseItem) -> str:
    """The clip's name inside a release (no dots: WebDataset splits a file name at the first one)."""
    return f"clip-{item.clip_id:08d}"


def span_rows(item: ReleaseItem) -> list[dict[str, Any]]:
    return [
        {
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "verb": s.verb,
            "noun": s.noun,
            "label": s.label,
            "confidence": s.confidence,
        }
        for s in sorted(item.spans, key=lambda s: (s.start_ms, s.end_ms, s.verb, s.noun))
    ]


def clip_metadata(spec: ReleaseSpec, item: ReleaseItem) -> dict[str, Any]:
    """The clip's record: provenance, what was recorded, its labels and their quality, its consent."""
    return {
        "format_version": METADATA_VERSION,
        "key": sample_key(item),
        "clip_id": item.clip_id,
        "clip_sha256": item.clip_sha256,
        "media_sha256": item.media_sha256,
        "media_size": item.media_size,
        "release": {"id": spec.release_id, "name": spec.name, "version": spec.version},
        "campaign": {"id": item.campaign_id, "title": item.campaign_title},
        "task": item.task,
        "worker": item.worker,
        "annotators": list(item.annotators),
        "country": item.country,
        "recorded_at": item.recorded_at.isoformat(),
        "duration_s": item.duration_s,
        "width": item.width,
        "height": item.height,
        "fps": item.fps,
        "spans": span_rows(item),
        "qc": _plain(item.qc),
        "agreement": _plain(item.agreement) if item.agreement is not None else None,
        "consent": _plain(item.consent),
        "deid": _plain(item.deid),
    }


def _plain(value: Any) -> Any:
    """Mappings and sequences as JSON has them (tuples to lists, keys to strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value

"""The platform's fixed vocabulary: which consent scope each use of a campaign's data needs.

Training models on the clips needs nothing extra: it is what a recording consent is for (every
document's required scope covers it). Everything beyond that must be ticked by the worker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from egocrowd.i18n import N_

#: DataUse field → the scope a worker must have granted for a campaign that sets it
DATA_USE_SCOPES: dict[str, str] = {
    "commercial": "commercial_use",
    "redistribute": "redistribution",
    "keep_face": "face_visible",
    "audio": "audio_kept",
}

#: plain words for each scope the platform knows (shown where a scope is missing; msgids: translate
#: them with ``_()`` where shown)
SCOPE_WORDS: dict[str, str] = {
    "commercial_use": N_("commercial use by the buyer"),
    "redistribution": N_("sharing the clips further (redistribution)"),
    "face_visible": N_("keeping the wearer's face visible"),
    "audio_kept": N_("keeping the audio"),
}


def needed_scopes(data_use: Mapping[str, Any]) -> list[str]:
    """The scopes a campaign with this data use needs from every worker, sorted."""
    return sorted(scope for use, scope in DATA_USE_SCOPES.items() if data_use.get(use))

"""The detectors that ship with egocrowd (imported before the first lookup in DETECTORS)."""

from egocrowd.media.deid import (
    faces,  # noqa: F401  (registers "centerface")
    text,  # noqa: F401  (registers "ppocr-det")
)

"""The built-in data exporters: each module registers itself with ``EXPORTERS`` on import."""

from egocrowd.releases.exporters import hf, lerobot, webdataset

__all__ = ["hf", "lerobot", "webdataset"]

"""The built-in describers (Croissant metadata, the data card, each clip's lineage): each module
registers itself with ``DESCRIBERS`` on import."""

from egocrowd.releases.describers import card, croissant, provenance

__all__ = ["card", "croissant", "provenance"]

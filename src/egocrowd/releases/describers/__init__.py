"""The built-in describers (Croissant metadata, the data card): each module registers itself with
``DESCRIBERS`` on import."""

from egocrowd.releases.describers import card, croissant

__all__ = ["card", "croissant"]

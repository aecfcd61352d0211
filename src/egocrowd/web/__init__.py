"""The web doors: a JSON API under /api/v1 and server-rendered pages. Thin: all decisions live in the
capability packages; this package turns them into HTTP."""

from egocrowd.web.app import create_app

__all__ = ["create_app"]

"""The web doors: a JSON API under /api/v1 and server-rendered pages. Thin: all decisions live in the
capability packages; this package turns them into HTTP."""

__all__ = ["create_app"]


def __getattr__(name: str):
    # Lazy, so importing one door (e.g. the tus server in a small app) does not build them all:
    # egocrowd.web.app adds ~0.55 s (every router and page, Jinja2) to egocrowd.web.tus alone.
    if name == "create_app":
        from egocrowd.web.app import create_app

        return create_app
    raise AttributeError(name)

"""Third-party extensions: one entry-point group, ``egocrowd.plugins``, loaded once.

A plugin is a module named in that group; importing it registers what it brings with our own
registries' decorators (QC checks ``@qc_check``, pipeline stages ``@stage``, bench metrics
``@metric``, environments and policies). Example, in a plugin's pyproject.toml::

    [project.entry-points."egocrowd.plugins"]
    mylab = "mylab_egocrowd.checks"
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

GROUP = "egocrowd.plugins"
log = logging.getLogger("egocrowd.plugins")
_loaded = False
_lock = threading.Lock()


def load_plugins() -> list[str]:
    """Import every plugin module once; a broken plugin is logged, never fatal. Returns their names."""
    global _loaded
    with _lock:
        if _loaded:
            return []
        _loaded = True
        names = []
        for ep in entry_points(group=GROUP):
            try:
                ep.load()
                names.append(ep.name)
            except Exception:  # noqa: BLE001
                log.exception("could not load egocrowd plugin %s", ep.name)
        return names

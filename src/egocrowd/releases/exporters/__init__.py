"""The built-in data exporters: each module registers itself with ``EXPORTERS`` on import."""

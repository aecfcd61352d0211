"""The ``aggregate`` pipeline stage (owned by the annotation work of #10)."""

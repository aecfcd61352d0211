"""The pipeline stages this room brings (``review``, ``aggregate``): the pipeline's stage registry
imports this module the first time it looks a stage up (``STAGES``' ``builtins``), so the runner
finds them in every process without the pipeline importing this room."""

from egocrowd.labels import consensus, review  # noqa: F401  (importing them registers their stages)

"""egocrowd.bench: long-horizon, multi-person evaluation of embodied AI.

One versioned episode-log schema for simulated and real sessions (:mod:`.schema`), streaming
digests of those logs (:mod:`.digest`), registered metrics (:mod:`.metrics`), honest statistics
(:mod:`.stats`, :mod:`.ranking`, :mod:`.sequential`), importers for spreadsheets
(:mod:`.importers`), and a self-contained report (:mod:`.report`). See ``docs/bench.md``.
"""

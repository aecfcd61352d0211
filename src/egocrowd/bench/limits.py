"""Caps on what egocrowd.bench reads, each far above real use.

Logs and spreadsheets come from other people's tools, phones and scripts. Without caps one bad
number asks for unbounded work: a chain "of length 10⁹" made scoring build arrays of 10⁹ entries,
and a file without newlines made the reader grow its buffer until memory ran out. Exceeding a cap
is an input error (``bench.bad_log`` or ``bench.bad_csv``) naming the file and line, like any
other malformed value. docs/bench.md lists them; raise one here if real use ever comes near.
"""

from __future__ import annotations

#: Bytes in one JSONL line or one CSV row (a real event is well under 1 KB).
MAX_LINE_BYTES = 1 << 20
#: A chain's declared ``length`` and any subtask ``index`` in it (CALVIN chains have 5 steps; scoring
#: reports one success rate per step, about a second per 1,000 steps).
MAX_CHAIN_LENGTH = 1_000
#: Events in one session, or trials in one CSV session (10 a second for 11 days).
MAX_EVENTS_PER_SESSION = 10_000_000
#: Seconds in any time or duration (``t``, intervention ``duration``, CSV ``duration``): ~31 years.
MAX_SECONDS = 1e9
#: Distinct policies scored or ranked together (a Bradley–Terry fit is quadratic in them).
MAX_POLICIES = 1_000
#: Distinct tasks, people and environments across the inputs (each gets a row of breakdowns).
MAX_GROUPS = 100_000
#: Battles in one pairwise CSV (Chatbot Arena's public export has about 2 million).
MAX_BATTLES = 20_000_000

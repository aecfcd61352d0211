"""The scores document as people read it on a terminal: one rich table of the headline numbers per
policy, the ranking and the paired comparisons, then the importers' warnings. Machines read the
JSON (``--format json``); this is only a view of it, so every cell tolerates a metric that was not
computed (``--metric``) or has no value (no interventions, nothing to recover from)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _num(x: Any, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _est(e: dict[str, Any] | None, fmt: str, scale: float = 1.0) -> str:
    """``value [low, high]`` of an estimate, ``–`` where there is none."""
    if not e or e.get("value") is None:
        return "–"
    v = format(e["value"] * scale, fmt)
    if e.get("low") is None and e.get("high") is None:
        return v
    low = "–" if e.get("low") is None else format(e["low"] * scale, fmt)
    high = "∞" if e.get("high") is None else format(e["high"] * scale, fmt)
    return f"{v} [{low}, {high}]"


# (label, cell of a policy's metrics): the rows of the headline table, one column per policy
def _chain(m: dict[str, Any]) -> str:
    sr = (m.get("chain_success") or {}).get("sr") or []
    return f"{_est(sr[-1], '.0%')} of {sr[-1]['j']}" if sr else "–"


def _sessions(m: dict[str, Any]) -> str:
    s = m.get("sessions") or {}
    return f"{s.get('sessions', '–')} ({_num(s.get('hours'), '.1f')} h)"


def _recovery(m: dict[str, Any]) -> str:
    r = m.get("recovery") or {}
    return _est(r.get("median"), ".0f") if r.get("median") else _num(r.get("median_time_s"), ".0f")


def _interventions(m: dict[str, Any]) -> str:
    i = m.get("interventions") or {}
    return _est(i.get("per_hour_exact") or i.get("per_hour"), ".2f")


ROWS = (
    ("sessions", _sessions),
    ("subtask success", lambda m: _est((m.get("subtask_success") or {}).get("rate"), ".0%")),
    ("whole chains done", _chain),
    ("interventions / hour", _interventions),
    ("safety events / hour", lambda m: _est((m.get("safety") or {}).get("per_hour"), ".2f")),
    ("median recovery (s)", _recovery),
    ("worst-served person", lambda m: (m.get("per_person") or {}).get("worst") or "–"),
)


def print_scores(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    level = f"{doc.get('config', {}).get('confidence', 0.95):.0%}"
    policies = sorted(doc.get("policies", {}).items())
    # one column per policy: a handful of policies side by side fit a terminal, eight metrics would not
    table = Table(title=f"Scores, with {level} intervals", title_justify="left")
    table.add_column("")
    for policy, _ in policies:
        table.add_column(policy, justify="right", overflow="fold")
    for label, cell in ROWS:
        table.add_row(label, *(cell(metrics) for _, metrics in policies))
    console.print(table)

    ranking = (doc.get("ranking") or {}).get("ranking") or []
    if ranking:
        t = Table(title="Ranking (tied policies share a rank)", title_justify="left")
        for col in ("rank", "policy", "rating", "interval"):
            t.add_column(col, justify="right" if col in ("rank", "rating") else "left")
        for r in ranking:
            t.add_row(
                str(r["rank"]),
                r["policy"],
                _num(r.get("rating"), ".0f"),
                f"[{_num(r.get('low'), '.0f')}, {_num(r.get('high'), '.0f')}]",
            )
        console.print(t)

    comparisons = doc.get("comparisons") or []
    if comparisons:
        t = Table(title="Paired comparisons (subtask success, A − B)", title_justify="left")
        for col in ("A", "B", "pairs", "difference", "p", "decided"):
            t.add_column(col, justify="right" if col in ("pairs", "difference", "p") else "left")
        for c in comparisons:
            s = c.get("sequential") or {}
            decided = (
                "not yet" if s.get("decision") in (None, "continue") else f"{s['decision']} after {s.get('stopped_at')}"
            )
            t.add_row(
                c.get("a", "?"),
                c.get("b", "?"),
                str(c.get("pairs", "–")),
                f"{_num(c.get('mean_diff'), '+.3f')} [{_num(c.get('low'), '+.3f')}, {_num(c.get('high'), '+.3f')}]",
                _num(c.get("p_value"), ".3g"),
                decided,
            )
        console.print(t)
    for w in doc.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {w}", highlight=False)

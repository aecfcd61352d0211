"""Render a scores document (see :mod:`egocrowd.bench.score`) as one self-contained HTML page.

Pure: dict in, string out. No scripts, no external resources; inline SVG charts; tables scroll
sideways on narrow screens.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from egocrowd.bench import svg
from egocrowd.i18n import _

REPORT_FORMAT_VERSION = 1

_CSS = """
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:980px;padding:12px;
color:#1a1a1a;line-height:1.45}
h1{font-size:1.5rem;margin:.4em 0}h2{font-size:1.2rem;margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
h3{font-size:1rem;margin-bottom:.3em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:.9rem;min-width:100%}
th,td{border-bottom:1px solid #eee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6;position:sticky;top:0;white-space:normal;min-width:4em}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ci{color:#666;font-size:.85em;white-space:nowrap}td .ci{display:block}/* the interval under its value: narrow columns */
.muted{color:#666;font-size:.9rem}
.tie{color:#b35900;font-weight:600}
figure{margin:.5em 0 1.2em;overflow-x:auto}figure svg{display:block;max-width:640px}/* no min-width: charts fit a phone */figcaption{font-size:.85rem;color:#555}
details{margin:.5em 0}pre{white-space:pre-wrap;overflow-wrap:anywhere}
/* a phone: each row becomes a card of "label  value" lines (the label from the cell's data-label) */
@media (max-width:600px){body{padding:6px}
table,tbody,tr,td{display:block;min-width:0}thead{position:absolute;left:-9999px}
tr{border-bottom:2px solid #ddd;padding:4px 0}
td{display:flex;justify-content:space-between;gap:1em;border:0;padding:2px 4px;font-size:.85rem;white-space:normal}
td::before{content:attr(data-label);font-weight:600;text-align:left;flex:0 1 45%}
td>span{text-align:end}td .ci{display:inline}}
"""


def _num(v: Any, digits: int = 3, pct: bool = False) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int,)) and not pct:
        return f"{v:,}"
    v = float(v)
    if pct:
        return f"{100 * v:.1f}%"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _est(e: dict[str, Any] | None, pct: bool = False) -> str:
    if not e:
        return "–"
    v = _num(e.get("value"), pct=pct)
    if e.get("low") is None and e.get("high") is None:
        return v
    if e.get("value") is None and e.get("low") is not None:
        return f"≥ {_num(e['low'], pct=pct)}"
    return f'{v} <span class="ci">[{_num(e.get("low"), pct=pct)}, {_num(e.get("high"), pct=pct)}]</span>'


def _table(head: list[str], rows: list[list[str]], num_cols: set[int] | None = None) -> str:
    if not rows:
        return '<p class="muted">No data.</p>'
    num_cols = num_cols or set()
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    labels = [escape(h, quote=True) for h in head]  # shown beside each value on a phone (see _CSS)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td{" class=num" if i in num_cols else ""} data-label="{labels[i]}"><span>{c}</span></td>'
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f'<div class="scroll"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'


def _fig(svg_text: str, caption: str) -> str:
    if not svg_text:
        return ""
    return f"<figure>{svg_text}<figcaption>{escape(caption)}</figcaption></figure>"


def _color(i: int) -> str:
    return svg.PALETTE[i % len(svg.PALETTE)]


def render_html(doc: dict[str, Any], *, title: str = "egocrowd.bench report") -> str:
    pols: dict[str, dict[str, Any]] = doc.get("policies", {})
    names = list(pols)
    cfg = doc.get("config", {})
    conf = int(round(100 * cfg.get("confidence", 0.95)))
    out: list[str] = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='muted'>{len(names)} polic{'y' if len(names) == 1 else 'ies'} · generated {escape(str(doc.get('created_at', '')))} · "
        f"egocrowd {escape(str(doc.get('egocrowd_version', '')))} · intervals are {conf}% "
        f"(Wilson for rates, session-clustered bootstrap with {cfg.get('rounds')} rounds, seed {cfg.get('seed')}, otherwise).</p>",
    ]
    out.append(_headline(pols))
    out.append(_chains(pols))
    out.append(_drift(pols))
    out.append(_recovery(pols, cfg))
    out.append(_conflicts_safety(pols))
    out.append(_groups(pols, conf))
    out.append(_comparisons(doc.get("comparisons") or []))
    out.append(_ranking(doc.get("ranking")))
    meta = {k: doc.get(k) for k in ("format", "format_version", "inputs", "config", "metrics")}
    out.append(
        "<h2>Provenance</h2><details><summary>Inputs, configuration and metric versions</summary>"
        f"<pre class='scroll'>{escape(json.dumps(meta, indent=2))}</pre></details>"
    )
    out.append("</body></html>")
    return "\n".join(x for x in out if x)


def _headline(pols: dict[str, dict[str, Any]]) -> str:
    rows = []
    for p, m in pols.items():
        s = m.get("sessions", {})
        rows.append(
            [
                escape(p),
                f'{_num(s.get("sessions"))} <span class="ci">{_num(s.get("hours"), 3)} h</span>',
                _est(m.get("subtask_success", {}).get("rate"), pct=True),
                _est(m.get("chain_success", {}).get("avg_len")),
                _est(m.get("recovery", {}).get("rate_within_budget"), pct=True),
                _est(m.get("conflicts", {}).get("correct_resolution_rate"), pct=True),
                _est(m.get("interventions", {}).get("mtbi_min")),
                _est(m.get("safety", {}).get("per_hour")),
                escape(str(m.get("per_person", {}).get("worst", "–")))
                + " "
                + _est(m.get("per_person", {}).get("gap"), pct=True),
            ]
        )
    head = [
        "Policy",
        "Sessions",
        "Subtask success",
        "Avg chain length",
        "Recovered in budget",
        "Conflicts resolved right",
        "MTBI (min)",
        "Safety events / h",
        "Worst person, gap",
    ]
    return "<h2>Headline</h2>" + _table(head, rows, {1})


def _chains(pols: dict[str, dict[str, Any]]) -> str:
    series, rows = [], []
    for i, (p, m) in enumerate(pols.items()):
        c = m.get("chain_success")
        if not c:
            continue
        sr = c["sr"]
        series.append(
            svg.Series(
                p,
                [r["j"] for r in sr],
                [r["value"] for r in sr],
                [r["low"] for r in sr],
                [r["high"] for r in sr],
                color=_color(i),
            )
        )
        rows.append([escape(p), _num(c["chains"]), *[_est(r, pct=True) for r in sr], _est(c["avg_len"])])
    if not series:
        return ""
    horizon = max(len(s.x) for s in series)
    chart = svg.line_chart(
        series,
        xlabel="chain length j (subtasks in a row)",
        ylabel="SR_j",
        y_range=(0, 1),
        title="Success against horizon",
    )
    head = ["Policy", "Chains", *[f"SR_{j}" for j in range(1, horizon + 1)], "Avg length L"]
    return (
        "<h2>Success against horizon</h2>"
        + _fig(chart, "Share of chains completing at least j subtasks in a row (CALVIN SR_j); band = Wilson interval.")
        + _table(head, rows, set(range(1, horizon + 3)))
    )


def _drift(pols: dict[str, dict[str, Any]]) -> str:
    out = []
    for key, xlabel, heading in (
        ("drift_session_time", "hours into session", "Success over time in a session"),
        ("drift_deployment_days", "days since deployment", "Success across deployment days"),
    ):
        series, rows = [], []
        vlines: list[tuple[float, str]] = []
        for i, (p, m) in enumerate(pols.items()):
            d = m.get(key)
            if not d:
                continue
            b = d["bins"]
            series.append(
                svg.Series(
                    p,
                    [(x["start"] + x["end"]) / 2 for x in b],
                    [x["rate"] for x in b],
                    [x["low"] for x in b],
                    [x["high"] for x in b],
                    color=_color(i),
                )
            )
            vlines.extend((cp, f"{p}: change") for cp in d["change_points"])
            rows.append(
                [
                    escape(p),
                    _est(d["slope"]) + f" {escape(d['unit'])}",
                    ", ".join(_num(c, 3) for c in d["change_points"]) or "none",
                ]
            )
        if not series:
            continue
        chart = svg.line_chart(
            series, xlabel=xlabel, ylabel="subtask success", y_range=(0, 1), vlines=vlines[:8], title=heading
        )
        out.append(
            f"<h2>{escape(heading)}</h2>"
            + _fig(chart, "Success per time bin with Wilson band; dashed lines mark detected change points.")
            + _table(["Policy", "Drift slope (success per unit)", "Change points (bin starts)"], rows)
        )
    return "".join(out)


def _recovery(pols: dict[str, dict[str, Any]], cfg: dict[str, Any]) -> str:
    series, rows = [], []
    budget = None
    for i, (p, m) in enumerate(pols.items()):
        r = m.get("recovery")
        if not r:
            continue
        budget = r["budget_s"]
        c = r["curve"]
        # plot the recovered share 1 − S(t): rising curves read more naturally than survival
        series.append(
            svg.Series(
                p,
                c["time"],
                [1 - s for s in c["survival"]],
                [1 - s for s in c["upper"]],
                [1 - s for s in c["lower"]],
                step=True,
                color=_color(i),
            )
        )
        rows.append(
            [
                escape(p),
                _num(r["misinterpretations"]),
                _num(r["recovered"]),
                _num(r["censored"]),
                _est(r["median"]) if r.get("median") else _num(r["median_time_s"]),
                _est(r["rate_within_budget"], pct=True),
            ]
        )
    if not series:
        return ""
    # cut the axis shortly after the last recovery (or the budget): censored runs followed for
    # hours otherwise stretch it so far that every recovery sits in the first few pixels
    last_event = max((_last_change(m["recovery"]["curve"]) for m in pols.values() if m.get("recovery")), default=0.0)
    x_end = 1.15 * max(last_event, budget or 0.0)
    t_max = max((t for s in series for t in s.x), default=0.0)
    x_range = (0.0, x_end) if 0 < x_end < t_max else None
    chart = svg.line_chart(
        series,
        xlabel="seconds after the misinterpretation",
        ylabel="recovered share",
        y_range=(0, 1),
        vlines=[(budget, "budget")] if budget is not None else [],
        title="Time to recover",
        x_range=x_range,
    )
    cut = f" Axis cut at {_num(x_end, 3)} s; curves stay flat after it." if x_range else ""
    return (
        "<h2>Recovery after misinterpretations</h2>"
        + _fig(
            chart,
            "Kaplan–Meier estimate of the share recovered by time t (runs that never recover are censored); "
            "band = log-log interval." + cut,
        )
        + _table(
            [
                "Policy",
                "Misinterpretations",
                "Recovered",
                "Censored",
                "Median time (s)",
                f"Recovered within {_num(budget)} s",
            ],
            rows,
            {1, 2, 3, 4},
        )
    )


def _last_change(curve: dict[str, Any]) -> float:
    """Time of the last step of a KM curve (its last recovery; 0 when nobody recovered)."""
    t, sv = curve["time"], curve["survival"]
    return max((t[i] for i in range(1, len(sv)) if sv[i] != sv[i - 1]), default=0.0)


def _conflicts_safety(pols: dict[str, dict[str, Any]]) -> str:
    crow, irow = [], []
    for p, m in pols.items():
        c = m.get("conflicts")
        if c:
            crow.append(
                [
                    escape(p),
                    _num(c["conflicts"]),
                    _est(c.get("detection_rate"), pct=True),
                    _est(c.get("correct_resolution_rate"), pct=True),
                    _est(c.get("clarification_rate"), pct=True),
                    _est(c.get("over_asking_rate"), pct=True),
                    escape(", ".join(f"{k}: {v}" for k, v in sorted(c.get("resolutions", {}).items()))),
                ]
            )
        iv, sf = m.get("interventions"), m.get("safety")
        if iv or sf:
            kinds = ", ".join(f"{k}: {_est(v['per_hour'])}" for k, v in (sf or {}).get("by_kind", {}).items())
            exact = (iv or {}).get("per_hour_exact")
            irow.append(
                [
                    escape(p),
                    _num((iv or {}).get("interventions")),
                    _est((iv or {}).get("per_hour")),
                    f"[{_num(exact['low'])}, {_num(exact['high'])}]" if exact else "–",
                    _est((iv or {}).get("mtbi_min")),
                    _num((sf or {}).get("events")),
                    _est((sf or {}).get("per_hour")),
                    kinds or "–",
                ]
            )
    out = ""
    if crow:
        out += "<h2>Conflicting instructions</h2>" + _table(
            [
                "Policy",
                "Conflicts",
                "Detected",
                "Resolved correctly",
                "Asked to clarify",
                "Over-asking (per calm instruction)",
                "Resolutions",
            ],
            crow,
            {1},
        )
    if irow:
        out += "<h2>Interventions and safety</h2>" + _table(
            [
                "Policy",
                "Interventions",
                "per autonomous hour",
                _("Poisson-exact interval"),
                "MTBI (min)",
                "Safety events",
                "per hour",
                "by kind (per hour)",
            ],
            irow,
            {1, 5},
        )
    return out


def _groups(pols: dict[str, dict[str, Any]], conf: int) -> str:
    out = []
    for key, heading in (("per_person", "Per person"), ("per_environment", "Per environment")):
        rows, frows, colors = [], [], []
        for i, (p, m) in enumerate(pols.items()):
            g = m.get(key)
            if not g:
                continue
            for r in g["groups"]:
                frows.append((f"{p} · {r['group']}" if len(pols) > 1 else r["group"], r["value"], r["low"], r["high"]))
                colors.append(_color(i))
            rows.append(
                [
                    escape(p),
                    escape(str(g.get("worst", "–"))),
                    escape(str(g.get("best", "–"))),
                    _est(g.get("gap"), pct=True),
                ]
            )
        if not frows:
            continue
        chart = svg.forest(frows[:60], xlabel="subtask success", x_range=(0, 1), colors=colors[:60], title=heading)
        out.append(
            f"<h2>{heading}</h2>"
            + _fig(chart, f"Success per group with {conf}% Wilson intervals.")
            + _table(["Policy", "Worst group", "Best group", "Gap (best − worst)"], rows)
        )
    return "".join(out)


def _comparisons(comps: list[dict[str, Any]]) -> str:
    if not comps:
        return ""
    rows = []
    for c in comps:
        s = c["sequential"]
        decision = {"A": f"{c['a']} better", "B": f"{c['b']} better"}.get(s["decision"], "keep running")
        rows.append(
            [
                escape(c["a"]),
                escape(c["b"]),
                _num(c["pairs"]),
                _num(c["mean_a"], pct=True),
                _num(c["mean_b"], pct=True),
                _est({"value": c["mean_diff"], "low": c["low"], "high": c["high"]}, pct=True),
                _num(c["p_value"], 3),
                _num(c["mcnemar"]["p_value"], 3) if c.get("mcnemar") else "–",
                escape(decision) + (f" (after {s['stopped_at']} pairs)" if s.get("stopped_at") else ""),
            ]
        )
    return (
        "<h2>Paired comparisons</h2><p class='muted'>"
        + _(
            "Sessions are paired by their pair key: protocol and seed for logs (unless a log names its own), "
            "the 'pair' column or else every shared design column for trial CSVs. p-value from a sign-flip "
            "permutation test; the sequential verdict stays valid however often it is checked."
        )
        + "</p>"
        + _table(
            [
                "A",
                "B",
                "Pairs",
                "A success",
                "B success",
                "Difference A − B",
                "p",
                _("McNemar p"),
                "Sequential test (α = 0.05)",
            ],
            rows,
            {2, 3, 4, 6, 7},
        )
    )


def _ranking(rk: dict[str, Any] | None) -> str:
    if not rk:
        return ""
    rows_in = rk["ranking"]
    chart = svg.forest(
        [(r["policy"], r["rating"], r["low"], r["high"]) for r in rows_in],
        xlabel="Bradley–Terry rating",
        title="Ranking",
    )
    rows = []
    for r in rows_in:
        tied = r.get("tied_with_next")
        rows.append(
            [
                _num(r["rank"]),
                escape(r["policy"]),
                _est({"value": r["rating"], "low": r["low"], "high": r["high"]}),
                _num(r["battles"]),
                _num(r["win_share"], pct=True),
                '<span class="tie">tied with next</span>' if tied else ("separated" if tied is not None else ""),
            ]
        )
    return (
        f"<h2>Ranking</h2><p class='muted'>From {escape(str(rk.get('source', 'battles')))}; {rk['battles']} battles, "
        f"{rk['rounds']} bootstrap rounds. "
        + escape(_("A policy shares the rank of the one above it unless that one is significantly better."))
        + "</p>"
        + _fig(chart, "Ratings (400·r + 1000) with bootstrap intervals.")
        + _table(["Rank", "Policy", "Rating", "Battles", "Win share", "vs next"], rows, {0, 3, 4})
    )

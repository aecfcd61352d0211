"""Report charts are readable on a 390 px phone screen."""

from __future__ import annotations

import re

from egocrowd.bench import report, svg

# DejaVu Sans / system-ui lowercase at font-size 14 measures 7.2–9.1 px per character in
# chromium (getComputedTextLength); 9 is a safe upper estimate for plain labels
CHAR_W_14 = 9.0


def _texts(svg_text: str) -> list[tuple[dict[str, str], str]]:
    out = []
    for attrs, body in re.findall(r"<text([^>]*)>([^<]*)</text>", svg_text):
        out.append((dict(re.findall(r'([\w-]+)="([^"]*)"', attrs)), body))
    return out


def test_forest_labels_fit_left_of_the_plot():
    # before: label area = 8 px per char + 12 → "random" (54 px wide) ended at x = 52 and was
    # clipped at the left edge; long "policy · group" labels overflowed by ~25 px
    rows = [
        ("random", 0.1, 0.0, 0.2),
        ("canned · household/apartment", 0.5, 0.4, 0.6),
        ("a-policy-with-an-extremely-long-name · household/apartment", 0.7, 0.6, 0.8),
    ]
    out = svg.forest(rows, xlabel="x", x_range=(0, 1))
    labels = [(a, t) for a, t in _texts(out) if a.get("text-anchor") == "end"]
    assert len(labels) == 3
    for attrs, text in labels:
        assert float(attrs["x"]) - CHAR_W_14 * len(text) >= 0, (text, attrs["x"])
    # the over-long label is shortened visibly, and the plot keeps at least half the width
    assert labels[2][1].endswith("…")
    assert "a-policy-with-an-extremely-long-name · household/apartment" in out  # full name in a tooltip


def test_charts_are_not_wider_than_a_phone():
    # before: `figure svg{min-width:460px}` pushed the right part of every chart (legend, last
    # ticks, the oracle's dots at 1.0) off a 390 px screen
    m = re.search(r"figure svg\{[^}]*min-width:(\d+)px", report._CSS)
    assert m is None or int(m.group(1)) <= 370
    # and the text stays ≥ 9.5 px at the ~378 px a phone gives the chart: viewBox width ≤ 13·378/9.5
    assert svg.W <= 13 * 378 / 9.5


def test_recovery_axis_is_not_stretched_by_censored_tails():
    # recoveries happen within 20 s; one run is censored at 3000 s. Before, the x axis ran to
    # 3000 s and all the action (and the 60 s budget line) was squeezed into the first 2 %.
    curve = {
        "time": [0.0, 5.0, 10.0, 20.0, 3000.0],
        "survival": [1.0, 0.75, 0.5, 0.25, 0.25],
        "lower": [1.0, 0.4, 0.2, 0.05, 0.05],
        "upper": [1.0, 0.95, 0.8, 0.6, 0.6],
    }
    pols = {
        "P": {
            "recovery": {
                "budget_s": 60.0,
                "curve": curve,
                "misinterpretations": 4,
                "recovered": 3,
                "censored": 1,
                "median_time_s": 10.0,
                "rate_within_budget": {"value": 0.75, "low": 0.5, "high": 1.0},
            }
        }
    }
    html = report._recovery(pols, {})
    chart = html[html.index("<svg") : html.index("</svg>")]
    ticks = [
        float(t.replace(",", ""))
        for a, t in _texts(chart)
        if a.get("text-anchor") == "middle" and a.get("y") == str(svg.H - svg.MB + 16)
    ]
    assert ticks and max(ticks) <= 200, ticks
    assert 60 in ticks or any(t > 60 for t in ticks)  # the budget is inside the axis


def test_change_point_labels_stay_inside_the_chart():
    # before: a label was always drawn to the right of its line, so a change point near the end
    # of the axis ran off the chart, and several labels at one height overprinted each other
    s = svg.Series("p", [0.0, 1.0, 2.0, 3.0], [0.2, 0.4, 0.6, 0.8])
    out = svg.line_chart(
        [s], xlabel="x", ylabel="y", y_range=(0, 1), vlines=[(2.9, "policy-b: change"), (2.95, "policy-a: change")]
    )
    labels = [(a, t) for a, t in _texts(out) if t.endswith(": change")]
    assert len(labels) == 2
    for attrs, text in labels:
        x = float(attrs["x"])
        width = 13 / 14 * CHAR_W_14 * len(text)
        left, right = (x - width, x) if attrs.get("text-anchor") == "end" else (x, x + width)
        assert left >= 0 and right <= svg.W, (text, left, right)
    assert labels[0][0]["y"] != labels[1][0]["y"]

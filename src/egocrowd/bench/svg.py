"""Tiny inline-SVG charts for the self-contained report (no matplotlib, no scripts, no CDN).

Charts scale with the page (``viewBox`` + ``width=100%``) so they stay readable on a phone.
Hand-written because a report needs four chart shapes and a plotting dependency would weigh more
than this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# Okabe–Ito: distinguishable for colour-blind readers
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
# viewBox size: 480 wide so that, scaled to the ~378 px a phone gives a chart, 13–14 unit text is
# still ≥ 10 px (at 640 it shrank to 7.7 px, and a CSS min-width pushed the chart off-screen)
W, H = 480, 300
ML, MR, MT, MB = 56, 14, 20, 48
CHAR_W = 9.0  # width of a character at font-size 14 (DejaVu/system-ui lowercase: 7.2–9.1 px)


@dataclass
class Series:
    name: str
    x: Sequence[float]
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    step: bool = False
    points: bool = True
    color: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    return f"{v:.2f}".rstrip("0").rstrip(".")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    out = []
    v = start
    while v <= hi + step * 1e-9:
        out.append(round(v, 10))
        v += step
    return out


def _finite(vals: Sequence[float | None]) -> list[float]:
    return [float(v) for v in vals if v is not None and math.isfinite(v)]


def _clip(
    xs: Sequence[float], ys: Sequence[float | None], x1: float, step: bool
) -> tuple[list[float], list[float | None]]:
    """Points with x ≤ x1; a step curve is carried flat to x1 so its tail still shows."""
    keep = [(x, y) for x, y in zip(xs, ys) if x <= x1]
    if step and keep and len(keep) < len(xs):
        keep.append((x1, keep[-1][1]))
    return [x for x, _ in keep], [y for _, y in keep]


def line_chart(
    series: Sequence[Series],
    *,
    xlabel: str,
    ylabel: str,
    y_range: tuple[float, float] | None = None,
    vlines: Sequence[tuple[float, str]] = (),
    title: str = "",
    x_range: tuple[float, float] | None = None,
) -> str:
    """Lines (or steps) with optional interval bands and labelled vertical markers.

    ``x_range`` cuts the x axis (points beyond it are left out; steps run flat to the edge)."""
    if x_range is not None:
        clipped = []
        for s in series:
            x, y = _clip(s.x, s.y, x_range[1], s.step)
            lo = _clip(s.x, s.low, x_range[1], s.step)[1] if s.low is not None else None
            hi = _clip(s.x, s.high, x_range[1], s.step)[1] if s.high is not None else None
            clipped.append(Series(s.name, x, y, lo, hi, s.step, s.points, s.color, s.extra))  # type: ignore[arg-type]
        series = clipped
        vlines = [(v, lab) for v, lab in vlines if x_range[0] <= v <= x_range[1]]
    xs = _finite([x for s in series for x in s.x]) + [v for v, _ in vlines]
    ys = _finite([y for s in series for y in [*s.y, *(s.low or []), *(s.high or [])]])
    if not xs or not ys:
        return ""
    x0, x1 = x_range if x_range is not None else (min(xs), max(xs))
    if x1 <= x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    y0, y1 = y_range if y_range else (min(ys), max(ys))
    if y1 <= y0:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(x: float) -> float:
        return ML + (x - x0) / (x1 - x0) * (W - ML - MR)

    def py(y: float) -> float:
        return H - MB - (y - y0) / (y1 - y0) * (H - MT - MB)

    parts = [_frame(x0, x1, y0, y1, px, py, xlabel, ylabel, title)]
    for k, (v, label) in enumerate(vlines):
        # labels in the right half go left of their line (else they ran off the chart), and
        # successive labels step down so they do not overprint each other
        right = px(v) > (ML + W - MR) / 2
        tx, anchor = (px(v) - 3, ' text-anchor="end"') if right else (px(v) + 3, "")
        parts.append(
            f'<line x1="{px(v):.1f}" y1="{MT}" x2="{px(v):.1f}" y2="{H - MB}" stroke="#888" stroke-dasharray="4 3"/>'
            f'<text x="{tx:.1f}" y="{MT + 12 + 15 * (k % 4)}" font-size="13" fill="#555"{anchor}>{escape(label)}</text>'
        )
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        pts = [(px(x), py(y)) for x, y in zip(s.x, s.y) if y is not None and math.isfinite(y)]
        if s.low is not None and s.high is not None:
            lower = [(px(x), py(v)) for x, v in zip(s.x, s.low) if v is not None and math.isfinite(v)]
            upper = [(px(x), py(v)) for x, v in zip(s.x, s.high) if v is not None and math.isfinite(v)]
            if s.step:
                lower, upper = _stepify(lower), _stepify(upper)
            poly = " ".join(f"{a:.1f},{b:.1f}" for a, b in upper + lower[::-1])
            parts.append(f'<polygon points="{poly}" fill="{color}" fill-opacity="0.15" stroke="none"/>')
        if s.step:
            pts = _stepify(pts)
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"><title>{escape(s.name)}</title></polyline>'
        )
        if s.points and not s.step:
            parts.extend(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>' for a, b in pts)
    parts.append(
        _legend([s.name for s in series], [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)])
    )
    return _svg("".join(parts), title)


def _stepify(pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(pts):
        if i:
            out.append((x, out[-1][1]))
        out.append((x, y))
    return out


def forest(
    rows: Sequence[tuple[str, float, float | None, float | None]],
    *,
    xlabel: str,
    x_range: tuple[float, float] | None = None,
    colors: Sequence[str] | None = None,
    title: str = "",
    ref: float | None = None,
) -> str:
    """Horizontal dot-and-whisker plot: one row per (label, value, low, high)."""
    if not rows:
        return ""
    vals = _finite([v for r in rows for v in r[1:]])
    if ref is not None:
        vals.append(ref)
    if not vals:
        return ""
    x0, x1 = x_range if x_range else (min(vals), max(vals))
    if x1 <= x0:
        x0, x1 = x0 - 1, x1 + 1
    pad = (x1 - x0) * 0.04
    if not x_range:
        x0, x1 = x0 - pad, x1 + pad
    # room for the longest label at ~9 units per character (8 clipped "random" at the left
    # edge); beyond 45 % of the width labels are shortened with "…" (full text in a tooltip)
    label_w = int(min(max(len(r[0]) for r in rows) * CHAR_W + 14, 0.45 * W))
    max_chars = int((label_w - 8) // CHAR_W)
    row_h = 26
    h = MT + row_h * len(rows) + MB

    def px(x: float) -> float:
        return label_w + (x - x0) / (x1 - x0) * (W - label_w - MR)

    parts = []
    for t in _ticks(x0, x1):
        parts.append(
            f'<line x1="{px(t):.1f}" y1="{MT}" x2="{px(t):.1f}" y2="{h - MB}" stroke="#eee"/>'
            f'<text x="{px(t):.1f}" y="{h - MB + 16}" font-size="13" text-anchor="middle" fill="#444">{_fmt(t)}</text>'
        )
    if ref is not None:
        parts.append(
            f'<line x1="{px(ref):.1f}" y1="{MT}" x2="{px(ref):.1f}" y2="{h - MB}" stroke="#888" stroke-dasharray="4 3"/>'
        )
    for i, (label, v, lo, hi) in enumerate(rows):
        y = MT + row_h * i + row_h / 2
        color = colors[i] if colors else PALETTE[0]
        shown = label if len(label) <= max_chars else label[: max_chars - 1] + "…"
        parts.append(
            f'<g><title>{escape(label)}</title><text x="{label_w - 8}" y="{y + 4:.1f}" font-size="14" '
            f'text-anchor="end">{escape(shown)}</text></g>'
        )
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            parts.append(
                f'<line x1="{px(lo):.1f}" y1="{y:.1f}" x2="{px(hi):.1f}" y2="{y:.1f}" stroke="{color}" stroke-width="2"/>'
            )
        if v is not None and math.isfinite(v):
            tip = f"{label}: {_fmt(v)}" + (f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None and hi is not None else "")
            parts.append(
                f'<circle cx="{px(v):.1f}" cy="{y:.1f}" r="4.5" fill="{color}"><title>{escape(tip)}</title></circle>'
            )
    parts.append(
        f'<text x="{(label_w + W - MR) / 2:.1f}" y="{h - 8}" font-size="14" text-anchor="middle">{escape(xlabel)}</text>'
    )
    return _svg("".join(parts), title, h)


def _frame(
    x0: float, x1: float, y0: float, y1: float, px: object, py: object, xlabel: str, ylabel: str, title: str
) -> str:
    parts = []
    for t in _ticks(y0, y1):
        y = py(t)  # type: ignore[operator]
        parts.append(
            f'<line x1="{ML}" y1="{y:.1f}" x2="{W - MR}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{ML - 6}" y="{y + 4:.1f}" font-size="13" text-anchor="end" fill="#444">{_fmt(t)}</text>'
        )
    for t in _ticks(x0, x1, 6):
        x = px(t)  # type: ignore[operator]
        parts.append(
            f'<text x="{x:.1f}" y="{H - MB + 16}" font-size="13" text-anchor="middle" fill="#444">{_fmt(t)}</text>'
        )
    parts.append(
        f'<line x1="{ML}" y1="{H - MB}" x2="{W - MR}" y2="{H - MB}" stroke="#444"/>'
        f'<line x1="{ML}" y1="{MT}" x2="{ML}" y2="{H - MB}" stroke="#444"/>'
        f'<text x="{(ML + W - MR) / 2:.1f}" y="{H - 8}" font-size="14" text-anchor="middle">{escape(xlabel)}</text>'
        f'<text x="14" y="{(MT + H - MB) / 2:.1f}" font-size="14" text-anchor="middle" '
        f'transform="rotate(-90 14 {(MT + H - MB) / 2:.1f})">{escape(ylabel)}</text>'
    )
    return "".join(parts)


def _legend(names: Sequence[str], colors: Sequence[str]) -> str:
    """One row of swatches above the plot, wrapping onto the plot area when there are many."""
    if len(names) < 2:
        return ""
    parts = []
    x: float = ML + 8
    y: float = MT - 14
    for name, color in zip(names, colors):
        width = 26 + 8.5 * len(name)  # font-size 13: ~8.4 units per character
        if x + width > W - MR and x > ML + 8:
            x, y = ML + 8, y + 16
        parts.append(
            f'<rect x="{x}" y="{y}" width="11" height="11" fill="{color}"/>'
            f'<text x="{x + 15}" y="{y + 10}" font-size="13">{escape(name)}</text>'
        )
        x += width
    return "".join(parts)


def _svg(body: str, title: str, h: int = H) -> str:
    label = escape(title or "chart")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="{label}" '
        f'font-family="system-ui, sans-serif">{body}</svg>'
    )

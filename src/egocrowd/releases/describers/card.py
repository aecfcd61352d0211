"""The data card: what a release is made of, for people (docs/release-metadata.md).

Writes ``README.md`` (Markdown: read on a code host or in a terminal) and ``index.html`` (one
self-contained page: inline CSS, inline SVG charts, no script, nothing fetched; readable on a phone)
into its folder (``card/``), both from :func:`card_context`: the release's composition
(:func:`egocrowd.releases.composition.composition`), its licence and allowed uses, consent scopes,
what changed since the previous version, how to verify the files and how to load each format the
release holds. The figures come from the clips themselves; ``spec.stats`` adds what they cannot tell
(e.g. pay as the ledger recorded it).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from egocrowd.i18n import N_
from egocrowd.pay.money import Money
from egocrowd.releases.composition import composition
from egocrowd.releases.describers.croissant import USE_WORDS
from egocrowd.releases.exporting import DESCRIBERS, FileEntry, Progress, ReleaseSpec

FORMAT_VERSION = 1
HTML = "index.html"
MARKDOWN = "README.md"
#: the most bars a chart shows (the tables below it list everything)
CHART_ROWS = 12

_env = Environment(
    loader=PackageLoader("egocrowd.releases.describers", "templates"),
    autoescape=lambda name: bool(name and name.endswith(".html")),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@DESCRIBERS.register("card", version=FORMAT_VERSION, description=N_("Data card (HTML and Markdown)"))
def describe(
    spec: ReleaseSpec,
    out: Path,
    *,
    options: Mapping[str, Any],
    files: Sequence[FileEntry],
    progress: Progress,
) -> Mapping[str, Sequence[int]]:
    """Write ``README.md`` and ``index.html`` into ``out``. Both name the withdrawn clips' hashes
    but carry no clip's data, so they map to no clip."""
    out.mkdir(parents=True, exist_ok=True)
    context = card_context(spec, files)
    (out / MARKDOWN).write_text(_env.get_template("card.md").render(context), encoding="utf-8")
    (out / HTML).write_text(_env.get_template("card.html").render(context), encoding="utf-8")
    progress(len(spec.items))
    return {}


def card_context(spec: ReleaseSpec, files: Sequence[FileEntry]) -> dict[str, Any]:
    """Everything the two templates show, computed once."""
    comp = composition(spec)
    for key, value in (spec.stats or {}).items():  # figures only the release core knows
        if key not in comp or comp[key] in (None, [], {}):
            comp[key] = value
    licence = spec.licence or {}
    uses = [str(u) for u in licence.get("uses") or ()]
    # a short release's countries in minutes: "0.00 h" everywhere says nothing
    in_minutes = comp["hours"] < 1
    by_country = [(c["country"], c["seconds"] / (60 if in_minutes else 3600)) for c in comp["countries"]][:CHART_ROWS]
    labels = list(comp["labels"]["labels"].items())
    return {
        "spec": spec,
        "c": comp,
        "licence": licence,
        "uses": [USE_WORDS.get(u, u) for u in uses],
        "not_granted": [words for use, words in USE_WORDS.items() if use not in uses and use != "research"],
        "published": spec.created_at.strftime("%Y-%m-%d"),
        "pay": [_pay_row(p) for p in comp.get("pay") or ()],
        "formats": _formats(files, spec.name),
        "size": _size(sum(f.size for f in files) or comp["video"]["bytes"]),
        "files": len(files),
        "withdrawn": list(spec.changes.get("withdrawn") or ()),
        "added": list(spec.changes.get("added") or ()),
        "charts": {
            "countries": bar_chart(
                f"{'Minutes' if in_minutes else 'Hours'} of video per country",
                by_country,
                unit=" min" if in_minutes else " h",
                decimals=1 if max((v for _, v in by_country), default=0) >= 1 else 2,
            ),
            "labels": bar_chart("Action spans per label", labels[:CHART_ROWS], unit="", decimals=0),
        },
        "num": _num,
    }


# --- pieces ------------------------------------------------------------------------------------------


def _pay_row(p: Mapping[str, Any]) -> dict[str, Any]:
    cur = str(p.get("currency") or "")

    def money(minor: Any) -> str:
        if not isinstance(minor, int):
            return "n/a"
        try:
            return str(Money(minor, cur))
        except Exception:  # noqa: BLE001 - an unknown currency code: show the minor units as they are
            return f"{minor} {cur} (minor units)"

    if "per_clip_median_minor" not in p:  # the release build's own figures: amounts already as text
        return {
            "currency": cur,
            "clips": p.get("clips", "n/a"),
            "per_clip": f"{p.get('per_clip', 'n/a')} {cur}",
            "hourly": f"{p['median_hourly']} {cur}" if p.get("median_hourly") else "n/a",
            "total": "n/a",
        }
    return {
        "currency": cur,
        "clips": p.get("clips"),
        "per_clip": money(p.get("per_clip_median_minor")),
        "hourly": money(p.get("hourly_median_minor")),
        "total": money(p.get("total_minor")),
    }


def _formats(files: Sequence[FileEntry], dataset: str) -> list[dict[str, Any]]:
    """Each format present (by the exporter that wrote it) with how to load it, paths as in the release."""
    by_format: dict[str, list[str]] = {}
    for f in files:
        by_format.setdefault(f.format, []).append(f.path)
    found = []
    for name, paths in sorted(by_format.items()):
        paths.sort()
        found.append(
            {"name": name, "files": len(paths), "folder": _common_folder(paths), "load": _loader(name, paths, dataset)}
        )
    return found


def _common_folder(paths: Sequence[str]) -> str:
    return posixpath.commonpath(paths) if len(paths) > 1 else posixpath.dirname(paths[0])


def _loader(name: str, paths: Sequence[str], dataset: str) -> dict[str, str]:
    folder = _common_folder(paths)
    if name == "lerobot" or any(p.endswith("meta/info.json") for p in paths):
        root = next((p[: -len("/meta/info.json")] for p in paths if p.endswith("/meta/info.json")), folder)
        return {
            "title": "LeRobot v3.0",
            "code": (
                "from lerobot.datasets.lerobot_dataset import LeRobotDataset\n\n"
                f'dataset = LeRobotDataset("local/{dataset}", root="{root}")\n'
                "frame = dataset[0]  # a dict: the video frame, timestamp, frame_index, task, ..."
            ),
        }
    shards = [p for p in paths if p.endswith(".tar")]
    if shards:
        return {
            "title": "WebDataset",
            "code": (
                "import webdataset as wds\n\n"
                f'dataset = wds.WebDataset("{_brace(shards)}", shardshuffle=False)\n'
                'for sample in dataset:  # sample["mp4"]: the video bytes, sample["json"]: its metadata\n'
                "    ..."
            ),
        }
    if any(p.endswith("state.json") for p in paths):
        return {
            "title": "Hugging Face datasets",
            "code": f'from datasets import load_from_disk\n\ndataset = load_from_disk("{folder}")',
        }
    if any(p.endswith((".parquet", ".arrow", ".jsonl", ".csv")) for p in paths):
        return {
            "title": "Hugging Face datasets",
            "code": f'from datasets import load_dataset\n\ndataset = load_dataset("{folder}")',
        }
    return {"title": name, "code": ""}


def _brace(shards: Sequence[str]) -> str:
    """WebDataset's brace notation for numbered shards ("shard-{000000..000003}.tar"), or the one name."""
    if len(shards) == 1:
        return shards[0]
    parts = [re.fullmatch(r"(.*?)(\d+)(\.tar)", s) for s in shards]
    if all(parts) and len({(m.group(1), m.group(3), len(m.group(2))) for m in parts if m}) == 1:
        numbers = [m.group(2) for m in parts if m]
        first = parts[0]
        assert first is not None
        return f"{first.group(1)}{{{min(numbers)}..{max(numbers)}}}{first.group(3)}"
    return " ".join(shards)


def _size(n: int) -> str:
    """Bytes in the decimal units people read on download pages: "25.0 KB", "1.2 GB"."""
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def bar_chart(title: str, rows: Sequence[tuple[str, float]], *, unit: str, decimals: int) -> Markup:
    """A horizontal bar chart as inline SVG: one labelled bar per row, the value at its end.

    Written here rather than with a charting library: a dozen rectangles need none, and the card
    must carry no script and fetch nothing (it is opened from a downloaded folder)."""
    if not rows:
        return Markup("")
    # drawn at about the width of a phone, so that 13 px text stays 13 px there
    row_h, label_w, bar_w, value_w, pad = 26, 120, 180, 60, 8
    width = label_w + bar_w + value_w
    height = pad * 2 + row_h * len(rows)
    top = max((float(v) for _, v in rows), default=0.0) or 1.0
    slug = _slug(title)
    summary = ", ".join(f"{name} {float(v):.{decimals}f}{unit}" for name, v in rows)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{slug}" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{slug}">{escape(title)}: {escape(summary)}</title>'
    ]
    for k, (name, value) in enumerate(rows):
        y = pad + k * row_h
        w = max(2.0, bar_w * float(value) / top)
        label = name if len(name) <= 16 else name[:15] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" rx="3"></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}">{float(value):.{decimals}f}{escape(unit)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _slug(text: str) -> str:
    return "chart-" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _md(text: Any) -> str:
    """Text safe inside Markdown (and a Markdown table cell): no markup, links or HTML from titles."""
    s = str(text).replace("\\", "\\\\").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([`*_\[\]|#!])", r"\\\1", s)


_env.filters["md"] = _md

__all__ = ["FORMAT_VERSION", "bar_chart", "card_context", "describe"]

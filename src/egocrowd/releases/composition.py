"""What a release is made of, computed from its clips alone: hours, clips, workers, countries,
settings, labels, QC and agreement figures, pay, consent scopes, what changed since the previous
version.

:func:`composition` is a pure function of a :class:`~egocrowd.releases.exporting.ReleaseSpec`; the
data card and the Croissant metadata describe a release with it, and the release core may store it
as ``Release.stats`` (the catalog shows the same numbers). Everything is JSON-safe: plain numbers,
strings, lists and dicts with sorted, stable order, so two builds of the same spec give the same
bytes. Money is in integer minor units with its currency; never a float.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from egocrowd.errors import EgocrowdError
from egocrowd.pay.money import Money
from egocrowd.releases.exporting import ReleaseItem, ReleaseSpec

#: bump when a key changes meaning or shape (the card and the catalog read these)
COMPOSITION_FORMAT_VERSION = 1
#: what a clip without a known country or setting counts under
UNKNOWN = "unknown"


def composition(spec: ReleaseSpec) -> dict[str, Any]:
    """The composition of ``spec``'s release (see the module docstring for what it holds)."""
    items = spec.items
    campaigns = {int(c["id"]): c for c in spec.campaigns if "id" in c}
    durations = [float(i.duration_s) for i in items if i.duration_s is not None]
    return {
        "format_version": COMPOSITION_FORMAT_VERSION,
        "clips": len(items),
        "seconds": _round(sum(durations), 3),
        "hours": _round(sum(durations) / 3600, 3),
        "duration_s": _spread(durations),
        "workers": len({i.worker for i in items}),
        "countries": _countries(items),
        "campaigns": _campaigns(items, campaigns),
        "settings": _sorted_counts(Counter(_setting(i, campaigns) for i in items)),
        "recorded": _recorded(items),
        "video": _video(items),
        "labels": _labels(items),
        "qc": _qc(items),
        "agreement": _agreement(items),
        "consent": _consent(items),
        "deid": _deid(items),
        "pay": _pay(items, campaigns),
        "changes": {
            "added": len(spec.changes.get("added") or ()),
            "withdrawn": len(spec.changes.get("withdrawn") or ()),
        },
    }


# --- the parts ---------------------------------------------------------------------------------------


def _countries(items: Sequence[ReleaseItem]) -> list[dict[str, Any]]:
    """Clips, hours and workers per country, most clips first."""
    clips: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    workers: defaultdict[str, set[str]] = defaultdict(set)
    for i in items:
        country = i.country or UNKNOWN
        clips[country] += 1
        seconds[country] += float(i.duration_s or 0.0)
        workers[country].add(i.worker)
    return [
        {
            "country": c,
            "clips": n,
            "seconds": _round(seconds[c], 3),
            "hours": _round(seconds[c] / 3600, 3),
            "workers": len(workers[c]),
        }
        for c, n in sorted(clips.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _campaigns(items: Sequence[ReleaseItem], campaigns: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    clips: Counter[int] = Counter()
    seconds: defaultdict[int, float] = defaultdict(float)
    titles: dict[int, str] = {}
    for i in items:
        clips[i.campaign_id] += 1
        seconds[i.campaign_id] += float(i.duration_s or 0.0)
        titles[i.campaign_id] = i.campaign_title
    return [
        {
            "id": cid,
            "title": titles[cid],
            "setting": _campaign_setting(campaigns.get(cid)),
            "clips": n,
            "hours": _round(seconds[cid] / 3600, 3),
        }
        for cid, n in sorted(clips.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _campaign_setting(campaign: Mapping[str, Any] | None) -> str | None:
    if not campaign:
        return None
    value = campaign.get("setting") or (campaign.get("requirements") or {}).get("setting")
    return str(value) if value else None


def _setting(item: ReleaseItem, campaigns: Mapping[int, Mapping[str, Any]]) -> str:
    """Where the clip was recorded (a kitchen, a workshop): the campaign's ``setting`` when it names
    one, else the campaign's title (a campaign is one chore in one kind of place)."""
    return _campaign_setting(campaigns.get(item.campaign_id)) or item.campaign_title or UNKNOWN


def _recorded(items: Sequence[ReleaseItem]) -> dict[str, Any]:
    if not items:
        return {"first": None, "last": None}
    times = sorted(i.recorded_at for i in items)
    return {"first": times[0].isoformat(), "last": times[-1].isoformat()}


def _video(items: Sequence[ReleaseItem]) -> dict[str, Any]:
    sizes = Counter(f"{i.width}x{i.height}" for i in items if i.width and i.height)
    return {
        "resolutions": _sorted_counts(sizes),
        "fps": _spread([float(i.fps) for i in items if i.fps]),
        "bytes": sum(int(i.media_size) for i in items),
    }


def _labels(items: Sequence[ReleaseItem]) -> dict[str, Any]:
    """Action spans per label ("verb noun"), per verb and per noun, and their seconds."""
    labels: Counter[str] = Counter()
    verbs: Counter[str] = Counter()
    nouns: Counter[str] = Counter()
    span_s: list[float] = []
    labelled = 0
    for i in items:
        if i.spans:
            labelled += 1
        for s in i.spans:
            labels[s.label] += 1
            verbs[s.verb] += 1
            nouns[s.noun] += 1
            span_s.append((s.end_ms - s.start_ms) / 1000)
    return {
        "clips_labelled": labelled,
        "spans": sum(labels.values()),
        "span_s": _spread(span_s),
        "labels": _sorted_counts(labels),
        "verbs": _sorted_counts(verbs),
        "nouns": _sorted_counts(nouns),
    }


def _qc(items: Sequence[ReleaseItem]) -> dict[str, Any]:
    """Per QC check: how many clips passed, warned or failed it, and the spread of its value."""
    outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
    values: defaultdict[str, list[float]] = defaultdict(list)
    meta: dict[str, dict[str, str]] = {}
    with_report = 0
    for i in items:
        checks = (i.qc or {}).get("checks") or ()
        if checks:
            with_report += 1
        for c in checks:
            name = str(c.get("name", ""))
            if not name:
                continue
            outcomes[name][str(c.get("status", "unknown"))] += 1
            meta.setdefault(name, {"title": str(c.get("title") or name), "unit": str(c.get("unit") or "")})
            value = c.get("value")
            if isinstance(value, int | float) and not isinstance(value, bool):
                values[name].append(float(value))
    return {
        "clips_with_report": with_report,
        "checks": [
            {
                "name": name,
                **meta[name],
                "pass": outcomes[name].get("pass", 0),
                "warn": outcomes[name].get("warn", 0),
                "fail": outcomes[name].get("fail", 0),
                "value": _spread(values[name]),
            }
            for name in sorted(outcomes)
        ],
    }


def _agreement(items: Sequence[ReleaseItem]) -> dict[str, Any]:
    alphas, ious, counts = [], [], []
    for i in items:
        a = i.agreement or {}
        if isinstance(a.get("alpha"), int | float):
            alphas.append(float(a["alpha"]))
        if isinstance(a.get("mean_iou"), int | float):
            ious.append(float(a["mean_iou"]))
        n = a.get("annotators") if isinstance(a.get("annotators"), int) else len(i.annotators)
        if n:
            counts.append(float(n))
    every = {name for i in items for name in i.annotators}
    return {
        "clips": sum(1 for i in items if i.agreement),
        "alpha": _spread(alphas),
        "mean_iou": _spread(ious),
        "annotators_per_clip": _spread(counts),
        "annotators": len(every),
    }


def _consent(items: Sequence[ReleaseItem]) -> dict[str, Any]:
    scopes: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    for i in items:
        c = i.consent or {}
        for scope in c.get("scopes") or ():
            scopes[str(scope)] += 1
        if c.get("version"):
            versions[str(c["version"])] += 1
        if c.get("language"):
            languages[str(c["language"])] += 1
    return {
        "scopes": _sorted_counts(scopes),
        "versions": _sorted_counts(versions),
        "languages": _sorted_counts(languages),
    }


def _deid(items: Sequence[ReleaseItem]) -> dict[str, Any]:
    """What de-identification did, from each derivative's record (``ReleaseItem.deid``: the
    Derivative's ``params`` and ``summary``): the detectors that ran (name and version → clips), how
    faces were hidden (mode → clips), what became of the sound (outcome → clips), and the redacted
    tracks per category (faces, text) over the release."""
    tools: Counter[str] = Counter()
    face_modes: Counter[str] = Counter()
    audio: Counter[str] = Counter()
    tracks: Counter[str] = Counter()
    redacted = 0
    for i in items:
        deid = i.deid or {}
        params = _mapping(deid.get("params"))
        summary = _mapping(deid.get("summary"))
        for name in _tool_names(deid, params):
            tools[name] += 1
        if params.get("face_mode"):
            face_modes[str(params["face_mode"])] += 1
        if summary.get("audio") or params.get("audio"):
            audio[str(summary.get("audio") or params.get("audio"))] += 1
        counts = _mapping(summary.get("tracks"))
        for category, n in counts.items():
            if isinstance(n, int):
                tracks[str(category)] += n
        if any(isinstance(n, int) and n > 0 for n in counts.values()):
            redacted += 1
    return {
        "tools": _sorted_counts(tools),
        "face_modes": _sorted_counts(face_modes),
        "audio": _sorted_counts(audio),
        "tracks": _sorted_counts(tracks),
        "clips_redacted": redacted,
    }


def _tool_names(deid: Mapping[str, Any], params: Mapping[str, Any]) -> Iterable[str]:
    """ "name vVERSION" of each detector: from ``params.detection`` (name → {"version", ...}, the
    render's record) or a plain ``detectors`` mapping or list."""
    detection = params.get("detection")
    detectors = detection if isinstance(detection, Mapping) else deid.get("detectors")
    if isinstance(detectors, Mapping):
        for name, info in detectors.items():
            if name == "tracking":
                continue
            version = info.get("version") if isinstance(info, Mapping) else info
            yield f"{name} v{version}" if version not in (None, "") else str(name)
    elif isinstance(detectors, list | tuple):
        for d in detectors:
            if isinstance(d, Mapping):
                name, version = d.get("name"), d.get("version")
                yield f"{name} v{version}" if version not in (None, "") else str(name)
            else:
                yield str(d)


def _pay(items: Sequence[ReleaseItem], campaigns: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per currency, in integer minor units: the piece rate per clip (median over clips) and the
    hourly rate it came to (median over clips of their campaign's rate: measured working time when the
    campaign's ``pay`` gives ``median_hourly``, else the campaign's ``expected_minutes``), and per hour
    of video (the clip's own length). A campaign mapping gives either ``pay_cents``, ``currency`` and
    ``expected_minutes`` (the Campaign's columns) or ``pay``: {"currency", "per_clip": "1.50",
    "median_hourly": "12.00" | None} (the release build's pay figures)."""
    per_clip: defaultdict[str, list[int]] = defaultdict(list)
    hourly: defaultdict[str, list[int]] = defaultdict(list)
    hourly_video: defaultdict[str, list[int]] = defaultdict(list)
    for i in items:
        c = campaigns.get(i.campaign_id) or {}
        rate = _campaign_pay(c)
        if rate is None:
            continue
        amount, currency, per_hour = rate
        per_clip[currency].append(amount)
        if per_hour is not None:
            hourly[currency].append(per_hour)
        if i.duration_s:
            hourly_video[currency].append(_per_hour(amount, Decimal(str(i.duration_s))))
    return [
        {
            "currency": cur,
            "clips": len(amounts),
            "total_minor": sum(amounts),
            "per_clip_median_minor": statistics.median_low(amounts),
            "hourly_median_minor": statistics.median_low(hourly[cur]) if hourly[cur] else None,
            "hourly_video_median_minor": statistics.median_low(hourly_video[cur]) if hourly_video[cur] else None,
        }
        for cur, amounts in sorted(per_clip.items())
    ]


def _campaign_pay(c: Mapping[str, Any]) -> tuple[int, str, int | None] | None:
    """(pay per clip, currency, pay per hour worked) of a campaign mapping, minor units; None if unknown."""
    pay = c.get("pay")
    try:
        if isinstance(pay, Mapping) and pay.get("per_clip") is not None and pay.get("currency"):
            currency = str(pay["currency"])
            amount = Money.parse(str(pay["per_clip"]), currency).minor
            hourly = pay.get("median_hourly")
            return amount, currency, Money.parse(str(hourly), currency).minor if hourly is not None else None
        if isinstance(c.get("pay_cents"), int) and c.get("currency"):
            amount, currency = int(c["pay_cents"]), str(c["currency"])
            Money(amount, currency)  # a known currency
            minutes = c.get("expected_minutes")
            if isinstance(minutes, int | float) and minutes > 0:
                return amount, currency, _per_hour(amount, Decimal(str(minutes)) * 60)
            return amount, currency, None
    except EgocrowdError:  # an amount or currency the ledger would refuse: no pay figure, not a crash
        return None
    return None


# --- helpers -----------------------------------------------------------------------------------------


def _per_hour(minor: int, seconds: Decimal) -> int:
    """``minor`` for ``seconds`` of work, per hour, rounded half up (exact: Decimal, never float)."""
    return int((Decimal(minor) * 3600 / seconds).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _spread(values: Sequence[float]) -> dict[str, Any]:
    """n, min, median, max and mean of ``values`` (None when there are none), rounded for display."""
    if not values:
        return {"n": 0, "min": None, "median": None, "max": None, "mean": None}
    return {
        "n": len(values),
        "min": _round(min(values)),
        "median": _round(statistics.median(values)),
        "max": _round(max(values)),
        "mean": _round(statistics.fmean(values)),
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sorted_counts(counts: Counter[str]) -> dict[str, int]:
    """Most first, then by name: a stable order for JSON."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _round(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


__all__ = ["COMPOSITION_FORMAT_VERSION", "UNKNOWN", "composition"]

"""A campaign's spans in and out (docs/labels-quality.md, "Export and import").

Out: plain JSONL or CSV (one span a line: clip_sha256, clip_id, start_s, end_s, verb, noun,
annotator, kind, confidence), and Label Studio's video timeline format (a task per clip with
``data.video`` and ``data.fps``; each person's spans an ``annotation``, the consensus a
``prediction`` with its score; results of type ``timelinelabels`` whose ranges are 1-based integer
frames, labels written "verb noun"), with a labeling config generated from the campaign's taxonomy.

In: the same three formats. Imported spans are a person's reference, never a crowd answer (an
answer belongs to an annotation task, with its lease and its pay): kind ``review`` (a fix of the
consensus made in another tool; default) or ``gold`` (reference spans that make the clip a gold
clip, staff only). Every line is checked before anything is written, so a file with one bad line
imports nothing; each refusal names the line and has its own code (``labels.import_*``). A clip's
spans of that kind from earlier imports or reviews are superseded (``superseded_at``), never edited.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal, cast
from xml.sax.saxutils import quoteattr

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.accounts import policy
from egocrowd.campaigns import service as campaigns
from egocrowd.clock import utcnow
from egocrowd.db.models import Campaign, Clip, Span, SpanKind, User
from egocrowd.errors import InvalidInput, NotFound

FORMAT_VERSION = 1
FIELDS = ("clip_sha256", "clip_id", "start_s", "end_s", "verb", "noun", "annotator", "kind", "confidence")
Format = Literal["jsonl", "csv", "label-studio"]
ImportKind = Literal["review", "gold"]
#: Label Studio's control names in the config we generate (and the ones an import looks for).
LS_LABELS, LS_VIDEO = "labels", "video"
#: More rows than any campaign needs at once; a bigger file is refused before it is parsed further.
MAX_IMPORT_ROWS = 100_000
#: Refusals listed in one problem (the first is its code); the rest only counted.
MAX_REPORTED = 20


def labels_campaign(
    session: Session,
    user: User | None,
    campaign_id: int,
    action: str = "labels.view",
    *,
    operator: bool = False,
    for_update: bool = False,
) -> Campaign:
    """The campaign if ``user`` may do ``action`` on its labels: not-found when they may not see it.
    ``operator``: the command line, run by whoever runs the platform (no user, every campaign)."""
    if operator:
        q = sa.select(Campaign).where(Campaign.id == campaign_id)
        c = session.scalar(q.with_for_update() if for_update else q)
        if c is None:
            raise NotFound(f"No campaign {campaign_id}.", code="campaign.not_found")
        return c
    c = campaigns.get_campaign(session, user, campaign_id, for_update=for_update)
    policy.require(user, action, c)
    return c


# --- out -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpanLine:
    """A span with its clip's id and hash: only the columns an export needs (a campaign has many)."""

    id: int
    kind: SpanKind
    clip_id: int
    clip_sha256: str
    task_id: int | None
    author_id: int | None
    start_ms: int
    end_ms: int
    verb: str
    noun: str
    confidence: float | None


def current_spans(session: Session, campaign_id: int, kinds: Iterable[SpanKind] | None = None) -> list[SpanLine]:
    """The campaign's spans that nothing superseded, in a stable order (clip, kind, time, id)."""
    q = (
        sa.select(
            Span.id,
            Span.kind,
            Clip.id,
            Clip.sha256,
            Span.task_id,
            Span.author_id,
            Span.start_ms,
            Span.end_ms,
            Span.verb,
            Span.noun,
            Span.confidence,
        )
        .join(Clip, Clip.id == Span.clip_id)
        .where(Clip.campaign_id == campaign_id, Span.superseded_at.is_(None))
        .order_by(Clip.id, Span.kind, Span.start_ms, Span.end_ms, Span.id)
    )
    if kinds is not None:
        q = q.where(Span.kind.in_(list(kinds)))
    return [SpanLine(*row) for row in session.execute(q)]


def span_row(span: SpanLine) -> dict[str, Any]:
    """One span as a line of the plain formats (seconds with 3 decimals: milliseconds exactly)."""
    return {
        "clip_sha256": span.clip_sha256,
        "clip_id": span.clip_id,
        "start_s": round(span.start_ms / 1000, 3),
        "end_s": round(span.end_ms / 1000, 3),
        "verb": span.verb,
        "noun": span.noun,
        "annotator": "consensus" if span.kind is SpanKind.consensus else span.author_id,
        "kind": span.kind.value,
        "confidence": None if span.confidence is None else round(span.confidence, 4),
    }


def export_rows(
    session: Session,
    user: User | None,
    campaign_id: int,
    kinds: Iterable[SpanKind] | None = None,
    *,
    operator: bool = False,
) -> list[dict[str, Any]]:
    labels_campaign(session, user, campaign_id, operator=operator)
    return [span_row(s) for s in current_spans(session, campaign_id, kinds)]


def to_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                **r,
                "start_s": f"{r['start_s']:.3f}",
                "end_s": f"{r['end_s']:.3f}",
                "annotator": "" if r["annotator"] is None else r["annotator"],
                "confidence": "" if r["confidence"] is None else r["confidence"],
            }
        )
    return out.getvalue()


def clip_fps(clip: Clip) -> float | None:
    """The frame rate Label Studio must be told (it misplaces spans otherwise): the probe's."""
    return probe_fps(clip.probe)


def probe_fps(probe: dict[str, Any] | None) -> float | None:
    fps = (probe or {}).get("fps")
    return float(fps) if isinstance(fps, int | float) and fps > 0 else None


def clip_duration_ms(clip: Clip) -> int | None:
    """The clip's length: the probe's, else the de-identified render's (None: not known yet)."""
    seconds = (clip.probe or {}).get("duration_s")
    if not isinstance(seconds, int | float) and clip.derived is not None:
        seconds = (clip.derived.summary or {}).get("seconds")
    return round(float(seconds) * 1000) if isinstance(seconds, int | float) and seconds > 0 else None


def to_frames(start_ms: int, end_ms: int, fps: float) -> tuple[int, int]:
    """Milliseconds to Label Studio's 1-based, inclusive frame numbers: the frames whose start lies
    inside the span (a span shorter than a frame still gets one)."""
    first = round(start_ms * fps / 1000) + 1
    return first, max(first, round(end_ms * fps / 1000))


def from_frames(start: int, end: int, fps: float) -> tuple[int, int]:
    """The inverse of :func:`to_frames`: exact for spans on frame boundaries, else within half a frame."""
    return round((start - 1) * 1000 / fps), round(end * 1000 / fps)


def _ls_result(span: SpanLine, fps: float, *, score: bool = False) -> dict[str, Any]:
    start, end = to_frames(span.start_ms, span.end_ms, fps)
    item: dict[str, Any] = {
        "id": f"s{span.id}",
        "from_name": LS_LABELS,
        "to_name": LS_VIDEO,
        "type": "timelinelabels",
        "origin": "prediction" if score else "manual",
        "value": {"ranges": [{"start": start, "end": end}], "timelinelabels": [f"{span.verb} {span.noun}"]},
    }
    if score and span.confidence is not None:
        item["score"] = round(span.confidence, 4)
    return item


def label_studio_tasks(
    session: Session, user: User | None, campaign_id: int, video_base: str = "", *, operator: bool = False
) -> list[dict]:
    """The campaign's clips as Label Studio tasks. Clips without a known frame rate are left out
    (their frames cannot be numbered); ``data.video`` is ``video_base`` + the clip's video route."""
    labels_campaign(session, user, campaign_id, operator=operator)
    by_clip: dict[int, list[SpanLine]] = {}
    for span in current_spans(session, campaign_id):
        by_clip.setdefault(span.clip_id, []).append(span)
    probes: dict[int, Any] = {}
    ids = sorted(by_clip)
    for chunk in range(0, len(ids), 500):
        part = ids[chunk : chunk + 500]
        probes.update(
            {cid: probe for cid, probe in session.execute(sa.select(Clip.id, Clip.probe).where(Clip.id.in_(part)))}
        )
    tasks = []
    for clip_id, spans in by_clip.items():
        fps = probe_fps(probes.get(clip_id))
        if fps is None:
            continue
        people: dict[tuple[str, int | None, int | None], list[SpanLine]] = {}
        consensus = [s for s in spans if s.kind is SpanKind.consensus]
        for s in spans:
            if s.kind is not SpanKind.consensus:
                people.setdefault((s.kind.value, s.author_id, s.task_id), []).append(s)
        annotations = [
            {
                "completed_by": author,
                "ground_truth": kind == SpanKind.gold.value,
                "was_cancelled": False,
                "meta": {"egocrowd_kind": kind, "task_id": task},
                "result": [_ls_result(s, fps) for s in group],
            }
            for (kind, author, task), group in people.items()
        ]
        task: dict[str, Any] = {
            "id": clip_id,
            "data": {
                LS_VIDEO: f"{video_base}/api/v1/clips/{clip_id}/video",
                "fps": fps,
                "clip_id": clip_id,
                "clip_sha256": spans[0].clip_sha256,
            },
            "annotations": annotations,
            "predictions": [],
        }
        if consensus:
            scores = [s.confidence for s in consensus if s.confidence is not None]
            task["predictions"].append(
                {
                    "model_version": "egocrowd-consensus",
                    "score": round(sum(scores) / len(scores), 4) if scores else None,
                    "result": [_ls_result(s, fps, score=True) for s in consensus],
                }
            )
        tasks.append(task)
    return tasks


def label_studio_config(taxonomy: dict[str, Any]) -> str:
    """A Label Studio labeling config for the campaign's closed taxonomy: every "verb noun" pair."""
    labels = [f"{v} {n}" for v in taxonomy.get("verbs", []) for n in taxonomy.get("nouns", [])]
    lines = [
        "<View>",
        f'  <Video name="{LS_VIDEO}" value="${LS_VIDEO}" frameRate="$fps" timelineHeight="200"/>',
        f'  <TimelineLabels name="{LS_LABELS}" toName="{LS_VIDEO}">',
        *(f"    <Label value={quoteattr(label)}/>" for label in labels),
        "  </TimelineLabels>",
        "</View>",
    ]
    return "\n".join(lines) + "\n"


# --- in --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Parsed:
    """One span read from a file, before its clip and label are checked."""

    line: int
    clip_sha256: str | None
    clip_id: Any
    start_ms: int
    end_ms: int
    verb: str
    noun: str
    fps: Any = None  # Label Studio: the task's data.fps, checked against the clip
    end_slack_ms: int = 0  # Label Studio: frame rounding may pass the end by up to a frame


@dataclass
class ImportResult:
    spans: int
    clips: list[int]
    superseded: int
    kind: str


class _Refusals:
    """Collects every bad line; the first one's code names the problem."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, code: str, line: int, message: str) -> None:
        self.items.append({"code": code, "line": line, "message": message})

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        more = len(self.items) - 1
        tail = (
            f" ({more} more problem{'s' if more != 1 else ''} in the file; nothing was imported)"
            if more
            else " (nothing was imported)"
        )
        raise InvalidInput(
            f"Line {first['line']}: {first['message']}{tail}",
            code=first["code"],
            errors=self.items[:MAX_REPORTED],
            error_count=len(self.items),
        )


def _seconds_ms(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return round(x * 1000) if math.isfinite(x) else None


def _plain_row(n: int, row: dict[str, Any], refusals: _Refusals) -> _Parsed | None:
    missing = [k for k in ("start_s", "end_s", "verb", "noun") if row.get(k) in (None, "")]
    if not row.get("clip_sha256") and row.get("clip_id") in (None, ""):
        missing.insert(0, "clip_sha256")
    if missing:
        refusals.add("labels.import_malformed", n, f"missing {', '.join(missing)}.")
        return None
    start, end = _seconds_ms(row["start_s"]), _seconds_ms(row["end_s"])
    if start is None or end is None:
        refusals.add("labels.import_malformed", n, "start_s and end_s must be numbers of seconds.")
        return None
    if not isinstance(row["verb"], str) or not isinstance(row["noun"], str):
        refusals.add("labels.import_malformed", n, "verb and noun must be text.")
        return None
    sha = row.get("clip_sha256")
    return _Parsed(
        n, sha if isinstance(sha, str) and sha else None, row.get("clip_id"), start, end, row["verb"], row["noun"]
    )


def _parse_jsonl(text: str, refusals: _Refusals) -> list[_Parsed]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            refusals.add("labels.import_malformed", n, "not valid JSON.")
            continue
        if not isinstance(row, dict):
            refusals.add("labels.import_malformed", n, "each line must be a JSON object.")
            continue
        if (p := _plain_row(n, row, refusals)) is not None:
            out.append(p)
    return out


def _parse_csv(text: str, refusals: _Refusals) -> list[_Parsed]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [f for f in ("start_s", "end_s", "verb", "noun") if f not in header]
    if missing or not ({"clip_sha256", "clip_id"} & set(header)):
        refusals.add("labels.import_malformed", 1, f"the header must name {', '.join(FIELDS)}.")
        return []
    out = []
    try:
        for row in reader:
            if None in row:  # more cells than the header names
                refusals.add("labels.import_malformed", reader.line_num, "more cells than the header has names.")
                continue
            if (p := _plain_row(reader.line_num, row, refusals)) is not None:
                out.append(p)
    except csv.Error as exc:
        refusals.add("labels.import_malformed", reader.line_num, f"not valid CSV ({exc}).")
    return out


def _parse_label_studio(text: str, refusals: _Refusals) -> list[_Parsed]:
    try:
        tasks = json.loads(text)
    except ValueError:
        refusals.add("labels.import_malformed", 1, "not valid JSON (a Label Studio export is one JSON list of tasks).")
        return []
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        refusals.add("labels.import_malformed", 1, "a Label Studio export is a JSON list of tasks.")
        return []
    out = []
    for n, task in enumerate(tasks, 1):  # "line" is the task's place in the list
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            refusals.add("labels.import_malformed", n, "a task needs its data (video, fps, clip_sha256).")
            continue
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            refusals.add("labels.import_malformed", n, "annotations must be a list.")
            continue
        fps = data.get("fps")
        for a in annotations:
            if not isinstance(a, dict) or a.get("was_cancelled"):
                continue
            for item in a.get("result") or []:
                if not isinstance(item, dict) or item.get("type") != "timelinelabels":
                    continue  # other controls of a richer config are not ours
                value = item.get("value")
                ranges = value.get("ranges") if isinstance(value, dict) else None
                labels = value.get("timelinelabels") if isinstance(value, dict) else None
                if not isinstance(ranges, list) or not isinstance(labels, list) or len(labels) != 1:
                    refusals.add("labels.import_malformed", n, "a timelinelabels result needs ranges and one label.")
                    continue
                parts = labels[0].split(" ") if isinstance(labels[0], str) else []
                if len(parts) != 2:
                    refusals.add("labels.import_unknown_label", n, f"{labels[0]!r} is not a 'verb noun' label.")
                    continue
                if isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
                    refusals.add("labels.import_fps", n, "data.fps must be the clip's frame rate (a number above 0).")
                    break
                for r in ranges:
                    ok = isinstance(r, dict) and all(
                        isinstance(r.get(k), int) and not isinstance(r.get(k), bool) for k in ("start", "end")
                    )
                    if not ok or r["start"] < 1 or r["end"] < r["start"]:
                        refusals.add(
                            "labels.import_malformed", n, "ranges are 1-based frame numbers with start <= end."
                        )
                        continue
                    start_ms, end_ms = from_frames(r["start"], r["end"], float(fps))
                    out.append(
                        _Parsed(
                            n,
                            data.get("clip_sha256") if isinstance(data.get("clip_sha256"), str) else None,
                            data.get("clip_id"),
                            start_ms,
                            end_ms,
                            parts[0],
                            parts[1],
                            fps=fps,
                            end_slack_ms=math.ceil(1000 / fps),
                        )
                    )
    return out


_PARSERS = {"jsonl": _parse_jsonl, "csv": _parse_csv, "label-studio": _parse_label_studio}


class _Clips:
    """The campaign's clips a file names, fetched at once (by id and by hash), then looked up."""

    def __init__(self, session: Session, campaign_id: int, parsed: list[_Parsed]) -> None:
        ids = sorted({cid for p in parsed if (cid := _as_id(p.clip_id)) is not None})
        hashes = sorted({p.clip_sha256.lower() for p in parsed if p.clip_sha256})
        self.by_id: dict[int, Clip] = {}
        self.by_hash: dict[str, Clip] = {}
        found: list[Clip] = []
        for column, values in ((Clip.id, ids), (Clip.sha256, hashes)):
            for chunk in range(0, len(values), 500):
                found += session.scalars(
                    sa.select(Clip).where(Clip.campaign_id == campaign_id, column.in_(values[chunk : chunk + 500]))
                )
        # one file uploaded twice is two clips: a hash names the first that is not a duplicate
        for clip in sorted(found, key=lambda c: (c.duplicate_of is not None, c.id), reverse=True):
            self.by_id[clip.id] = clip
            self.by_hash[clip.sha256] = clip

    def find(self, p: _Parsed) -> Clip | None:
        if p.clip_id not in (None, ""):
            clip = self.by_id.get(_as_id(p.clip_id) or -1)
            if clip is not None and p.clip_sha256 and clip.sha256 != p.clip_sha256.lower():
                return None  # the id names another file than the hash: trust neither
            return clip
        return self.by_hash.get(p.clip_sha256.lower()) if p.clip_sha256 else None


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if 0 <= n < 2**31 else None


def import_labels(
    session: Session,
    actor: User | None,
    campaign_id: int,
    text: str,
    fmt: Format,
    *,
    kind: ImportKind = "review",
    operator: bool = False,
) -> ImportResult:
    """Read ``text`` in ``fmt`` and store its spans as ``kind``, all of them or none. ``operator``:
    the command line (``actor`` None; the spans have no author)."""
    # the campaign's row is locked: two imports (or an import and an audit) never interleave
    c = labels_campaign(session, actor, campaign_id, "labels.import", operator=operator, for_update=True)
    if kind == "gold" and not operator:
        policy.require(actor, "labels.gold")
    if fmt not in _PARSERS:
        raise InvalidInput(f"Unknown format {fmt!r}: jsonl, csv or label-studio.", code="labels.import_format")
    if text.count("\n") > MAX_IMPORT_ROWS:
        raise InvalidInput(
            f"At most {MAX_IMPORT_ROWS:,} spans in one import; split the file.", code="labels.import_too_many"
        )
    refusals = _Refusals()
    parsed = _PARSERS[fmt](text, refusals)
    if len(parsed) > MAX_IMPORT_ROWS:
        raise InvalidInput(
            f"At most {MAX_IMPORT_ROWS:,} spans in one import; split the file.", code="labels.import_too_many"
        )
    verbs, nouns = set(c.taxonomy.get("verbs", [])), set(c.taxonomy.get("nouns", []))
    clips = _Clips(session, c.id, parsed)
    good: list[tuple[_Parsed, Clip]] = []
    for p in parsed:
        clip = clips.find(p)
        if clip is None:
            refusals.add(
                "labels.import_unknown_clip",
                p.line,
                f"no clip of this campaign has {'id ' + str(p.clip_id) if p.clip_id not in (None, '') else ''}"
                f"{' and ' if p.clip_id not in (None, '') and p.clip_sha256 else ''}"
                f"{'sha256 ' + p.clip_sha256 if p.clip_sha256 else ''}.",
            )
            continue
        if p.verb not in verbs or p.noun not in nouns:
            refusals.add(
                "labels.import_unknown_label",
                p.line,
                f"'{p.verb} {p.noun}' is not in the campaign's taxonomy"
                f"{'' if p.verb in verbs else f' (unknown verb {p.verb!r})'}"
                f"{'' if p.noun in nouns else f' (unknown noun {p.noun!r})'}.",
            )
            continue
        if p.fps is not None:
            fps = clip_fps(clip)
            if fps is None or abs(float(p.fps) - fps) > 0.01:
                refusals.add(
                    "labels.import_fps",
                    p.line,
                    f"data.fps is {p.fps} but clip {clip.id} runs at {fps if fps is not None else 'an unknown rate'}"
                    " fps: its frame numbers would land at the wrong times.",
                )
                continue
        duration = clip_duration_ms(clip)
        if p.start_ms < 0 or p.end_ms <= p.start_ms:
            refusals.add(
                "labels.import_out_of_range", p.line, "a span must start at 0 s or later and end after it starts."
            )
            continue
        if duration is not None and p.end_ms > duration + p.end_slack_ms:
            refusals.add(
                "labels.import_out_of_range",
                p.line,
                f"the span ends at {p.end_ms / 1000:.3f} s but clip {clip.id} lasts {duration / 1000:.3f} s.",
            )
            continue
        end_ms = min(p.end_ms, duration) if duration is not None else p.end_ms
        good.append((replace(p, end_ms=end_ms), clip))
    if not parsed and not refusals.items:
        refusals.add("labels.import_empty", 1, "the file holds no spans.")
    refusals.raise_if_any()

    span_kind = SpanKind(kind)
    clip_ids = sorted({clip.id for _, clip in good})
    now = utcnow()
    result = session.execute(
        sa.update(Span)
        .where(Span.clip_id.in_(clip_ids), Span.kind == span_kind, Span.superseded_at.is_(None))
        .values(superseded_at=now)
    )
    superseded = cast("sa.CursorResult[Any]", result).rowcount  # an UPDATE's result has a rowcount
    seen: set[tuple[int, int, int, str, str]] = set()
    rows: list[dict[str, Any]] = []
    for p, clip in good:
        key = (clip.id, p.start_ms, p.end_ms, p.verb, p.noun)
        if key in seen:  # the same span twice in one file counts once
            continue
        seen.add(key)
        rows.append(
            {
                "clip_id": clip.id,
                "kind": span_kind,
                "author_id": actor.id if actor is not None else None,
                "round": _round_of(clip),
                "start_ms": p.start_ms,
                "end_ms": p.end_ms,
                "verb": p.verb,
                "noun": p.noun,
                "created_at": now,
            }
        )
        if span_kind is SpanKind.gold and not clip.is_gold:
            clip.is_gold = True
    if rows:
        session.execute(sa.insert(Span), rows)  # one executemany: a campaign's file is thousands of spans
    written = len(rows)
    audit.record(
        session,
        actor,
        "labels.imported",
        c,
        {"format": fmt, "kind": kind, "spans": written, "clips": clip_ids, "superseded": superseded},
    )
    return ImportResult(spans=written, clips=clip_ids, superseded=superseded, kind=kind)


def _round_of(clip: Clip) -> int:
    agreement = clip.agreement or {}
    r = agreement.get("reopened_round") or agreement.get("round") or 1
    return int(r) if isinstance(r, int) else 1

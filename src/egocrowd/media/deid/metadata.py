"""Container metadata of the derived file: an allow-list, not a block-list.

Phones write far more than the picture: GPS (``location``, ``com.apple.quicktime.location.ISO6709``,
the ``©xyz`` atom), make/model/serials/software, owner and author names, comments, the local time
zone (``com.apple.quicktime.creationdate``), even the handler names of the tracks ("Core Media
Video" says "iPhone"). The derived file carries none of it: the only tag we write is the recording
time, reduced to its UTC date unless the campaign asks for the full time.

What PyAV/FFmpeg's mp4 muxer does on its own (checked with PyAV 18 / libavformat 62, see
tests/media/deid/test_metadata.py):

- a container opened for writing starts empty: nothing is copied from the input file (the ``ffmpeg``
  command line copies tags through ``-map_metadata``; PyAV does not, there is no such default); a
  stream copied as is (``add_stream_from_template``, e.g. the sound under ``keep``) brings its
  codec parameters but none of its tags ("Core Media Audio" becomes "SoundHandler");
- the muxer always adds ``major_brand``/``minor_version``/``compatible_brands`` (the ftyp box) and
  ``encoder`` (``Lavf<version>``), and per stream ``language`` (``und``) and ``handler_name``
  (``VideoHandler``/``SoundHandler``); these say nothing about the person (:data:`MUXER_TAGS`);
- a container ``creation_time`` is written into the movie header *and* every track header, so
  reading back shows it on each stream as well: the reduced time, never more;
- ``location`` becomes an ``©xyz`` atom (read back as ``location`` and ``location-eng``), and with
  ``movflags=use_metadata_tags`` any key at all is written as an mdta key: never pass either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

RecordingTime = Literal["date", "full"]

#: tags the mp4 muxer writes by itself; harmless (they describe the file format and our encoder)
MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
#: stream tags the mp4 muxer writes by itself, with the only values it writes when we pass nothing
MUXER_STREAM_TAGS = {
    "language": {"und"},
    "handler_name": {"VideoHandler", "SoundHandler"},
}

# where a recording time may be found, most trusted first (creation_time is UTC by FFmpeg's rule;
# Apple's creationdate carries the local offset, which we read but never write)
_TIME_TAGS = ("creation_time", "com.apple.quicktime.creationdate")


def source_recording_time(source_tags: Mapping[str, str]) -> datetime | None:
    """The source's recording time in UTC, or None when it has none we can read."""
    lowered = {k.lower(): v for k, v in source_tags.items()}
    for name in _TIME_TAGS:
        value = (lowered.get(name) or "").strip()
        if not value:
            continue
        parsed = _parse_time(value)
        if parsed is not None:
            return parsed
    return None


def derived_metadata(source_tags: Mapping[str, str], recording_time: RecordingTime = "date") -> dict[str, str]:
    """The tags to set on the derived container (``container.metadata``): ``creation_time`` only,
    as ``YYYY-MM-DDT00:00:00Z`` (``"date"``) or ``YYYY-MM-DDTHH:MM:SSZ`` (``"full"``, mp4 keeps whole
    seconds). Streams get no tags from us (the muxer's own defaults only)."""
    when = source_recording_time(source_tags)
    if when is None:
        return {}
    if recording_time == "full":
        return {"creation_time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if recording_time == "date":
        return {"creation_time": when.strftime("%Y-%m-%dT00:00:00Z")}
    raise ValueError(f"recording_time must be 'date' or 'full', not {recording_time!r}")


def removed_tags(source_tags: Mapping[str, str], stream_tags: Iterable[Mapping[str, str]] = ()) -> list[str]:
    """Names of the source's tags the derived file does not carry (for the stage's summary), sorted.
    ``creation_time`` is carried (perhaps reduced) when it can be read. Stream tags, if given, are
    named ``stream:<name>``."""
    kept = {"creation_time"} if source_recording_time(source_tags) is not None else set()
    names = {k for k in source_tags if k.lower() not in kept}
    for tags in stream_tags:
        names.update(f"stream:{k}" for k in tags)
    return sorted(names)


def foreign_tags(
    container_tags: Mapping[str, str],
    stream_tags: Iterable[Mapping[str, str]] = (),
    expected: Mapping[str, str] | None = None,
) -> list[str]:
    """Check a written file: the names of tags that are neither the muxer's own nor ``expected``
    (what :func:`derived_metadata` returned). Empty means clean. The creation time the muxer copies
    onto each stream must equal the container's expected one."""
    expected_ct = _parse_time((expected or {}).get("creation_time", ""))
    bad = []
    for k, v in container_tags.items():
        if k in MUXER_TAGS:
            continue
        if k == "creation_time" and expected_ct is not None and _parse_time(v) == expected_ct:
            continue
        bad.append(k)
    for i, tags in enumerate(stream_tags):
        for k, v in tags.items():
            if v in MUXER_STREAM_TAGS.get(k, ()):
                continue
            if k == "creation_time" and expected_ct is not None and _parse_time(v) == expected_ct:
                continue
            bad.append(f"stream{i}:{k}")
    return bad


def _parse_time(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    # Apple writes offsets without a colon (2026-11-03T15:22:31+0100); fromisoformat reads both
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # FFmpeg's creation_time is UTC by definition
    return parsed.astimezone(UTC)

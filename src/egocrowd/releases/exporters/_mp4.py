"""Joining H.264 MP4 clips without bringing their bytes into the process (LeRobot's copied chunks).

A clip's sample table (``moov``: sizes, places, durations, composition offsets, keyframes, the
edit) says where each coded frame lies in the file; the joined file's ``mdat`` is those byte
ranges copied in the kernel (``os.copy_file_range``, else ``sendfile``) one clip after another,
and its ``moov`` is written from the tables at the end. Written here rather than muxed with PyAV
because a muxer takes every packet through the process (demux, then write: about four times the
time of an in-kernel copy), and no MP4 library we could use copies sample data by range.

Only the plain case is joined this way: one H.264 (``avc1``) video track with one sample
description, at most one edit that starts presentation at the first frame, byte ranges inside
the file. Anything else (:func:`read_track` returns None) goes through PyAV as before. The box
layout is ISO/IEC 14496-12 (8.2-8.8, 8.6.6 for the edit list); every box is bounds-checked,
nothing in the sample data is parsed.
"""

from __future__ import annotations

import os
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

#: a moov bigger than this is not ours to parse (a 10-minute 60 fps clip's is about 1 MB)
MAX_MOOV_BYTES = 64 * 1024 * 1024


class _Unsupported(Exception):
    """Not the plain case: the caller goes through PyAV."""


@dataclass(slots=True)
class Track:
    """The video track of one clip, as the joined file needs it."""

    timescale: int
    width: int
    height: int
    fourcc: str
    stsd: bytes  # the whole sample description box, copied into the joined file
    extradata: bytes  # the avcC payload (FFmpeg's extradata for H.264 in MP4)
    sizes: np.ndarray  # bytes per sample (decoding order)
    positions: np.ndarray  # file offset per sample
    durations: np.ndarray  # ticks per sample
    offsets: np.ndarray | None  # composition offsets (ctts), None when absent
    sync: np.ndarray | None  # 1-based keyframe sample numbers, None when every sample is one
    shift: int  # the edit's media time: the raw time presentation starts at
    has_audio: bool
    sorted_pts: np.ndarray  # presentation times as FFmpeg's demuxer gives them (the edit applied)

    @property
    def time_base(self) -> Fraction:
        return Fraction(1, self.timescale)

    def pts(self) -> np.ndarray:
        """Presentation times as FFmpeg's demuxer gives them (the edit applied), sorted."""
        return self.sorted_pts


def read_track(path: Path) -> Track | None:
    """The clip's video track when it is the plain case (module doc), else None. Reads only the
    boxes' headers and the ``moov``."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            moov = _find_moov(f, size)
            track = _video_track(moov)
    except (OSError, _Unsupported, struct.error, ValueError):
        return None
    if track is None or track.sizes.size == 0:
        return None
    if int((track.positions + track.sizes).max()) > size or int(track.positions.min()) < 0:
        return None
    return track


def _boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """(type, payload start, payload end) of the boxes in ``data[start:end]``."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            head = 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise _Unsupported("box out of bounds")
        out.append((kind.decode("latin-1"), pos + head, pos + size))
        pos += size
    return out


def _find_moov(f: BinaryIO, size: int) -> bytes:
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        if len(head) < 8:
            break
        box, kind = struct.unpack_from(">I4s", head)
        header = 8
        if box == 1 and len(head) == 16:
            (box,) = struct.unpack_from(">Q", head, 8)
            header = 16
        elif box == 0:
            box = size - pos
        if box < header or pos + box > size:
            raise _Unsupported("top-level box out of bounds")
        if kind == b"moov":
            if box > MAX_MOOV_BYTES:
                raise _Unsupported("moov too big")
            f.seek(pos + header)
            data = f.read(box - header)
            if len(data) != box - header:
                raise _Unsupported("short moov")
            return data
        pos += box
    raise _Unsupported("no moov")


def _child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int]:
    found = [(s, e) for k, s, e in _boxes(data, start, end) if k == kind]
    if len(found) != 1:
        raise _Unsupported(f"{len(found)} {kind} boxes")
    return found[0]


def _handler(data: bytes, trak: tuple[int, int]) -> str:
    mdia = _child(data, *trak, "mdia")
    hdlr = _child(data, *mdia, "hdlr")
    return data[hdlr[0] + 8 : hdlr[0] + 12].decode("latin-1")


def _video_track(moov: bytes) -> Track | None:
    traks = [(s, e) for k, s, e in _boxes(moov) if k == "trak"]
    handlers = [_handler(moov, t) for t in traks]  # one walk per track
    videos = [t for t, h in zip(traks, handlers, strict=True) if h == "vide"]
    if len(videos) != 1:
        return None
    trak = videos[0]
    mdia = _child(moov, *trak, "mdia")
    mdhd = _child(moov, *mdia, "mdhd")
    version = moov[mdhd[0]]
    timescale = struct.unpack_from(">I", moov, mdhd[0] + (20 if version == 1 else 12))[0]
    if timescale <= 0:
        return None
    stbl = _child(moov, *_child(moov, *mdia, "minf"), "stbl")
    boxes = {k: (s, e) for k, s, e in _boxes(moov, *stbl)}

    stsd_s, stsd_e = boxes["stsd"]
    if struct.unpack_from(">I", moov, stsd_s - 8)[0] != stsd_e - stsd_s + 8:
        return None  # a 64-bit box header on a sample description: not what a muxer writes
    if struct.unpack_from(">I", moov, stsd_s + 4)[0] != 1:
        return None  # several sample descriptions: a decoder change inside the clip
    entries = _boxes(moov, stsd_s + 8, stsd_e)
    fourcc, entry_s, entry_e = entries[0]
    if fourcc != "avc1":
        return None
    width, height = struct.unpack_from(">HH", moov, entry_s + 24)
    avcc = [(s, e) for k, s, e in _boxes(moov, entry_s + 78, entry_e) if k == "avcC"]
    if len(avcc) != 1:
        return None
    extradata = moov[avcc[0][0] : avcc[0][1]]

    sizes = _stsz(moov, *boxes["stsz"])
    n = sizes.size
    durations = _runs(moov, *boxes["stts"], n, signed=False)
    offsets = _runs(moov, *boxes["ctts"], n, signed=True) if "ctts" in boxes else None
    if "stco" in boxes:
        chunk_offsets = _table(moov, *boxes["stco"], ">u4")
    else:
        chunk_offsets = _table(moov, *boxes["co64"], ">u8")
    positions = _positions(moov, *boxes["stsc"], chunk_offsets, sizes)
    sync = _table(moov, *boxes["stss"], ">u4").astype(np.int64) if "stss" in boxes else None
    if sync is not None and (sync.size == 0 or sync.min() < 1 or sync.max() > n):
        return None
    dts = np.zeros(n, dtype=np.int64)
    np.cumsum(durations[:-1], out=dts[1:])
    raw = dts + offsets if offsets is not None else dts
    shift = _edit_shift(moov, trak, raw, timescale, _movie_timescale(moov))
    if shift is None:
        return None
    raw.sort()
    has_audio = "soun" in handlers
    return Track(
        timescale=timescale,
        width=width,
        height=height,
        fourcc=fourcc,
        stsd=bytes(moov[stsd_s - 8 : stsd_e]),
        extradata=bytes(extradata),
        sizes=sizes,
        positions=positions,
        durations=durations,
        offsets=offsets,
        sync=sync,
        shift=shift,
        has_audio=has_audio,
        sorted_pts=raw - shift,
    )


def _table(data: bytes, start: int, end: int, dtype: str) -> np.ndarray:
    """A full box's entry count and its fixed-size entries."""
    (count,) = struct.unpack_from(">I", data, start + 4)
    width = np.dtype(dtype).itemsize
    if start + 8 + count * width > end:
        raise _Unsupported("table out of bounds")
    return np.frombuffer(data, dtype=dtype, count=count, offset=start + 8).astype(np.int64)


def _stsz(data: bytes, start: int, end: int) -> np.ndarray:
    uniform, count = struct.unpack_from(">II", data, start + 4)
    if uniform:
        return np.full(count, uniform, dtype=np.int64)
    if start + 12 + 4 * count > end:
        raise _Unsupported("stsz out of bounds")
    return np.frombuffer(data, dtype=">u4", count=count, offset=start + 12).astype(np.int64)


def _runs(data: bytes, start: int, end: int, n: int, *, signed: bool) -> np.ndarray:
    """stts / ctts: (count, value) runs expanded to one value per sample."""
    (count,) = struct.unpack_from(">I", data, start + 4)
    if start + 8 + 8 * count > end:
        raise _Unsupported("run table out of bounds")
    pairs = np.frombuffer(data, dtype=">u4", count=2 * count, offset=start + 8).reshape(-1, 2)
    values = pairs[:, 1].astype(np.int32 if signed else np.uint32).astype(np.int64)
    out = np.repeat(values, pairs[:, 0].astype(np.int64))
    if out.size != n:
        raise _Unsupported("run table does not cover the samples")
    return out


def _positions(data: bytes, start: int, end: int, chunk_offsets: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each sample's file offset from the sample-to-chunk runs, the chunk offsets and the sizes."""
    (count,) = struct.unpack_from(">I", data, start + 4)
    if start + 8 + 12 * count > end or count == 0:
        raise _Unsupported("stsc out of bounds")
    runs = np.frombuffer(data, dtype=">u4", count=3 * count, offset=start + 8).reshape(-1, 3).astype(np.int64)
    if (runs[:, 2] != 1).any() or runs[0, 0] != 1 or (np.diff(runs[:, 0]) <= 0).any():
        raise _Unsupported("stsc")
    chunks = chunk_offsets.size
    firsts = runs[:, 0] - 1
    counts = np.diff(np.append(firsts, chunks))
    if (counts < 0).any():
        raise _Unsupported("stsc names chunks that do not exist")
    per_chunk = np.repeat(runs[:, 1], counts)
    if int(per_chunk.sum()) != sizes.size:
        raise _Unsupported("stsc does not cover the samples")
    chunk_of = np.repeat(np.arange(chunks), per_chunk)
    first_sample = np.cumsum(per_chunk) - per_chunk
    before = np.concatenate(([0], np.cumsum(sizes)))
    return chunk_offsets[chunk_of] + before[:-1] - before[first_sample[chunk_of]]


def _movie_timescale(moov: bytes) -> int:
    s, _ = _child(moov, 0, len(moov), "mvhd")
    return int(struct.unpack_from(">I", moov, s + (20 if moov[s] == 1 else 12))[0])


def _edit_shift(
    moov: bytes, trak: tuple[int, int], raw: np.ndarray, timescale: int, movie_timescale: int
) -> int | None:
    """The edit's media time when presentation simply starts at the first frame and runs to the
    last: no edit (0), or one edit at normal rate whose media time is the earliest presentation
    time (``raw``: composition times before the edit) and whose duration reaches the last frame.
    Anything else: None."""
    earliest, latest = int(raw.min()), int(raw.max())
    edts = [(s, e) for k, s, e in _boxes(moov, *trak) if k == "edts"]
    if not edts:
        return 0 if earliest == 0 else None
    if len(edts) != 1:
        return None
    elst = [(s, e) for k, s, e in _boxes(moov, *edts[0]) if k == "elst"]
    if len(elst) != 1:
        return None
    s, e = elst[0]
    version = moov[s]
    (count,) = struct.unpack_from(">I", moov, s + 4)
    if count != 1:
        return None
    if version == 1:
        seg, media_time, rate = struct.unpack_from(">Qqi", moov, s + 8)
    else:
        seg, media_time, rate = struct.unpack_from(">Iii", moov, s + 8)
    if rate != 0x00010000 or media_time != earliest or movie_timescale <= 0:
        return None
    if seg and Fraction(seg, movie_timescale) <= Fraction(latest - earliest, timescale):
        return None  # the edit ends before the last frame: FFmpeg would drop frames
    return media_time


# -- writing ------------------------------------------------------------------------------------------


def _box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *parts)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
_MDAT_HEADER = 16  # a 64-bit size: a joined file may pass 4 GB


def copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """``count`` bytes of ``src`` from ``offset`` appended at ``dst``'s position, in the kernel."""
    end = offset + count
    while offset < end:
        try:
            n = os.copy_file_range(src, dst, end - offset, offset)
        except OSError:  # an old kernel or a file system that refuses it: sendfile does the same
            n = os.sendfile(dst, src, offset, end - offset)
        if n == 0:
            raise OSError(f"the file ended {end - offset} bytes early")
        offset += n


class JoinedMp4:
    """One MP4 being written from whole clips' sample data (one clip after another).

    The copies run in one worker thread, in order (``copy_file_range`` leaves the GIL), while the
    caller goes on with the next clip's tables and rows: the export then takes about the longer of
    the two rather than their sum. :meth:`close` waits for them; a copy that failed raises there
    or at the next :meth:`append` (an ``OSError`` naming the clip's file)."""

    def __init__(self, path: Path, first: Track):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._file.write(_box(b"ftyp", b"isom", struct.pack(">I", 0x200), b"isomiso2avc1mp41"))
        self._mdat = self._file.tell()
        self._file.write(b"\0" * _MDAT_HEADER)
        self._end = self._mdat + _MDAT_HEADER
        self.timescale, self.width, self.height = first.timescale, first.width, first.height
        self.stsd, self.shift = first.stsd, first.shift
        self._sizes: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        self._sync: list[np.ndarray] = []
        self._chunks: list[np.ndarray] = []  # file offsets of the joined file's chunks
        self._per_chunk: list[np.ndarray] = []
        self.samples = 0
        self._all_sync = True
        self._has_offsets = False
        self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mp4-join")
        self._copies: list[Future[None]] = []

    def append(self, track: Track, source: Path, ticks: int) -> None:
        """The clip's samples after those already in the file, each ``ticks`` long."""
        sizes, positions = track.sizes, track.positions
        # runs of samples that lie back to back in the source: one copy and one chunk each
        breaks = np.flatnonzero(positions[1:] != positions[:-1] + sizes[:-1]) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.append(breaks, sizes.size)
        lengths = np.add.reduceat(sizes, starts)
        self._check_copies()
        ranges = list(zip(positions[starts].tolist(), lengths.tolist(), strict=True))
        self._copies.append(self._copier.submit(self._copy, source, ranges))
        self._chunks.append(self._end + np.concatenate(([0], np.cumsum(lengths)[:-1])))
        self._per_chunk.append(ends - starts)
        self._end += int(lengths.sum())
        self._sizes.append(sizes)
        if track.offsets is not None:
            self._has_offsets = True
        self._offsets.append(track.offsets if track.offsets is not None else np.zeros(sizes.size, dtype=np.int64))
        if track.sync is not None:
            self._all_sync = False
            self._sync.append(track.sync + self.samples)
        else:
            self._sync.append(np.arange(1, sizes.size + 1, dtype=np.int64) + self.samples)
        self.samples += int(sizes.size)
        self._ticks = ticks

    def _copy(self, source: Path, ranges: list[tuple[int, int]]) -> None:
        try:
            with open(source, "rb") as src:
                for first, length in ranges:
                    copy_range(src.fileno(), self._file.fileno(), first, length)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror or str(exc), str(source)) from exc

    def _check_copies(self) -> None:
        """Raise the first failed copy; forget the finished ones."""
        for done in [f for f in self._copies if f.done()]:
            self._copies.remove(done)
            done.result()

    @property
    def data_bytes(self) -> int:
        """Sample data written so far."""
        return self._end - self._mdat - _MDAT_HEADER

    def close(self) -> None:
        try:
            self._copier.shutdown(wait=True)
            for f in self._copies:
                f.result()
            if self.samples:
                self._file.write(self._moov())
                self._file.seek(self._mdat)
                self._file.write(struct.pack(">I4sQ", 1, b"mdat", self._end - self._mdat))
        finally:
            self._file.close()

    def _moov(self) -> bytes:
        n, ticks, ts = self.samples, self._ticks, self.timescale
        duration = n * ticks  # media and movie share the timescale: durations are exact
        v = 1 if duration >= 1 << 32 else 0
        dur = struct.pack(">Q" if v else ">I", duration)
        times = struct.pack(">QQ" if v else ">II", 0, 0)
        mvhd = _full(b"mvhd", v, 0, times, struct.pack(">I", ts), dur,
                     struct.pack(">IH10x", 0x00010000, 0x0100), _MATRIX, b"\0" * 24, struct.pack(">I", 2))  # fmt: skip
        tkhd = _full(b"tkhd", v, 3, times, struct.pack(">II", 1, 0), dur, struct.pack(">8xhhh2x", 0, 0, 0),
                     _MATRIX, struct.pack(">II", self.width << 16, self.height << 16))  # fmt: skip
        edts = b""
        if self.shift:
            elst = struct.pack(">IQqi" if v else ">IIii", 1, duration, self.shift, 0x00010000)
            edts = _box(b"edts", _full(b"elst", v, 0, elst))
        mdhd = _full(b"mdhd", v, 0, times, struct.pack(">I", ts), dur, struct.pack(">HH", 0x55C4, 0))
        hdlr = _full(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"vide"), b"VideoHandler\0")
        dinf = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))
        minf = _box(b"minf", _full(b"vmhd", 0, 1, b"\0" * 8), dinf, self._stbl())
        return _box(b"moov", mvhd, _box(b"trak", tkhd, edts, _box(b"mdia", mdhd, hdlr, minf)))

    def _stbl(self) -> bytes:
        n = self.samples
        sizes = np.concatenate(self._sizes)
        stts = _full(b"stts", 0, 0, struct.pack(">III", 1, n, self._ticks))
        parts = [self.stsd, stts]
        if not self._all_sync:
            sync = np.concatenate(self._sync)
            parts.append(_full(b"stss", 0, 0, struct.pack(">I", sync.size), sync.astype(">u4").tobytes()))
        if self._has_offsets:
            offsets = np.concatenate(self._offsets)
            run_starts = np.concatenate(([0], np.flatnonzero(np.diff(offsets)) + 1))
            counts = np.diff(np.append(run_starts, n))
            table = np.stack([counts, offsets[run_starts]], axis=1)
            version = 1 if (offsets < 0).any() else 0
            data = table.astype(">i4" if version else ">u4").tobytes()
            parts.append(_full(b"ctts", version, 0, struct.pack(">I", len(table)), data))
        per_chunk = np.concatenate(self._per_chunk)
        chunk_starts = np.concatenate(([0], np.flatnonzero(np.diff(per_chunk)) + 1))
        stsc = np.stack([chunk_starts + 1, per_chunk[chunk_starts], np.ones_like(chunk_starts)], axis=1)
        parts.append(_full(b"stsc", 0, 0, struct.pack(">I", len(stsc)), stsc.astype(">u4").tobytes()))
        parts.append(_full(b"stsz", 0, 0, struct.pack(">II", 0, n), sizes.astype(">u4").tobytes()))
        chunks = np.concatenate(self._chunks)
        if int(chunks.max()) >= 1 << 32:
            parts.append(_full(b"co64", 0, 0, struct.pack(">I", chunks.size), chunks.astype(">u8").tobytes()))
        else:
            parts.append(_full(b"stco", 0, 0, struct.pack(">I", chunks.size), chunks.astype(">u4").tobytes()))
        return _box(b"stbl", *parts)


__all__ = ["JoinedMp4", "Track", "copy_range", "read_track"]

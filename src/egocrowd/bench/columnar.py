"""Columnar reading of JSONL logs: the fast twin of :func:`~egocrowd.bench.digest.digest_session`.

The log is read in blocks of whole lines (memory: one block plus the session that straddles it),
each block parsed by pyarrow's C++ JSON reader into typed columns (one table per event type, each
with that type's fields, when every line names its type first as the writer writes it; else one
table with every field), checked with vectorised versions of the schema's rules and reduced to the
same :class:`SessionDigest` objects, mostly with numpy.
Per-line Python work is left only for the rare events whose meaning depends on order
(misinterpretations and their recoveries, subtask ends that name no person).

Anything this reader does not handle exactly as the line-by-line reader does (a ``null`` literal,
a blank line, a chain step without an index, a value of an unexpected JSON type, an unknown event
type, a line that is not JSON...) hands the rest of the file, from the first session not yet
returned, to the line-by-line reader, which then raises, warns or reads it exactly as before.
"""

from __future__ import annotations

import gc
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as _pa
import pyarrow.compute as _pc
import pyarrow.json as _pj

from egocrowd.bench import schema as S
from egocrowd.bench.digest import (
    HEAD_FIELDS,
    NO_PERSON,
    TABLE_SESSIONS,
    SessionDigest,
    SessionTable,
    Tally,
    digest_session,
)
from egocrowd.bench.limits import MAX_CHAIN_LENGTH, MAX_EVENTS_PER_SESSION, MAX_LINE_BYTES, MAX_SECONDS
from egocrowd.errors import InvalidInput

# pyarrow's stubs type many compute functions too narrowly for ChunkedArray arguments
pa: Any = _pa
pc: Any = _pc
pj: Any = _pj

BLOCK_BYTES = 8 << 20  # bytes read per block (its line types are parsed on _parser_pool at once)
# one arrow parse per thread (see _parser_pool); a block's lines of one type fit in one arrow block
_READ_OPTIONS = pj.ReadOptions(use_threads=False, block_size=BLOCK_BYTES * 2)
MAX_CARRY_BYTES = 256 << 20  # a session longer than this is read line by line (bounded memory)

# Arrow's buffers for the blocks come from the C library's allocator, not pyarrow's default
# (mimalloc): mimalloc gives each block fresh huge pages to zero and hands them back soon after, so
# a read of 1M events spent 0.2–0.45 s in the kernel and peaked 130 MB higher (0.1–0.14 s here).
_POOL = pa.system_memory_pool()

# our writer never writes null (it drops None); arrow cannot tell null from absent, Python can
_NULL = re.compile(rb"[:\[,]\s*null\b")
_NULL_WORD = re.compile(rb"null")  # found first: a literal search in re is faster than ``in`` for this word


class _Fallback(Exception):
    """This block needs the line-by-line reader."""


def _schemas() -> Any:
    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    events = pa.schema(
        [
            ("type", s),
            ("t", f),
            ("chain", s),
            ("person", s),
            ("id", s),
            ("length", i),
            ("subtask", s),
            ("outcome", s),
            ("progress", f),
            ("index", i),
            ("instruction", s),
            ("source", s),
            ("misinterpretation", s),
            ("reason", s),
            ("duration", f),
            ("instructions", pa.list_(s)),
            ("detected", b),
            ("resolution", s),
            ("expected", s),
            ("correct", b),
            ("needed", b),
            ("kind", s),
            # read only to check their JSON types as the line reader does (absent: a null column)
            ("text", s),
            ("priority", i),
            ("role", s),
            ("tasks", pa.list_(s)),
            ("steps", i),
            ("detail", s),
            ("persons", pa.list_(s)),
            ("conflict", s),
            ("severity", s),
            ("separation_m", f),
            ("object", s),
        ]
    )
    return events


_TYPES = ["session", *S.EVENT_TYPES]
(SESSION, INSTR, CHAIN_START, SUB_START, SUB_END, MIS, REC, INTERV, CONFLICT, CLAR, SAFETY, ENV, END) = range(13)
assert _TYPES[SUB_END] == "subtask_end" and _TYPES[END] == "session_end" and len(_TYPES) == 13


def digest_jsonl(
    path: Path, *, strict: bool = True, on_progress: Callable[[int], None] | None = None
) -> Iterator[SessionDigest]:
    """Digests of a JSONL(.gz) log, one per session, in file order (as :func:`digest_log`)."""
    for table in tables_jsonl(path, strict=strict, on_progress=on_progress):
        yield from table


def tables_jsonl(
    path: Path, *, strict: bool = True, on_progress: Callable[[int], None] | None = None
) -> Iterator[SessionTable]:
    """The sessions of a JSONL(.gz) log as tables of digests (a block's sessions each), in file order.

    Blocks are in flight on two worker threads: while this thread reduces one block (mostly numpy),
    a worker parses the next (arrow's C++ parser, which releases the GIL), and as soon as that one's
    lines and types are scanned, which says where its last complete session ends, the block after
    it is read and scanned on the other worker.
    """
    with S.open_log(path) as (raw, fh), ThreadPoolExecutor(max_workers=2) as pool:
        reported = raw.tell()
        carry = b""  # lines from the first session header not yet digested
        line_no = 1  # line number of carry's first line
        want = BLOCK_BYTES

        def read() -> tuple[memoryview, memoryview, bool, Future[_Parsed] | None, Future[_Scan] | None]:
            """The next buffer (carry + what was read), its block of whole lines, eof, and the
            block's parse started in a worker, with its scan (None: the line reader must take over).
            Read into one fresh buffer after the carry, and cut as views of it: an 8 MB block is
            copied once, by the kernel, not again by Python (concatenating, slicing)."""
            nonlocal carry, want
            while True:
                room = bytearray(len(carry) + want)
                room[: len(carry)] = carry
                with S.reading(path):
                    got = fh.readinto(memoryview(room)[len(carry) :])
                eof = not got
                size = len(carry) + got
                buf = memoryview(room)[:size]
                cut = room.rfind(b"\n", 0, size) + 1
                if not eof and cut == 0 and size <= MAX_LINE_BYTES:  # one line longer than the block
                    carry, want = bytes(buf), want * 2
                    continue
                block = buf[:cut] if not eof and cut else buf
                if cut == 0 and len(buf) > MAX_LINE_BYTES:
                    return buf, block, eof, None, None  # the line reader says which line is too long
                if not block:
                    return buf, block, eof, None, None
                scanned: Future[_Scan] = Future()
                return buf, block, eof, pool.submit(_scan_then_parse, block, eof, scanned), scanned

        buf, block, eof, job, scanned = read()
        while block:
            parsed: _Parsed | None = None
            scan: _Scan | None = None
            if job is not None and scanned is not None:
                try:
                    scan = scanned.result()
                    if scan.used is None:  # read whole: its sessions' end is known once parsed
                        parsed = job.result()
                except _Fallback:
                    scan = None
            nxt = None  # the next block, read and in flight while this one is reduced
            table: SessionTable | None = None
            used = scan.used if scan is not None and scan.used is not None else parsed.used if parsed else None
            rows = scan.n_rows if scan is not None and scan.code is not None else parsed.cols.n_rows if parsed else 0
            too_long = used == 0 and len(buf) > MAX_CARRY_BYTES
            if used is not None and not too_long:
                if not eof:
                    if used:
                        line_no_next = line_no + rows  # one row per line
                        want = BLOCK_BYTES
                    else:  # one session fills the block: read more before parsing again
                        line_no_next = line_no
                        want *= 2
                    carry = bytes(buf[used:])
                    nxt = read()
                try:
                    if parsed is None:
                        assert job is not None
                        parsed = job.result()
                    table = _finish(parsed)
                except _Fallback:
                    used = None
            if used is None or too_long:
                # the rest of the file line by line, from the first session not yet returned
                if on_progress is not None:
                    on_progress(raw.tell() - reported)
                ahead = nxt[0][len(carry) :] if nxt is not None else b""  # read after buf
                lines = _lines((buf, ahead), fh, path, line_no)
                dicts = S.decode_lines(lines, path, first_line=line_no, tell=raw.tell, on_progress=on_progress)
                sessions = S.group_sessions(S.typed_lines(dicts, path, strict=strict))
                digests = (digest_session(session, events) for session, events in sessions)  # each in turn
                while chunk := list(itertools.islice(digests, TABLE_SESSIONS)):
                    yield SessionTable.from_digests(chunk)
                return
            if table is not None and len(table):
                yield table
            if on_progress is not None:
                pos = raw.tell()
                on_progress(pos - reported)
                reported = pos
            if nxt is None:
                break
            line_no = line_no_next
            buf, block, eof, job, scanned = nxt


def _lines(read: tuple[memoryview | bytes, ...], fh: Any, path: Path, first_line: int) -> Iterator[bytes]:
    """The lines of the buffers already ``read`` (in file order) and then of ``fh``, which goes on
    where they stop, maybe mid-line; split at b"\n" only, as iterating a file does. Each line is
    copied out of its buffer when its turn comes: no copy of the buffers themselves."""
    partial = b""
    n = 0
    for piece in read:
        at = 0
        for nl in np.flatnonzero(np.frombuffer(piece, dtype=np.uint8) == 10).tolist():
            yield partial + bytes(piece[at : nl + 1]) if partial else bytes(piece[at : nl + 1])
            partial, n, at = b"", n + 1, nl + 1
        if at < len(piece):
            partial += bytes(piece[at:])
    if partial:
        if len(partial) <= MAX_LINE_BYTES:
            with S.reading(path):
                partial += fh.readline(MAX_LINE_BYTES + 1 - len(partial))
        yield partial  # a line over the limit is refused by decode_lines
        n += 1
    yield from S.bounded_lines(fh, path, first_line=first_line + n)


@dataclass
class _Parsed:
    """A parsed block: the rows of its complete sessions and how many bytes they span (the rest is
    the start of a session that goes on in the next block, unless it was the last block)."""

    cols: _Columns
    code: np.ndarray
    heads: np.ndarray
    header_lines: list[bytes]
    used: int  # bytes (lines: cols.n_rows)
    header_table: Any = None  # the headers read by arrow, when every one could be (else None)


def _finish(parsed: _Parsed) -> SessionTable | None:
    if not parsed.heads.size:
        return None
    with _no_cycle_collection():
        headers = _arrow_headers(parsed.header_table) if parsed.header_table is not None else None
        return _reduce(parsed.cols, parsed.code, parsed.heads, headers or _headers(parsed.header_lines))


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cycle collector paused while a block becomes a table: it makes no cycles, but its
    small objects (people's dicts, lists of names, arrow's Python wrappers) set off collections that
    walk everything made before. Never across a ``yield``: the caller's code runs as usual."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class _Scan:
    """A block's lines found and checked, and, when every line names its type first, their types
    and the bytes its complete sessions span (``used``; None until the block is parsed whole)."""

    block: memoryview | bytes  # a view of the buffer read (bytes in tests)
    starts: np.ndarray
    ends: np.ndarray
    code: np.ndarray | None = None
    n_rows: int = 0
    heads: np.ndarray | None = None
    used: int | None = None


def _scan_block(block: memoryview | bytes, *, last: bool) -> _Scan:
    """Find and check ``block``'s lines and their types (cheap next to parsing them: the next block
    is read as soon as this says where this one's sessions end)."""
    if _NULL_WORD.search(block) and _NULL.search(block):
        raise _Fallback
    raw = np.frombuffer(block, dtype=np.uint8)
    if raw.size and raw.max() >= 0x80:
        try:
            str(block, "utf-8")  # arrow checks only the fields it keeps; the line reader, every byte
        except UnicodeDecodeError:
            raise _Fallback from None
    nl = np.flatnonzero(raw == 10)
    starts = np.concatenate([[0], nl + 1])
    if starts[-1] == len(block):
        starts = starts[:-1]
    # checked before arrow sees the bytes: pyarrow 26 crashes the process on a block that starts
    # with a bare null (found by tests/bench/test_fuzz_readers.py)
    if (raw[starts] != ord("{")).any():
        raise _Fallback  # blank, indented or non-object lines
    if np.diff(starts, append=len(block)).max() > MAX_LINE_BYTES:
        raise _Fallback
    scan = _Scan(block, starts, np.append(starts[1:], len(block)))
    code = _line_types(block, raw, starts)
    if code is not None:
        scan.n_rows, scan.heads, scan.used = _complete_sessions(code, starts, len(block), last=last)
        scan.code = code[: scan.n_rows]
    return scan


def _parse_scanned(scan: _Scan, *, last: bool) -> _Parsed:
    """Parse a scanned block: by line type when its types are known, else whole."""
    if scan.code is not None:
        return _parse_by_type(scan)
    block, starts, ends = scan.block, scan.starts, scan.ends
    try:
        tab = pj.read_json(
            pa.py_buffer(block),
            parse_options=pj.ParseOptions(explicit_schema=_schemas(), unexpected_field_behavior="ignore"),
            memory_pool=_POOL,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _Fallback from None
    if tab.num_rows != starts.size:
        raise _Fallback  # two objects on a line: rows and lines no longer match
    code = pc.index_in(tab.column("type"), value_set=pa.array(_TYPES)).to_numpy(zero_copy_only=False)
    if np.isnan(code).any() if code.dtype.kind == "f" else False:
        raise _Fallback  # unknown or missing type: raised (or skipped) line by line
    code = code.astype(np.int8)
    n_rows, heads, used = _complete_sessions(code, starts, len(block), last=last)
    tab, code = tab.slice(0, n_rows), code[:n_rows]
    return _Parsed(_Whole(tab), code, heads, [bytes(block[starts[h] : ends[h]]) for h in heads], used)


def _scan_then_parse(block: memoryview, last: bool, scanned: Future[_Scan]) -> _Parsed:
    """Scan and parse ``block``, telling ``scanned`` the scan as soon as it is done (runs in a worker)."""
    try:
        scan = _scan_block(block, last=last)
    except BaseException as exc:
        scanned.set_exception(exc)
        raise
    scanned.set_result(scan)
    return _parse_scanned(scan, last=last)


def _complete_sessions(code: np.ndarray, starts: np.ndarray, size: int, *, last: bool) -> tuple[int, np.ndarray, int]:
    """Lines and bytes of the block's complete sessions, and their header lines (the last session
    may go on in the next block, unless this is the last one)."""
    heads = np.flatnonzero(code == SESSION)
    if heads.size == 0 or heads[0] != 0:
        raise _Fallback  # only possible at the start of a file: "must start with a session header"
    if last:
        return code.size, heads, size
    return int(heads[-1]), heads[:-1], int(starts[heads[-1]])  # used == 0: one session fills the block


# ------------------------------------------------------------------------------- by line type
#
# pyarrow's JSON reader spends most of its time filling columns, one value or null per row and
# column: with the 33 fields of every event type in one schema, a block costs about four times what
# its tokenising does. Lines of one type have at most 11 of those fields, so when every line starts
# by naming its type (as the writer writes it) the block is cut into one buffer per type, each read
# with its type's own fields. That also checks exactly what the line reader checks: the fields of
# the line's type (any other field goes to ``extra`` unchecked there, and is ignored here).

_TYPE_PREFIX = np.frombuffer(b'{"type":', dtype=np.uint8)
_NAME_WINDOW = max(len(t) for t in _TYPES) + 1  # the name and its closing quote


def _type_schemas() -> dict[int, Any]:
    from dataclasses import fields

    every = _schemas()
    out = {}
    for k, name in enumerate(_TYPES):
        if k == SESSION:
            continue  # headers are read by the schema's Session class
        own = {f.name for f in fields(S.EVENT_TYPES[name])}
        out[k] = pa.schema([every.field("type"), *(f for f in every if f.name in own)])
    return out


_BY_TYPE = _type_schemas()
_FIELD_TYPES = {f.name: f.type for f in _schemas()}


def _line_types(block: memoryview | bytes, raw: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """Type code of every line from its first bytes (``{"type":"NAME"`` or ``{"type": "NAME"``),
    or None when some line does not start that way (the block is then read whole)."""
    if starts.size == 0:
        return None
    pad = len(_TYPE_PREFIX) + 2 + _NAME_WINDOW
    # a window of the first bytes of every line; the last lines' windows from a padded copy of the
    # block's end (b"\n" past it matches no name), not of the whole block
    head = np.empty((starts.size, pad), dtype=np.uint8)
    inside = starts + pad <= len(block)
    if inside.any():
        head[inside] = np.lib.stride_tricks.sliding_window_view(raw, pad)[starts[inside]]
    if not inside.all():
        end = starts[~inside]
        tail = np.frombuffer(bytes(block[end[0] :]) + b"\n" * pad, dtype=np.uint8)
        head[~inside] = np.lib.stride_tricks.sliding_window_view(tail, pad)[end - end[0]]
    if not (head[:, : len(_TYPE_PREFIX)] == _TYPE_PREFIX).all():
        return None
    space = head[:, 8] == ord(" ")
    if space.any():
        if not (head[space, 9] == ord('"')).all():
            return None
        head = np.where(space[:, None], head[:, 10 : 10 + _NAME_WINDOW], head[:, 9 : 9 + _NAME_WINDOW])
    else:
        if not (head[:, 8] == ord('"')).all():
            return None
        head = head[:, 9 : 9 + _NAME_WINDOW]
    # a candidate type from the name's length (names hold no quote) and second byte, then the whole
    # name checked against it
    length = np.argmax(head == ord('"'), axis=1)
    code = _TYPE_KEYS[length * 256 + head[:, 1]]
    for k, want in enumerate(_TYPE_NAMES):
        rows = np.flatnonzero(code == k)
        if rows.size and not (head[rows, : want.size] == want).all():
            return None  # a name no type has (or a type's name followed by more)
    return None if (code < 0).any() else code


_TYPE_NAMES = [np.frombuffer(name.encode() + b'"', dtype=np.uint8) for name in _TYPES]
_TYPE_KEYS = np.full(_NAME_WINDOW * 256, -1, dtype=np.int8)
for _k, _want in enumerate(_TYPE_NAMES):
    _key = (_want.size - 1) * 256 + int(_want[1])
    assert _TYPE_KEYS[_key] == -1, "two types share a key: pick another byte"
    _TYPE_KEYS[_key] = _k


def _parse_by_type(scan: _Scan) -> _Parsed:
    block, starts, ends, code, n_rows = scan.block, scan.starts, scan.ends, scan.code, scan.n_rows
    heads, used = scan.heads, scan.used
    assert code is not None and heads is not None and used is not None
    # the block's lines as one arrow array over the block's bytes (no copy): ``take`` then gathers a
    # type's lines into one buffer in C++ (a Python join of a million slices cost more than parsing)
    offsets = np.append(starts[:n_rows], ends[n_rows - 1] if n_rows else 0).astype(np.int64)
    lines = pa.Array.from_buffers(pa.large_binary(), n_rows, [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    jobs = []
    pool = _parser_pool()
    for k, schema in _BY_TYPE.items():
        rows = np.flatnonzero(code == k)
        if rows.size:
            jobs.append((k, rows.size, pool.submit(_read_lines, _gather(lines, rows), schema)))
    tables: dict[int, Any] = {}
    for k, n, job in jobs:
        tab = job.result()
        if tab is None:
            raise _Fallback  # among others, a key given twice (the line reader keeps the last)
        if tab.num_rows != n:
            raise _Fallback  # two objects on a line
        # every line starts with this type's name (_line_types) and arrow refuses a second "type"
        tables[k] = tab
    header_table = None
    if heads.size:
        try:  # any key the header schema lacks is refused: such headers are read in Python
            header_table = pj.read_json(
                _gather(lines, heads),
                parse_options=pj.ParseOptions(explicit_schema=_SESSION_SCHEMA, unexpected_field_behavior="error"),
                memory_pool=_POOL,
            )
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        if header_table is not None and header_table.num_rows != heads.size:
            header_table = None
    lines_of_heads = [bytes(block[starts[h] : ends[h]]) for h in heads.tolist()]
    return _Parsed(_ByType(tables, code), code, heads, lines_of_heads, used, header_table)


# Each type's lines are parsed on one of these threads, one arrow parse each (arrow's own threads
# cost more CPU for the same wall time on the few MB a type has in a block).
_parsers: tuple[int, ThreadPoolExecutor] | None = None


def _parser_pool() -> ThreadPoolExecutor:
    """This process's parser threads (a process forked from one that had them has none running)."""
    global _parsers
    if _parsers is None or _parsers[0] != os.getpid():
        workers = max(2, min(4, os.cpu_count() or 1))
        _parsers = (os.getpid(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="egocrowd-json"))
    return _parsers[1]


def _read_lines(buf: Any, schema: Any) -> Any:
    """Arrow's table of these JSON lines, or None when arrow refuses them."""
    try:
        return pj.read_json(
            buf,
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            read_options=_READ_OPTIONS,
            memory_pool=_POOL,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _gather(lines: Any, rows: np.ndarray) -> Any:
    """One buffer of these lines, in order (``lines``: a large_binary array of a block's lines)."""
    picked = pc.take(lines, pa.array(rows), memory_pool=_POOL)
    size = np.frombuffer(picked.buffers()[1], dtype=np.int64, count=picked.offset + rows.size + 1)[-1]
    return picked.buffers()[2].slice(0, int(size))


class _Columns:
    """The fields of a block's rows (one row per line, headers included), whatever the layout."""

    n_rows: int

    def take(self, name: str, rows: np.ndarray) -> Any:
        """A ChunkedArray of the field at these rows (null where absent)."""
        raise NotImplementedError

    def valid(self, name: str) -> np.ndarray:
        """Whether each row has the field."""
        raise NotImplementedError

    def floats(self, name: str) -> np.ndarray:
        """The field of every row as floats (NaN where absent)."""
        raise NotImplementedError


class _Whole(_Columns):
    """One table of every line, read with the fields of every type."""

    def __init__(self, tab: Any) -> None:
        self.tab = tab
        self.n_rows = tab.num_rows

    def take(self, name: str, rows: np.ndarray) -> Any:
        return pc.take(self.tab.column(name), pa.array(rows), memory_pool=_POOL)

    def valid(self, name: str) -> np.ndarray:
        return np.asarray(self.tab.column(name).is_valid().to_numpy(zero_copy_only=False), dtype=bool)

    def floats(self, name: str) -> np.ndarray:
        return np.asarray(self.tab.column(name).to_numpy(zero_copy_only=False), dtype=float)


class _ByType(_Columns):
    """One table per line type, each with that type's fields; rows keep their block numbers."""

    def __init__(self, tables: dict[int, Any], code: np.ndarray) -> None:
        self.tables = tables
        self.n_rows = code.size
        self.code = code
        self.rows_of = {k: np.flatnonzero(code == k) for k in tables}
        self.local = np.zeros(code.size, dtype=np.int64)  # a row's position in its type's table
        for rows in self.rows_of.values():
            self.local[rows] = np.arange(rows.size)

    def _column(self, k: int, name: str) -> Any:
        tab = self.tables.get(k)
        return tab.column(name) if tab is not None and name in tab.schema.names else None

    def _part(self, k: int, name: str, rows: np.ndarray) -> Any:
        col = self._column(k, name)
        if col is None:
            return pa.chunked_array([pa.nulls(rows.size, _FIELD_TYPES[name])])
        if rows.size == col.length() and np.array_equal(rows, self.rows_of[k]):
            return col  # all of the type's rows, in order: nothing to gather
        return pc.take(col, pa.array(self.local[rows]), memory_pool=_POOL)

    def take(self, name: str, rows: np.ndarray) -> Any:
        if rows.size == 0:
            return pa.chunked_array([], type=_FIELD_TYPES[name])
        kinds = self.code[rows]
        if (kinds == kinds[0]).all():
            return self._part(int(kinds[0]), name, rows)
        parts, where = [], []
        for k in np.unique(kinds).tolist():
            sel = np.flatnonzero(kinds == k)
            parts.extend(self._part(k, name, rows[sel]).chunks)
            where.append(sel)
        joined = pa.chunked_array(parts, type=_FIELD_TYPES[name])
        return pc.take(joined, pa.array(np.argsort(np.concatenate(where), kind="stable")), memory_pool=_POOL)

    def valid(self, name: str) -> np.ndarray:
        out = np.zeros(self.n_rows, dtype=bool)
        for k, rows in self.rows_of.items():
            col = self._column(k, name)
            if col is not None:
                out[rows] = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        return out

    def floats(self, name: str) -> np.ndarray:
        out = np.full(self.n_rows, np.nan)
        for k, rows in self.rows_of.items():
            col = self._column(k, name)
            if col is not None:
                out[rows] = np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)
        return out


def _headers(lines: list[bytes]) -> dict[str, list[Any]]:
    """Session header fields, through the schema's own Session class (one header per session: the
    Python decode costs little here and keeps every rule of the header exact)."""
    out: dict[str, list[Any]] = {f: [] for f in _HEADER_FIELDS}
    for line in lines:
        try:
            sess = S.from_dict(S._decode(line.decode("utf-8")))
        except (ValueError, InvalidInput):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _Fallback from None
        if not isinstance(sess, S.Session):
            raise _Fallback
        for f in ("session_id", "policy", "environment", "site", "source", "pair_key"):
            out[f].append(getattr(sess, f))
        out["deployment_day"].append(None if sess.deployment_day is None else float(sess.deployment_day))
        out["people"].append({p.id: p.role for p in sess.people})
    return out


# what a session's header gives its digest (the rest of its head comes from its last line)
_HEADER_FIELDS = tuple(f for f in HEAD_FIELDS if f != "end_reason")


def _session_schema() -> Any:
    """Every field of a session header but ``meta`` (any object) and ``extra``, typed as the schema's
    Session class types it."""
    from dataclasses import fields

    person = pa.struct([("id", pa.string()), ("role", pa.string()), ("priority", pa.int64())])
    arrow = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "list[Person]": pa.list_(person)}
    out = [("type", pa.string())]
    for f in fields(S.Session):
        if f.name not in ("meta", "extra"):
            out.append((f.name, arrow[str(f.type).removesuffix(" | None")]))
    return pa.schema(out)


_SESSION_SCHEMA = _session_schema()


def _arrow_headers(tab: Any) -> dict[str, list[Any]] | None:
    """Header fields from headers that arrow read with their exact types (an integer where a number
    must be an integer, strings where strings, no unknown key at any depth); the rules arrow does not
    check are checked here. None when some header breaks one of them: the Session class then reads
    the headers and says what is wrong (or the line reader does)."""
    cols = {name: tab.column(name) for name in tab.schema.names}
    for name in ("session_id", "policy", "environment"):
        if cols[name].null_count or not pc.all(pc.greater(pc.utf8_length(cols[name]), 0)).as_py():
            return None
    source = pc.fill_null(cols["source"], "sim")
    if not pc.all(pc.is_in(source, value_set=pa.array(list(S.SOURCES)))).as_py():
        return None
    day = cols["deployment_day"]
    if day.null_count < len(day) and not pc.all(pc.is_finite(pc.drop_null(day))).as_py():
        return None
    version = cols["format_version"]
    if version.null_count < len(version) and pc.max(version).as_py() > S.SCHEMA_VERSION:
        return None  # refused, with its own words, by the Session class
    people = cols["people"].combine_chunks()
    persons = pc.list_flatten(people)
    ids = pc.struct_field(persons, "id")
    if ids.null_count:
        return None
    # a person list per header: (id, role) pairs cut at the list offsets (an absent list: none)
    bounds = np.asarray(pc.list_value_length(people).fill_null(0)).cumsum().tolist()
    pairs = list(zip(ids.to_pylist(), pc.struct_field(persons, "role").to_pylist()))
    pair_key = [
        key if key is not None or proto is None or sd is None else f"{proto}:{sd}"
        for key, proto, sd in zip(*(cols[n].to_pylist() for n in ("pair_key", "protocol", "seed")))
    ]
    out = {f: cols[f].to_pylist() for f in ("session_id", "policy", "environment", "site", "deployment_day")}
    lo = [0, *bounds[:-1]]
    return {
        **out,
        "source": source.to_pylist(),
        "pair_key": pair_key,
        "people": [dict(pairs[a:b]) for a, b in zip(lo, bounds)],
    }


def _segments(keys: np.ndarray) -> np.ndarray:
    """Start positions of runs of equal values in a sorted array."""
    if keys.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))


def _tally(owner: np.ndarray, labels: list[Any]) -> Tally:
    """Items' labels counted per session (``owner``: each item's session, non-decreasing), each
    session's labels in the order they first appear, as counting line by line gives them."""
    if not labels:
        return Tally(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64))
    first = {x: i for i, x in enumerate(dict.fromkeys(labels))}
    names = np.array(list(first), dtype=object)
    m = len(names)
    key = owner.astype(np.int64) * m + np.fromiter(map(first.__getitem__, labels), dtype=np.int64, count=len(labels))
    pairs, at, count = np.unique(key, return_index=True, return_counts=True)
    order = np.argsort(at, kind="stable")  # sessions are contiguous: grouped by session, in line order
    pairs = pairs[order]
    return Tally(pairs // m, names[pairs % m], count[order].astype(np.int64))


def _reduce(cols: _Columns, code: np.ndarray, heads: np.ndarray, headers: dict[str, list[Any]]) -> SessionTable:
    n = heads.size
    sess_of_row = np.cumsum(code == SESSION) - 1
    is_ev = code != SESSION
    take = cols.take

    def nums(name: str, rows: np.ndarray) -> np.ndarray:
        return np.asarray(take(name, rows).to_numpy(zero_copy_only=False), dtype=float) if rows.size else np.zeros(0)

    def strs(name: str, rows: np.ndarray) -> list[Any]:
        return take(name, rows).to_pylist() if rows.size else []

    valid: dict[str, np.ndarray] = {}

    def present(name: str, rows: np.ndarray) -> np.ndarray:
        """Whether the field is there in these rows (from the validity bitmap: no values copied)."""
        if name not in valid:
            valid[name] = cols.valid(name)
        return valid[name][rows]

    def check_choice(name: str, rows: np.ndarray, choices: tuple[str, ...], *, optional: bool) -> None:
        if not rows.size:
            return
        c = take(name, rows)
        ok = pc.is_in(c, value_set=pa.array(list(choices)))  # null is not in the set
        if optional:
            ok = pc.or_(ok, pc.is_null(c))
        if not pc.all(ok).as_py():
            raise _Fallback

    def interned(name: str, rows: np.ndarray) -> np.ndarray:
        """Object array of the column's strings (one interned str per distinct value; null → "")."""
        if not rows.size:
            return np.zeros(0, dtype=object)
        a = take(name, rows).combine_chunks().fill_null("").dictionary_encode()
        vals = np.array([sys.intern(x) for x in a.dictionary.to_pylist()] + [""], dtype=object)
        return vals[np.asarray(a.indices)]

    rows_of = {k: np.flatnonzero(code == k) for k in range(1, 13)}
    t_all = cols.floats("t")
    t_ev = t_all[is_ev]
    if not ((t_ev >= 0) & (t_ev <= MAX_SECONDS)).all():
        raise _Fallback  # missing, negative, huge or non-finite t (NaN compares false): raised line by line
    ev_sess = sess_of_row[is_ev]
    events = np.bincount(ev_sess, minlength=n)
    if events.max(initial=0) > MAX_EVENTS_PER_SESSION:
        raise _Fallback
    for name in ("progress", "duration", "separation_m"):  # a NaN or Infinity literal, not a null
        v = cols.floats(name)
        if not np.isfinite(v[cols.valid(name)]).all():
            raise _Fallback
    last_t = np.zeros(n)
    np.maximum.at(last_t, ev_sess, t_ev)

    # required fields (absent = null here, as no null literal got this far) and allowed values
    for k, fields in (
        (INSTR, ("id",)),
        (CHAIN_START, ("chain", "length")),
        (SUB_START, ("subtask",)),
        (SUB_END, ("subtask", "outcome")),
        (MIS, ("id",)),
        (INTERV, ("reason",)),
        (CONFLICT, ("id",)),
        (SAFETY, ("kind",)),
        (ENV, ("kind",)),
    ):
        rows = rows_of[k]
        if rows.size and not all(present(f, rows).all() for f in fields):
            raise _Fallback
    check_choice("outcome", rows_of[SUB_END], S.OUTCOMES, optional=False)
    check_choice("source", rows_of[MIS], S.MISINTERPRETATION_SOURCES, optional=True)
    check_choice("resolution", rows_of[CONFLICT], S.RESOLUTIONS, optional=True)
    check_choice("expected", rows_of[CONFLICT], S.RESOLUTIONS, optional=True)
    check_choice("kind", rows_of[SAFETY], S.SAFETY_KINDS, optional=False)
    check_choice("kind", rows_of[ENV], S.ENV_CHANGE_KINDS, optional=False)
    check_choice("reason", rows_of[END], S.END_REASONS, optional=True)
    lengths = nums("length", rows_of[CHAIN_START])
    if ((lengths < 1) | (lengths > MAX_CHAIN_LENGTH)).any():
        raise _Fallback
    start_index = nums("index", rows_of[SUB_START])
    if ((start_index < 1) | (start_index > MAX_CHAIN_LENGTH)).any():  # NaN (no index) passes
        raise _Fallback

    # subtask outcomes
    se = rows_of[SUB_END]
    se_sess = sess_of_row[se]
    outcome = take("outcome", se)
    ok: Any = np.asarray(pc.equal(outcome, "success").combine_chunks(), dtype=bool).astype(np.int32)
    prog: Any = nums("progress", se)
    missing = np.isnan(prog)
    if missing.any() and pc.any(pc.equal(outcome.take(pa.array(np.flatnonzero(missing))), "partial")).as_py():
        raise _Fallback  # partial needs progress
    prog = np.where(missing, ok.astype(float), prog)
    if not ((prog >= 0) & (prog <= 1)).all():
        raise _Fallback
    index = nums("index", se)
    has_index = ~np.isnan(index)
    if ((index[has_index] < 1) | (index[has_index] > MAX_CHAIN_LENGTH)).any():
        raise _Fallback
    se_chain = present("chain", se)
    if (se_chain & ~has_index).any():
        raise _Fallback  # the implicit next index depends on order: line by line
    person = interned("person", se)
    task = interned("subtask", se)
    need = np.flatnonzero(person == "").tolist()
    if need:
        _fill_persons(person, need, se, se_sess, cols, rows_of[INSTR], sess_of_row)

    # chains: k = successes before the first failure, in order of first mention
    ch_rows = np.concatenate([rows_of[CHAIN_START], rows_of[SUB_START], se])
    ch_rows = ch_rows[present("chain", ch_rows)]
    ch_rows.sort()
    kk: Any = np.zeros(0, dtype=np.int64)
    lens: Any = kk
    chain_sess = kk
    if ch_rows.size:
        names = take("chain", ch_rows).combine_chunks().dictionary_encode()
        cid = np.asarray(names.indices).astype(np.int64)
        m = len(names.dictionary)
        key = sess_of_row[ch_rows] * m + cid
        uk, first = np.unique(key, return_index=True)
        order = np.argsort(first, kind="stable")
        uk = uk[order]  # chains in order of first mention (sessions are contiguous, so grouped)
        declared = np.zeros(uk.size, dtype=np.int64)
        is_cs = code[ch_rows] == CHAIN_START
        if is_cs.any():
            # the last declaration of a chain wins, as in the dict of digest_session
            cs_key, last = np.unique(key[is_cs][::-1], return_index=True)
            cs_len = nums("length", ch_rows[is_cs][::-1][last]).astype(np.int64)
            declared[_lookup(uk, cs_key)] = cs_len
            # no index beyond its chain's declared length (as _SessionRules, line by line)
            idx = nums("index", ch_rows[~is_cs])
            has = ~np.isnan(idx)
            if has.any():
                highest = np.zeros(uk.size, dtype=np.int64)
                np.maximum.at(highest, _lookup(uk, key[~is_cs][has]), idx[has].astype(np.int64))
                if ((declared > 0) & (highest > declared)).any():
                    raise _Fallback
        kk = np.zeros(uk.size, dtype=np.int64)
        maxi = np.zeros(uk.size, dtype=np.int64)
        is_se = code[ch_rows] == SUB_END
        if is_se.any():
            se_pos = np.searchsorted(se, ch_rows[is_se])
            e_key, e_idx, e_ok = key[is_se], index[se_pos].astype(np.int64), ok[se_pos]
            o = np.lexsort((np.arange(e_key.size), e_idx, e_key))  # first outcome per (chain, index)
            e_key, e_idx, e_ok = e_key[o], e_idx[o], e_ok[o]
            keep = np.concatenate([[True], (e_key[1:] != e_key[:-1]) | (e_idx[1:] != e_idx[:-1])])
            e_key, e_idx, e_ok = e_key[keep], e_idx[keep], e_ok[keep]
            g = _segments(e_key)
            size = np.diff(np.append(g, e_key.size))
            pos = np.arange(e_key.size) - np.repeat(g, size)
            fail = np.where((e_idx == pos + 1) & (e_ok == 1), np.iinfo(np.int64).max, pos)
            slot = _lookup(uk, e_key[g])
            kk[slot] = np.minimum(np.minimum.reduceat(fail, g), size)
            maxi[slot] = e_idx[g + size - 1]
        lens = np.maximum(declared, maxi)
        chain_sess = uk // m  # chains of a session are contiguous (in order of first mention)

    # misinterpretations and recoveries: matched in order, line by line (few lines)
    mis = _misinterpretations(rows_of[MIS], rows_of[REC], sess_of_row, t_all, cols, last_t)

    # conflicts
    cf = rows_of[CONFLICT]
    cf_sess = sess_of_row[cf]
    detected = strs("detected", cf)
    resolution = strs("resolution", cf)
    expected = strs("expected", cf)
    correct = strs("correct", cf)
    corr = [
        c if c is not None else (r == e and r != "resolved_wrongly") if e is not None else None
        for c, r, e in zip(correct, resolution, expected)
    ]
    conflicts = np.bincount(cf_sess, minlength=n)
    c_det = np.bincount(cf_sess, weights=[bool(x) for x in detected], minlength=n) if cf.size else np.zeros(n)
    c_cor = np.bincount(cf_sess, weights=[bool(x) for x in corr], minlength=n) if cf.size else np.zeros(n)
    c_cla = (
        np.bincount(cf_sess, weights=[r == "asked_clarification" for r in resolution], minlength=n)
        if cf.size
        else np.zeros(n)
    )
    resolutions = _tally(cf_sess, [r or "none" for r in resolution])
    in_conflict = np.zeros(n, dtype=np.int64)
    if cf.size:
        lists = take("instructions", cf).combine_chunks()
        flat = lists.flatten()
        if len(flat):
            parent = np.asarray(pc.list_parent_indices(lists))
            ids = flat.dictionary_encode()
            m = len(ids.dictionary)
            pairs = np.unique(cf_sess[parent] * m + np.asarray(ids.indices))
            in_conflict = np.bincount(pairs // m, minlength=n)

    cl = rows_of[CLAR]
    needed = np.array([x is not False for x in strs("needed", cl)], dtype=bool)
    cl_sess = sess_of_row[cl]
    n_needed = np.bincount(cl_sess[needed], minlength=n)
    n_unneeded = np.bincount(cl_sess[~needed], minlength=n)

    iv = rows_of[INTERV]
    iv_sess = sess_of_row[iv]
    dur = nums("duration", iv)
    dur = np.where(np.isnan(dur), 0.0, dur)
    if not ((dur >= 0) & np.isfinite(dur)).all():
        raise _Fallback
    n_iv = np.bincount(iv_sess, minlength=n)
    iv_time = _segment_sums(iv_sess, dur, n)
    reasons = _tally(iv_sess, strs("reason", iv))
    safety = _tally(sess_of_row[rows_of[SAFETY]], strs("kind", rows_of[SAFETY]))
    env = _tally(sess_of_row[rows_of[ENV]], strs("kind", rows_of[ENV]))
    instructions = np.bincount(sess_of_row[rows_of[INSTR]], minlength=n)
    end_reason: list[str | None] = [None] * n
    for s, r in zip(sess_of_row[rows_of[END]].tolist(), strs("reason", rows_of[END])):
        end_reason[s] = r if r is not None else "completed"

    return SessionTable(
        heads={**headers, "end_reason": end_reason},
        duration=last_t,
        intervention_time=np.asarray(iv_time, dtype=np.float64),
        counts={
            "conflicts": conflicts,
            "conflicts_detected": c_det.astype(np.int64),
            "conflicts_correct": c_cor.astype(np.int64),
            "conflicts_clarified": c_cla.astype(np.int64),
            "clarifications_needed": n_needed,
            "clarifications_unneeded": n_unneeded,
            "instructions": instructions,
            "instructions_in_conflict": in_conflict,
            "interventions": n_iv,
            "events": events,
        },
        items={
            "out_sess": se_sess,
            "out_t": t_all[se],
            "out_success": ok,
            "out_progress": prog,
            "out_person": person,
            "out_task": task,
            "chain_sess": chain_sess,
            "chain_k": kk,
            "chain_len": lens,
            "mis_sess": mis.sess,
            "mis_time": mis.time,
            "mis_recovered": mis.recovered,
            "mis_injected": mis.injected,
        },
        tallies={"resolutions": resolutions, "intervention_reasons": reasons, "safety": safety, "env_changes": env},
    )


def _lookup(unique: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Positions of ``keys`` in an array of unique keys (in any order)."""
    srt = np.argsort(unique, kind="stable")
    return srt[np.searchsorted(unique[srt], keys)]


def _segment_sums(owner: np.ndarray, values: np.ndarray, n: int) -> list[float]:
    """Per-session sums added left to right, as the line-by-line reader adds them (same float)."""
    out = [0.0] * n
    for o, v in zip(owner.tolist(), values.tolist()):
        out[o] += v
    return out


def _fill_persons(
    person: np.ndarray,
    need: list[int],
    se: np.ndarray,
    se_sess: np.ndarray,
    cols: _Columns,
    instr_rows: np.ndarray,
    sess_of_row: np.ndarray,
) -> None:
    """Subtask ends without a person: the person of the instruction they name, as known at that line."""
    sessions = set(se_sess[need].tolist())
    ir = instr_rows[np.isin(sess_of_row[instr_rows], list(sessions))]
    ids = cols.take("id", ir).to_pylist() if ir.size else []
    who = cols.take("person", ir).to_pylist() if ir.size else []
    rows = se[need]
    instr = cols.take("instruction", rows).to_pylist()
    # walk both kinds of line in file order, one session at a time
    marks = sorted(
        [(int(r), 0, j) for j, r in enumerate(ir.tolist())] + [(int(r), 1, j) for j, r in enumerate(rows.tolist())]
    )
    known: dict[str, str] = {}
    cur = -1
    for r, kind, j in marks:
        s = int(sess_of_row[r])
        if s != cur:
            cur, known = s, {}
        if kind == 0:
            if who[j]:
                known[ids[j]] = who[j]
        else:
            person[need[j]] = sys.intern((known.get(instr[j]) if instr[j] else None) or NO_PERSON)


def _paired_misinterpretations(
    mis_rows: np.ndarray,
    rec_rows: np.ndarray,
    sess_of_row: np.ndarray,
    t_all: np.ndarray,
    cols: _Columns,
    duration: np.ndarray,
) -> _Mis | None:
    """The usual case in columns: every recovery names its misinterpretation, ids are unique within a
    session and each is recovered at most once, after it happened. The items as the walk in line
    order makes them (recovered ones in the order of their recoveries, then the open ones in theirs);
    None when the walk is needed."""
    refs = cols.take("misinterpretation", rec_rows)
    if refs.null_count:
        return None  # "the oldest open one": depends on order
    names = pa.chunked_array([*cols.take("id", mis_rows).chunks, *refs.chunks], type=pa.string())
    names = names.combine_chunks().dictionary_encode()
    m = len(names.dictionary)
    code = np.asarray(names.indices).astype(np.int64)
    mis_key = sess_of_row[mis_rows] * m + code[: mis_rows.size]
    rec_key = sess_of_row[rec_rows] * m + code[mis_rows.size :]
    order = np.argsort(mis_key, kind="stable")
    sorted_keys = mis_key[order]
    if (sorted_keys[1:] == sorted_keys[:-1]).any():
        return None  # an id used twice in a session: re-opened, in order
    pos = np.minimum(np.searchsorted(sorted_keys, rec_key), sorted_keys.size - 1)
    hit = sorted_keys[pos] == rec_key
    which = order[pos[hit]]  # the misinterpretation each matching recovery closes
    rec_hit = rec_rows[hit]
    if np.unique(which).size != which.size or (mis_rows[which] > rec_hit).any():
        return None  # recovered twice, or a recovery before its misinterpretation
    t0 = t_all[mis_rows]
    injected = np.asarray(
        pc.equal(cols.take("source", mis_rows), "injected").fill_null(False).combine_chunks(), dtype=np.int32
    )
    open_ = np.ones(mis_rows.size, dtype=bool)
    open_[which] = False
    rest = np.flatnonzero(open_)
    sess = np.concatenate([sess_of_row[rec_hit], sess_of_row[mis_rows[rest]]])
    time = np.maximum(
        np.concatenate([t_all[rec_hit] - t0[which], duration[sess_of_row[mis_rows[rest]]] - t0[rest]]), 0.0
    )
    recovered = np.concatenate([np.ones(which.size, dtype=np.int32), np.zeros(rest.size, dtype=np.int32)])
    inj = np.concatenate([injected[which], injected[rest]])
    # per session: recovered first, each group in line order (recoveries' rows, then the open ones')
    line = np.concatenate([rec_hit, mis_rows[rest]])
    o = np.lexsort((line, 1 - recovered, sess))
    return _Mis(sess[o], time[o], recovered[o], inj[o])


def _misinterpretations(
    mis_rows: np.ndarray,
    rec_rows: np.ndarray,
    sess_of_row: np.ndarray,
    t_all: np.ndarray,
    cols: _Columns,
    duration: np.ndarray,
) -> _Mis:
    if not mis_rows.size:
        return _Mis(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32))
    paired = _paired_misinterpretations(mis_rows, rec_rows, sess_of_row, t_all, cols, duration)
    if paired is not None:
        return paired
    rows = np.concatenate([mis_rows, rec_rows])
    rows.sort()
    ids = cols.take("id", rows).to_pylist()
    refs = cols.take("misinterpretation", rows).to_pylist()
    src = cols.take("source", rows).to_pylist()
    is_mis = np.isin(rows, mis_rows).tolist()
    sess = sess_of_row[rows].tolist()
    ts = t_all[rows].tolist()
    owner: list[int] = []
    tm: list[float] = []
    rc: list[int] = []
    inj: list[int] = []
    i = 0
    while i < len(rows):
        s = sess[i]
        open_mis: dict[str, tuple[float, int]] = {}
        while i < len(rows) and sess[i] == s:
            if is_mis[i]:
                open_mis[ids[i]] = (ts[i], 1 if src[i] == "injected" else 0)
            else:
                key = refs[i]
                if key is None and open_mis:
                    key = next(iter(open_mis))
                if key is not None and key in open_mis:
                    t0, j = open_mis.pop(key)
                    owner.append(s)
                    tm.append(max(ts[i] - t0, 0.0))
                    rc.append(1)
                    inj.append(j)
            i += 1
        end = float(duration[s])
        for t0, j in open_mis.values():
            owner.append(s)
            tm.append(max(end - t0, 0.0))
            rc.append(0)
            inj.append(j)
    return _Mis(
        np.asarray(owner, dtype=np.int64),
        np.asarray(tm, dtype=np.float64),
        np.asarray(rc, dtype=np.int32),
        np.asarray(inj, dtype=np.int32),
    )


class _Mis(NamedTuple):
    """Misinterpretations as items: session, time to recovery (or to the end), recovered, injected."""

    sess: np.ndarray
    time: np.ndarray
    recovered: np.ndarray
    injected: np.ndarray

"""Checking an audit log: every link of the chain and every signed checkpoint, in constant memory.

One walk serves both sources: the database (rows in id order, a chunk at a time) and an export
file (line by line). It stops at the first broken link and says what is wrong there:

- ``inserted``: a row that is not part of the chain, or a second event claiming a place;
- ``edited``: an event whose content no longer matches its hash, or whose hash was recomputed
  (the next event names another hash as its predecessor; that predecessor is the edited one);
- ``deleted``: events missing from the sequence (or after the end, where a checkpoint proves the
  log was longer);
- ``reordered``: an event stored out of its place (found further on);
- ``rewritten``: a chain rebuilt with fresh hashes, which a signed checkpoint no longer matches;
- ``bad_signature`` / ``unknown_key``: a checkpoint whose signature fails, or signed by a key
  that is not among the trusted ones.

Events after the last checkpoint are checked link by link, but nothing signed vouches for them
yet: the report says how many.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, getitem, le
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd.audit.encoding import BODY_KEYS, FORMAT, GENESIS, body_hash, checkpoint_message, event_body
from egocrowd.db.models import AuditCheckpoint, AuditEvent
from egocrowd.errors import InvalidInput


@dataclass(frozen=True)
class Problem:
    kind: str
    where: str  # "id 42" (database row) or "line 17" (export file)
    seq: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.kind} at {self.where}: {self.message}"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    reason: str
    key_id: str
    signature: str
    where: str

    def message(self) -> bytes:
        return checkpoint_message(seq=self.seq, hash=self.hash, at=self.at, reason=self.reason, key_id=self.key_id)


@dataclass
class Report:
    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    checkpoints: int = 0
    #: the highest seq a verified signature vouches for
    signed_seq: int = 0
    problem: Problem | None = None
    key_ids: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def unsigned_events(self) -> int:
        return max(0, self.head_seq - self.signed_seq)


#: one record of the walk: where it is (a row id or a line number), its seq and prev_hash (None: not
#: part of the chain), the hash of its content as computed here, and the hash it states
Record = tuple[int, int | None, str | None, str | None, str | None]


class Block(Protocol):
    """A run of consecutive records that may be checked all at once (an export file's lines, read a
    megabyte at a time): :meth:`follows` is the quick check of the common case, :meth:`records` the
    walk one record at a time that finds and describes a problem."""

    def follows(self, seq: int, prev: str) -> tuple[list[str], int] | None:
        """When every record is the next event of the chain from ``seq`` on (the first linked to
        ``prev``), its hash right: their hashes in order, and the location of the last. Otherwise
        None (never a wrong yes: the walk then looks at each record)."""

    def records(self) -> Iterable[Record]: ...


class _Records:
    """Records with no quick check (the database's rows, a caller's records)."""

    def __init__(self, records: Iterable[Record]) -> None:
        self._records = records

    def follows(self, seq: int, prev: str) -> None:
        return None

    def records(self) -> Iterable[Record]:
        return self._records


def verify_records(
    records: Iterable[Record],
    checkpoints: Iterable[Checkpoint],
    public_keys: dict[str, bytes],
    find: Callable[[int], int | None],
    progress: Callable[[int], None] | None = None,
    unit: str = "id",
) -> Report:
    """Walk ``records`` in stored order. ``public_keys`` (key id -> 32 raw bytes) are the trusted
    keys; ``find(seq)`` locates an event elsewhere in the source (to tell reordered from deleted);
    ``unit`` names locations ("id" for rows, "line" for a file)."""
    return verify_blocks([_Records(records)], checkpoints, public_keys, find, progress, unit)


def verify_blocks(
    blocks: Iterable[Block],
    checkpoints: Iterable[Checkpoint],
    public_keys: dict[str, bytes],
    find: Callable[[int], int | None],
    progress: Callable[[int], None] | None = None,
    unit: str = "id",
) -> Report:
    """:func:`verify_records` over ``blocks`` of records in stored order: a block that
    :meth:`Block.follows` the chain is taken whole, any other is walked record by record, so the
    report is the same either way."""
    report = Report(key_ids=sorted(public_keys))
    cps = sorted(checkpoints, key=lambda c: c.seq)
    report.checkpoints = len(cps)
    if cps:
        from egocrowd.audit.checkpoints import verify_signature  # cryptography, only to check signatures
    for signed in cps:  # signatures first: a forged checkpoint must not vouch for anything
        key = public_keys.get(signed.key_id)
        if key is None:
            report.problem = Problem(
                "unknown_key",
                signed.where,
                signed.seq,
                f"checkpoint of event {signed.seq} is signed by key {signed.key_id[:16]}…, not a trusted key",
            )
            return report
        if not verify_signature(key, signed.signature, signed.message()):
            report.problem = Problem(
                "bad_signature",
                signed.where,
                signed.seq,
                f"checkpoint of event {signed.seq}: the signature does not verify",
            )
            return report
    # cps[ci] is the next checkpoint to meet (those of seq 0 or less vouch for nothing)
    ci = 0
    while ci < len(cps) and cps[ci].seq <= 0:
        ci += 1

    expected, prev, prev_loc = 1, GENESIS, 0
    n = 0
    for block in blocks:
        whole = block.follows(expected, prev)
        if whole is not None and whole[0]:
            hashes, last_loc = whole
            end = expected + len(hashes)
            # the checkpoints within the block must name their events' hashes; if one does not, the
            # walk below meets it and says so
            cj = ci
            while cj < len(cps) and cps[cj].seq < end and cps[cj].hash == hashes[cps[cj].seq - expected]:
                cj += 1
            if cj == len(cps) or cps[cj].seq >= end:
                if cj > ci:
                    report.signed_seq = cps[cj - 1].seq
                ci = cj
                if progress is not None and (n + len(hashes)) // 10_000 > n // 10_000:
                    progress(n + len(hashes))
                n += len(hashes)
                expected, prev, prev_loc = end, hashes[-1], last_loc
                continue
        signed_at = cps[ci].seq if ci < len(cps) else -1
        for loc, seq_, prev_hash, computed, stated in block.records():
            n += 1
            if progress is not None and n % 10_000 == 0:
                progress(n)
            # the common case first, in line: the next event, its hash right, linked to the last one
            if (
                seq_ == expected
                and computed == stated
                and prev_hash == prev
                and stated is not None
                and seq_ != signed_at
            ):
                expected, prev, prev_loc = expected + 1, stated, loc
                continue
            problem = _check(loc, seq_, prev_hash, computed, stated, expected, prev, prev_loc, find, unit)
            if problem is not None:
                report.problem = problem
                report.events = n
                return report
            assert stated is not None
            seq, where = expected, f"{unit} {loc}"
            while ci < len(cps) and cps[ci].seq == seq:
                cp = cps[ci]
                if cp.hash != stated:
                    report.problem = Problem(
                        "rewritten",
                        where,
                        seq,
                        f"event {seq} has hash {stated[:16]}…, but the checkpoint signed at {cp.at} ({cp.where}) "
                        f"says {cp.hash[:16]}…: the chain up to here was rebuilt (an event after event "
                        f"{report.signed_seq} was changed, removed or added)",
                    )
                    report.events = n
                    return report
                report.signed_seq = seq
                ci += 1
            signed_at = cps[ci].seq if ci < len(cps) else -1
            expected, prev, prev_loc = seq + 1, stated, loc
    report.head_seq, report.head_hash = expected - 1, prev
    report.events = n
    if progress is not None:
        progress(n)
    if ci < len(cps):
        cp = cps[ci]
        report.problem = Problem(
            "deleted",
            cp.where,
            cp.seq,
            f"the log ends at event {report.head_seq}, but a checkpoint signed at {cp.at} covers event {cp.seq}: "
            f"events {report.head_seq + 1}..{cp.seq} were deleted",
        )
    return report


def _check(
    loc: int,
    seq: int | None,
    prev_hash: str | None,
    computed: str | None,
    stated: str | None,
    expected: int,
    prev: str,
    prev_loc: int,
    find: Callable[[int], int | None],
    unit: str,
) -> Problem | None:
    where = f"{unit} {loc}"
    prev_where = f"{unit} {prev_loc}" if prev_loc else "the start"
    if seq is None or prev_hash is None or stated is None or isinstance(seq, bool) or not isinstance(seq, int):
        return Problem("inserted", where, None, "a record that is not part of the chain (no place or hash)")
    if computed != stated:
        return Problem("edited", where, seq, f"event {seq} does not match its hash: its content was changed")
    if seq > expected:
        found = find(expected)
        elsewhere = f"{unit} {found}" if found is not None else None
        if elsewhere is not None and elsewhere != where:
            return Problem(
                "reordered",
                where,
                seq,
                f"event {seq} stands where event {expected} belongs (event {expected} is at {elsewhere})",
            )
        missing = f"event {expected}" if seq == expected + 1 else f"events {expected}..{seq - 1}"
        return Problem("deleted", where, expected, f"{missing} missing before event {seq} (after {prev_where})")
    if seq < expected:
        found = find(seq)
        first = f"{unit} {found}" if found is not None else "nowhere else"
        return Problem(
            "inserted",
            where,
            seq,
            f"a second event {seq} (the chain's event {seq} is at {first}), after event {expected - 1}",
        )
    if prev_hash != prev:
        if seq == 1:
            return Problem("edited", where, seq, "the first event does not start from the genesis hash")
        return Problem(
            "edited",
            prev_where,
            seq - 1,
            f"event {seq - 1} was changed and its hash recomputed: event {seq} ({where}) names "
            f"{str(prev_hash)[:16]}… as its predecessor, not {prev[:16]}…",
        )
    return None


# ---------------------------------------------------------------- the database


def consistent_snapshot(session: Session) -> None:
    """Make this (read-only, just begun) transaction read one snapshot throughout on PostgreSQL,
    so a long verify or export sees the checkpoints and the events as of one moment. (SQLite's
    read transactions already do.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


def count_events(session: Session) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) or 0)


#: the columns of an event row as :func:`event_row_chunks` reads them
EVENT_COLUMNS = (
    AuditEvent.id,
    AuditEvent.seq,
    AuditEvent.prev_hash,
    AuditEvent.hash,
    AuditEvent.at,
    AuditEvent.actor_id,
    AuditEvent.action,
    AuditEvent.entity_type,
    AuditEvent.entity_id,
    AuditEvent.payload,
)


def event_row_chunks(session: Session, chunk: int) -> Iterator[Sequence[sa.Row[Any]]]:
    """The log's rows (:data:`EVENT_COLUMNS`) in stored (id) order, ``chunk`` rows at a time, so a
    long log never sits in memory: the one read that verify, the export and the benchmark share."""
    after = 0
    while True:
        rows = session.execute(
            sa.select(*EVENT_COLUMNS).where(AuditEvent.id > after).order_by(AuditEvent.id).limit(chunk)
        ).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def stored_body(row: sa.Row[Any]) -> dict[str, Any]:
    """The body of an event row of :func:`event_row_chunks` as it was hashed (a seq or prev_hash of
    None: a row written around the app, which verify flags)."""
    return event_body(
        seq=row.seq,
        prev_hash=row.prev_hash,
        at=row.at,
        actor_id=row.actor_id,
        action=row.action,
        entity_type=row.entity_type,
        entity_id=row.entity_id,
        payload=row.payload,
    )


def _db_records(session: Session, chunk: int) -> Iterator[Record]:
    for rows in event_row_chunks(session, chunk):
        for row in rows:
            if row.seq is None or row.prev_hash is None or row.hash is None:
                yield row.id, None, None, None, None
            else:
                yield row.id, row.seq, row.prev_hash, body_hash(stored_body(row)), row.hash


def db_checkpoints(session: Session) -> list[Checkpoint]:
    from egocrowd.audit.encoding import format_time

    return [
        Checkpoint(c.seq, c.hash, format_time(c.at), c.reason, c.key_id, c.signature, f"checkpoint id {c.id}")
        for c in session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq, AuditCheckpoint.id))
    ]


def verify_database(
    session: Session,
    public_keys: dict[str, bytes],
    *,
    chunk: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Verify the log in the database: every row in id order, ``chunk`` rows at a time."""

    def find(seq: int) -> int | None:
        return session.scalar(sa.select(AuditEvent.id).where(AuditEvent.seq == seq).order_by(AuditEvent.id).limit(1))

    return verify_records(_db_records(session, chunk), db_checkpoints(session), public_keys, find, progress)


# ---------------------------------------------------------------- an export file


def read_header(f: BinaryIO) -> tuple[dict[str, Any], list[Checkpoint], int]:
    """The export's header and checkpoints (the lines before the first event); returns them with the
    byte offset where the events start."""
    first = f.readline()
    try:
        header = json.loads(first)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("kind") != "header" or header.get("format") != FORMAT:
        raise InvalidInput(
            f"Not an egocrowd audit export ({FORMAT}): the first line is not its header.", code="audit.bad_export"
        )
    cps: list[Checkpoint] = []
    line_no = 1  # lines read so far
    while True:
        offset = f.tell()
        line = f.readline()
        if not line:
            break
        rec = _parse(line, line_no + 1)
        if rec.get("kind") != "checkpoint":
            break
        line_no += 1
        try:
            cps.append(
                Checkpoint(
                    rec["seq"],
                    rec["hash"],
                    rec["at"],
                    rec["reason"],
                    rec["key_id"],
                    rec["signature"],
                    f"line {line_no}",
                )
            )
        except KeyError as e:
            raise InvalidInput(f"line {line_no}: a checkpoint without {e}.", code="audit.bad_export") from None
    f.seek(offset)
    return header, cps, line_no


def _parse(line: bytes, line_no: int) -> dict[str, Any]:
    try:
        rec = json.loads(line)
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        raise InvalidInput(f"line {line_no} is not a JSON object.", code="audit.bad_export")
    return rec


# An event line as the export writes it (canonical: keys sorted) reads
#     {"action":…,"entity_type":…,"hash":"<64 hex>","kind":"event","payload":…,"prev_hash":"<64 hex>","seq":N}
# so its body's canonical bytes are the line without ``"hash":"…","kind":"event",``, and seq and
# prev_hash end it. Reading those by position skips decoding and re-encoding the JSON (most of the
# work otherwise); a line that does not have this exact shape takes the slow path, which decodes it.
# Either way the hash is of the body's canonical bytes, so both paths agree on every line.
_HASH_AT = b',"hash":"'
_KIND = b'","kind":"event",'
_PREV_AT = b',"prev_hash":"'


def _fast(line: bytes) -> tuple[int, str, str, str] | None:
    end = len(line) - 1 if line.endswith(b"\n") else len(line)
    i = line.find(_HASH_AT, 0, end)
    k = i + 73 + len(_KIND)
    t = line.rfind(_PREV_AT, k, end) + 14  # the previous hash, then '","seq":', the digits and '}'
    if (
        i < 0
        or t < k + 14
        or not line.startswith(_KIND, i + 73)
        or not line.startswith(b'","seq":', t + 64)
        or line[end - 1] != 0x7D
        or not line.startswith(b'{"action":')
    ):
        return None
    digits = line[t + 72 : end - 1]
    if not digits.isdigit() or (digits[0] == 0x30 and len(digits) > 1):  # a leading zero: not canonical
        return None
    digest = hashlib.sha256(line[: i + 1])
    digest.update(line[k:end])
    return (
        int(digits),
        line[t : t + 64].decode(errors="replace"),
        digest.hexdigest(),
        line[i + 9 : i + 73].decode(errors="replace"),
    )


def _line_records(lines: Iterable[bytes], first_line: int) -> Iterator[Record]:
    """The records of event lines, one at a time (``first_line``: the number of the line before)."""
    line_no = first_line
    for line in lines:
        line_no += 1
        fast = _fast(line)
        if fast is not None:
            yield (line_no, *fast)
            continue
        if not line.strip():
            continue
        rec = _parse(line, line_no)
        if rec.pop("kind", None) != "event":
            yield line_no, None, None, None, None
            continue
        stated = rec.pop("hash", None)
        if set(rec) != set(BODY_KEYS):
            yield line_no, None, None, None, None
            continue
        try:
            computed = body_hash(rec)
        except ValueError:  # NaN or infinity: not JSON the chain could hold
            computed = None
        yield line_no, rec["seq"], rec["prev_hash"], computed, stated


def _find_in_file(path: Path, seq: int) -> int | None:
    # A second pass over the file, only when a gap is found: constant memory.
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if b'"seq":' not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("kind") == "event" and rec.get("seq") == seq:
                return line_no
    return None


def export_public_keys(header: dict[str, Any]) -> dict[str, bytes]:
    """The public keys an export carries (trust them only once their ids match the published key)."""
    keys: dict[str, bytes] = {}
    for k in header.get("public_keys") or []:
        try:
            keys[str(k["key_id"])] = bytes.fromhex(k["public_key"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("The export's header lists a malformed public key.", code="audit.bad_export") from None
    return keys


# Where a canonical event line's parts sit, from the position ``at`` of its ``,"hash":"``: the stated
# hash from at + _STATED, and the rest of the body from at + _RESUME (after '","kind":"event",').
_STATED = len(_HASH_AT)
_RESUME = _STATED + 64 + len(_KIND)
_KIND_TEXT = _KIND.decode()
#: how a canonical event line ends: its predecessor's hash and its seq are the last keys
_TAIL = ',"prev_hash":"{}","seq":{}}}\n'
_hexdigest = type(hashlib.sha256()).hexdigest
_piece = cast(Callable[[bytes, slice], bytes], getitem)  # line[a:b], typed for map


class _Lines:
    """A block of an export file's lines, checked all at once when they are canonical event lines
    that continue the chain: the same reading of each line as :func:`_fast` and the same checks as
    the walk's common case, done by C loops (``map``, ``join``) over the whole block instead of
    Python code per line, which cost more than the hashing itself."""

    def __init__(self, lines: list[bytes], first_line: int) -> None:
        self.lines = lines
        self.first_line = first_line  # the number of the line before the block

    def follows(self, seq: int, prev: str) -> tuple[list[str], int] | None:
        lines = self.lines
        at = list(map(bytes.find, lines, repeat(_HASH_AT)))
        if -1 in at or not all(map(bytes.startswith, lines, repeat(b'{"action":'))):
            return None
        resume = list(map(add, at, repeat(_RESUME)))
        # each line's body: the line without its hash, '"kind":"event"' and the newline
        heads = map(_piece, lines, map(slice, repeat(None), map(add, at, repeat(1))))
        rests = map(_piece, lines, map(slice, resume, repeat(-1)))
        hashes = list(map(_hexdigest, map(hashlib.sha256, map(add, heads, rests))))
        # every stated hash (with the '"kind":"event"' after it) is the computed one
        stated = b"".join(map(_piece, lines, map(slice, map(add, at, repeat(_STATED)), resume)))
        if stated != (_KIND_TEXT.join(hashes) + _KIND_TEXT).encode():
            return None
        # every line ends with its predecessor's hash and the next seq (canonical digits, a newline),
        # and that ending comes after the hash, not overlapping it (its ',"prev_hash":"' is the last)
        tails = map(str.encode, map(_TAIL.format, [prev, *hashes[:-1]], range(seq, seq + len(lines))))
        if not all(map(bytes.endswith, lines, tails)) or not all(
            map(le, resume, map(bytes.rfind, lines, repeat(_PREV_AT)))
        ):
            return None
        return hashes, self.first_line + len(lines)

    def records(self) -> Iterator[Record]:
        return _line_records(self.lines, self.first_line)


def _line_blocks(f: BinaryIO, first_line: int, block_bytes: int) -> Iterator[_Lines]:
    line_no = first_line
    while lines := f.readlines(block_bytes):
        yield _Lines(lines, line_no)
        line_no += len(lines)


def verify_file(
    path: Path,
    public_keys: dict[str, bytes] | None = None,
    *,
    progress: Callable[[int], None] | None = None,
    block_bytes: int = 1 << 20,
) -> Report:
    """Verify an export file on its own. ``public_keys`` are the trusted keys; None trusts the keys
    the file names (compare their ids with the published one: the report lists them). The file is
    read ``block_bytes`` (whole lines) at a time; the report does not depend on it."""
    with open(path, "rb") as f:
        header, cps, events_from = read_header(f)
        keys = export_public_keys(header) if public_keys is None else public_keys
        return verify_blocks(
            _line_blocks(f, events_from, block_bytes),
            cps,
            keys,
            lambda seq: _find_in_file(path, seq),
            progress,
            unit="line",
        )


__all__ = [
    "Block",
    "Checkpoint",
    "consistent_snapshot",
    "count_events",
    "Problem",
    "Report",
    "db_checkpoints",
    "export_public_keys",
    "read_header",
    "verify_database",
    "verify_blocks",
    "verify_file",
    "verify_records",
]

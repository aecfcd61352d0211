"""The auditors' export verifies with nothing but the file (our verifier, and the standalone script
in docs/provenance.md); every kind of tampering with the file is found at its line. The command
line and the published public key."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from egocrowd.audit.encoding import body_hash, canonical
from egocrowd.audit.verify import verify_file
from egocrowd.cli import main
from tests.platform.test_audit_chain import write_events

pytest.importorskip("cryptography")

from egocrowd.audit import checkpoints, export  # noqa: E402  (needs cryptography)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "provenance.md"


@pytest.fixture
def exported(db, tmp_path):
    """An export of 10 events, signed at event 6 and at the head, and the trusted key."""
    key = checkpoints.generate_key(tmp_path / "audit.pem")
    write_events(db, 6)
    with db.transaction() as s:
        checkpoints.write_checkpoint(s, key, "manual")
    write_events(db, 4, start=6)
    with db.transaction() as s:
        checkpoints.write_checkpoint(s, key, "release:1")
    path = tmp_path / "log.jsonl"
    with db.transaction(write=False) as s, open(path, "wb") as f:
        assert export.export_jsonl(s, f, [checkpoints.public_key_of(key)]) == 10
    return path, key


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write(path: Path, rows: list[bytes]) -> None:
    path.write_bytes(b"".join(rows))


def event_line(path: Path, seq: int) -> int:
    """The index in lines() of event ``seq``."""
    for i, line in enumerate(lines(path)):
        rec = json.loads(line)
        if rec.get("kind") == "event" and rec["seq"] == seq:
            return i
    raise AssertionError(seq)


def problem_of(path: Path, key) -> tuple[str, str, int | None] | None:
    """The problem verify finds, the same whether the file is read a line, a few lines or all of it
    at a time (blocks that follow the chain are checked whole, the others line by line)."""
    found = set()
    for block_bytes in (1, 700, 1500, 1 << 20):
        report = verify_file(path, {key.key_id: key.public_raw}, block_bytes=block_bytes)
        found.add(None if report.problem is None else (report.problem.kind, report.problem.where, report.problem.seq))
    assert len(found) == 1, found
    return found.pop()


def test_an_export_verifies_on_its_own(exported):
    path, key = exported
    rows = [json.loads(line) for line in lines(path)]
    assert rows[0]["kind"] == "header" and rows[0]["public_keys"][0]["key_id"] == key.key_id
    assert [r["kind"] for r in rows[1:3]] == ["checkpoint", "checkpoint"]
    assert all(line == canonical(json.loads(line)) + b"\n" for line in lines(path))  # canonical lines
    for block_bytes in (1, 1500, 1 << 20):
        report = verify_file(path, {key.key_id: key.public_raw}, block_bytes=block_bytes)
        assert report.ok and report.events == 10 and report.signed_seq == 10 and report.head_seq == 10
    assert problem_of(path, key) is None
    assert verify_file(path).ok  # trusting the keys the file names (the CLI prints their ids)


def test_an_edited_line_is_found(exported):
    path, key = exported
    rows = lines(path)
    i = event_line(path, 4)
    rows[i] = rows[i].replace(b'"n":3', b'"n":333')
    write(path, rows)
    assert problem_of(path, key) == ("edited", f"line {i + 1}", 4)


def test_an_edit_with_its_hash_recomputed_is_found(exported):
    path, key = exported
    rows = lines(path)
    i = event_line(path, 4)
    rec = json.loads(rows[i])
    rec.pop("kind"), rec.pop("hash")
    rec["action"] = "test.forged"
    rows[i] = canonical({**rec, "kind": "event", "hash": body_hash(rec)}) + b"\n"
    write(path, rows)
    assert problem_of(path, key) == ("edited", f"line {i + 1}", 4)


def test_a_deleted_line_is_found(exported):
    path, key = exported
    rows = lines(path)
    i = event_line(path, 4)
    del rows[i]
    write(path, rows)
    assert problem_of(path, key) == ("deleted", f"line {i + 1}", 4)


def test_deleted_last_lines_are_found_by_the_checkpoint(exported):
    path, key = exported
    write(path, lines(path)[: event_line(path, 9)])
    kind, _where, seq = problem_of(path, key)
    assert (kind, seq) == ("deleted", 10)


def test_an_inserted_line_is_found(exported):
    path, key = exported
    rows = lines(path)
    i = event_line(path, 4)
    rows.insert(i + 1, rows[i])  # event 4 again
    write(path, rows)
    assert problem_of(path, key) == ("inserted", f"line {i + 2}", 4)
    rows = lines(path)
    del rows[i + 1]
    rows.insert(i + 1, b'{"kind":"note","text":"added by hand"}\n')
    write(path, rows)
    assert problem_of(path, key) == ("inserted", f"line {i + 2}", None)


def test_swapped_lines_are_found(exported):
    path, key = exported
    rows = lines(path)
    i, j = event_line(path, 3), event_line(path, 7)
    rows[i], rows[j] = rows[j], rows[i]
    write(path, rows)
    kind, where, seq = problem_of(path, key)
    assert (kind, where, seq) == ("reordered", f"line {i + 1}", 7)
    assert f"event 3 is at line {j + 1}" in verify_file(path, {key.key_id: key.public_raw}).problem.message


def test_a_rebuilt_file_is_found_by_its_checkpoints(exported):
    """Every hash recomputed after an edit: consistent links, but not what was signed."""
    path, key = exported
    rows = lines(path)
    prev = None
    for seq in range(5, 11):
        i = event_line(path, seq)
        rec = json.loads(rows[i])
        rec.pop("kind"), rec.pop("hash")
        if prev is not None:
            rec["prev_hash"] = prev
        if seq == 5:
            rec["payload"]["n"] = 500
        prev = body_hash(rec)
        rows[i] = canonical({**rec, "kind": "event", "hash": prev}) + b"\n"
    write(path, rows)
    kind, _where, seq = problem_of(path, key)
    assert (kind, seq) == ("rewritten", 6)


def test_a_forged_checkpoint_in_the_file_is_found(exported, tmp_path):
    path, key = exported
    rows = lines(path)
    cp = json.loads(rows[1])
    cp["seq"] = 5  # says another event, with the old signature
    rows[1] = canonical(cp) + b"\n"
    write(path, rows)
    assert problem_of(path, key) == ("bad_signature", "line 2", 5)
    other = checkpoints.generate_key(tmp_path / "other.pem")
    assert verify_file(path, {other.key_id: other.public_raw}).problem.kind == "unknown_key"


def _docs_script(tmp_path: Path) -> Path:
    # the script of its own section (the page has other Python snippets: lineage, C2PA)
    section = DOCS.read_text().split("### Verifying an export, step by step", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    script = tmp_path / "verify_export.py"
    script.write_text(blocks[-1])
    return script


def test_the_standalone_script_in_the_docs_verifies_and_catches(exported, tmp_path):
    path, key = exported
    script = _docs_script(tmp_path)
    assert len(script.read_text().splitlines()) <= 40  # short enough to read before trusting it
    ok = subprocess.run([sys.executable, str(script), str(path), key.key_id], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "ok: 10 events, signed up to event 10"
    rows = lines(path)
    i = event_line(path, 4)
    rows[i] = rows[i].replace(b'"n":3', b'"n":333')
    write(path, rows)
    bad = subprocess.run([sys.executable, str(script), str(path), key.key_id], capture_output=True, text=True)
    assert bad.returncode != 0 and f"line {i + 1}: the event was edited" in bad.stderr


# ---------------------------------------------------------------- the command line and the app


def test_the_audit_commands(db_url, tmp_path):
    env = {"EGOCROWD_DATABASE_URL": db_url, "EGOCROWD_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    made = runner.invoke(main, ["audit", "keygen"], env=env)
    assert made.exit_code == 0 and "key id" in made.output
    again = runner.invoke(main, ["audit", "keygen"], env=env)
    assert again.exit_code == 1 and "audit.signing_key_exists" in again.output
    from egocrowd.db import Database

    db = Database(db_url)
    try:
        write_events(db, 5)
    finally:
        db.dispose()
    signed = runner.invoke(main, ["audit", "checkpoint", "--reason", "before the audit"], env=env)
    assert signed.exit_code == 0 and "signed event 5" in signed.output
    ok = runner.invoke(main, ["audit", "verify"], env=env)
    assert ok.exit_code == 0 and "ok: chain intact up to event 5" in ok.output and "signed up to event 5" in ok.output
    out = tmp_path / "log.jsonl"
    exported = runner.invoke(main, ["audit", "export", str(out)], env=env)
    assert exported.exit_code == 0 and "wrote 5 events" in exported.output
    assert runner.invoke(main, ["audit", "verify", "--file", str(out)]).exit_code == 0
    rows = lines(out)
    del rows[-3]
    write(out, rows)
    broken = runner.invoke(main, ["audit", "verify", "--file", str(out)])
    assert broken.exit_code == 1 and "BROKEN: deleted" in broken.output
    wrong_key = runner.invoke(main, ["audit", "verify", "--public-key", "ab" * 32], env=env)
    assert wrong_key.exit_code == 1 and "BROKEN: unknown_key" in wrong_key.output
    not_export = tmp_path / "x.jsonl"
    not_export.write_text("hello\n")
    refused = runner.invoke(main, ["audit", "verify", "--file", str(not_export)])
    assert refused.exit_code == 1 and "audit.bad_export" in refused.output


def test_the_public_key_is_published(client, settings):
    r = client.get("/api/v1/audit/public-key")
    if not settings.is_embedded:  # a server setup: none until an admin makes it
        assert r.status_code == 404 and r.json()["code"] == "audit.no_public_key"
        checkpoints.generate_key(checkpoints.key_path(settings))
        r = client.get("/api/v1/audit/public-key")
    assert r.status_code == 200
    key = checkpoints.signing_key(settings)
    body = r.json()
    assert body["algorithm"] == "Ed25519" and body["key_id"] == key.key_id == body["key_id"]
    assert bytes.fromhex(body["public_key"]) == key.public_raw and "BEGIN PUBLIC KEY" in body["pem"]


def test_the_fast_reading_of_a_line_agrees_with_decoding_it(exported):
    """verify --file reads canonical lines by position; the hash must be the one of the decoded body."""
    from egocrowd.audit.verify import _fast

    path, _key = exported
    for line in lines(path):
        rec = json.loads(line)
        if rec["kind"] != "event":
            assert _fast(line) is None
            continue
        seq, prev, computed, stated = _fast(line)
        rec.pop("kind")
        assert (seq, prev, stated) == (rec["seq"], rec["prev_hash"], rec.pop("hash"))
        assert computed == body_hash(rec) == stated
    spaced = json.dumps(json.loads(lines(path)[-1])).encode()  # not canonical: decoded the slow way
    assert _fast(spaced) is None


def test_a_block_of_lines_is_taken_whole_only_when_every_line_would_pass_alone(exported):
    """verify --file checks a block of canonical lines at once; it must say yes only where the walk
    line by line (the _fast reading and the chain's common case) says yes for every line."""
    from egocrowd.audit.encoding import GENESIS
    from egocrowd.audit.verify import _fast, _Lines

    path, _key = exported
    events = [line for line in lines(path) if b'"kind":"event"' in line]
    stated = [_fast(line)[3] for line in events]
    assert _Lines(events, 3).follows(1, GENESIS) == (stated, 3 + len(events))
    assert _Lines(events[4:], 7).follows(5, stated[3]) == (stated[4:], 7 + len(events) - 4)
    assert _Lines(events, 3).follows(2, GENESIS) is None  # not the seq that comes next
    assert _Lines(events[1:], 3).follows(2, GENESIS) is None  # not linked to the one before
    edited = [*events[:3], events[3].replace(b'"n":3', b'"n":333'), *events[4:]]
    assert _Lines(edited, 3).follows(1, GENESIS) is None
    assert _Lines([*events[:-1], events[-1].rstrip(b"\n")], 3).follows(1, GENESIS) is None  # walked instead
    assert _Lines([*events[:3], b"\n", *events[3:]], 3).follows(1, GENESIS) is None
    # a line whose body has lost its payload, so that its ending touches the hash: _fast refuses it
    rec = json.loads(events[0])
    rec.pop("kind"), rec.pop("hash"), rec.pop("payload")
    body = canonical(rec)
    h = body_hash(rec)
    cut = body.index(b',"prev_hash"')
    forged = body[:cut] + b',"hash":"' + h.encode() + b'","kind":"event"' + body[cut:] + b"\n"
    assert _fast(forged) is None and _Lines([forged], 3).follows(1, GENESIS) is None

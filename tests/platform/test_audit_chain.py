"""The audit log's hash chain in the database: one order for every writer, events and changes
committed together, and every kind of tampering found by `verify`, with the row where it is."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from egocrowd import audit
from egocrowd.audit import chain
from egocrowd.audit.encoding import GENESIS, body_hash, event_body
from egocrowd.audit.verify import verify_database
from egocrowd.db.models import AuditCheckpoint, AuditEvent
from tests.platform.test_migrations import fresh_url  # noqa: F401  (a fixture)

EVENTS = AuditEvent.__table__


def write_events(db, n: int, per_transaction: int = 3, start: int = 0) -> None:
    for first in range(start, start + n, per_transaction):
        with db.transaction() as s:
            for i in range(first, min(start + n, first + per_transaction)):
                audit.record(s, None, "test.event", i, {"n": i, "text": "crème brûlée ✓"}, entity_type="test")


def ids_by_seq(db) -> dict[int, int]:
    with db.transaction() as s:
        return dict(s.execute(sa.select(AuditEvent.seq, AuditEvent.id).where(AuditEvent.seq.is_not(None))).all())


def check(db, keys=None):
    with db.transaction(write=False) as s:
        return verify_database(s, keys or {}, chunk=4)  # small chunks: the paging is exercised too


@contextmanager
def tampering(db):
    """A connection that may rewrite the log, as someone with the database's files or owner role
    could: SQLite drops the triggers, PostgreSQL (a superuser) switches them off."""
    with db.engine.begin() as c:
        if db.is_sqlite:
            for name in ("no_update", "no_delete", "no_replace"):
                c.exec_driver_sql(f"DROP TRIGGER IF EXISTS audit_events_{name}")
                c.exec_driver_sql(f"DROP TRIGGER IF EXISTS audit_checkpoints_{name}")
        else:
            c.exec_driver_sql("SET LOCAL session_replication_role = replica")
        yield c


def row(c, event_id: int) -> dict:
    return dict(c.execute(sa.select(EVENTS).where(EVENTS.c.id == event_id)).mappings().one())


def rehash(r: dict) -> str:
    return body_hash(
        event_body(
            seq=r["seq"],
            prev_hash=r["prev_hash"],
            at=r["at"],
            actor_id=r["actor_id"],
            action=r["action"],
            entity_type=r["entity_type"],
            entity_id=r["entity_id"],
            payload=r["payload"],
        )
    )


def test_events_are_chained_when_their_transaction_commits(db):
    with db.transaction() as s:
        e = audit.record(s, None, "test.event", 1, {"when": "now"}, entity_type="test")
        assert e.seq is None and chain.pending(s) == [e]  # not written until the commit
        assert audit.events_for(s, "test", 1) == [e]  # but the transaction's own reads list it
    assert (e.seq, e.prev_hash) == (1, GENESIS) and e.id is not None
    write_events(db, 9)
    with db.transaction() as s:
        rows = s.execute(sa.select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
        assert [r.seq for r in rows] == list(range(1, 11))
        assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
        assert all(a.at <= b.at for a, b in zip(rows, rows[1:], strict=False))  # the chain's clock never goes back
    report = check(db)
    assert report.ok and report.events == 10 and report.head_seq == 10 and report.unsigned_events == 10


def test_a_rolled_back_transaction_or_savepoint_leaves_no_event(db):
    with pytest.raises(RuntimeError), db.transaction() as s:
        audit.record(s, None, "test.lost", 1, entity_type="test")
        raise RuntimeError("the change failed after its event was recorded")
    with db.transaction() as s:
        audit.record(s, None, "test.kept", 1, entity_type="test")
        try:
            with s.begin_nested():
                audit.record(s, None, "test.savepoint_lost", 2, entity_type="test")
                raise RuntimeError("the savepoint's change failed")
        except RuntimeError:
            pass
        with s.begin_nested():
            audit.record(s, None, "test.savepoint_kept", 3, entity_type="test")
        audit.record(s, None, "test.after", 4, entity_type="test")
    with db.session() as s:  # a session closed without committing carries nothing into the next one
        audit.record(s, None, "test.never_committed", 5, entity_type="test")
        s.close()
        s.commit()
    with db.transaction() as s:
        actions = s.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.seq)).all()
    assert actions == ["test.kept", "test.savepoint_kept", "test.after"]
    assert check(db).ok


def test_concurrent_writers_make_one_unbroken_chain(db):
    threads, transactions, per = 6, 12, 2
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(t: int) -> None:
        try:
            start.wait()
            for k in range(transactions):
                with db.transaction() as s:
                    for j in range(per):
                        audit.record(s, None, "test.concurrent", f"{t}-{k}-{j}", {"t": t}, entity_type="test")
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    pool = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(120)
    assert not errors
    report = check(db)
    assert report.ok and report.events == threads * transactions * per
    with db.transaction() as s:
        pairs = s.execute(sa.select(AuditEvent.id, AuditEvent.seq).order_by(AuditEvent.id)).all()
    assert [seq for _, seq in pairs] == list(range(1, len(pairs) + 1))  # ids follow the chain: no fork, no gap
    # one transaction's events stay together, in the order they were recorded
    with db.transaction() as s:
        names = s.scalars(sa.select(AuditEvent.entity_id).order_by(AuditEvent.seq)).all()
    assert all(names[i].endswith("-0") and names[i + 1] == names[i][:-1] + "1" for i in range(0, len(names), 2))


def test_the_database_refuses_a_fork(db):
    """Two events claiming one place: the unique index stops the second even if the lock were skipped."""
    write_events(db, 2)
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as c:
        c.execute(
            sa.insert(EVENTS).values(
                at=sa.func.current_timestamp(),
                action="test.fork",
                entity_type="test",
                entity_id="x",
                payload={},
                seq=2,
                prev_hash="0" * 64,
                hash="1" * 64,
            )
        )


# ---------------------------------------------------------------- tampering in the database


def test_an_edited_payload_is_found_at_its_row(db):
    write_events(db, 8)
    ids = ids_by_seq(db)
    with tampering(db) as c:
        c.execute(sa.update(EVENTS).where(EVENTS.c.id == ids[4]).values(payload={"n": 400}))
    problem = check(db).problem
    assert problem is not None and (problem.kind, problem.where, problem.seq) == ("edited", f"id {ids[4]}", 4)


def test_an_edit_with_its_hash_recomputed_is_found_by_the_next_link(db):
    write_events(db, 8)
    ids = ids_by_seq(db)
    with tampering(db) as c:
        forged = {**row(c, ids[4]), "action": "test.forged"}
        c.execute(sa.update(EVENTS).where(EVENTS.c.id == ids[4]).values(action="test.forged", hash=rehash(forged)))
    problem = check(db).problem
    assert problem is not None and (problem.kind, problem.where, problem.seq) == ("edited", f"id {ids[4]}", 4)


def test_a_deleted_event_is_found(db):
    write_events(db, 8)
    ids = ids_by_seq(db)
    with tampering(db) as c:
        c.execute(sa.delete(EVENTS).where(EVENTS.c.id.in_([ids[4], ids[5]])))
    problem = check(db).problem
    assert problem is not None and (problem.kind, problem.where, problem.seq) == ("deleted", f"id {ids[6]}", 4)
    assert "events 4..5 missing" in problem.message


def test_an_inserted_event_is_found(db):
    write_events(db, 5)
    with db.engine.begin() as c:  # the app's role may INSERT: a row written around the app
        new_id = c.execute(
            sa.insert(EVENTS)
            .values(at=sa.func.current_timestamp(), action="test.forged", entity_type="test", entity_id="1", payload={})
            .returning(EVENTS.c.id)
        ).scalar_one()
    problem = check(db).problem
    assert problem is not None and (problem.kind, problem.where) == ("inserted", f"id {new_id}")


def test_an_inserted_event_that_claims_a_place_is_found(db):
    write_events(db, 5)
    ids = ids_by_seq(db)
    with db.engine.connect() as c:  # rolled back at the end: the shared schema keeps its index
        c.begin()
        c.exec_driver_sql("DROP INDEX ix_audit_events_seq")  # what an owner could do to make room
        forged = {**row(c, ids[3]), "action": "test.forged"}
        forged.pop("id")
        forged["hash"] = rehash(forged)
        new_id = c.execute(sa.insert(EVENTS).values(**forged).returning(EVENTS.c.id)).scalar_one()
        problem = verify_database(Session(bind=c), {}).problem
        c.rollback()
    assert problem is not None and (problem.kind, problem.where, problem.seq) == ("inserted", f"id {new_id}", 3)
    assert f"event 3 is at id {ids[3]}" in problem.message


def test_swapped_events_are_found(db):
    write_events(db, 8)
    ids = ids_by_seq(db)
    with tampering(db) as c:
        a, b = row(c, ids[3]), row(c, ids[6])
        fields = [k for k in a if k != "id"]
        c.execute(sa.update(EVENTS).where(EVENTS.c.id == ids[3]).values(seq=None))
        c.execute(sa.update(EVENTS).where(EVENTS.c.id == ids[6]).values(**{k: a[k] for k in fields}))
        c.execute(sa.update(EVENTS).where(EVENTS.c.id == ids[3]).values(**{k: b[k] for k in fields}))
    problem = check(db).problem
    assert problem is not None and (problem.kind, problem.where, problem.seq) == ("reordered", f"id {ids[3]}", 6)
    assert f"event 3 is at id {ids[6]}" in problem.message


@pytest.fixture
def key(tmp_path):
    pytest.importorskip("cryptography")
    from egocrowd.audit import checkpoints

    return checkpoints.generate_key(tmp_path / "audit.pem")


def sign_head(db, key, reason="manual"):
    from egocrowd.audit import checkpoints

    with db.transaction() as s:
        return checkpoints.write_checkpoint(s, key, reason)


def test_the_last_events_deleted_are_found_by_a_checkpoint(db, key):
    write_events(db, 6)
    sign_head(db, key)
    ids = ids_by_seq(db)
    keys = {key.key_id: key.public_raw}
    assert check(db, keys).signed_seq == 6
    with tampering(db) as c:
        c.execute(sa.delete(EVENTS).where(EVENTS.c.id.in_([ids[5], ids[6]])))
    problem = check(db, keys).problem
    assert problem is not None and (problem.kind, problem.seq) == ("deleted", 6)
    assert "events 5..6 were deleted" in problem.message


def test_a_rebuilt_chain_is_found_by_a_checkpoint(db, key):
    """Whoever rewrites an event and every hash after it makes a consistent chain: only a signature
    tells. verify names the first checkpoint it no longer matches."""
    write_events(db, 4)
    sign_head(db, key)
    write_events(db, 4, start=4)
    sign_head(db, key)
    ids = ids_by_seq(db)
    with tampering(db) as c:
        prev = row(c, ids[5])["prev_hash"]
        for seq in range(5, 9):
            r = {**row(c, ids[seq]), "prev_hash": prev}
            if seq == 6:
                r["payload"] = {"n": 600}
            r["hash"] = prev = rehash(r)
            c.execute(
                sa.update(EVENTS)
                .where(EVENTS.c.id == ids[seq])
                .values(payload=r["payload"], prev_hash=r["prev_hash"], hash=r["hash"])
            )
    report = check(db, {key.key_id: key.public_raw})
    assert report.problem is not None and (report.problem.kind, report.problem.seq) == ("rewritten", 8)
    assert report.signed_seq == 4  # the first checkpoint still holds


def test_a_forged_checkpoint_is_found(db, key, tmp_path):
    from egocrowd.audit import checkpoints

    write_events(db, 3)
    good = sign_head(db, key)
    other = checkpoints.generate_key(tmp_path / "other.pem")
    sign_head(db, other)  # signed, but not by a trusted key
    keys = {key.key_id: key.public_raw}
    problem = check(db, keys).problem
    assert problem is not None and problem.kind == "unknown_key"
    assert check(db, {**keys, other.key_id: other.public_raw}).ok
    with db.engine.begin() as c:  # a checkpoint row whose signature does not match what it says
        c.execute(
            sa.insert(AuditCheckpoint.__table__).values(
                seq=2, hash=good.hash, at=good.at, reason="manual", key_id=key.key_id, signature=good.signature
            )
        )
    problem = check(db, keys).problem
    assert problem is not None and (problem.kind, problem.seq) == ("bad_signature", 2)


def test_checkpoints_are_append_only(db, key):
    write_events(db, 1)
    sign_head(db, key)
    for stmt in ("UPDATE audit_checkpoints SET seq = 5", "DELETE FROM audit_checkpoints"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), db.engine.begin() as c:
            c.exec_driver_sql(stmt)


def test_a_checkpoint_at_commit_covers_the_transactions_own_events(db, key):
    from egocrowd.audit import checkpoints

    write_events(db, 2)
    with db.transaction() as s:
        audit.record(s, None, "release.published", 7, {"clips": 3}, entity_type="release")
        checkpoints.checkpoint_at_commit(s, key, "release:7")
    with db.transaction() as s:
        cp = checkpoints.last_checkpoint(s)
        assert cp is not None and (cp.seq, cp.reason) == (3, "release:7")
        assert cp.hash == s.scalar(sa.select(AuditEvent.hash).where(AuditEvent.seq == 3))
    with pytest.raises(RuntimeError), db.transaction() as s:  # rolled back: neither event nor checkpoint
        audit.record(s, None, "release.published", 8, entity_type="release")
        checkpoints.checkpoint_at_commit(s, key, "release:8")
        raise RuntimeError
    with db.transaction() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditCheckpoint)) == 1
    assert check(db, {key.key_id: key.public_raw}).signed_seq == 3


def test_housekeeping_signs_every_n_events_and_never_without_a_key(db, settings):
    pytest.importorskip("cryptography")
    from egocrowd.audit import checkpoints

    settings = settings.model_copy(update={"audit_checkpoint_events": 5, "audit_checkpoint_minutes": 60.0})
    write_events(db, 3)
    if not settings.is_embedded:  # a server setup must be given its key: never unsigned, never made up
        with pytest.raises(checkpoints.SigningKeyMissing, match="egocrowd audit keygen"):
            checkpoints.checkpoint_if_due(db, settings)
        with pytest.raises(checkpoints.SigningKeyMissing):
            checkpoints.require_signing_key(settings)
        checkpoints.generate_key(checkpoints.key_path(settings))
    assert checkpoints.checkpoint_if_due(db, settings) == 1  # the first one
    assert checkpoints.checkpoint_if_due(db, settings) == 0  # nothing new
    write_events(db, 3, start=3)
    assert checkpoints.checkpoint_if_due(db, settings) == 0  # 3 < 5 events, within the hour
    write_events(db, 2, start=6)
    assert checkpoints.checkpoint_if_due(db, settings) == 1
    key = checkpoints.signing_key(settings)
    report = check(db, {key.key_id: key.public_raw})
    assert report.ok and report.checkpoints == 2 and report.signed_seq == 8
    with pytest.raises(Exception, match="already exists"):
        checkpoints.generate_key(checkpoints.key_path(settings))  # a key is never replaced


def test_a_missing_key_is_a_clear_error_at_worker_start(tmp_path):
    from egocrowd.audit import checkpoints
    from egocrowd.settings import Settings

    server = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(checkpoints.SigningKeyMissing) as e:
        checkpoints.require_signing_key(server)
    assert e.value.code == "audit.signing_key_missing" and str(tmp_path) in e.value.message
    checkpoints.require_signing_key(Settings(data_dir=tmp_path))  # embedded: made when first needed


def test_the_migration_chains_the_events_already_there(fresh_url):  # noqa: F811
    from egocrowd.db import Database, upgrade

    upgrade(fresh_url, "0008")
    engine = sa.create_engine(fresh_url)
    with engine.begin() as c:
        for i in range(7):
            c.execute(
                sa.text(
                    "INSERT INTO audit_events (at, action, entity_type, entity_id, payload) "
                    "VALUES (CURRENT_TIMESTAMP, 'test.old', 'test', :i, :p)"
                ),
                {"i": str(i), "p": f'{{"n": {i}, "nested": {{"b": [1, 2.5, null], "a": "x"}}}}'},
            )
    engine.dispose()
    upgrade(fresh_url)
    db = Database(fresh_url)
    try:
        write_events(db, 2)
        assert sorted(ids_by_seq(db)) == list(range(1, 10))
        assert check(db).ok
    finally:
        db.dispose()


def test_verify_streams_in_chunks(db):
    """verify reads the log a chunk at a time: the chunk size, not the log, bounds what it holds."""
    write_events(db, 23, per_transaction=23)
    seen: list[int] = []
    with db.transaction(write=False) as s:
        report = verify_database(s, {}, chunk=5, progress=seen.append)
    assert report.ok and report.events == 23 and seen[-1] == 23


def test_key_file_is_private(tmp_path):
    pytest.importorskip("cryptography")
    from egocrowd.audit import checkpoints

    path = tmp_path / "k" / "audit.pem"
    checkpoints.generate_key(path)
    assert Path(path).stat().st_mode & 0o777 == 0o600

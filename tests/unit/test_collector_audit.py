"""The hash-chained audit log on SQLite and PostgreSQL: appends, concurrent writers, tampering."""

from __future__ import annotations

import threading

from sqlalchemy import text
from sqlmodel import col, select

from collector import audit
from collector.store.db import Database
from collector.store.models import AuditEntry


def _append(db: Database, n: int, actor: str = "tech") -> None:
    for i in range(n):
        db.write(lambda s, i=i: audit.record(s, actor, "event.view", target=f"ev{i}",
                                             details={"i": i, "note": "ünïcode"}))


def test_a_clean_chain_verifies(database: Database) -> None:
    _append(database, 5)
    with database.session() as s:
        result = audit.verify(s)
    assert result == audit.VerifyResult(ok=True, checked=5)


def test_an_entry_only_exists_if_the_caller_commits(database: Database) -> None:
    with database.session() as s:
        audit.record(s, "tech", "event.view")
        s.rollback()
    _append(database, 1)
    with database.session() as s:
        assert audit.verify(s).ok and audit.verify(s).checked == 1


def test_concurrent_writers_never_fork_the_chain(database: Database) -> None:
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(15):
                with database.session() as s:  # each thread its own transactions, no queue
                    audit.record(s, name, "login", target=str(i))
                    s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"user{t}",)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with database.session() as s:
        assert audit.verify(s) == audit.VerifyResult(ok=True, checked=60)


def test_an_altered_entry_is_reported_with_its_number(database: Database) -> None:
    _append(database, 6)
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE auditentry SET actor = 'someone else' WHERE seq = 4"))
    with database.session() as s:
        result = audit.verify(s)
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 4, 3)
    assert "altered" in result.reason


def test_a_removed_entry_is_reported(database: Database) -> None:
    _append(database, 6)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM auditentry WHERE seq = 2"))
    with database.session() as s:
        result = audit.verify(s)
    assert (result.ok, result.first_broken_seq) == (False, 2)


def test_removing_the_last_entries_is_reported(database: Database) -> None:
    _append(database, 6)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM auditentry WHERE seq >= 5"))
    with database.session() as s:
        result = audit.verify(s)
    assert (result.ok, result.first_broken_seq) == (False, 5)
    assert "removed" in result.reason


def test_a_rewritten_chain_still_fails_against_its_head(database: Database) -> None:
    """Recomputing hashes after an edit needs the head row too; a forger who misses it is seen."""
    _append(database, 3)
    with database.session() as s:
        entries = s.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all()
    prev = audit.GENESIS
    with database.engine.begin() as conn:
        for e in entries:
            actor = "forged" if e.seq == 2 else e.actor
            digest = audit.entry_hash(prev, e.seq, e.at, actor, e.action, e.target, e.details)
            conn.execute(text("UPDATE auditentry SET actor=:a, prev_hash=:p, hash=:h "
                              "WHERE seq=:s"), {"a": actor, "p": prev, "h": digest, "s": e.seq})
            prev = digest
    with database.session() as s:
        result = audit.verify(s)
    assert not result.ok and "replaced" in result.reason

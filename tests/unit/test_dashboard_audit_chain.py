"""The audit viewer's incremental verification, on SQLite and PostgreSQL, against real tampering.

The full verification must keep finding everything collector.audit.verify finds; the incremental
one must find whatever touches the checkpoint or the entries after it, and say what it covered.
"""

from __future__ import annotations

from sqlalchemy import text

from collector import audit
from collector.store.db import Database
from dashboard.audit_chain import ChainVerifier


def _append(db: Database, n: int) -> None:
    for i in range(n):
        db.write(lambda s, i=i: audit.record(s, "tech", "event.view", target=f"ev{i}",
                                             details={"i": i}))


def _check(db: Database, verifier: ChainVerifier, full: bool = False):  # type: ignore[no-untyped-def]
    with db.session() as s:
        return verifier.check(s, full=full)


def _verified(db: Database, n: int) -> ChainVerifier:
    """A verifier whose checkpoint is entry ``n`` of a fresh chain of ``n`` entries."""
    _append(db, n)
    verifier = ChainVerifier()
    assert _check(db, verifier).ok
    return verifier


def _sql(db: Database, statement: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement))


def test_first_view_walks_everything_then_only_new_entries(database: Database) -> None:
    verifier = ChainVerifier()
    first = _check(database, verifier)  # empty chain
    assert (first.ok, first.full, first.walked) == (True, True, 0)
    _append(database, 5)
    result = _check(database, verifier)
    assert (result.ok, result.full, result.first, result.last) == (True, False, 1, 5)
    assert _check(database, verifier).walked == 0  # nothing new: only the checkpoint is read
    _append(database, 3)
    result = _check(database, verifier)
    assert (result.ok, result.full, result.first, result.last) == (True, False, 6, 8)


def test_a_new_process_starts_with_a_full_walk(database: Database) -> None:
    _append(database, 4)
    result = _check(database, ChainVerifier())
    assert (result.ok, result.full, result.first, result.last) == (True, True, 1, 4)


def test_an_old_entry_altered_later_is_found_by_the_full_walk(database: Database) -> None:
    verifier = _verified(database, 6)
    _sql(database, "UPDATE auditentry SET actor = 'someone else' WHERE seq = 2")
    _append(database, 1)
    # The incremental view does not revisit entry 2, and says so: it covered 7 only.
    quick = _check(database, verifier)
    assert (quick.ok, quick.first, quick.last) == (True, 7, 7)
    full = _check(database, verifier, full=True)
    assert (full.ok, full.full, full.first_broken_seq) == (False, True, 2)
    assert "altered" in full.reason and verifier.last_full == full
    with database.session() as s:  # the collector's own verification agrees
        assert audit.verify(s).first_broken_seq == 2
    # After a break every view walks from the start again, so the break stays reported.
    again = _check(database, verifier)
    assert (again.ok, again.full, again.first_broken_seq) == (False, True, 2)


def test_the_checkpoint_entry_altered_is_found_incrementally(database: Database) -> None:
    verifier = _verified(database, 5)
    _sql(database, "UPDATE auditentry SET hash = 'abababababababababababababababababababababababababababababababab' WHERE seq = 5")
    result = _check(database, verifier)
    assert (result.ok, result.full, result.first_broken_seq) == (False, False, 5)


def test_new_entries_altered_or_removed_are_found_incrementally(database: Database) -> None:
    verifier = _verified(database, 3)
    _append(database, 4)
    _sql(database, "UPDATE auditentry SET target = 'elsewhere' WHERE seq = 5")
    result = _check(database, verifier)
    assert (result.ok, result.full, result.first_broken_seq, result.last) == (False, False, 5, 4)
    assert "altered" in result.reason

    verifier = ChainVerifier()
    _sql(database, "UPDATE auditentry SET target = 'ev1' WHERE seq = 5")  # put it back
    assert _check(database, verifier).ok
    _append(database, 3)
    _sql(database, "DELETE FROM auditentry WHERE seq >= 9")
    result = _check(database, verifier)
    assert (result.ok, result.first_broken_seq) == (False, 9)
    assert "removed" in result.reason


def test_a_replaced_head_is_found(database: Database) -> None:
    verifier = _verified(database, 3)
    _sql(database, "UPDATE audithead SET hash = 'ff' WHERE id = 1")
    result = _check(database, verifier)
    assert not result.ok and "head" in result.reason

"""The audit chain's anchors outside the database, on SQLite and PostgreSQL: the append-only log
file (written only for committed entries, checkable with SHA-256 alone, loud when it cannot be
written) and the checkpoints keyholders sign, trusted only through the signed policy."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from collector import audit
from collector.audit_log import START_ACTION, log_for, new_log, open_log, read_log
from collector.audit_verify import verify_trail
from collector.store.db import Database
from collector.store.models import PolicyRecord
from core.keys import PrivateKey
from core.policy import Policy, sign


@pytest.fixture
def head_key() -> PrivateKey:
    return PrivateKey.generate("Mrs Head", "head")


@pytest.fixture
def log_path(database: Database, tmp_path: Path) -> Path:
    path = tmp_path / "audit" / "audit.log"
    open_log(database, path)
    return path


def _publish(db: Database, *signers: PrivateKey, serial: int = 1,
             keyholders: tuple[PrivateKey, ...] | None = None) -> None:
    """A signed policy listing ``keyholders`` (default: the signers), signed by the first."""
    listed = tuple(k.public for k in (keyholders or signers))
    signed = sign(Policy(serial=serial, keyholders=listed), signers[0])
    db.write(lambda s: s.add(PolicyRecord(serial=serial, signed=signed.to_bytes(),
                                          etag=signed.digest, signer=signers[0].fingerprint)))


def _append(db: Database, n: int) -> None:
    for i in range(n):
        db.write(lambda s, i=i: audit.record(s, "tech", "event.view", f"ev{i}", {"i": i}))


def _verify(db: Database, path: Path) -> Any:
    with db.session() as s:
        return verify_trail(s, [path], configured=path)


def _texts(report: Any) -> list[str]:
    return [str(f) for f in report.findings]


def test_each_committed_entry_is_one_line_checkable_with_sha256_alone(
        database: Database, log_path: Path) -> None:
    _append(database, 3)
    with database.session() as s:  # rolled back: never reaches the file
        audit.record(s, "tech", "event.view", "rolled-back")
        s.rollback()
    with database.session() as s:  # closed without a commit: the same
        audit.record(s, "tech", "event.view", "abandoned")
    _append(database, 1)
    lines = log_path.read_bytes().splitlines()
    assert len(lines) == 5 and b"rolled-back" not in log_path.read_bytes()
    prev = audit.GENESIS
    for number, raw in enumerate(lines, 1):
        value = json.loads(raw)
        body = raw[raw.index(b'"record":') + len(b'"record":'):raw.rindex(b',"seq":')]
        assert hashlib.sha256(prev.encode() + body).hexdigest() == value["hash"]
        assert value["seq"] == number and value["prev_hash"] == prev
        prev = value["hash"]
    assert json.loads(lines[0])["record"]["action"] == START_ACTION
    assert (log_path.stat().st_mode & 0o777) == 0o600
    report = _verify(database, log_path)
    assert report.ok, _texts(report)
    assert (report.log_first, report.log_last, report.checked) == (1, 5, 5)


def test_a_checkpoint_counts_only_when_a_signed_policy_lists_its_key(
        database: Database, log_path: Path, head_key: PrivateKey) -> None:
    _append(database, 2)
    database.write(lambda s: audit.checkpoint(s, head_key, "Mrs Head", "unlock"))
    assert "claims a signer" in " ".join(_texts(_verify(database, log_path)))
    _publish(database, head_key)
    report = _verify(database, log_path)
    assert report.ok, _texts(report)
    latest = report.latest_checkpoint
    assert latest is not None and (latest.seq, latest.who) == (3, "Mrs Head")


def test_a_rogue_policy_inserted_in_the_database_does_not_make_its_key_trusted(
        database: Database, log_path: Path, head_key: PrivateKey) -> None:
    rogue = PrivateKey.generate("Mr Rogue", "technician")
    _publish(database, head_key)
    _publish(database, rogue, serial=2, keyholders=(head_key, rogue))  # not signed by the head
    database.write(lambda s: audit.checkpoint(s, rogue, "Mr Rogue", "unlock"))
    found = _texts(_verify(database, log_path))
    assert any(f.startswith("policy: stored policy 2 does not verify") for f in found), found
    assert any("claims a signer" in f for f in found), found


def test_a_gap_is_reported_with_what_the_log_holds(database: Database, log_path: Path) -> None:
    _append(database, 4)
    with database.engine.begin() as conn:
        conn.execute(text("DELETE FROM auditentry WHERE seq = 3"))
    found = _texts(_verify(database, log_path))
    assert ("missing: entry 3 is missing from the database (a gap in the chain); the "
            "append-only log has it") in found, found


def test_a_signed_checkpoint_catches_a_rewrite_even_when_the_log_was_rewritten_too(
        database: Database, log_path: Path, head_key: PrivateKey) -> None:
    """The attacker holds the database and the server's disk: the chain and the log agree with
    each other, but not with what the keyholder signed."""
    _publish(database, head_key)
    _append(database, 3)
    database.write(lambda s: audit.checkpoint(s, head_key, "Mrs Head", "unlock"))
    _append(database, 1)
    with database.session() as s:
        rows = [(e.seq, e.at, e.actor, e.action, e.target, e.details) for e in audit_rows(s)]
    prev, out = audit.GENESIS, []
    with database.engine.begin() as conn:
        for seq, at, actor, action, target, details in rows:
            actor = "nobody" if seq == 2 else actor
            body = audit.canonical_body(seq, at, actor, action, target, details)
            digest = hashlib.sha256(prev.encode() + body).hexdigest()
            conn.execute(text("UPDATE auditentry SET actor=:a, prev_hash=:p, hash=:h "
                              "WHERE seq=:s"), {"a": actor, "p": prev, "h": digest, "s": seq})
            out.append(audit.log_line(seq, prev, digest, body))
            prev = digest
        conn.execute(text("UPDATE audithead SET hash=:h WHERE id=1"), {"h": prev})
    log_path.write_bytes(b"".join(out))
    found = _texts(_verify(database, log_path))
    assert any(f.startswith("rewritten: entry 4 is not the one Mrs Head signed") for f in found)
    assert any(f.startswith("log edited: the append-only log's entry 4 is not the one Mrs Head")
               for f in found), found


def audit_rows(session: Any) -> list[Any]:
    from sqlmodel import col, select

    from collector.store.models import AuditEntry

    return list(session.exec(select(AuditEntry).order_by(col(AuditEntry.seq))).all())


def test_a_failed_write_is_loud_kept_and_written_later(
        database: Database, log_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _append(database, 1)
    saved = log_path.read_bytes()
    log_path.unlink()  # the writer never creates the file: a vanished log is an error
    with caplog.at_level(logging.ERROR, logger="vigil.audit"):
        _append(database, 2)
    writer = log_for(database.engine)
    assert writer is not None and writer.problem is not None
    assert "2 entries are in the database but not yet in the log" in writer.problem
    assert any("cannot write the append-only audit log" in r.getMessage() for r in caplog.records)
    found = _texts(_verify(database, log_path))
    assert any(f.startswith("log: the append-only log cannot be read") for f in found), found

    # Put it back, ending in a line cut short (what a write into a full disk leaves).
    log_path.write_bytes(saved + b'{"hash":"0f3a')
    _append(database, 1)
    assert writer.problem is None
    report = _verify(database, log_path)
    assert report.ok, _texts(report)  # the cut line is a note; every entry is in the log
    assert any("are not records" in n for n in report.notes), report.notes


def test_a_new_log_needs_a_keyholder_and_keeps_the_old_one(
        database: Database, log_path: Path, head_key: PrivateKey) -> None:
    _publish(database, head_key)
    _append(database, 2)
    archived, start = new_log(database, log_path, head_key, "Mrs Head", "restored a backup")
    assert archived.exists() and archived.read_bytes().splitlines()[-1].find(
        b'"audit.checkpoint"') > 0
    assert json.loads(log_path.read_bytes().splitlines()[0])["seq"] == start
    _append(database, 1)
    report = _verify(database, log_path)
    assert report.ok, _texts(report)
    assert any("started again by a keyholder" in n for n in report.notes)

    # A start entry claiming a rotation without the signed checkpoint before it (a database
    # writer's): not a keyholder's decision.
    database.write(lambda s: audit.record(s, "admin", START_ACTION, str(log_path),
                                          {"path": str(log_path), "reason": "rotated"}))
    found = _texts(_verify(database, log_path))
    assert any("without a keyholder's signed checkpoint" in f for f in found), found


def test_a_log_found_missing_at_start_is_begun_again_and_reported(
        database: Database, log_path: Path) -> None:
    _append(database, 2)
    log_path.unlink()
    open_log(database, log_path)  # the next start of the collector
    contents = read_log(log_path)
    assert contents.first is not None and contents.first.seq == 4
    found = _texts(_verify(database, log_path))
    assert any("was missing or empty when the collector started at entry 4" in f
               for f in found), found


@pytest.mark.parametrize("column, value", [("hash", "é" * 64), ("prev_hash", "ü" * 64),
                                           ("actor", "x")])
def test_values_a_forger_writes_are_reported_not_a_crash(
        database: Database, log_path: Path, column: str, value: str) -> None:
    """Non-ASCII where a hash belongs would make a naive comparison raise; the verifier must
    still answer with findings."""
    _append(database, 3)
    with database.engine.begin() as conn:
        conn.execute(text(f"UPDATE auditentry SET {column} = :v WHERE seq = 2"), {"v": value})
    found = _texts(_verify(database, log_path))
    assert any(f.startswith("rewritten: audit log broken at entry 2") for f in found), found


def test_an_unreadable_time_written_by_hand_is_reported(tmp_path: Path) -> None:
    """SQLite stores times as text: a forger can write one the collector cannot parse."""
    from collector.store.db import make_engine
    from collector.store.schema import upgrade

    db = Database(make_engine(f"sqlite:///{tmp_path / 'v.db'}"))
    upgrade(db.engine)
    path = tmp_path / "audit.log"
    open_log(db, path)
    try:
        _append(db, 3)
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE auditentry SET at = 'not a time' WHERE seq = 3"))
        found = _texts(_verify(db, path))
    finally:
        db.close()
    assert ("rewritten: entry 3 holds values the collector never writes (they cannot even be "
            "read): written into the database by hand") in found, found
    assert not any(f.startswith("truncated") for f in found), found


def test_hash_comparisons_answer_for_anything_a_forger_writes() -> None:
    from collector.audit import same_hash

    assert same_hash("ab" * 32, "ab" * 32)
    assert not same_hash("ab" * 32, "ab" * 31 + "ac")
    assert not same_hash("é" * 64, "e" * 64)  # hmac.compare_digest on str would raise
    assert not same_hash(None, "ab")

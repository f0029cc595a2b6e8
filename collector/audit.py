"""The append-only, hash-chained audit log.

Each entry's hash is SHA-256 over the previous entry's hash and the canonical JSON of the entry
(seq, time, actor, action, target, details), so changing, removing or reordering any entry breaks
every later link. Appends lock the single AuditHead row first: that serialises concurrent writers
on PostgreSQL (row lock) and on SQLite (the write lock), so two entries never share a predecessor.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from collector.store.models import AuditEntry, AuditHead, utcnow

__all__ = ["GENESIS", "VerifyResult", "entry_hash", "record", "verify"]

GENESIS = "0" * 64


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


def _canonical_time(at: datetime) -> str:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, seq: int, at: datetime, actor: str, action: str, target: str,
               details: dict[str, Any]) -> str:
    body = json.dumps(
        {"seq": seq, "at": _canonical_time(at), "actor": actor, "action": action,
         "target": target, "details": details},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(prev_hash.encode("ascii") + body.encode("utf-8")).hexdigest()


def record(session: Session, actor: str, action: str, target: str = "",
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Append an entry in the caller's transaction (it is kept only if the caller commits).

    ``details`` must be JSON-serialisable and must never hold a password, a secret or captured
    content: the audit log is readable by every keyholder.
    """
    details = json.loads(json.dumps(details or {}, sort_keys=True))  # fail early if not JSON
    # Take the chain's lock before reading its head.
    session.execute(update(AuditHead).where(col(AuditHead.id) == 1)
                    .values(seq=AuditHead.seq))
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)
                        .execution_options(populate_existing=True)).first()
    if head is None:  # a schema made without collector.store.schema.upgrade
        head = AuditHead(id=1)
        session.add(head)
        session.flush()
    seq = head.seq + 1
    at = utcnow()
    actor, action, target = actor[:128], action[:64], target[:255]  # hash what is stored
    entry = AuditEntry(seq=seq, at=at, actor=actor, action=action, target=target,
                       details=details, prev_hash=head.hash,
                       hash=entry_hash(head.hash, seq, at, actor, action, target, details))
    head.seq, head.hash = seq, entry.hash
    session.add(entry)
    session.add(head)
    session.flush()
    return entry


def verify(session: Session, batch: int = 1000) -> VerifyResult:
    """Walk the chain from the start; report the first entry whose link does not hold."""
    prev, expected_seq, checked = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = session.exec(
            select(AuditEntry).where(AuditEntry.seq > last_seq)
            .order_by(col(AuditEntry.seq)).limit(batch)
        ).all()
        if not rows:
            break
        for e in rows:
            if e.seq != expected_seq:
                return VerifyResult(False, checked, expected_seq,
                                    f"entry {expected_seq} is missing")
            if not hmac.compare_digest(e.prev_hash, prev):
                return VerifyResult(False, checked, e.seq, "link to the previous entry is broken")
            want = entry_hash(prev, e.seq, e.at, e.actor, e.action, e.target, e.details or {})
            if not hmac.compare_digest(want, e.hash):
                return VerifyResult(False, checked, e.seq, "entry was altered after it was written")
            prev, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
            checked += 1
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).first()
    if head is not None and head.seq != checked:
        return VerifyResult(False, checked, checked + 1,
                            f"the last {head.seq - checked} entries were removed"
                            if head.seq > checked else "chain head is behind the entries")
    if head is not None and head.seq and not hmac.compare_digest(head.hash, prev):
        return VerifyResult(False, checked, head.seq, "the last entry was replaced")
    return VerifyResult(True, checked)

"""The append-only, hash-chained audit log.

Each entry's hash is SHA-256 over the previous entry's hash and the canonical JSON of the entry
(seq, time, actor, action, target, details), so changing, removing or reordering any entry breaks
every later link. Appends lock the single AuditHead row first: that serialises concurrent writers
on PostgreSQL (row lock) and on SQLite (the write lock), so two entries never share a predecessor.

The chain alone cannot stop someone who can write the database: they can rewrite a row and
recompute every later hash and the head, or delete the last rows. Two anchors outside the
database catch that (collector.audit_log, collector.audit_verify):

- every committed entry is also appended, as the same canonical bytes with its number and hash,
  to an append-only file (``record`` queues the line on the session; it is written once the
  transaction commits, so a rolled-back entry never reaches the file);
- ``checkpoint`` records the chain's head (number and hash, and the time) signed with a
  keyholder's Ed25519 key, which the database does not hold.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, col, select

from collector.store.models import AuditEntry, AuditHead, utcnow

__all__ = [
    "CHECKPOINT_ACTION",
    "GENESIS",
    "VerifyResult",
    "canonical_body",
    "checkpoint",
    "checkpoint_message",
    "entry_hash",
    "log_line",
    "record",
    "same_hash",
    "verify",
]


def same_hash(a: object, b: object) -> bool:
    """Constant-time equality of two hashes that may hold anything a forger wrote (a non-ASCII
    string would make hmac.compare_digest raise rather than answer)."""
    if not isinstance(a, str) or not isinstance(b, str):
        return False
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


GENESIS = "0" * 64
CHECKPOINT_ACTION = "audit.checkpoint"
# Domain separation: a checkpoint signature is never valid as a policy signature or the reverse.
_CHECKPOINT_CONTEXT = b"vigil audit checkpoint v1\x00"
_PENDING = "vigil.audit.pending"  # Session.info key: log lines waiting for the commit


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


def canonical_body(seq: int, at: datetime | str, actor: str, action: str, target: str,
                   details: dict[str, Any]) -> bytes:
    """The bytes an entry's hash covers: canonical JSON of its six fields."""
    return json.dumps(
        {"seq": seq, "at": at if isinstance(at, str) else _canonical_time(at), "actor": actor,
         "action": action, "target": target, "details": details},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode("utf-8")


def entry_hash(prev_hash: str, seq: int, at: datetime | str, actor: str, action: str,
               target: str, details: dict[str, Any]) -> str:
    body = canonical_body(seq, at, actor, action, target, details)
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def log_line(seq: int, prev_hash: str, hash_: str, body: bytes) -> bytes:
    """One line of the append-only log: canonical JSON {hash, prev_hash, record, seq}, where
    ``record`` is the hashed body byte for byte, so SHA-256(prev_hash + record) == hash."""
    return (b'{"hash":"' + hash_.encode("ascii") + b'","prev_hash":"'
            + prev_hash.encode("ascii") + b'","record":' + body + b',"seq":'
            + str(seq).encode("ascii") + b"}\n")


def _lock_head(session: Session) -> AuditHead:
    """Take the chain's lock, then read its head."""
    session.execute(update(AuditHead).where(col(AuditHead.id) == 1)
                    .values(seq=AuditHead.seq))
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)
                        .execution_options(populate_existing=True)).first()
    if head is None:  # a schema made without collector.store.schema.upgrade
        head = AuditHead(id=1)
        session.add(head)
        session.flush()
    return head


def record(session: Session, actor: str, action: str, target: str = "",
           details: dict[str, Any] | None = None) -> AuditEntry:
    """Append an entry in the caller's transaction (it is kept only if the caller commits).

    ``details`` must be JSON-serialisable and must never hold a password, a secret or captured
    content: the audit log is readable by every keyholder.
    """
    details = json.loads(json.dumps(details or {}, sort_keys=True))  # fail early if not JSON
    return _append(session, _lock_head(session), actor, action, target, details)


def _append(session: Session, head: AuditHead, actor: str, action: str, target: str,
            details: dict[str, Any]) -> AuditEntry:
    seq = head.seq + 1
    at = utcnow()
    actor, action, target = actor[:128], action[:64], target[:255]  # hash what is stored
    body = canonical_body(seq, at, actor, action, target, details)
    digest = hashlib.sha256(head.hash.encode("ascii") + body).hexdigest()
    entry = AuditEntry(seq=seq, at=at, actor=actor, action=action, target=target,
                       details=details, prev_hash=head.hash, hash=digest)
    session.info.setdefault(_PENDING, []).append(log_line(seq, head.hash, digest, body))
    head.seq, head.hash = seq, entry.hash
    session.add(entry)
    session.add(head)
    session.flush()
    return entry


def checkpoint_message(seq: int, head: str, at: str, signer: str) -> bytes:
    """What a keyholder signs: the chain's head (entry number and hash), the time, and who."""
    return _CHECKPOINT_CONTEXT + json.dumps(
        {"at": at, "head": head, "seq": seq, "signer": signer},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def checkpoint(session: Session, key: Any, actor: str, reason: str) -> AuditEntry:
    """Sign the chain's current head with ``key`` (an unlocked core.keys.PrivateKey) and append
    the signed checkpoint as the next entry, in the caller's transaction.

    The signature covers the head as it stands under the chain's lock, so the checkpoint entry
    is always number ``seq + 1``. Whoever can write the database cannot make one: the signing
    key is unlocked only by its keyholder's password.
    """
    from core._canonical import b64e

    head = _lock_head(session)
    at = _canonical_time(utcnow())
    signature = key.sign(checkpoint_message(head.seq, head.hash, at, key.fingerprint))
    details = {"seq": head.seq, "head": head.hash, "at": at, "signer": key.fingerprint,
               "name": key.name, "role": key.role, "reason": reason[:64],
               "signature": b64e(signature)}
    return _append(session, head, actor, CHECKPOINT_ACTION, key.fingerprint, details)


@event.listens_for(OrmSession, "after_commit")
def _write_committed_lines(session: OrmSession) -> None:
    lines = session.info.pop(_PENDING, None)
    if lines:
        from collector.audit_log import log_for

        writer = log_for(session.get_bind())
        if writer is not None:
            writer.append(lines)


@event.listens_for(OrmSession, "after_transaction_end")
def _drop_uncommitted_lines(session: OrmSession, transaction: Any) -> None:
    # After a commit the lines are already gone (after_commit runs first); after a rollback or
    # a close without commit they are dropped here, so they never reach the file.
    if transaction.parent is None:
        session.info.pop(_PENDING, None)


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
            if not same_hash(e.prev_hash, prev):
                return VerifyResult(False, checked, e.seq, "link to the previous entry is broken")
            want = entry_hash(prev, e.seq, e.at, e.actor, e.action, e.target, e.details or {})
            if not same_hash(want, e.hash):
                return VerifyResult(False, checked, e.seq, "entry was altered after it was written")
            prev, expected_seq, last_seq = e.hash, e.seq + 1, e.seq
            checked += 1
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).first()
    if head is not None and head.seq != checked:
        return VerifyResult(False, checked, checked + 1,
                            f"the last {head.seq - checked} entries were removed"
                            if head.seq > checked else "chain head is behind the entries")
    if head is not None and head.seq and not same_hash(head.hash, prev):
        return VerifyResult(False, checked, head.seq, "the last entry was replaced")
    return VerifyResult(True, checked)

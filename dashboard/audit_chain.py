"""The audit viewer's check of the hash chain: incremental from a checkpoint kept in memory.

Walking the whole chain on every view costs time in proportion to the log, which only grows.
The viewer instead remembers the last entry it verified (its number and hash) and, on each view,
checks that this entry still carries that hash and walks only the entries written since.

The checkpoint lives in this process's memory, never in the database: whoever can rewrite old
entries can rewrite a stored checkpoint too. The first view in each process, and the page's
"verify the whole chain" button, walk from the start. An old entry altered after the checkpoint
was set is found by the next full verification (and by ``vigil collector audit verify``), not by
an incremental one; so the page says which range each verification covered, and when.

The chain alone cannot show a rewrite that recomputed every hash and the head, or the last
entries deleted with the head; the anchors outside the database can (collector.audit_verify):
the append-only log and the keyholders' signed checkpoints. Comparing with them in full reads
the whole log, so it runs with the full walks (first view, the button); every view in between
checks the log's last line and the latest signed checkpoint against the database, which is
enough to see a rewrite or a truncation, and runs the full comparison at once if they disagree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from collector.audit import GENESIS, entry_hash
from collector.audit_log import last_line
from collector.audit_verify import AuditReport, same_hash, verify_trail
from collector.store.models import AuditEntry, AuditHead, utcnow

__all__ = ["ChainCheck", "ChainVerifier"]

BATCH = 1000


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """One verification: entries ``first``..``last`` were walked (none when first > last)."""

    ok: bool
    full: bool
    first: int
    last: int
    at: datetime
    first_broken_seq: int | None = None
    reason: str = ""

    @property
    def walked(self) -> int:
        return max(0, self.last - self.first + 1)


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    seq: int
    hash: str


def _broken(full: bool, first: int, last: int, seq: int, reason: str) -> ChainCheck:
    return ChainCheck(False, full, first, last, utcnow(), seq, reason)


def _walk(session: Session, start: _Checkpoint, full: bool) -> tuple[ChainCheck, _Checkpoint]:
    """Verify the entries after ``start`` up to the chain head read at the outset."""
    # The head is read first and the walk stops at it: entries appended meanwhile are left for
    # the next view instead of being mistaken for a head that fell behind.
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).first()
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    first = start.seq + 1
    prev, seq = start.hash, start.seq
    while seq < head_seq:
        rows = session.exec(
            select(AuditEntry).where(col(AuditEntry.seq) > seq, col(AuditEntry.seq) <= head_seq)
            .order_by(col(AuditEntry.seq)).limit(BATCH)
        ).all()
        if not rows:
            return _broken(full, first, seq, seq + 1,
                           f"the last {head_seq - seq} entries were removed"), start
        for e in rows:
            if e.seq != seq + 1:
                return _broken(full, first, seq, seq + 1, f"entry {seq + 1} is missing"), start
            if not same_hash(e.prev_hash, prev):
                return _broken(full, first, seq, e.seq,
                               "link to the previous entry is broken"), start
            want = entry_hash(prev, e.seq, e.at, e.actor, e.action, e.target, e.details or {})
            if not same_hash(want, e.hash):
                return _broken(full, first, seq, e.seq,
                               "entry was altered after it was written"), start
            prev, seq = e.hash, e.seq
    if head_seq != seq or (head_seq and not same_hash(head_hash, prev)):
        return _broken(full, first, seq, max(head_seq, 1),
                       "the chain head does not match the last entry"), start
    return ChainCheck(True, full, first, seq, utcnow()), _Checkpoint(seq, prev)


def _checkpoint_holds(session: Session, point: _Checkpoint) -> bool:
    if point.seq == 0:
        return True
    entry = session.exec(select(AuditEntry).where(AuditEntry.seq == point.seq)).first()
    return entry is not None and same_hash(entry.hash, point.hash)


class ChainVerifier:
    """Per-process verification state for one database's audit chain."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one walk at a time; the checkpoint moves only forward
        self._checkpoint: _Checkpoint | None = None
        self._last_full: ChainCheck | None = None
        self._anchored: AuditReport | None = None

    @property
    def last_full(self) -> ChainCheck | None:
        return self._last_full

    def check(self, session: Session, *, full: bool = False) -> ChainCheck:
        """Verify the chain: from the start if asked, or if nothing is trusted yet; otherwise
        from the checkpoint, which must still hold."""
        with self._lock:
            point = self._checkpoint
            if not full and point is not None and not _checkpoint_holds(session, point):
                self._checkpoint = None
                return _broken(False, point.seq, point.seq, point.seq,
                               "an entry already verified was altered or removed")
            if full or point is None:
                result, point = _walk(session, _Checkpoint(0, GENESIS), True)
                self._last_full = result
            else:
                result, point = _walk(session, point, False)
            # A break forgets the checkpoint, so every view reports it until a full walk passes.
            self._checkpoint = point if result.ok else None
            return result

    def check_anchors(self, session: Session, log_path: Path, *, full: bool = False
                      ) -> AuditReport:
        """Compare the chain with the append-only log and the signed checkpoints: in full when
        asked, the first time, while anything is wrong, or when the quick check disagrees."""
        with self._lock:
            report = self._anchored
            if (full or report is None or not report.ok
                    or not _anchors_hold(session, log_path, report)):
                report = self._anchored = verify_trail(session, [log_path], configured=log_path)
            return report


def _hash_of(session: Session, seq: int) -> str | None:
    entry = session.exec(select(AuditEntry).where(AuditEntry.seq == seq)).first()
    return entry.hash if entry is not None else None


def _anchors_hold(session: Session, log_path: Path, report: AuditReport) -> bool:
    """The log's last line and the latest signed checkpoint still match the database."""
    line = last_line(log_path)
    if line is None or not line.intact:
        return False
    if not same_hash(_hash_of(session, line.seq), line.hash):
        return False
    latest = report.latest_checkpoint
    return latest is None or same_hash(_hash_of(session, latest.seq), latest.head)

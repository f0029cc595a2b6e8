"""Verify the audit trail against both anchors outside the database.

The hash chain in the database shows an entry changed in place. It cannot show a rewrite by
someone who recomputes every later hash and the stored head, nor the last entries deleted
together with the head. So the chain is also compared with:

- the append-only log file (collector.audit_log), which holds every committed entry's hash;
- the signed checkpoints: (entry number, head hash, time) signed by a keyholder's Ed25519 key,
  recorded in the chain and so in the log as well. A checkpoint counts only when its signature
  verifies against a keyholder key of the signed policy (the stored policies, each checked
  against the keyholders of the one before, the first against its own keyholder set or a
  pinned keyset fingerprint), so a database writer cannot make one.

Each finding is one line. The kinds:

- ``rewritten``: an entry whose hash does not match its contents or does not link to the one
  before; or entries that differ from the log or from what a keyholder signed (a rewrite that
  recomputed the chain);
- ``truncated``: the database ends before the log, a signed checkpoint, or its own stored head;
- ``missing``: a gap in the database's entry numbers;
- ``not in log``: entries the log should hold and does not (the log was cut or edited);
- ``log edited``: a line of the log that does not match its own hash or link, or two lines with
  one number; ``log``: the log is missing, was restarted, or does not begin where it should;
- ``checkpoint``: a checkpoint whose signature does not verify against a keyholder key of the
  signed policy; ``policy``: a stored policy that does not verify against the one before.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import StatementError
from sqlmodel import Session, col, select

from collector.audit import (
    CHECKPOINT_ACTION,
    GENESIS,
    checkpoint_message,
    entry_hash,
    same_hash,
)
from collector.audit_log import START_ACTION, LogContents, latest_start, read_log
from collector.store.models import AuditEntry, AuditHead, utcnow

__all__ = ["AuditReport", "Checkpoint", "Finding", "same_hash", "trusted_keys", "verify_trail"]

BATCH = 1000


@dataclass(frozen=True, slots=True)
class _Unreadable:
    """A row whose values cannot be loaded (e.g. a time SQLite holds as text that is none)."""

    seq: int
    prev_hash: str
    hash: str


def _load(session: Session, after: int) -> list[Any]:
    """The next rows after entry ``after``; a row that cannot be loaded comes back as
    _Unreadable (its number and hashes, read as plain columns) instead of stopping the walk."""
    query = (select(AuditEntry).where(col(AuditEntry.seq) > after)
             .order_by(col(AuditEntry.seq)).limit(BATCH))
    try:
        return list(session.exec(query).all())
    except (StatementError, ValueError, TypeError):
        session.rollback()
    out: list[Any] = []
    for seq, prev, digest in session.exec(
            select(AuditEntry.seq, AuditEntry.prev_hash, AuditEntry.hash)
            .where(col(AuditEntry.seq) > after).order_by(col(AuditEntry.seq)).limit(BATCH)):
        try:
            row = session.exec(select(AuditEntry).where(AuditEntry.seq == seq)).one()
        except (StatementError, ValueError, TypeError):
            session.rollback()
            row = _Unreadable(seq or 0, prev, digest)
        out.append(row)
    return out


def _hash_of(e: AuditEntry) -> str | None:
    """The hash ``e`` should carry, or None when its stored fields cannot even be hashed."""
    try:
        return entry_hash(e.prev_hash, e.seq or 0, e.at, e.actor, e.action, e.target,
                          e.details or {})
    except (TypeError, ValueError, AttributeError):  # UnicodeEncodeError is a ValueError
        return None


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.text}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    entry: int  # where it is recorded
    seq: int  # the entry it covers
    head: str
    at: str
    signer: str
    name: str
    signature: str
    valid: bool  # the signature verifies against a keyholder key of the signed policy
    known: bool  # the signer is a keyholder of a signed policy

    @property
    def who(self) -> str:
        return self.name or self.signer

    @property
    def when(self) -> str:
        """"2026-11-24 10:00 UTC" from the signed ISO time."""
        return f"{self.at[:10]} {self.at[11:16]} UTC" if len(self.at) >= 16 else self.at


@dataclass
class AuditReport:
    checked: int = 0  # database entries walked
    last: int = 0  # the database's last entry number
    first_broken_seq: int | None = None  # the first entry whose own link or hash is broken
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    log_path: str = ""
    log_first: int | None = None
    log_last: int | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    at: datetime = field(default_factory=utcnow)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def latest_checkpoint(self) -> Checkpoint | None:
        good = [c for c in self.checkpoints if c.valid]
        return max(good, key=lambda c: c.seq) if good else None

    def summary(self) -> str:
        """One line for the intact case."""
        parts = [f"{self.checked} entries checked"]
        if self.log_last is not None:
            parts.append(f"the append-only log {self.log_path} agrees (entries "
                         f"{self.log_first}-{self.log_last})")
        good = [c for c in self.checkpoints if c.valid]
        if good:
            latest = self.latest_checkpoint
            assert latest is not None
            parts.append(f"{len(good)} signed checkpoint{'s' if len(good) != 1 else ''} verify "
                         f"(latest: entry {latest.seq}, signed by {latest.who} at {latest.when})")
        else:
            parts.append("no signed checkpoint yet (one is made at each keyholder unlock)")
        return "; ".join(parts)


def _ranges(numbers: Iterable[int], limit: int = 8) -> str:
    """[2, 3, 4, 7] -> "2-4, 7"; long lists are cut short with a count."""
    spans: list[list[int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans[:limit])
    if len(spans) > limit:
        text += f" and {len(spans) - limit} more ranges"
    return text


def _verb(numbers: Sequence[int], one: str, many: str) -> str:
    return one if len(numbers) == 1 else many


def _entries(numbers: Sequence[int]) -> str:
    return f"{'entry' if len(numbers) == 1 else 'entries'} {_ranges(numbers)}"


def trusted_keys(session: Session, pin: str | None = None) -> tuple[dict[str, Any], list[Finding]]:
    """Keyholder public keys of the signed policies, by fingerprint: the chain as
    collector.trust_root walks it (each stored policy checked against the keyholders of the
    one before, as an agent does; the first against ``pin``, a keyset fingerprint vks1:..., or
    else its own keyholders)."""
    from collector.trust_root import signed_chain

    chain, problems = signed_chain(session, pin)
    keys = {k.fingerprint: k for keyset in chain for k in keyset.keyholders}
    findings = [Finding("policy", f"{problem}; its keys are not trusted for checkpoints")
                for problem in problems]
    return keys, findings


def _checkpoint(entry: int, details: Any, keys: dict[str, Any]) -> Checkpoint | None:
    from core._canonical import b64d
    from core.errors import VigilError

    if not isinstance(details, dict):
        return None
    seq, head, at, signer = (details.get("seq"), details.get("head"), details.get("at"),
                             details.get("signer"))
    signature = details.get("signature")
    if not (type(seq) is int and isinstance(head, str) and isinstance(at, str)
            and isinstance(signer, str) and isinstance(signature, str)):
        return Checkpoint(entry, -1, "", "", str(signer), "", "", False, False)
    name = details.get("name") if isinstance(details.get("name"), str) else ""
    key = keys.get(signer)
    valid = False
    if key is not None:
        try:
            valid = key.verify(b64d(signature, "signature", VigilError),
                               checkpoint_message(seq, head, at, signer))
        except VigilError:
            valid = False
    return Checkpoint(entry, seq, head, at, signer, key.name if key else name, signature, valid,
                      key is not None)


def verify_trail(session: Session, logs: Sequence[Path], *, configured: Path | None = None,
                 pin: str | None = None) -> AuditReport:
    """Walk the database's chain and compare it with the log file(s) and the checkpoints.

    ``configured`` is the collector's own log path (settings.audit_log): when ``logs`` is just
    that file, it must also begin with the start entry the database recorded for it. Other
    files (a copy fetched back from syslog or another host) are compared where they overlap.
    """
    report = AuditReport()
    find = report.findings
    keys, policy_findings = trusted_keys(session, pin)

    log = LogContents(Path(logs[0]) if logs else Path())
    for path in logs:
        read_log(path, log)
    report.log_path = ", ".join(str(p) for p in logs)
    own = configured is not None and len(logs) == 1 and Path(logs[0]) == Path(configured)
    log_start = (_check_log_start(session, log, own, keys, find, report.notes)
                 if logs else None)

    # Checkpoints, from the database and from the log: one signature is one checkpoint, found
    # at the highest entry number either holds (a renumbered database must not hide it).
    found: dict[str, Checkpoint] = {}
    candidates = [(e.seq or 0, e.details) for e in session.exec(
        select(AuditEntry).where(AuditEntry.action == CHECKPOINT_ACTION))]
    candidates += [(line.seq, line.details) for line in log.lines.values()
                   if line.action == CHECKPOINT_ACTION and line.intact]
    for entry, details in candidates:
        cp = _checkpoint(entry, details, keys)
        if cp is None:
            continue
        seen = found.get(cp.signature or f"#{entry}")
        if seen is None or seen.entry < cp.entry:
            found[cp.signature or f"#{entry}"] = cp
    report.checkpoints = sorted(found.values(), key=lambda c: (c.entry, c.signature))
    covered = {c.seq for c in report.checkpoints if c.valid}

    # The database's chain, in batches.
    content: list[int] = []
    unlinked: list[int] = []
    gaps: list[int] = []
    differs: list[int] = []
    unlogged: list[int] = []
    unreadable: list[int] = []
    db_hash: dict[int, str] = {}
    prev_seq, prev_hash = 0, GENESIS
    while True:
        rows = _load(session, prev_seq)
        if not rows:
            break
        for e in rows:
            seq = e.seq or 0
            if seq != prev_seq + 1:
                gaps.extend(range(prev_seq + 1, seq))
            elif not same_hash(e.prev_hash, prev_hash):
                unlinked.append(seq)
            if isinstance(e, _Unreadable) or not same_hash(_hash_of(e), e.hash):
                content.append(seq)
            if isinstance(e, _Unreadable):
                unreadable.append(seq)
            line = log.lines.get(seq)
            if line is not None:
                if not same_hash(line.hash, e.hash):
                    differs.append(seq)
            elif log_start is not None and seq >= log_start:
                unlogged.append(seq)
            if seq in covered:
                db_hash[seq] = e.hash
            prev_seq, prev_hash = seq, e.hash
            report.checked += 1
    report.last = prev_seq
    breaks = content[:1] + unlinked[:1] + gaps[:1]
    report.first_broken_seq = min(breaks) if breaks else None

    first = min(content[:1] + unlinked[:1]) if content or unlinked else None
    if first is not None:
        reason = ("entry was altered after it was written" if first in content
                  else "link to the previous entry is broken")
        before = first - 1 - sum(1 for g in gaps if g < first)
        find.append(Finding("rewritten",
                            f"audit log broken at entry {first}: {reason} ({before} "
                            f"{'entry' if before == 1 else 'entries'} before it "
                            f"{'is' if before == 1 else 'are'} intact)"))
    if unreadable:
        find.append(Finding("rewritten", f"{_entries(unreadable)} "
                            f"{_verb(unreadable, 'holds', 'hold')} values the collector never "
                            "writes (they cannot even be read): written into the database by "
                            "hand"))
    if len(content) > 1 or (content and first != content[0]):
        find.append(Finding("rewritten", f"{_entries(content)}: the stored hash does not match "
                            "the contents (changed in place)"))
    if len(unlinked) > 1 or (unlinked and first != unlinked[0]):
        find.append(Finding("rewritten", f"{_entries(unlinked)}: the link to the entry before "
                            "is broken (the chain was re-spliced)"))
    if gaps:
        have = [g for g in gaps if g in log.lines]
        where = ("; the append-only log has " + ("it" if len(gaps) == 1 else _entries(have))
                 if have else "")
        find.append(Finding("missing", f"{_entries(gaps)} {'is' if len(gaps) == 1 else 'are'} "
                            f"missing from the database (a gap in the chain){where}"))
    if differs:
        find.append(Finding("rewritten", f"{_entries(differs)} in the database "
                            f"{'differs' if len(differs) == 1 else 'differ'} from the "
                            f"append-only log{_blame(differs[0], report, db_hash, log)}"))

    # Truncation: the database must reach every witness of how far the chain went.
    head = session.exec(select(AuditHead).where(AuditHead.id == 1)).first()
    witnesses: list[str] = []
    if log.lines and max(log.lines) > report.last:
        witnesses.append(f"the append-only log reaches entry {max(log.lines)}")
    signed = [c for c in report.checkpoints if c.valid and c.entry > report.last]
    if signed:
        best = max(signed, key=lambda c: c.entry)
        witnesses.append(f"entry {best.entry} is a checkpoint {best.who} signed at {best.when}")
    if head is not None and head.seq > report.last:
        witnesses.append(f"the stored head says {head.seq}")
    if witnesses:
        find.append(Finding("truncated", f"the database ends at entry {report.last}, but "
                            + " and ".join(witnesses)
                            + f": the entries after {report.last} were removed"))
    elif head is not None and (head.seq != report.last or (
            head.seq and not same_hash(head.hash, prev_hash))):
        find.append(Finding("rewritten", f"the stored head (entry {head.seq}) does not match "
                            f"the last entry ({report.last}): the last entry was replaced"))

    # What keyholders signed.
    for cp in report.checkpoints:
        if not cp.valid:
            find.append(Finding("checkpoint", f"the checkpoint in entry {cp.entry} " + (
                f"does not verify against {cp.who}'s key in the signed policy: it was forged "
                "or altered" if cp.known else
                f"claims a signer ({cp.signer or '?'}) that no signed policy lists as a "
                "keyholder: it was forged")))
            continue
        have = db_hash.get(cp.seq)
        if have is not None and not same_hash(have, cp.head):
            find.append(Finding("rewritten", f"entry {cp.seq} is not the one {cp.who} signed "
                                f"at {cp.when} (checkpoint in entry {cp.entry}): the chain up "
                                f"to entry {cp.seq} was rewritten"))
        line = log.lines.get(cp.seq)
        if line is not None and not same_hash(line.hash, cp.head):
            find.append(Finding("log edited", f"the append-only log's entry {cp.seq} is not the "
                                f"one {cp.who} signed at {cp.when}: the log was rewritten"))

    # The log itself.
    if unlogged:
        find.append(Finding("not in log", f"{_entries(unlogged)} "
                            f"{_verb(unlogged, 'is', 'are')} in the database but not in "
                            "the append-only log (the log was cut or edited, or the collector "
                            "could not write it: see its log)"))
    edited = sorted(s for s, line in log.lines.items() if not line.intact)
    if edited:
        find.append(Finding("log edited", f"the append-only log's {_entries(edited)} "
                            f"({_verb(edited, 'line', 'lines')} "
                            + _ranges(log.lines[s].line_no for s in edited)
                            + f") {_verb(edited, 'does', 'do')} not match "
                            f"{_verb(edited, 'its', 'their')} own hash: edited"))
    relinked = sorted(s for s, line in log.lines.items()
                      if s - 1 in log.lines and line.intact
                      and not same_hash(line.prev_hash, log.lines[s - 1].hash))
    if relinked:
        find.append(Finding("log edited", f"the append-only log's {_entries(relinked)} "
                            f"{_verb(relinked, 'does', 'do')} not link to the entry before: "
                            "lines were replaced"))
    if log.conflicts:
        find.append(Finding("log edited", f"the append-only log holds two different lines "
                            f"for {_entries(log.conflicts)}"))
    if log.damaged:
        report.notes.append(f"lines {_ranges(log.damaged)} of the append-only log are not "
                            "records (a write cut short by a full disk, or an edit); ignored")
    if log.lines:
        report.log_first, report.log_last = log_start or min(log.lines), max(log.lines)
    find.extend(policy_findings)
    return report


def _blame(first: int, report: AuditReport, db_hash: dict[int, str], log: LogContents) -> str:
    """Which side a keyholder's signature backs, for entries that differ from ``first`` on."""
    later = [c for c in report.checkpoints if c.valid and c.seq >= first]
    db_ok = any(same_hash(db_hash.get(c.seq, ""), c.head) for c in later)
    log_ok = any(c.seq in log.lines and same_hash(log.lines[c.seq].hash, c.head)
                 for c in later)
    if log_ok and not db_ok:
        return (f": a signed checkpoint agrees with the log, so the database was rewritten "
                f"from entry {first}")
    if db_ok and not log_ok:
        return ": a signed checkpoint agrees with the database, so the log was rewritten"
    return (f": the database or the log was rewritten from entry {first} (no signed checkpoint "
            "after it decides which)")


def _check_log_start(session: Session, log: LogContents, own: bool, keys: dict[str, Any],
                     find: list[Finding], notes: list[str]) -> int | None:
    """Where the log should begin; records what is wrong with its beginning."""
    if log.error:
        find.append(Finding("log", f"the append-only log cannot be read: {log.error}"))
        return None
    if not own:
        if log.lines:
            notes.append(f"the log file(s) given hold entries {min(log.lines)}-{max(log.lines)}; "
                         "the database is compared with them where they overlap")
            return min(log.lines)
        return None
    start = latest_start(session, log.path)
    first = log.first
    if start is None:
        if first is None:
            return None
        notes.append(f"the database has no start entry for {log.path}")
        return first.seq
    reason = (start.details or {}).get("reason", "")
    if start.seq and start.seq > 1:
        notes.append(f"the append-only log begins at entry {start.seq} "
                     f"({'started again by a keyholder' if reason == 'rotated' else reason}); "
                     f"entries before it are not checked against it")
    if first is None or first.seq != start.seq or not same_hash(first.hash, start.hash):
        where = f"entry {first.seq}" if first is not None else "nothing"
        find.append(Finding("log", f"the append-only log begins with {where}, not with its "
                            f"start entry {start.seq}: its first lines were removed or the file "
                            "was replaced"))
    if reason == "missing":
        find.append(Finding("log", f"the append-only log was missing or empty when the "
                            f"collector started at entry {start.seq} and was begun again: its "
                            "earlier lines are lost unless a copy was kept off the server "
                            "(a keyholder acknowledges this with `vigil collector audit "
                            "new-log`)"))
    elif reason == "rotated":
        signed = session.exec(select(AuditEntry).where(AuditEntry.seq == start.seq - 1)).first()
        cp = (_checkpoint(signed.seq or 0, signed.details, keys)
              if signed is not None and signed.action == CHECKPOINT_ACTION else None)
        if cp is None or not cp.valid or cp.seq != start.seq - 2:
            find.append(Finding("log", f"the append-only log was started again at entry "
                                f"{start.seq} without a keyholder's signed checkpoint before "
                                "it: the new log was not a keyholder's decision"))
    return start.seq


def starts(session: Session) -> list[AuditEntry]:
    """Every ``audit.log.start`` entry, oldest first (the log's history, for the audit page)."""
    return list(session.exec(select(AuditEntry).where(AuditEntry.action == START_ACTION)
                             .order_by(col(AuditEntry.seq))).all())

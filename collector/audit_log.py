"""The append-only audit log: every committed audit entry, one line each, in a file outside the
database (``audit_log`` in settings.toml, ``DATA/audit.log`` by default).

Each line is canonical JSON ``{"hash", "prev_hash", "record", "seq"}`` where ``record`` is the
very bytes the chain hashes, so ``SHA-256(prev_hash + record) == hash`` can be checked with
nothing but the file (collector.audit.log_line). The file is opened O_APPEND for every write,
locked, written and fsync'd; it is never opened with O_CREAT while the collector runs, so a log
that disappears is an error, not a fresh start. A failed write is logged at ERROR, kept in memory
and retried with the next entry, and shown on the dashboard's audit page (``problem``); the entry
itself is already committed to the database, and verification reports it as missing from the
log until the retry lands.

The file starts with an ``audit.log.start`` entry, recorded when the collector (or any
``vigil collector`` command) finds the file absent or empty. Its ``reason`` says why: ``new`` (no
log at this path before), ``missing`` (there was one: its lines are gone, which verification
reports) or ``rotated`` (a keyholder started a new log with ``vigil collector audit new-log``,
signing a checkpoint just before). See collector.audit_verify for what is checked.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from collector import audit
from collector.store.models import AuditEntry, utcnow

__all__ = [
    "START_ACTION",
    "AuditLog",
    "LogContents",
    "LogLine",
    "attach",
    "last_line",
    "log_for",
    "new_log",
    "open_log",
    "read_log",
]

START_ACTION = "audit.log.start"
_HEX = re.compile(r"[0-9a-f]{64}")
BACKLOG_LIMIT = 100_000  # lines kept in memory while the file cannot be written
log = logging.getLogger("vigil.audit")

_logs: weakref.WeakKeyDictionary[Any, AuditLog] = weakref.WeakKeyDictionary()
_logs_lock = threading.Lock()


def _one_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


class AuditLog:
    """This process's writer of one append-only log file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._backlog: list[bytes] = []
        self._lost = 0
        self.failing_since: datetime | None = None
        self.error = ""

    @property
    def problem(self) -> str | None:
        """One line for the dashboard when the last write failed, else None."""
        with self._lock:
            if self.failing_since is None:
                return None
            lost = f"; {self._lost} more could not be kept in memory" if self._lost else ""
            return (f"The append-only audit log {self.path} cannot be written (since "
                    f"{self.failing_since:%Y-%m-%d %H:%M:%S} UTC: {self.error}). "
                    f"{len(self._backlog)} entries are in the database but not yet in the "
                    f"log{lost}; they are written as soon as the file can be written again.")

    def failed(self, exc: BaseException) -> None:
        """Record a failure outside ``append`` (the file could not be opened at start)."""
        with self._lock:
            self.failing_since = self.failing_since or utcnow()
            self.error = _one_line(exc)
        log.error("audit: cannot open the append-only audit log %s: %s", self.path, self.error)

    def append(self, lines: list[bytes]) -> bool:
        """Write ``lines`` (and any backlog) at the end of the file; False (logged, kept for
        the next try) on failure. Never raises: the entries are already committed."""
        with self._lock:
            pending = self._backlog + list(lines)
            written = 0
            try:
                with _locked(self.path, create=False) as fd:
                    if _ends_mid_line(fd):  # a line cut short by an earlier failure
                        _write_all(fd, b"\n")
                    for line in pending:
                        _write_all(fd, line)
                        written += 1
                    os.fsync(fd)
            except OSError as exc:
                # Lines written before the failure stay in the backlog too: fsync did not
                # confirm them, and a line written twice is harmless (verification ignores an
                # identical repeat).
                keep = pending[-BACKLOG_LIMIT:]
                self._lost += len(pending) - len(keep)
                self._backlog = keep
                if self.failing_since is None:
                    self.failing_since = utcnow()
                self.error = _one_line(exc)
                log.error("audit: cannot write the append-only audit log %s: %s; %d entries "
                          "wait in memory (they are in the database) and are retried with the "
                          "next entry", self.path, self.error, len(keep))
                return False
            if self.failing_since is not None:
                log.warning("audit: the append-only audit log %s is written again (%d waiting "
                            "entries written)", self.path, len(pending) - len(lines))
            self._backlog, self.failing_since, self.error = [], None, ""
            return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _ends_mid_line(fd: int) -> bool:
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


@contextmanager
def _locked(path: Path, *, create: bool) -> Iterator[int]:
    """An O_APPEND descriptor of ``path`` under an exclusive lock; if the file was renamed
    (a new log was started) while waiting for the lock, the new file at ``path`` instead."""
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    while True:
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield fd
                return
        finally:
            os.close(fd)  # closing also releases the lock


def attach(engine: Any, path: Path) -> AuditLog:
    """Send the audit entries committed through ``engine`` in this process to ``path``."""
    with _logs_lock:
        writer = _logs.get(engine)
        if writer is None or writer.path != Path(path):
            writer = _logs[engine] = AuditLog(Path(path))
        return writer


def log_for(bind: Any) -> AuditLog | None:
    engine = getattr(bind, "engine", bind)
    with _logs_lock:
        return _logs.get(engine)


def _start_details(session: Any, path: Path, reason: str | None) -> dict[str, Any]:
    earlier = session.exec(select(AuditEntry.seq).where(
        AuditEntry.action == START_ACTION, AuditEntry.target == str(path)[:255]).limit(1)).first()
    return {"path": str(path), "reason": reason or ("missing" if earlier is not None else "new")}


def open_log(db: Any, path: Path, actor: str = "system") -> AuditLog:
    """Attach the log at ``path`` to ``db`` (a collector.store.db.Database), first starting it
    when the file is absent or empty: an ``audit.log.start`` entry, written as its first line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = attach(db.engine, path)
    with _locked(path, create=True) as fd:
        if os.fstat(fd).st_size:
            return writer
        with db.session() as session:
            details = _start_details(session, path, None)
            entry = audit.record(session, actor, START_ACTION, str(path), details)
            lines = session.info.pop(audit._PENDING)  # written here, under the lock, not by the hook
            session.commit()
        _write_all(fd, b"".join(lines))
        os.fsync(fd)
    if details["reason"] == "missing":
        log.error("audit: the append-only audit log %s was missing or empty: a new one starts at "
                  "entry %d. Its earlier lines are lost unless a copy was kept off this server; "
                  "verification reports this until a keyholder starts a new log "
                  "(vigil collector audit new-log)", path, entry.seq)
    elif entry.seq > 1:
        log.warning("audit: started the append-only audit log %s at entry %d; entries 1-%d "
                    "predate it", path, entry.seq, entry.seq - 1)
    return writer


def new_log(db: Any, path: Path, key: Any, actor: str, note: str) -> tuple[Path, int]:
    """A keyholder starts a new log file (after restoring a backup, or to acknowledge a lost
    one): the current file is kept beside it, renamed; a checkpoint signed with ``key`` closes
    it, and the new file begins with an ``audit.log.start`` entry (reason ``rotated``).
    Returns (the old file's new name, the number of the new start entry)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    archived = path.with_name(f"{path.name}.{utcnow():%Y%m%dT%H%M%S}")
    fresh = path.with_name(f".{path.name}.new")
    with _locked(path, create=True) as old_fd:
        new_fd = os.open(fresh, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                         0o600)
        try:
            fcntl.flock(new_fd, fcntl.LOCK_EX)
            with db.session() as session:
                audit.checkpoint(session, key, actor, "new-log")
                entry = audit.record(session, actor, START_ACTION, str(path), {
                    "path": str(path), "reason": "rotated", "previous": str(archived),
                    "note": note[:200]})
                closing, opening = session.info.pop(audit._PENDING)
                session.commit()
            _write_all(old_fd, closing)
            os.fsync(old_fd)
            _write_all(new_fd, opening)
            os.fsync(new_fd)
            os.rename(path, archived)
            os.rename(fresh, path)
        finally:
            os.close(new_fd)
    attach(db.engine, path)
    return archived, entry.seq


# --- reading --------------------------------------------------------------------------------


@dataclass(slots=True)
class LogLine:
    seq: int
    hash: str
    prev_hash: str
    line_no: int
    intact: bool  # SHA-256(prev_hash + record) == hash and record.seq == seq
    action: str
    target: str
    details: dict[str, Any] | None  # kept for checkpoints and start records only


@dataclass
class LogContents:
    path: Path
    error: str = ""  # the file could not be read (missing, unreadable)
    lines: dict[int, LogLine] = field(default_factory=dict)  # first line seen for each entry
    first: LogLine | None = None  # the first line of the file, in file order
    conflicts: list[int] = field(default_factory=list)  # entries with two different lines
    damaged: list[int] = field(default_factory=list)  # line numbers that are not records


def _parse(raw: bytes, line_no: int) -> LogLine | None:
    start = raw.find(b"{")  # tolerate a syslog or journald prefix before the JSON
    if start < 0:
        return None
    try:
        value = json.loads(raw[start:])
        record = value["record"]
        seq, digest, prev = value["seq"], value["hash"], value["prev_hash"]
        if not (isinstance(record, dict) and type(seq) is int and _HEX.fullmatch(str(digest))
                and _HEX.fullmatch(str(prev))):
            return None
        body = audit.canonical_body(record["seq"], record["at"], record["actor"],
                                    record["action"], record["target"], record["details"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    want = hashlib.sha256(prev.encode("ascii") + body).hexdigest()
    action = record["action"] if isinstance(record["action"], str) else ""
    keep = action in (audit.CHECKPOINT_ACTION, START_ACTION) and isinstance(record["details"], dict)
    return LogLine(seq, digest, prev, line_no, want == digest and record["seq"] == seq, action,
                   record["target"] if isinstance(record["target"], str) else "",
                   record["details"] if keep else None)


def read_log(path: Path, contents: LogContents | None = None) -> LogContents:
    """Read one log file (or add it to ``contents``, merging several copies)."""
    out = contents if contents is not None else LogContents(Path(path))
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; a missing file is a finding
    except OSError as exc:
        out.error = f"{path}: {exc.strerror or _one_line(exc)}"
        return out
    with f:
        for line_no, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            parsed = _parse(raw, line_no)
            if parsed is None:
                out.damaged.append(line_no)
                continue
            if out.first is None:
                out.first = parsed
            seen = out.lines.get(parsed.seq)
            if seen is None:
                out.lines[parsed.seq] = parsed
            elif seen.hash != parsed.hash or seen.prev_hash != parsed.prev_hash:
                out.conflicts.append(parsed.seq)
    return out


def last_line(path: Path, window: int = 256 * 1024) -> LogLine | None:
    """The last record in the file (read from its end), or None if there is none to read."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - window))
            tail = f.read()
    except OSError:
        return None
    for raw in reversed(tail.splitlines()):
        parsed = _parse(raw, 0) if raw.strip() else None
        if parsed is not None:
            return parsed
    return None


def latest_start(session: Any, path: Path) -> AuditEntry | None:
    """The last ``audit.log.start`` entry the database holds for ``path``."""
    return session.exec(select(AuditEntry).where(
        AuditEntry.action == START_ACTION, AuditEntry.target == str(path)[:255])
        .order_by(col(AuditEntry.seq).desc()).limit(1)).first()

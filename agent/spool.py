"""The durable, bounded outbox of sealed events.

Each sealed event is one file, written tmp + fsync + rename + directory fsync, so after ``put``
returns it survives a power cut. The name carries what the spool needs without reading the file:
``<severity>-<sequence>-<event id>.evt``. Files leave the spool only when the collector has
acknowledged their id (``ack``), when quarantined (moved to ``quarantine/`` after a 4xx that
retrying cannot fix), or when the spool is full: then the oldest event of the lowest severity
goes first, counted in ``dropped``; severity 4 and 5 are never dropped, even beyond the bound.
The spool holds only ciphertext: events are sealed before they get here.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from agent.config import write_private
from agent.errors import SpoolError

__all__ = ["NEVER_DROP", "Spool", "SpoolItem"]

log = logging.getLogger(__name__)

NEVER_DROP = 4  # severities at or above this are never dropped
_NAME = re.compile(r"^([1-5])-(\d{12})-([0-9a-fA-F-]{1,64})\.evt$")
STATE_FILE = "state.json"


@dataclass(frozen=True, slots=True)
class SpoolItem:
    event_id: str
    severity: int
    seq: int
    path: Path
    size: int

    def read(self) -> bytes:
        return self.path.read_bytes()


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":
        return  # Windows cannot os.open a directory (EACCES, found under Wine); NTFS journals it
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    def __init__(self, path: Path, max_events: int = 2000, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.quarantine_dir = self.path / "quarantine"
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.quarantine_dir.mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise SpoolError(f"cannot create spool directory {self.path}: {exc.strerror}") from exc
        self._items: dict[str, SpoolItem] = {}
        self._seq = 0
        self.dropped = 0
        self.quarantined = 0
        self._load()

    # --- state ------------------------------------------------------------------------------
    def _load(self) -> None:
        for entry in os.scandir(self.path):
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                os.unlink(entry.path)  # a write that never completed: its event was not acked
                continue
            m = _NAME.match(entry.name)
            if m and entry.is_file():
                item = SpoolItem(m.group(3), int(m.group(1)), int(m.group(2)), Path(entry.path),
                                 entry.stat().st_size)
                self._items[item.event_id] = item
                self._seq = max(self._seq, item.seq)
        try:
            state = json.loads((self.path / STATE_FILE).read_bytes())
            self.dropped = int(state.get("dropped", 0))
            self.quarantined = int(state.get("quarantined", 0))
        except (FileNotFoundError, ValueError, TypeError):
            pass

    def _save_state(self) -> None:
        try:
            write_private(self.path / STATE_FILE, json.dumps(
                {"dropped": self.dropped, "quarantined": self.quarantined}).encode())
        except OSError as exc:  # a full disk: the counts live on in memory, saved next time
            log.warning("cannot save the spool counters: %s", exc.strerror)

    @property
    def depth(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        return sum(i.size for i in self._items.values())

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._items

    # --- writing ----------------------------------------------------------------------------
    def _write(self, name: str, data: bytes) -> Path:
        final = self.path / name
        tmp = self.path / f".{name}.tmp"
        # O_BINARY: on Windows os.open is text mode and turns each \n byte into \r\n
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.path)
        return final

    def put(self, event_id: str, severity: int, data: bytes) -> bool:
        """Store a sealed event durably. False if the spool was full and this event lost its place."""
        severity = min(5, max(1, int(severity)))
        with self._lock:
            if event_id in self._items:
                return True
            self._seq += 1
            name = f"{severity}-{self._seq:012d}-{event_id}.evt"
            while True:
                try:
                    path = self._write(name, data)
                    break
                except OSError as exc:
                    # Disk full: make room by dropping less severe events (never 4 and 5).
                    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    if not full or not self._drop_one(severity):
                        raise SpoolError(f"cannot write to the spool {self.path}: "
                                         f"{exc.strerror}; the event is kept in memory") from exc
            self._items[event_id] = SpoolItem(event_id, severity, self._seq, path, len(data))
            self._enforce_bound()
            return event_id in self._items

    def _victim(self, below: int = NEVER_DROP) -> SpoolItem | None:
        droppable = [i for i in self._items.values() if i.severity < below]
        return min(droppable, key=lambda i: (i.severity, i.seq)) if droppable else None

    def _drop_one(self, severity: int) -> bool:
        victim = self._victim(min(NEVER_DROP, severity + 1))
        if victim is None:
            return False
        self._remove(victim)
        self.dropped += 1
        self._save_state()
        return True

    def _enforce_bound(self) -> None:
        dropped = 0
        while len(self._items) > self.max_events or self.size > self.max_bytes:
            victim = self._victim()
            if victim is None:
                break  # only severity 4 and 5 left: they stay, beyond the bound
            self._remove(victim)
            dropped += 1
        if dropped:
            self.dropped += dropped
            self._save_state()

    def _remove(self, item: SpoolItem) -> None:
        item.path.unlink(missing_ok=True)
        self._items.pop(item.event_id, None)

    # --- reading and acknowledging -------------------------------------------------------
    def batch(self, limit: int) -> list[SpoolItem]:
        """Up to ``limit`` events to upload: most severe first, then oldest."""
        with self._lock:
            items = sorted(self._items.values(), key=lambda i: (-i.severity, i.seq))
            return items[:limit]

    def ack(self, event_ids: list[str]) -> int:
        """The collector has these events: remove them. Returns how many were removed."""
        with self._lock:
            removed = 0
            for eid in event_ids:
                item = self._items.get(eid)
                if item is not None:
                    self._remove(item)
                    removed += 1
            if removed:
                _fsync_dir(self.path)
            return removed

    def quarantine(self, event_id: str, reason: str) -> None:
        """Set an event aside after a 4xx that retrying cannot fix; kept, counted, reported."""
        with self._lock:
            item = self._items.pop(event_id, None)
            if item is None:
                return
            os.replace(item.path, self.quarantine_dir / item.path.name)
            write_private(self.quarantine_dir / f"{item.path.name}.reason", reason.encode()[:2000])
            _fsync_dir(self.path)
            self.quarantined += 1
            self._save_state()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]

"""Flood control: the same rule from the same user within a window is one event with a count.

A biology lesson can fire the same rule hundreds of times; each repeat inside ``window_s`` of the
event that opened the window bumps that event's count instead of taking another screenshot. The
counts waiting to be reported (POST /api/v1/events/repeats) are kept in a small file beside the
spool, written atomically, so a restart loses none of them.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.config import write_private

__all__ = ["Decision", "FloodControl"]


@dataclass(frozen=True, slots=True)
class Decision:
    event_id: str
    is_new: bool  # True: capture, seal and spool a new event
    count: int  # how many times the rule fired in this window so far


@dataclass
class _Open:
    event_id: str
    opened: float  # monotonic time the window opened
    count: int


class FloodControl:
    def __init__(self, window_s: float, state_file: Path | None = None) -> None:
        self.window_s = window_s
        self._open: dict[tuple[str, str], _Open] = {}
        self._lock = threading.Lock()
        self._state_file = state_file
        # event id -> {"id", "count", "last_seen"} still to report to the collector
        self._pending: dict[str, dict] = self._load()

    def _load(self) -> dict[str, dict]:
        if self._state_file is None or not self._state_file.exists():
            return {}
        try:
            return {r["id"]: r for r in json.loads(self._state_file.read_bytes())}
        except (ValueError, KeyError, TypeError):
            return {}

    def _save(self) -> None:
        if self._state_file is not None:
            write_private(self._state_file, json.dumps(list(self._pending.values())).encode())

    def decide(self, rule_id: str, user: str, now: float, wall: datetime) -> Decision:
        """Whether this firing opens a new event or repeats the open one."""
        key = (rule_id, user)
        with self._lock:
            current = self._open.get(key)
            if current is not None and now - current.opened < self.window_s:
                current.count += 1
                self._pending[current.event_id] = {
                    "id": current.event_id, "count": current.count,
                    "last_seen": wall.isoformat(),
                }
                self._save()
                return Decision(current.event_id, False, current.count)
            event_id = str(uuid.uuid4())
            self._open[key] = _Open(event_id, now, 1)
            # Forget windows that have closed, so the map stays as small as the active rules.
            for k in [k for k, v in self._open.items() if now - v.opened >= self.window_s]:
                del self._open[k]
            return Decision(event_id, True, 1)

    def pending(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._pending.values()]

    def reported(self, records: list[dict]) -> None:
        """The collector took these counts; drop each unless it has grown since."""
        with self._lock:
            for r in records:
                now = self._pending.get(r["id"])
                if now is not None and now["count"] <= r["count"]:
                    del self._pending[r["id"]]
            self._save()

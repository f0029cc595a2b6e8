"""Unlocked keyholder keys, held in this process's memory only, one per signed-in session.

A key is dropped on sign-out, when it has not been used for the idle timeout, or when the process
ends. It is never written anywhere: a restart means unlocking again, which is the point.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["KeyRing", "UnlockedKey"]


@dataclass(slots=True)
class UnlockedKey:
    key: Any  # core.keys.PrivateKey
    keyholder_id: int
    fingerprint: str
    last_used: float


class KeyRing:
    """Session id -> unlocked key, with an idle timeout measured on a monotonic clock.

    ``clock`` is ``time.monotonic`` in the product; a test passes its own, so that "idle for
    longer than the timeout" is a fact it sets rather than a race against a loaded machine.
    """

    def __init__(self, idle_timeout: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_timeout = idle_timeout
        self._clock = clock
        self._keys: dict[str, UnlockedKey] = {}
        self._lock = threading.Lock()

    def put(self, session_id: str, key: Any, keyholder_id: int, fingerprint: str) -> None:
        with self._lock:
            self._keys[session_id] = UnlockedKey(key, keyholder_id, fingerprint, self._clock())

    def get(self, session_id: str) -> UnlockedKey | None:
        """The session's key, refreshed as used; None when absent or idle too long (then dropped)."""
        now = self._clock()
        with self._lock:
            self._purge(now)
            entry = self._keys.get(session_id)
            if entry is not None:
                entry.last_used = now
            return entry

    def peek(self, session_id: str) -> bool:
        """Whether the session has a live key, without counting as use."""
        with self._lock:
            self._purge(self._clock())
            return session_id in self._keys

    def seconds_left(self, session_id: str) -> int:
        with self._lock:
            entry = self._keys.get(session_id)
            if entry is None:
                return 0
            return max(0, int(self.idle_timeout - (self._clock() - entry.last_used)))

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._keys.pop(session_id, None)

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._keys)

    def _purge(self, now: float) -> None:
        stale = [sid for sid, e in self._keys.items() if now - e.last_used > self.idle_timeout]
        for sid in stale:
            del self._keys[sid]

"""A per-device token bucket for ingest: one noisy or hostile device cannot swamp the collector.

Each device has a bucket of ``ingest_burst`` events that refills at ``ingest_rate_per_minute``.
Events of severity 1-3 take a token each and wait (HTTP 429 with ``Retry-After``, or listed as
``deferred`` in a 200 that stored others) when there is none; the agent keeps them in its spool
and sends them again after the pause, so nothing is lost. Severity 4 and 5 are never refused:
they use up tokens while there are any, so a flood of them slows the same device's lesser events,
but they are always stored.

The buckets live in the memory of each collector instance: with several instances behind a load
balancer a device gets up to that many times the rate (each instance still protects itself).
They are forgotten on restart, which only ever lets a device send sooner.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

__all__ = ["NEVER_REFUSED", "IngestLimiter"]

NEVER_REFUSED = 4  # severities at or above this are always accepted


class IngestLimiter:
    def __init__(self, rate_per_minute: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = max(0.0, float(rate_per_minute)) / 60.0  # tokens a second; 0: no limit
        self.burst = max(1, int(burst))
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # device -> (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, device_id: str, severities: list[int]) -> tuple[list[bool], float]:
        """Which of the events (by severity, in order) may be stored now, and if some may not,
        how many seconds until the next one could be."""
        if not self.enabled:
            return [True] * len(severities), 0.0
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(device_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            allowed = []
            for severity in severities:
                if tokens >= 1.0:
                    tokens -= 1.0
                    allowed.append(True)
                else:
                    allowed.append(severity >= NEVER_REFUSED)
            self._buckets[device_id] = (tokens, now)
            if len(self._buckets) > 100_000:  # devices are enrolled, but bound it anyway
                self._forget_full(now)
        wait = 0.0 if all(allowed) else max(1.0, math.ceil((1.0 - tokens) / self.rate))
        return allowed, wait

    def _forget_full(self, now: float) -> None:
        for device, (tokens, at) in list(self._buckets.items()):
            if tokens + (now - at) * self.rate >= self.burst:
                del self._buckets[device]

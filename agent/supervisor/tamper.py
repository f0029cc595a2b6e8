"""Tamper events: made and sealed by the supervisor like any other event.

A tamper event is sealed (core.envelope.seal) to the signed policy's keyholders, so the
collector's recipient check accepts it and only a keyholder can read who and what. Its clear
metadata says category ``tamper``, the rule (``tamper.agent_killed`` ...), its severity and
source ``supervisor``; the sealed header carries the user, the host, the time, the session and
what was seen. There is no screenshot: the body is empty (``media_type`` null).
"""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core import envelope

__all__ = ["RULES", "TAMPER_CATEGORY", "TAMPER_SOURCE", "Tamper", "TamperLimiter", "seal_tamper"]

# The collector accepts these (collector/ingest.py: SOURCES, and "tamper" beside the wordlist
# categories); the agent never imports the collector, so they are spelt out here too.
TAMPER_CATEGORY = "tamper"
TAMPER_SOURCE = "supervisor"

# rule -> (severity, what it means, for the header)
RULES: dict[str, tuple[int, str]] = {
    "tamper.agent_killed": (4, "the session agent was killed by a signal"),
    "tamper.agent_stopped": (4, "the session agent exited while its session went on"),
    "tamper.agent_crashed": (3, "the session agent failed while its session went on"),
    "tamper.agent_missing": (4, "a signed-in session has had no running agent"),
    "tamper.policy_edited": (4, "the policy file was changed on disk; the signed copy was put back"),
    "tamper.trust_edited": (4, "the trust anchor was changed on disk; the verified copy was put back"),
    "tamper.config_edited": (4, "a file of the enrolment was changed on disk"),
    "tamper.agent_changed": (4, "files of the agent's code changed on disk while it ran"),
    "tamper.clock_moved": (4, "the system clock was moved"),
}


@dataclass
class Tamper:
    rule: str
    user: str
    detail: dict[str, Any] = field(default_factory=dict)
    when: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def severity(self) -> int:
        return RULES[self.rule][0]


def seal_tamper(tamper: Tamper, device_id: str, keyholders: Any, count: int = 1
                ) -> tuple[str, bytes]:
    """The event id and the sealed envelope of ``tamper``."""
    event_id = str(uuid.uuid4())
    meta = envelope.Metadata(event_id=event_id, device_id=device_id, time=tamper.when,
                             category=TAMPER_CATEGORY, severity=tamper.severity,
                             rule=tamper.rule, source=TAMPER_SOURCE)
    header = {
        "user": tamper.user, "host": socket.gethostname(),
        "time": tamper.when.isoformat().replace("+00:00", "Z"),
        "source": TAMPER_SOURCE, "detector": "supervisor", "rule": tamper.rule,
        "context": RULES[tamper.rule][1], "detail": tamper.detail, "count": count,
        "title": "", "app": "", "media_type": None, "width": 0, "height": 0,
    }
    return event_id, envelope.seal(meta, header, b"", keyholders)


class TamperLimiter:
    """One event per rule and user per ``cooldown`` seconds; the ones between are counted and
    the count travels in the next event's header, so a kill loop is one event a minute, not a
    flood, and none is hidden."""

    def __init__(self, cooldown: float) -> None:
        self.cooldown = cooldown
        self._last: dict[tuple[str, str], float] = {}
        self._held: dict[tuple[str, str], int] = {}

    def admit(self, tamper: Tamper, now: float | None = None) -> int:
        """0 to hold this one back (counted), else how many it stands for."""
        now = time.monotonic() if now is None else now
        key = (tamper.rule, tamper.user)
        last = self._last.get(key)
        if last is not None and now - last < self.cooldown:
            self._held[key] = self._held.get(key, 0) + 1
            return 0
        self._last[key] = now
        return 1 + self._held.pop(key, 0)

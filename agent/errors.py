"""The agent's expected failures: each says in one line what went wrong and what to do."""

from __future__ import annotations

from core.errors import VigilError

__all__ = [
    "AgentError",
    "CaptureError",
    "CollectorRejected",
    "CollectorUnreachable",
    "ConfigError",
    "EnrolmentFailed",
    "NoDisplay",
    "NotEnrolled",
    "ReEnrolRequired",
    "SpoolError",
]


class AgentError(VigilError):
    """Root of the agent's errors."""


class NoDisplay(AgentError):
    """No X display to watch (headless, or Wayland without XWayland)."""


class NotEnrolled(AgentError):
    """The agent has no device credential yet."""


class ReEnrolRequired(NotEnrolled):
    """The collector answered 401 re-enrol: the device was revoked or is unknown."""


class EnrolmentFailed(AgentError):
    """The collector refused the enrolment, or what it answered does not match the pins."""


class CollectorUnreachable(AgentError):
    """The collector could not be reached (network, TLS pin mismatch, timeout)."""


class CollectorRejected(AgentError):
    """The collector answered with an error that retrying will not fix."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(f"collector refused the request ({status} {code}): {detail}")


class ConfigError(AgentError):
    """The agent's configuration directory or a file in it is unusable."""


class SpoolError(AgentError):
    """The spool directory cannot hold the event (disk full, permissions)."""


class CaptureError(AgentError):
    """The screen could not be captured."""

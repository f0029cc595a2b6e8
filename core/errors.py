"""The root of Vigil's error hierarchy.

Every expected failure raises a subclass of :class:`VigilError`. Its message is one line that says
what went wrong and what to do about it; the ``vigil`` command prints it without a traceback.
"""

from __future__ import annotations

__all__ = [
    "EnvelopeError",
    "KeyFileError",
    "MetadataMismatch",
    "ModelUnavailable",
    "NotARecipient",
    "PolicyError",
    "RuleFileError",
    "UntrustedPolicy",
    "VigilError",
    "WeakPassword",
    "WrongPassword",
]


class VigilError(Exception):
    """An expected failure, reported to the user as one line."""

    exit_code: int = 1


class RuleFileError(VigilError):
    """A wordlist file is malformed; the message names the file, the line and the problem."""

    exit_code = 2

    def __init__(self, file: str, line: int | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {problem}")


class KeyFileError(VigilError):
    """A key file is malformed, of an unsupported version, or unusable."""


class WrongPassword(KeyFileError):
    """The password does not unlock this key file."""


class WeakPassword(KeyFileError):
    """The password does not meet the minimum length."""


class EnvelopeError(VigilError):
    """A sealed event is malformed, truncated or has been tampered with."""


class NotARecipient(EnvelopeError):
    """The key offered is not one of the envelope's recipients."""


class MetadataMismatch(EnvelopeError):
    """The metadata a reader was shown (a database row, say) is not what was sealed.

    ``differences`` holds ``(field, claimed, sealed)`` for each field that differs; the sealed
    values are the envelope's authenticated clear section, never anything from the sealed header.
    """

    def __init__(self, differences: list[tuple[str, object, object]],
                 claimed_by: str = "the database") -> None:
        self.differences = differences
        self.claimed_by = claimed_by
        parts = ", ".join(f"{name} is {_shown(claimed)} in {claimed_by} but {_shown(sealed)} "
                          "in the sealed capture" for name, claimed, sealed in differences)
        super().__init__(f"this capture's record was changed after it arrived: {parts}; "
                         "it was not opened")


def _shown(value: object, limit: int = 80) -> str:
    """A value for a one-line message: control characters replaced, long text cut."""
    text = value if isinstance(value, str) else str(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PolicyError(VigilError):
    """A policy is malformed."""


class UntrustedPolicy(PolicyError):
    """A policy's signature does not verify against the trusted keyholder set."""


class ModelUnavailable(VigilError):
    """The sentence model cannot load here (no wheel for this platform, a missing or damaged file).

    Detection carries on with the lists alone; the caller says so in one line.
    """

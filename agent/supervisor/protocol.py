"""The supervisor's socket protocol: one JSON object per line, each way, request then answer.

Requests carry ``op``: ``hello`` (who we are and what we trust), ``policy`` (the signed policy
unless the caller's ETag is current), ``events`` (sealed envelopes, base64, to upload),
``repeats`` (flood counts to report) and ``status`` (the session agent's state for the
heartbeat). Answers carry ``ok`` and, when it is false, ``error`` and ``retry``.
"""

from __future__ import annotations

import json
from typing import IO, Any

from core.errors import VigilError

__all__ = ["MAX_LINE", "ProtocolError", "read_message", "write_message"]

# A batch of sealed screenshots, base64: generous, but bounded so a peer cannot make us allocate
# without limit.
MAX_LINE = 64 * 1024 * 1024


class ProtocolError(VigilError):
    """The other side broke the protocol (too long, not JSON, not an object)."""


def write_message(out: IO[bytes], message: dict[str, Any]) -> None:
    out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    out.flush()


def read_message(src: IO[bytes]) -> dict[str, Any] | None:
    """The next message, or None when the other side closed the connection."""
    line = src.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        raise ProtocolError("message too long or cut short")
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"message is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a JSON object")
    return message

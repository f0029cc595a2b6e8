"""The demo's one error: a step failed; the message says which and where its log is."""

from __future__ import annotations

from core.errors import VigilError

__all__ = ["DemoError"]


class DemoError(VigilError):
    """A step of `vigil demo` failed."""

"""The default wordlists: one TOML file per category, plus README.md on sources and severities.

This package holds data only; :func:`core.rules.default_dir` finds it through :func:`directory`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["directory"]


def directory() -> Path:
    """The directory holding the default ``*.toml`` rule files."""
    return Path(__file__).resolve().parent

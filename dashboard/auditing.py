"""Record dashboard actions in the collector's hash-chained audit log."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

__all__ = ["audit"]


def audit(db: Session, actor: str, action: str, target: str = "", **details: Any) -> None:
    """Append one entry and commit it with whatever the caller changed in the same session."""
    from collector.audit import record

    record(db, actor, action, target, details)
    db.commit()

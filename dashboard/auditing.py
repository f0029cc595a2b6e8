"""Record dashboard actions in the collector's hash-chained audit log."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

__all__ = ["audit", "audit_backoffs", "audit_relabel"]


def audit(db: Session, actor: str, action: str, target: str = "", **details: Any) -> None:
    """Append one entry and commit it with whatever the caller changed in the same session.

    When the request is a school's (a scoped account, or a trust-wide one acting on a school's
    event or incident: dashboard.scope), the entry records that school's code."""
    from collector.audit import record
    from dashboard.scope import AUDIT_SCHOOL

    school = db.info.get(AUDIT_SCHOOL)
    if school and "school" not in details:
        details = {**details, "school": school}

    record(db, actor, action, target, details)
    db.commit()


def audit_backoffs(
    db: Session, actor: str, action: str, target: str, backoffs: list[tuple[str, int]]
) -> None:
    """Record each back-off a failed guess started or lengthened (scope: source or account).

    Only tried guesses get here, so the entries are as few as the back-off lets guesses through;
    guesses refused during a back-off are not recorded one by one (a stranger could otherwise
    fill the audit log at no cost)."""
    for scope, seconds in backoffs:
        audit(db, actor, action, target, scope=scope, wait_s=seconds)


def audit_relabel(db: Session, actor: str, refused: Any, via: str) -> None:
    """Record a refused relabelled capture (a dashboard.errors.Relabelled) and commit it."""
    from collector.relabel import record_refusal

    record_refusal(db, actor, refused.event_id, refused.mismatch, via)
    db.commit()

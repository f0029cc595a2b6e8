"""The published policies: the latest signed one, and its ETag."""

from __future__ import annotations

from sqlmodel import Session, col, select

from collector.store.models import PolicyRecord

__all__ = ["latest", "latest_etag"]


def latest(session: Session) -> PolicyRecord | None:
    return session.exec(select(PolicyRecord).order_by(col(PolicyRecord.serial).desc())
                        .limit(1)).first()


def latest_etag(session: Session) -> str | None:
    """The published policy's ETag, without loading the policy (every heartbeat asks, and the
    signed policy with its word lists is a quarter of a megabyte)."""
    return session.exec(select(PolicyRecord.etag).order_by(col(PolicyRecord.serial).desc())
                        .limit(1)).first()

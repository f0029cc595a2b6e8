"""The keyholder set as the collector knows it: the active keyholders' public keys."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from collector.store.models import Keyholder

__all__ = ["active_keyholders", "keyset_fingerprint", "public_keys"]


def active_keyholders(session: Session) -> list[Keyholder]:
    return list(session.exec(
        select(Keyholder).where(col(Keyholder.retired_at).is_(None)).order_by(col(Keyholder.id))
    ).all())


def public_keys(session: Session) -> list[Any]:
    """core.keys.PublicKey for every active keyholder, recovery keys included."""
    from core.keys import PublicKey

    return [PublicKey.from_bytes(k.public_key) for k in active_keyholders(session)]


def keyset_fingerprint(session: Session) -> str:
    """The fingerprint agents pin at enrolment; empty while there are no keyholders."""
    from core.keys import keyset_fingerprint as fingerprint

    keys = public_keys(session)
    return fingerprint(keys) if keys else ""

"""Publishing the policy, or approving a change of keyholders, as a named keyholder with their
password. Both sign with the keyholder's own key and anchor the audit chain while it is open."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from collector.errors import NotFound
from collector.policy_builder import approve_keyset, publish
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import Keyholder, PolicyRecord

__all__ = ["approve_as", "publish_as"]


def _signing_key(db: Database, keyholder: str, password: str) -> Any:
    from core.keys import KeyFile

    with db.session() as session:
        holder = session.exec(select(Keyholder).where(Keyholder.name == keyholder)).first()
    if holder is None or holder.key_file is None or holder.retired_at is not None:
        raise NotFound(f"no active keyholder named {keyholder!r} with a key on this collector")
    return KeyFile.from_bytes(holder.key_file).unlock(password)  # WrongPassword: one line


def _signed(db: Database, private: Any, actor: str, why: str,
            sign: Callable[[Session], PolicyRecord]) -> PolicyRecord:
    def job(session: Session) -> PolicyRecord:
        from collector.audit import checkpoint

        record = sign(session)
        checkpoint(session, private, actor, why)  # the key is unlocked: anchor the chain
        return record

    return db.write(job)


def publish_as(db: Database, settings: Settings, keyholder: str, password: str,
               actor: str) -> PolicyRecord:
    """Publish the current policy for the signed readers (collector.policy_builder.publish)."""
    private = _signing_key(db, keyholder, password)
    return _signed(db, private, actor, "policy publish",
                   lambda session: publish(session, settings, private, actor))


def approve_as(db: Database, settings: Settings, keyholder: str, password: str,
               change_digest: str, actor: str) -> PolicyRecord:
    """Sign the keyholder change whose digest the keyholder was shown (approve_keyset)."""
    private = _signing_key(db, keyholder, password)
    return _signed(db, private, actor, "keyholder approve",
                   lambda session: approve_keyset(session, settings, private, actor,
                                                  change_digest))

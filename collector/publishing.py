"""Publishing the policy as a named keyholder, with their password."""

from __future__ import annotations

from sqlmodel import Session, select

from collector.errors import NotFound
from collector.policy_builder import publish
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import Keyholder, PolicyRecord

__all__ = ["publish_as"]


def publish_as(db: Database, settings: Settings, keyholder: str, password: str,
               actor: str) -> PolicyRecord:
    from core.keys import KeyFile

    with db.session() as session:
        holder = session.exec(select(Keyholder).where(Keyholder.name == keyholder)).first()
    if holder is None or holder.key_file is None or holder.retired_at is not None:
        raise NotFound(f"no active keyholder named {keyholder!r} with a key on this collector")
    private = KeyFile.from_bytes(holder.key_file).unlock(password)  # WrongPassword: one line

    def job(session: Session) -> PolicyRecord:
        from collector.audit import checkpoint

        record = publish(session, settings, private, actor)
        checkpoint(session, private, actor, "policy publish")  # the key is unlocked: anchor
        return record

    return db.write(job)

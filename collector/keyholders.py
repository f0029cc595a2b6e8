"""The keyholder set as the collector knows it: the active keyholders' public keys, and
retiring a keyholder who leaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from collector import audit
from collector.errors import Conflict, NotFound
from collector.store.models import Account, Keyholder, utcnow

__all__ = ["Retired", "active_keyholders", "keyset_fingerprint", "public_keys", "retire"]


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


@dataclass(frozen=True)
class Retired:
    name: str
    fingerprint: str
    already: bool  # it was retired before this call (nothing changed)
    accounts_disabled: int


def retire(session: Session, name: str, actor: str) -> Retired:
    """Mark ``name`` retired and disable their dashboard account, in the caller's transaction.

    The next published policy leaves them out (``active_keyholders``), so agents stop sealing
    to them. Their slots on stored envelopes stay; ``collector.regrant.revoke_all`` removes them.
    Refuses to retire the last keyholder who can unlock captures on this collector.
    """
    holder = session.exec(select(Keyholder).where(Keyholder.name == name)).first()
    if holder is None:
        raise NotFound(f"no keyholder named {name!r} on this collector")
    if holder.retired_at is not None:
        return Retired(holder.name, holder.fingerprint, already=True, accounts_disabled=0)
    others = [k for k in active_keyholders(session)
              if k.id != holder.id and k.key_file is not None]
    if holder.key_file is not None and not others:
        raise Conflict(f"{name!r} is the last keyholder with a key on this collector: add their "
                       "successor (`vigil collector keyholder add`) and grant them access first")
    now = utcnow()
    holder.retired_at = now
    session.add(holder)
    disabled = session.execute(
        update(Account).where(col(Account.keyholder_id) == holder.id,
                              col(Account.disabled_at).is_(None)).values(disabled_at=now)
    ).rowcount  # type: ignore[attr-defined]
    audit.record(session, actor, "keyholder.retire", target=holder.name,
                 details={"role": holder.role, "fingerprint": holder.fingerprint,
                          "accounts_disabled": int(disabled or 0)})
    return Retired(holder.name, holder.fingerprint, already=False,
                   accounts_disabled=int(disabled or 0))

"""Keyholders on this collector: who reads (the signed readers, collector.trust_root), the
keyholder table's proposals, and retiring a keyholder who leaves (a proposed removal).

The keyholder table is never a source of recipients: a row anyone can insert with SQL must not
be able to read. ``public_keys`` and ``keyset_fingerprint`` answer from the last signed policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from collector import audit
from collector.errors import Conflict, NotFound
from collector.store.db import Database
from collector.store.models import Account, AuditEntry, Keyholder, utcnow
from collector.trust_root import signed_readers, unapproved_keys

__all__ = ["UNAPPROVED", "Retired", "active_keyholders", "flag_unapproved", "keyset_fingerprint",
           "public_keys", "retire"]

UNAPPROVED = "keyholder.unapproved"  # the audit action: a key in the table no policy lists


def active_keyholders(session: Session) -> list[Keyholder]:
    return list(session.exec(
        select(Keyholder).where(col(Keyholder.retired_at).is_(None)).order_by(col(Keyholder.id))
    ).all())


def public_keys(session: Session) -> list[Any]:
    """core.keys.PublicKey of every reader (recovery keys included): the keyholders of the last
    signed policy, not the table. Empty before the first policy is signed."""
    current = signed_readers(session)
    return list(current.keyholders) if current is not None else []


def keyset_fingerprint(session: Session) -> str:
    """The fingerprint agents pin at enrolment: the last signed policy's keyholder set; empty
    before the first policy is signed."""
    current = signed_readers(session)
    return current.keyset_fingerprint if current is not None else ""


def _unflagged(session: Session) -> list[Keyholder]:
    """Active rows no signed policy lists and not yet recorded as ``keyholder.unapproved``."""
    if signed_readers(session) is None:
        return []  # before the genesis every key is waiting for it: nothing is amiss
    rows = unapproved_keys(session)
    if not rows:
        return []
    known = set(session.exec(select(AuditEntry.target).where(
        AuditEntry.action == UNAPPROVED,
        col(AuditEntry.target).in_([r.fingerprint for r in rows]))).all())
    return [r for r in rows if r.fingerprint not in known]


def flag_unapproved(db: Database) -> int:
    """Record ``keyholder.unapproved`` in the audit log, once per fingerprint, for every active
    keyholder row no signed policy lists (trust_root.unapproved_keys); the security alert mails
    it. Returns how many were newly recorded. The scheduler runs it often, so it only reads
    unless there is something to record (no write transaction, no lock, most of the time)."""
    with db.session() as session:
        if not _unflagged(session):
            return 0

    def job(session: Session) -> int:
        fresh = _unflagged(session)  # again, inside the write: another instance may have
        for row in fresh:
            audit.record(session, "system", UNAPPROVED, target=row.fingerprint,
                         details={"name": row.name, "role": row.role,
                                  "fingerprint": row.fingerprint,
                                  "reason": "this key is in the keyholder table but no signed "
                                            "policy lists it: it reads nothing until a "
                                            "keyholder approves it"})
        return len(fresh)

    return db.write(job)


@dataclass(frozen=True)
class Retired:
    name: str
    fingerprint: str
    already: bool  # it was retired before this call (nothing changed)
    accounts_disabled: int


def retire(session: Session, name: str, actor: str) -> Retired:
    """Propose ``name``'s removal and disable their dashboard account at once, in the caller's
    transaction.

    Retiring does not change who can read: the keyholder stays a reader (agents keep sealing to
    them, incident records too) until a current reader signs the removal
    (`vigil collector keyholder approve`, collector.publishing.approve_as), since only what
    keyholders signed decides who reads. Their slots on stored envelopes stay;
    ``collector.regrant.revoke_all`` removes them. Refuses to retire the last keyholder who can
    unlock captures on this collector.
    """
    holder = session.exec(select(Keyholder).where(Keyholder.name == name)).first()
    if holder is None:
        raise NotFound(f"no keyholder named {name!r} on this collector")
    if holder.retired_at is not None:
        return Retired(holder.name, holder.fingerprint, already=True, accounts_disabled=0)
    # Only a reader can sign the removal (or anything else): a key waiting for approval does
    # not count as someone left to carry on.
    current = signed_readers(session)
    others = [k for k in active_keyholders(session)
              if k.id != holder.id and k.key_file is not None
              and (current is None or k.fingerprint in current.fingerprints)]
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

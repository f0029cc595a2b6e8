"""Ingest checks whom an event is sealed to: the keyholders of the signed policy, no one else.

An agent seals every capture to the keyholders listed in the policy it runs under, and it runs
only under policies signed by a keyholder it already trusts. So an envelope's recipient
fingerprints (readable from its header without a key) must be exactly the keyholder set of a
signed policy. One that leaves a keyholder out cannot be opened by them; one that adds a key no
policy lists is being read by a stranger. Either is refused at ingest with code
``wrong-recipients``: the agent sets the event aside in its quarantine (kept, counted, reported
in its heartbeat), the refusal goes into the audit log with the event's clear metadata, and the
alert job e-mails that a security check refused something (collector.alerts).

Which sets count as signed is worked out from the stored policies, as an agent would: the first
is checked against its own keyholders, each later one must be signed by a keyholder of the last
one accepted, with a higher serial; a stored policy that fails is skipped, as agents skip it.
Rows of the keyholder table play no part. The result is cached per database and re-checked only
when a policy is added or changed.

A policy change reaches agents at their next heartbeat, and an agent that is off-site or off
may seal under the old set for a while. So the set of a superseded policy is still accepted for
events whose (sealed) time is before its successor was signed plus ``keyset_grace_days``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import weakref
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select as sa_select

from collector.store.models import PolicyRecord
from collector.trust_root import ChainWalker, SignedKeyset

__all__ = ["QUARANTINED", "SignedKeyset", "keysets", "wrong_recipients"]

log = logging.getLogger("vigil.collector")

QUARANTINED = "event.quarantined"  # the audit action


class _Book:
    """The verified keysets of one database, in serial order; extended as policies arrive.

    The chain itself is walked by collector.trust_root.ChainWalker, the one walk every reader
    of the trust root shares; this only caches it per database, feeding it new rows."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: tuple[tuple[int, str], ...] = ()
        self.walker = ChainWalker()

    def load(self, conn: Any) -> list[SignedKeyset]:
        table = PolicyRecord.__table__  # type: ignore[attr-defined]
        index = tuple((int(r[0]), str(r[1])) for r in conn.execute(
            sa_select(table.c.serial, table.c.etag).order_by(table.c.serial)))
        with self.lock:
            if index == self.seen:
                return list(self.walker.accepted)
            if index[: len(self.seen)] != self.seen:  # a stored policy changed: start again
                self.seen, self.walker = (), ChainWalker()
            for serial, _ in index[len(self.seen):]:
                signed = conn.execute(sa_select(table.c.signed)
                                      .where(table.c.serial == serial)).scalar_one()
                problem = self.walker.accept(serial, bytes(signed))
                if isinstance(problem, str):
                    log.warning("%s: ingest ignores it, as agents do", problem)
            self.seen = index
            return list(self.walker.accepted)


_BOOKS: weakref.WeakKeyDictionary[Any, _Book] = weakref.WeakKeyDictionary()
_BOOKS_LOCK = threading.Lock()


def keysets(engine: Any, conn: Any) -> list[SignedKeyset]:
    """The signed keysets, oldest first, of the database behind ``engine`` (read on ``conn``)."""
    with _BOOKS_LOCK:
        book = _BOOKS.get(engine)
        if book is None:
            book = _BOOKS[engine] = _Book()
    return book.load(conn)


def _some(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def wrong_recipients(recipients: list[str], event_time: datetime, signed: list[SignedKeyset],
                     grace: timedelta) -> str | None:
    """Why an event sealed to ``recipients`` at ``event_time`` is refused, or None if it is
    sealed to a signed keyholder set (None too while no policy has been published)."""
    if not signed:
        return None
    got = frozenset(recipients)
    current = signed[-1]
    if got == current.fingerprints:
        return None
    for older, successor in itertools.pairwise(signed):
        if got == older.fingerprints and event_time < successor.signed_at + grace:
            return None
    missing = sorted(current.names[f] + f" {f}" for f in current.fingerprints - got)
    strangers = sorted(got - current.fingerprints)
    parts = []
    if missing:
        parts.append(f"it leaves out {_some(missing)}")
    if strangers:
        known = {f for k in signed for f in k.fingerprints}
        what = ("a former keyholder" if all(f in known for f in strangers)
                else "a key that is in no signed policy")
        parts.append(f"it is also sealed to {what}: {_some(strangers)}")
    return (f"it is not sealed to the keyholders of the signed policy (serial "
            f"{current.serial}): {'; '.join(parts)}")

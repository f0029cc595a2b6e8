"""The cohort map a school's agents fetch (issue 18): hashed login -> year group and form.

Routing rules name a year group ("a severity-5 event for a Year 7 pupil goes to that school's
DSL at once"), but the login name is sealed in the header, out of the collector's reach. So
each school's map (core.cohort) goes to its desktops: for every pupil on the roster (not those
marked missing from the MIS), ``tag_key(salt, login)`` -> ``{"year", "form"}``, and the agent
puts the signed-in pupil's year and form in the event's clear metadata.

The map is deliberately NOT part of the keyholder-signed policy. The policy decides who can
read a capture, and so needs a keyholder's signature; the map decides only where an alert is
routed, and a roster import (by the technician, or a nightly command) must not need a
keyholder's password. A collector that lied in the map could misroute an alert, which it could
do anyway by editing the rules; it could not widen who reads anything.

What it reveals: a desktop holds the year and form of hashed logins, and login names are
guessable (``jsmith``), so the map holds nothing else: never names, UPNs or flags such as SEN
or looked-after. The salt is per school and stable (``CohortSalt``).

Each school imports its own roster (dashboard.roster), so a school's map holds its own pupils
and the pupils of no school (every pupil of a collector without schools, and rows imported
before rosters were per school): a desktop learns nothing of another school's roll, and a
collector that has not yet had per-school imports serves the same maps as before. Devices of no
school (the trust's own) get every pupil, as they would be tagged by any school's roster.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from collector.schools import pupils_of
from collector.settings import Settings
from collector.store.db import Database
from collector.store.models import CohortSalt, RosterImport, RosterPupil, School

__all__ = ["CohortMap", "cohort_map", "salt_for", "tagging_on"]

FORMAT = 1


@dataclass(frozen=True)
class CohortMap:
    """A school's map as served: the body (canonical JSON) and its ETag (its SHA-256)."""

    body: bytes
    etag: str
    pupils: int


def _scope(school_id: int | None) -> str:
    return "" if school_id is None else str(school_id)


# A salt never changes once made, and every heartbeat asks for it: kept per Database (weakly, so
# a closed test database's salts go with it).
_SALTS: weakref.WeakKeyDictionary[Database, dict[str, bytes]] = weakref.WeakKeyDictionary()
_SALTS_LOCK = threading.Lock()


def salt_for(db: Database, school_id: int | None) -> bytes:
    """The school's salt, made (32 random bytes) the first time it is asked for. Two instances
    making it at once: the primary key keeps the first, and the second reads it."""
    scope = _scope(school_id)
    with _SALTS_LOCK:
        known = _SALTS.get(db, {}).get(scope)
    if known is not None:
        return known
    salt = _stored_salt(db, scope)
    with _SALTS_LOCK:
        _SALTS.setdefault(db, {})[scope] = salt
    return salt


def _stored_salt(db: Database, scope: str) -> bytes:
    with db.session() as session:
        row = session.get(CohortSalt, scope)
        if row is not None:
            return bytes(row.salt)

    def make(session: Session) -> None:
        if session.get(CohortSalt, scope) is None:
            session.add(CohortSalt(scope=scope, salt=secrets.token_bytes(32)))

    try:
        db.write(make)
    except IntegrityError:
        pass  # another instance made it first
    with db.session() as session:
        row = session.get(CohortSalt, scope)
        assert row is not None
        return bytes(row.salt)


# Every heartbeat names the map's ETag; a trust's map is 20,000 HMACs. Built maps are kept per
# instance, keyed by the roster's fingerprint, so an unchanged roster costs two small queries
# and a 304. A cache, not state: any instance rebuilds the same bytes. The fingerprint is read
# from roster_import (a row per applied file, dashboard or CLI: every change to the roster's rows
# is one), not from the pupils' rows, whose aggregate would scan the trust's roster on every
# heartbeat (issue 19's storm is 80 of them a second per instance). It is the trust's imports,
# not the school's: an import for A that moves a pupil from B changes B's map too. Another
# school's import only rebuilds this map to the same bytes, so its ETag, and the desktops, stay.
_CACHE: dict[tuple[bytes, int | None, bool, tuple[Any, ...]], CohortMap] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 64


def _fingerprint(session: Session) -> tuple[Any, ...]:
    row = session.exec(select(func.count(), func.max(RosterImport.id),
                              func.max(RosterImport.applied_at))
                       .where(col(RosterImport.applied_at).is_not(None))).one()
    return tuple(str(v) for v in row)


def tagging_on(db: Database, settings: Settings, school_id: int | None) -> bool:
    """Whether a school's devices tag events: ``cohort_tags`` for the whole collector, and a
    school whose code is in ``cohort_tags_off`` has switched it off for itself."""
    if not settings.cohort_tags:
        return False
    if school_id is None or not settings.cohort_tags_off:
        return True
    with db.session() as session:
        school = session.get(School, school_id)
    off = {code.casefold() for code in settings.cohort_tags_off}
    return school is None or school.code.casefold() not in off


def cohort_map(db: Database, school_id: int | None, enabled: bool = True) -> CohortMap:
    """The map for a school's devices; an empty one (``"enabled": false``) when tagging is off."""
    salt = salt_for(db, school_id)
    with db.session() as session:
        key = (salt, school_id, enabled, _fingerprint(session) if enabled else ())
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
        if cached is not None:
            return cached
        rows = session.exec(select(RosterPupil.username, RosterPupil.year, RosterPupil.form)
                            .where(col(RosterPupil.missing_since).is_(None),
                                   *_pupils_of(school_id))).all() if enabled else []
    built = _build(salt, rows, enabled)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = built
    return built


def _pupils_of(school_id: int | None) -> tuple[Any, ...]:
    return () if school_id is None else (pupils_of(school_id),)


def _build(salt: bytes, rows: Any, enabled: bool) -> CohortMap:
    from core.cohort import check_tag, tag_key

    pupils: dict[str, dict[str, str]] = {}
    if enabled:
        for username, year, form in rows:
            year, form = year or "", form or ""
            if (year or form) and check_tag(year, form) is None:
                pupils[tag_key(salt, username)] = {"year": year, "form": form}
    doc: dict[str, Any] = {"format": FORMAT, "enabled": enabled, "salt": salt.hex(),
                           "pupils": pupils}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return CohortMap(body, f"sha256:{hashlib.sha256(body).hexdigest()}", len(pupils))

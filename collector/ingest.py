"""Ingest of sealed events: validate, store blob and row atomically, idempotent on the event id.

Order of work, and why it never leaves a row without its blob nor (for long) a blob without a row:
1. Everything is checked before anything is written (shape, sizes, the envelope's clear
   metadata and its cohort tag, that it names the calling device, that it is sealed to the keyholders of the signed
   policy: collector.recipients). Then the device's rate limit (collector.ratelimit) may hold
   back some events of severity 1-3 (``deferred``, or 429 when nothing else was taken).
2. Each new event's envelope is written to the blob store under a key unique to this attempt
   (atomic and fsynced), in the request's own thread, so fsyncs of concurrent requests overlap.
3. One transaction inserts the rows (on SQLite through the single writer thread). Ids that
   another request stored meanwhile become duplicates, and their blobs from this attempt are
   deleted; if the transaction fails, every blob of this attempt is deleted.
4. A crash between 2 and 3 leaves blobs no row points to; ``sweep_orphans`` removes them at
   start-up and periodically (only blobs older than a grace period, for other instances'
   requests in flight).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pybase64
from sqlalchemy import Connection, func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from collector.errors import BadRequest, CollectorError, PayloadTooLarge, TooManyRequests
from collector.settings import Settings
from collector.store.blobs import Blobs
from collector.store.db import Database
from collector.store.models import Device, Event, utcnow

__all__ = [
    "SOURCES",
    "IncomingEvent",
    "IngestResult",
    "RejectedBatch",
    "blob_key_for",
    "ingest",
    "sweep_orphans",
]

# "supervisor": tamper events the agent's root supervisor seals (agent/supervisor/tamper.py).
SOURCES = frozenset({"typed", "title", "paste", "screen", "supervisor"})
# Categories beside the wordlists' (core.rules.CATEGORIES): the supervisor's tamper events.
EXTRA_CATEGORIES = frozenset({"tamper"})


@dataclass(frozen=True)
class IncomingEvent:
    id: str
    envelope: str  # base64


@dataclass(frozen=True)
class IngestResult:
    stored: list[str]
    duplicate: list[str]
    deferred: list[str] = field(default_factory=list)  # over the rate limit: send again later


class RejectedBatch(BadRequest):
    """One or more events are invalid; nothing of the batch was stored. ``rejected`` names them,
    so an agent can quarantine those and send the rest again."""

    def __init__(self, detail: str, code: str, rejected: list[str]) -> None:
        super().__init__(detail, code)
        self.rejected = rejected

    def body(self) -> dict[str, object]:
        return {**super().body(), "rejected": self.rejected}


@dataclass(frozen=True)
class _Checked:
    id: str
    data: bytes
    sha256: str
    meta: Any
    recipients: list[str]


def blob_key_for(event_id: str, now: datetime | None = None) -> str:
    """A key unique to this attempt: a retry never overwrites a blob a committed row points to.
    One directory per day of arrival, so a batch's blobs share a directory (one fsync of it)."""
    day = (now or utcnow()).strftime("%Y%m%d")
    return f"ev/{day}/{event_id}.{secrets.token_hex(8)}"


def _categories() -> frozenset[str] | None:
    try:
        from core.rules import CATEGORIES
    except ImportError:  # the trigger engine is optional for the collector's own tests
        return None
    return frozenset(CATEGORIES) | EXTRA_CATEGORIES


def _as_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value)  # 3.11 reads a trailing Z
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValueError("time is not a timestamp")


def _check(event: IncomingEvent, device_id: str, settings: Settings) -> _Checked:
    from core.envelope import read_meta
    from core.errors import EnvelopeError

    if len(event.envelope) > (settings.max_envelope_bytes * 4) // 3 + 4:
        raise PayloadTooLarge(f"event {event.id}: envelope is larger than "
                              f"{settings.max_envelope_bytes} bytes")
    try:
        data = pybase64.b64decode(event.envelope, validate=True)  # SIMD: 15x the stdlib
    except (binascii.Error, ValueError):
        raise BadRequest(f"event {event.id}: envelope is not valid base64", "bad-envelope") from None
    if len(data) > settings.max_envelope_bytes:
        raise PayloadTooLarge(f"event {event.id}: envelope is larger than "
                              f"{settings.max_envelope_bytes} bytes")
    try:
        meta, recipients = read_meta(data)
    except EnvelopeError as exc:
        raise BadRequest(f"event {event.id}: {exc}", "bad-envelope") from None
    if str(meta.event_id) != event.id:
        raise BadRequest(f"event {event.id}: the sealed metadata names another event id",
                         "id-mismatch")
    if not hmac.compare_digest(str(meta.device_id), device_id):
        raise BadRequest(f"event {event.id}: the sealed metadata names another device",
                         "wrong-device")
    categories = _categories()
    if categories is not None and meta.category not in categories:
        raise BadRequest(f"event {event.id}: unknown category", "bad-metadata")
    if not isinstance(meta.severity, int) or not 1 <= meta.severity <= 5:
        raise BadRequest(f"event {event.id}: severity must be 1..5", "bad-metadata")
    if not isinstance(meta.rule, str) or not 0 < len(meta.rule) <= 128:
        raise BadRequest(f"event {event.id}: rule id must be 1..128 characters", "bad-metadata")
    if meta.source not in SOURCES:
        raise BadRequest(f"event {event.id}: source must be one of {sorted(SOURCES)}",
                         "bad-metadata")
    try:
        _as_utc(meta.time)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"event {event.id}: bad time", "bad-metadata") from None
    from core.cohort import check_tag

    # The cohort tag is routed on and shown on pages: refused (422, the agent quarantines the
    # event and reports it: nothing lost) rather than cut short, since the seal binds it.
    why = check_tag(meta.year, meta.form)
    if why is not None:
        raise BadRequest(f"event {event.id}: cohort tag: {why}", "bad-metadata")
    return _Checked(event.id, data, hashlib.sha256(data).hexdigest(), meta,
                    [str(r) for r in recipients])


def _check_batch(events: Sequence[IncomingEvent], device_id: str, settings: Settings
                 ) -> tuple[list[_Checked], list[str]]:
    """(new events to store, ids repeated within this batch)."""
    if len(events) > settings.max_batch:
        raise PayloadTooLarge(f"at most {settings.max_batch} events per batch")
    checked: dict[str, _Checked] = {}
    repeated: list[str] = []
    first_error: CollectorError | None = None
    rejected: list[str] = []
    for event in events:
        if event.id in checked:
            repeated.append(event.id)
            continue
        try:
            checked[event.id] = _check(event, device_id, settings)
        except PayloadTooLarge:
            raise
        except CollectorError as exc:
            first_error = first_error or exc
            rejected.append(event.id)
    if first_error is not None:
        more = f" ({len(rejected)} events rejected)" if len(rejected) > 1 else ""
        raise RejectedBatch(first_error.detail + more, first_error.code, rejected)
    return list(checked.values()), repeated


def _existing_core(conn: Connection, ids: list[str]) -> dict[str, str]:
    """id -> the sha256 each of the events among ``ids`` arrived with, for those already stored
    (a Core query: no ORM rows). Not the blob's current hash: a keyholder grant rewrites the
    blob, and an agent re-sending an event it uploaded before the grant is a retry."""
    if not ids:
        return {}
    table = Event.__table__  # type: ignore[attr-defined]
    arrived = func.coalesce(table.c.received_sha256, table.c.sha256)
    rows = conn.execute(sa_select(table.c.id, arrived).where(table.c.id.in_(ids)))
    return {row[0]: row[1] for row in rows}


def _replayed(items: list[_Checked], existing: dict[str, str]) -> None:
    """The same id with different bytes is a replay or a forgery, never a retry."""
    bad = [c.id for c in items if c.id in existing
           and not hmac.compare_digest(existing[c.id], c.sha256)]
    if bad:
        raise RejectedBatch(f"event {bad[0]}: this id was already stored with other content",
                            "replayed", bad)


def _quarantine(db: Database, device_id: str, refused: list[tuple[_Checked, str]],
                serial: int) -> None:
    """Put refused events on the record (once each: an agent sends a refused batch again one
    event at a time), with their clear metadata so staff can tell how urgent they are."""
    from collector import audit
    from collector.recipients import QUARANTINED
    from collector.store.models import AuditEntry

    def job(session: Session) -> None:
        ids = [c.id for c, _ in refused]
        known = set(session.exec(select(AuditEntry.target).where(
            AuditEntry.action == QUARANTINED, col(AuditEntry.target).in_(ids))).all())
        for c, reason in refused:
            if c.id in known:
                continue
            audit.record(session, f"device:{device_id}", QUARANTINED, c.id, {
                "code": "wrong-recipients", "reason": reason, "policy_serial": serial,
                "recipients": sorted(c.recipients), "category": c.meta.category,
                "severity": c.meta.severity, "rule": c.meta.rule,
                "time": _as_utc(c.meta.time).isoformat()})

    db.write(job)


def _check_recipients(db: Database, settings: Settings, device_id: str,
                      new: list[_Checked]) -> None:
    from collector.recipients import keysets, wrong_recipients

    if not new:
        return
    with db.engine.connect() as conn:
        signed = keysets(db.engine, conn)
    grace = timedelta(days=settings.keyset_grace_days)
    refused = [(c, reason) for c in new if (reason := wrong_recipients(
        c.recipients, _as_utc(c.meta.time), signed, grace)) is not None]
    if not refused:
        return
    _quarantine(db, device_id, refused, signed[-1].serial)
    more = f" ({len(refused)} events refused)" if len(refused) > 1 else ""
    raise RejectedBatch(f"event {refused[0][0].id}: {refused[0][1]}{more}", "wrong-recipients",
                        [c.id for c, _ in refused])


def _rate_limited(limiter: Any, device_id: str, new: list[_Checked], acknowledged: bool
                  ) -> tuple[list[_Checked], list[str]]:
    """(events to store now, ids deferred by the device's rate limit)."""
    if limiter is None or not new:
        return new, []
    allowed, wait = limiter.take(device_id, [c.meta.severity for c in new])
    deferred = [c.id for c, ok in zip(new, allowed, strict=True) if not ok]
    if deferred and not acknowledged and len(deferred) == len(new):
        raise TooManyRequests(f"this device is over its rate of events: send severity 1-3 "
                              f"events again in {max(1, round(wait))} s", wait)
    return [c for c, ok in zip(new, allowed, strict=True) if ok], deferred


def ingest(db: Database, blobs: Blobs, settings: Settings, device: Device,
           events: Sequence[IncomingEvent], limiter: Any = None) -> IngestResult:
    """Store a batch from ``device``. ``limiter`` (a collector.ratelimit.IngestLimiter) is the
    device rate limit; the HTTP route passes the app's, direct callers may leave it out."""
    items, repeated = _check_batch(events, device.id, settings)
    with db.engine.connect() as conn:
        existing = _existing_core(conn, [c.id for c in items])
    _replayed(items, existing)
    duplicate = [c.id for c in items if c.id in existing] + repeated
    new = [c for c in items if c.id not in existing]
    _check_recipients(db, settings, device.id, new)
    new, deferred = _rate_limited(limiter, device.id, new, acknowledged=bool(duplicate))

    now = utcnow()
    written = {c.id: blob_key_for(c.id, now) for c in new}
    try:
        blobs.put_many([(written[c.id], c.data) for c in new])
        stored, raced = _insert_rows(db, device.id, new, written)
    except BaseException:
        for key in written.values():
            blobs.delete(key)
        raise
    for event_id in raced:
        blobs.delete(written[event_id])
    return IngestResult(stored=stored, duplicate=duplicate + raced, deferred=deferred)


def _event_rows(device_id: str, new: list[_Checked], keys: dict[str, str]
                ) -> list[dict[str, Any]]:
    """The rows to insert, as plain column dicts built in the request's thread: constructing
    ``Event`` objects cost more than the insert (0.2 ms an event), and the single SQLite
    writer should spend its time in SQLite. Columns left out take the table's defaults."""
    now = utcnow()
    return [
        {"id": c.id, "device_id": device_id, "time": _as_utc(c.meta.time), "received_at": now,
         "category": c.meta.category, "severity": c.meta.severity, "rule": c.meta.rule,
         "source": c.meta.source, "blob_key": keys[c.id], "size": len(c.data),
         "sha256": c.sha256, "received_sha256": c.sha256, "recipients": c.recipients,
         "year": c.meta.year, "form": c.meta.form}
        for c in new
    ]


def _insert_rows(db: Database, device_id: str, new: list[_Checked], keys: dict[str, str]
                 ) -> tuple[list[str], list[str]]:
    prepared = _event_rows(device_id, new, keys)
    event_table = Event.__table__  # type: ignore[attr-defined]
    touch_device = update(Device.__table__)  # type: ignore[attr-defined]

    def job(session: Session) -> tuple[list[str], list[str]]:
        conn = session.connection()
        existing = _existing_core(conn, [c.id for c in new])
        _replayed(new, existing)
        rows = [row for row in prepared if row["id"] not in existing]
        if rows:
            # Core executemany: the ORM's bulk-insert path costs more than the insert itself,
            # and this runs in the one SQLite writer thread that every request waits for.
            conn.execute(event_table.insert(), rows)
        conn.execute(touch_device.where(Device.__table__.c.id == device_id)  # type: ignore[attr-defined]
                     .values(last_seen=utcnow()))
        return [r["id"] for r in rows], [c.id for c in new if c.id in existing]

    for attempt in range(3):
        try:
            return db.write(job)
        except IntegrityError:
            # Another instance stored one of these ids between our check and our insert (only
            # possible on PostgreSQL); the next attempt sees its row and calls it a duplicate.
            if attempt == 2:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def sweep_orphans(db: Database, blobs: Blobs, grace_s: float = 600.0) -> int:
    """Delete blobs that no event row points to, older than ``grace_s``; return how many."""
    blobs.remove_stale_temporaries(grace_s)
    cutoff = time.time() - grace_s
    removed = 0
    candidates = list(blobs.keys_older_than(cutoff, prefix="ev/"))
    with db.session() as session:
        for start in range(0, len(candidates), 500):
            chunk = candidates[start:start + 500]
            known = set(session.exec(select(Event.blob_key)
                                     .where(col(Event.blob_key).in_(chunk))).all())
            for key in chunk:
                if key not in known and blobs.delete(key):
                    removed += 1
    return removed

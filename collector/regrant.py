"""Changing who can open what is already stored: add a keyholder's slot to every sealed event
and incident record (grant), or remove one (revoke).

Each envelope is rewritten the way ingest writes one, so a crash at any moment leaves every
event openable by its old recipients and never a row without its blob:
1. the new envelope goes to the blob store under a new key (atomic, fsynced);
2. one transaction points the rows of a batch at their new blobs (blob_key, sha256, size,
   recipients), each only if the row still points at the blob that was read (compare and set:
   retention or another run may have changed it meanwhile);
3. after the commit the old blobs are deleted.
A crash between 1 and 2 leaves new blobs no row names, between 2 and 3 old ones: both are
orphans that ``collector.ingest.sweep_orphans`` removes. Incident records live in the database
itself, so their update is one compare-and-set statement.

The work is idempotent: an event whose row already lists (or no longer lists) the keyholder is
skipped, so an interrupted run is finished by running it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from collector import audit
from collector.errors import BadRequest, Conflict, NotFound
from collector.ingest import blob_key_for
from collector.store.blobs import Blobs
from collector.store.db import Database, advisory_lock
from collector.store.models import Event, Incident, Keyholder

__all__ = [
    "DEFAULT_BATCH",
    "LOCK_NAME",
    "Failure",
    "Progress",
    "SlotChange",
    "SlotResult",
    "grant_all",
    "resolve_keyholder",
    "revoke_all",
]

DEFAULT_BATCH = 64
BATCH_BYTES = 32 * 1024 * 1024  # a batch's envelopes are held in memory together
SCAN_CHUNK = 1000
LOCK_NAME = "vigil-job:keyholder-slots"
MAX_AUDITED_FAILURES = 500
DELETE_THREADS = 16


@dataclass(frozen=True)
class Failure:
    target: str  # "event <id>" or "incident <id>"
    reason: str


@dataclass
class SlotResult:
    """What a run did. ``checked`` counts every event and incident record looked at."""

    changed: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    checked: int = 0
    total: int = 0

    @property
    def failed(self) -> int:
        return len(self.failures)


Progress = Callable[[SlotResult], None]


@dataclass(frozen=True)
class SlotChange:
    """One kind of rewrite: which rows need it, and the new envelope for an old one.

    ``needs(recipients)`` decides from the row's recipient list; ``rewrite(data)`` returns the
    new envelope or raises core.errors.EnvelopeError (counted as a failure, nothing written).
    """

    action: str  # audit action, e.g. "keyholder.grant"
    needs: Callable[[list[str]], bool]
    rewrite: Callable[[bytes], bytes]


@dataclass(frozen=True)
class _Pending:
    event_id: str
    old_key: str
    new_key: str
    data: bytes
    recipients: list[str]


def resolve_keyholder(session: Session, name: str, *, active: bool = True) -> Keyholder:
    holder = session.exec(select(Keyholder).where(Keyholder.name == name)).first()
    if holder is None:
        raise NotFound(f"no keyholder named {name!r} on this collector")
    if active and holder.retired_at is not None:
        raise Conflict(f"keyholder {name!r} is retired")
    return holder


def grant_all(db: Database, blobs: Blobs, private_key: Any, to: Any, actor: str,
              progress: Progress | None = None, batch: int = DEFAULT_BATCH) -> SlotResult:
    """Seal every stored event's and incident record's data key to ``to`` (a core.keys
    PublicKey) as well, recovering it with ``private_key`` (an unlocked recipient)."""
    from core import envelope

    fingerprint = to.fingerprint
    change = SlotChange(
        action="keyholder.grant",
        needs=lambda recipients: fingerprint not in recipients,
        rewrite=lambda data: envelope.grant(data, private_key, to),
    )
    details = {"from": private_key.fingerprint, "to": fingerprint, "to_name": to.name}
    return _run(db, blobs, change, actor, target=to.name, details=details,
                progress=progress, batch=batch)


def revoke_all(db: Database, blobs: Blobs, fingerprint: str, name: str, actor: str,
               progress: Progress | None = None, batch: int = DEFAULT_BATCH) -> SlotResult:
    """Remove ``fingerprint``'s slot from every stored event and incident record. Envelopes
    where it is the only recipient are left alone and reported (nobody could open them)."""
    from core import envelope

    change = SlotChange(
        action="keyholder.revoke-slots",
        needs=lambda recipients: fingerprint in recipients,
        rewrite=lambda data: envelope.revoke(data, fingerprint),
    )
    return _run(db, blobs, change, actor, target=name, details={"fingerprint": fingerprint},
                progress=progress, batch=batch)


def _run(db: Database, blobs: Blobs, change: SlotChange, actor: str, target: str,
         details: dict[str, Any], progress: Progress | None, batch: int) -> SlotResult:
    if batch < 1:
        raise BadRequest("--batch must be at least 1")
    with advisory_lock(db.engine, LOCK_NAME) as mine:
        if not mine:
            raise Conflict("another grant, retire or revoke is changing keyholder slots right "
                           "now: wait for it to finish")
        result = SlotResult(total=_count(db))
        # Recorded before any envelope changes, so even a run that is killed leaves a trace.
        db.write(lambda s: audit.record(s, actor, f"{change.action}.start", target=target,
                                        details={**details, "total": result.total}))
        _events(db, blobs, change, result, progress, batch)
        _incidents(db, change, result, progress)
        summary = {**details, "changed": result.changed, "skipped": result.skipped,
                   "failed": result.failed,
                   "failures": [{"target": f.target, "reason": f.reason}
                                for f in result.failures[:MAX_AUDITED_FAILURES]]}
        if result.failed > MAX_AUDITED_FAILURES:
            summary["failures_not_listed"] = result.failed - MAX_AUDITED_FAILURES
        db.write(lambda s: audit.record(s, actor, change.action, target=target, details=summary))
        return result


def _count(db: Database) -> int:
    with db.session() as session:
        events = session.exec(select(func.count()).select_from(Event)).one()
        incidents = session.exec(select(func.count()).select_from(Incident)
                                 .where(col(Incident.sealed_record).is_not(None))).one()
    return int(events) + int(incidents)


# --- events ---------------------------------------------------------------------------------


def _event_rows(db: Database) -> Iterator[list[tuple[str, list[str]]]]:
    """(id, recipients) of every event, a chunk at a time, in id order (keyset pagination:
    events arriving meanwhile are seen if their id sorts after the current position)."""
    last = ""
    while True:
        with db.session() as session:
            rows = session.exec(select(Event.id, Event.recipients).where(col(Event.id) > last)
                                .order_by(col(Event.id)).limit(SCAN_CHUNK)).all()
        if not rows:
            return
        yield [(r[0], list(r[1] or [])) for r in rows]
        last = rows[-1][0]


def _events(db: Database, blobs: Blobs, change: SlotChange, result: SlotResult,
            progress: Progress | None, batch: int) -> None:
    for chunk in _event_rows(db):
        wanted = [event_id for event_id, recipients in chunk if change.needs(recipients)]
        result.skipped += len(chunk) - len(wanted)
        result.checked += len(chunk) - len(wanted)
        for start in range(0, len(wanted), batch):
            ids = wanted[start:start + batch]
            _event_batch(db, blobs, change, ids, result)
            result.checked += len(ids)
            if progress is not None:
                progress(result)
    if progress is not None:
        progress(result)


def _event_batch(db: Database, blobs: Blobs, change: SlotChange, ids: list[str],
                 result: SlotResult) -> None:
    from collector.errors import BlobNotFound
    from core.envelope import read_meta
    from core.errors import EnvelopeError

    with db.session() as session:
        rows = session.exec(select(Event).where(col(Event.id).in_(ids))).all()
    pending: list[_Pending] = []
    held = 0
    for row in sorted(rows, key=lambda r: r.id):
        target = f"event {row.id}"
        if not change.needs(list(row.recipients or [])):
            result.skipped += 1  # changed since the scan
            continue
        try:
            data = blobs.get(row.blob_key)
        except BlobNotFound:
            result.failures.append(Failure(target, "its envelope is missing from the blob store"))
            continue
        if hashlib.sha256(data).hexdigest() != row.sha256:
            result.failures.append(Failure(target, "its envelope does not match its checksum"))
            continue
        try:
            new = change.rewrite(data)
            meta, recipients = read_meta(new)
        except EnvelopeError as exc:
            result.failures.append(Failure(target, _reason(exc)))
            continue
        if str(meta.event_id) != row.id:
            result.failures.append(Failure(target, "its envelope belongs to another event"))
            continue
        pending.append(_Pending(row.id, row.blob_key, blob_key_for(row.id, row.received_at),
                                new, [str(r) for r in recipients]))
        held += len(new)
        if held >= BATCH_BYTES:
            _commit_events(db, blobs, pending, result)
            pending, held = [], 0
    _commit_events(db, blobs, pending, result)


def _commit_events(db: Database, blobs: Blobs, pending: list[_Pending],
                   result: SlotResult) -> None:
    if not pending:
        return
    blobs.put_many([(p.new_key, p.data) for p in pending])

    def job(session: Session) -> list[bool]:
        done = []
        for p in pending:
            moved = session.execute(
                update(Event)
                .where(col(Event.id) == p.event_id, col(Event.blob_key) == p.old_key)
                .values(blob_key=p.new_key, sha256=hashlib.sha256(p.data).hexdigest(),
                        size=len(p.data), recipients=p.recipients)
            )
            done.append(bool(moved.rowcount))  # type: ignore[attr-defined]
        return done

    try:
        done = db.write(job)
    except Exception:
        for p in pending:
            blobs.delete(p.new_key)  # rolled back: the rows still name the old blobs
        raise
    # An interrupt (BaseException) while waiting is not caught: the commit may still happen in
    # SQLite's writer thread, so the new blobs stay; the orphan sweep removes any no row names.
    # Only after the commit: an old blob is garbage once no row names it. Each delete fsyncs
    # its directory; run together, the file system commits those at once (a third of the
    # run's time when done one after another).
    garbage = [p.old_key if moved else p.new_key for p, moved in zip(pending, done, strict=True)]
    with ThreadPoolExecutor(max_workers=min(DELETE_THREADS, len(garbage))) as pool:
        for _ in pool.map(blobs.delete, garbage):
            pass
    result.changed += sum(done)
    result.skipped += len(done) - sum(done)  # deleted (retention) or rewritten meanwhile


# --- incident records -----------------------------------------------------------------------


def _incidents(db: Database, change: SlotChange, result: SlotResult,
               progress: Progress | None) -> None:
    from core.envelope import read_meta
    from core.errors import EnvelopeError

    with db.session() as session:
        ids = list(session.exec(select(Incident.id).where(col(Incident.sealed_record).is_not(None))
                                .order_by(col(Incident.id))).all())
    for incident_id in ids:
        target = f"incident {incident_id}"
        result.checked += 1
        with db.session() as session:
            sealed = session.exec(select(Incident.sealed_record)
                                  .where(col(Incident.id) == incident_id)).first()
        if not sealed:
            result.skipped += 1
            continue
        old = bytes(sealed)
        try:
            meta, recipients = read_meta(old)
            if not change.needs([str(r) for r in recipients]):
                result.skipped += 1
                continue
            if str(meta.event_id) != f"incident-{incident_id}":
                result.failures.append(Failure(target, "its record belongs to another incident"))
                continue
            new = change.rewrite(old)
        except EnvelopeError as exc:
            result.failures.append(Failure(target, _reason(exc)))
            continue

        def job(session: Session, incident_id: int | None = incident_id, old: bytes = old,
                new: bytes = new) -> bool:
            moved = session.execute(
                update(Incident)
                .where(col(Incident.id) == incident_id, col(Incident.sealed_record) == old)
                .values(sealed_record=new)
            )
            return bool(moved.rowcount)  # type: ignore[attr-defined]

        if db.write(job):
            result.changed += 1
        else:
            result.skipped += 1  # edited meanwhile: the dashboard sealed it to the current set
    if progress is not None and ids:
        progress(result)


def _reason(exc: Exception) -> str:
    from core.errors import NotARecipient

    if isinstance(exc, NotARecipient):
        return "the unlocked key is not one of its recipients"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__

"""The triage queue query: newest first, filtered, keyset-paginated on (time, id).

Each filter matches the leading column of one of the Event table's composite indexes
(status|category|severity|device_id, time, id), so the database walks one index backwards from
the cursor and stops after a page: the cost does not grow with the number of events.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from collector.store.models import Device, Event
from dashboard.errors import BadRequest

__all__ = ["Cursor", "QueueFilter", "QueuePage", "fetch_page"]


def _utc(moment: datetime) -> datetime:
    """The tables' datetime type takes only aware values; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Cursor:
    time: datetime
    id: str

    def encode(self) -> str:
        return f"{_utc(self.time).isoformat()}~{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        stamp, sep, event_id = text.partition("~")
        try:
            if not sep or not event_id:
                raise ValueError
            return cls(_utc(datetime.fromisoformat(stamp)), event_id[:36])
        except ValueError as exc:
            raise BadRequest("That page link is malformed; start again from the first page.") from exc


@dataclass(frozen=True, slots=True)
class QueueFilter:
    severity: int | None = None
    category: str | None = None
    device: str | None = None
    status: str | None = None
    since: date | None = None
    until: date | None = None

    @classmethod
    def from_query(cls, params: Any) -> QueueFilter:
        def text(name: str, limit: int) -> str | None:
            value = (params.get(name) or "").strip()
            return value[:limit] or None

        def day(name: str) -> date | None:
            value = text(name, 10)
            if value is None:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError as exc:
                raise BadRequest(f"{name} must be a date like 2026-11-23.") from exc

        severity = text("severity", 1)
        if severity is not None and severity not in "12345":
            raise BadRequest("severity must be a number from 1 to 5.")
        return cls(
            severity=int(severity) if severity else None,
            category=text("category", 32),
            device=text("device", 36),
            status=text("status", 16),
            since=day("since"),
            until=day("until"),
        )

    def as_query(self, **extra: str) -> str:
        pairs = {
            "severity": self.severity,
            "category": self.category,
            "device": self.device,
            "status": self.status,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            **extra,
        }
        return urlencode({k: v for k, v in pairs.items() if v not in (None, "")})

    def without(self, **changes: Any) -> QueueFilter:
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: list[tuple[Event, str]]  # (event, device hostname)
    next_cursor: Cursor | None


def fetch_page(db: Session, flt: QueueFilter, cursor: Cursor | None, limit: int,
               where: tuple[Any, ...] = ()) -> QueuePage:
    """One page of the queue; ``where``: the account's school (dashboard.scope.Scope.events)."""
    query = select(Event, Device.hostname).join(Device, col(Device.id) == Event.device_id, isouter=True)
    if where:
        query = query.where(*where)
    if flt.severity is not None:
        query = query.where(Event.severity == flt.severity)
    if flt.category:
        query = query.where(Event.category == flt.category)
    if flt.device:
        query = query.where(Event.device_id == flt.device)
    if flt.status:
        query = query.where(Event.status == flt.status)
    if flt.since:
        query = query.where(Event.time >= _day_start(flt.since))
    if flt.until:
        query = query.where(Event.time < _day_start(flt.until + timedelta(days=1)))
    if cursor is not None:
        query = query.where(tuple_(Event.time, Event.id) < tuple_(cursor.time, cursor.id))
    query = query.order_by(col(Event.time).desc(), col(Event.id).desc()).limit(limit + 1)
    rows = [(event, hostname or event.device_id) for event, hostname in db.exec(query).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = Cursor(rows[-1][0].time, rows[-1][0].id) if more and rows else None
    return QueuePage(rows=rows, next_cursor=next_cursor)

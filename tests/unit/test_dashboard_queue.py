"""The triage queue's keyset pagination, on SQLite and the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from collector.store.models import Device, Event
from dashboard.errors import BadRequest
from dashboard.queue import Cursor, QueueFilter, fetch_page

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _fill(database: Any) -> list[Event]:
    events = []
    with database.session() as s:
        for d in ("dev-a", "dev-b"):
            s.add(Device(id=d, hostname=f"host-{d}", secret_hash="0" * 64))
        s.commit()
        for i in range(57):
            # Every third event shares its time with the previous one: ties are broken by id.
            minutes = i - (1 if i % 3 == 2 else 0)
            events.append(Event(
                id=str(uuid.UUID(int=i * 7919 + 1)), device_id="dev-a" if i % 2 else "dev-b",
                time=BASE + timedelta(minutes=minutes * 37), category="drugs" if i % 4 else "suicide",
                severity=1 + i % 5, rule="r", blob_key=f"k{i}", size=1, sha256="0" * 64,
                status="escalated" if i % 5 == 0 else "new",
            ))
        s.add_all(events)
        s.commit()
    return events


def _expected(events: list[Event], keep: Any) -> list[str]:
    chosen = [e for e in events if keep(e)]
    chosen.sort(key=lambda e: (e.time, e.id), reverse=True)
    return [e.id for e in chosen]


def _walk(database: Any, flt: QueueFilter, limit: int) -> list[str]:
    seen: list[str] = []
    cursor = None
    with database.session() as s:
        for _ in range(100):
            page = fetch_page(s, flt, cursor, limit)
            assert len(page.rows) <= limit
            seen += [e.id for e, _ in page.rows]
            if page.next_cursor is None:
                return seen
            # Through the URL form, as the page link carries it.
            cursor = Cursor.decode(page.next_cursor.encode())
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("limit", [1, 7, 50, 100])
def test_dashboard_queue_walks_every_event_once_newest_first(database: Any, limit: int) -> None:
    events = _fill(database)
    assert _walk(database, QueueFilter(), limit) == _expected(events, lambda e: True)


def test_dashboard_queue_filters(database: Any) -> None:
    events = _fill(database)
    cases = [
        (QueueFilter(severity=5), lambda e: e.severity == 5),
        (QueueFilter(category="suicide"), lambda e: e.category == "suicide"),
        (QueueFilter(device="dev-a"), lambda e: e.device_id == "dev-a"),
        (QueueFilter(status="escalated"), lambda e: e.status == "escalated"),
        (QueueFilter(severity=1, status="escalated"), lambda e: e.severity == 1 and e.status == "escalated"),
        (QueueFilter(since=date(2026, 11, 20), until=date(2026, 11, 20)),
         lambda e: e.time.date() == date(2026, 11, 20)),
        (QueueFilter(since=date(2026, 11, 21)), lambda e: e.time.date() >= date(2026, 11, 21)),
    ]
    for flt, keep in cases:
        expected = _expected(events, keep)
        assert expected, flt
        assert _walk(database, flt, 4) == expected, flt


def test_dashboard_queue_rows_carry_the_hostname(database: Any) -> None:
    _fill(database)
    with database.session() as s:
        page = fetch_page(s, QueueFilter(device="dev-b"), None, 3)
    assert {host for _, host in page.rows} == {"host-dev-b"}


def test_dashboard_queue_rejects_bad_parameters() -> None:
    with pytest.raises(BadRequest, match="severity"):
        QueueFilter.from_query({"severity": "9"})
    with pytest.raises(BadRequest, match="since"):
        QueueFilter.from_query({"since": "yesterday"})
    with pytest.raises(BadRequest, match="page link"):
        Cursor.decode("not-a-cursor")
    flt = QueueFilter.from_query({"severity": "5", "category": " drugs ", "status": ""})
    assert flt == QueueFilter(severity=5, category="drugs")
    assert flt.as_query(after="x") == "severity=5&category=drugs&after=x"

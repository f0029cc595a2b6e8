"""Report figures on SQLite and the real PostgreSQL: weekly series and the termly summary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from collector.store.models import Device, Event, Incident
from dashboard.stats import Span, term_for, term_summary, weekly_series


def _fill(database: Any) -> None:
    with database.session() as s:
        s.add(Device(id="d1", hostname="LAB-01", group="year-9", secret_hash="0" * 64))
        s.add(Device(id="d2", hostname="LIB-02", group="", secret_hash="0" * 64))
        s.commit()
        rows = [
            # (day, category, severity, device, hours to grade or None)
            (date(2026, 9, 7), "bullying", 3, "d1", 2.0),
            (date(2026, 9, 8), "bullying", 4, "d1", 4.0),
            (date(2026, 9, 16), "suicide", 5, "d2", 1.0),
            (date(2026, 9, 16), "drugs", 2, "d2", None),
            (date(2026, 12, 30), "drugs", 2, "d1", 10.0),
            (date(2027, 1, 2), "drugs", 2, "d1", None),  # next term
        ]
        for i, (day, category, severity, device, hours) in enumerate(rows):
            at = datetime(day.year, day.month, day.day, 10, 30, tzinfo=UTC)
            s.add(Event(id=f"e{i}", device_id=device, time=at, received_at=at, category=category,
                        severity=severity, rule=f"{category}.x", blob_key=f"k{i}", size=1,
                        sha256="0" * 64, status="new" if hours is None else "concern",
                        graded_at=None if hours is None else at + timedelta(hours=hours)))
        s.add(Incident(title="t", incident_types=["Bullying or harassment"], created_by="x",
                       created_at=datetime(2026, 9, 9, tzinfo=UTC)))
        s.commit()


def test_dashboard_weekly_series(database: Any) -> None:
    _fill(database)
    with database.session() as s:
        series = weekly_series(s, Span(date(2026, 9, 7), date(2026, 9, 20)))
    assert series.weeks == [date(2026, 9, 7), date(2026, 9, 14)]
    assert series.by_category == {"bullying": [2, 0], "drugs": [0, 1], "suicide": [0, 1]}
    assert series.by_severity[5] == [0, 1] and series.by_severity[3] == [1, 0]
    assert series.totals == [2, 2]


def test_dashboard_term_summary(database: Any) -> None:
    _fill(database)
    term = term_for(date(2026, 10, 1))
    assert term == Span(date(2026, 9, 1), date(2026, 12, 31))
    with database.session() as s:
        summary = term_summary(s, term)
    assert summary.total == 5
    assert dict(summary.by_category) == {"bullying": 2, "drugs": 2, "suicide": 1}
    assert summary.by_severity == [(5, 1), (4, 1), (3, 1), (2, 2), (1, 0)]
    assert dict(summary.by_group) == {"year-9": 3, "(no group)": 2}
    assert dict(summary.by_grade) == {"concern": 4, "new": 1}
    assert summary.false_positive_rate == 0.0  # four graded, none a false positive
    summary.by_grade = [("false_positive", 3), ("concern", 1), ("new", 6)]
    assert summary.false_positive_rate == 0.75
    summary.by_grade = [("new", 2)]
    assert summary.false_positive_rate is None
    summary.by_grade = [("concern", 4), ("new", 1)]
    assert summary.graded == 4
    assert summary.median_response_hours == 3.0
    assert summary.p90_response_hours == 10.0
    assert summary.incidents_by_type == [("Bullying or harassment", 1)]

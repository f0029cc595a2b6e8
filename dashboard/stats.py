"""Anonymised counts for the reports: per day, category, severity, device group; response times.

Nothing here reads a sealed field or a hostname, so governors can see all of it.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from collector.store.models import Device, Event, Incident
from dashboard.security import aware

__all__ = ["Span", "TermSummary", "WeeklySeries", "term_for", "term_summary", "weekly_series"]


@dataclass(frozen=True, slots=True)
class Span:
    start: date
    end: date  # inclusive

    @property
    def lo(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def hi(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=UTC)


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


@dataclass(slots=True)
class WeeklySeries:
    weeks: list[date]
    by_category: dict[str, list[int]]
    by_severity: dict[int, list[int]]

    @property
    def totals(self) -> list[int]:
        return [sum(c[i] for c in self.by_category.values()) for i in range(len(self.weeks))]


def weekly_series(db: Session, span: Span, where: tuple[Any, ...] = ()) -> WeeklySeries:
    """Events per week by category and severity; ``where``: the account's school's events
    (dashboard.scope.Scope.events)."""
    weeks: list[date] = []
    week = _monday(span.start)
    while week <= span.end:
        weeks.append(week)
        week += timedelta(days=7)
    index = {w: i for i, w in enumerate(weeks)}
    day = func.date(Event.time)
    in_span = (col(Event.time) >= span.lo, col(Event.time) < span.hi, *where)
    by_category: dict[str, list[int]] = defaultdict(lambda: [0] * len(weeks))
    for d, category, n in db.exec(
        select(day, Event.category, func.count()).where(*in_span).group_by(day, Event.category)
    ).all():
        by_category[category][index[_monday(_day(d))]] += n
    by_severity: dict[int, list[int]] = {s: [0] * len(weeks) for s in range(1, 6)}
    for d, severity, n in db.exec(
        select(day, Event.severity, func.count()).where(*in_span).group_by(day, Event.severity)
    ).all():
        by_severity.setdefault(severity, [0] * len(weeks))[index[_monday(_day(d))]] += n
    return WeeklySeries(weeks, dict(sorted(by_category.items())), by_severity)


@dataclass(slots=True)
class TermSummary:
    span: Span
    total: int = 0
    by_category: list[tuple[str, int]] = field(default_factory=list)
    by_severity: list[tuple[int, int]] = field(default_factory=list)
    by_group: list[tuple[str, int]] = field(default_factory=list)
    by_grade: list[tuple[str, int]] = field(default_factory=list)
    incidents_by_type: list[tuple[str, int]] = field(default_factory=list)
    incidents: int = 0
    graded: int = 0
    median_response_hours: float | None = None
    p90_response_hours: float | None = None

    @property
    def false_positive_rate(self) -> float | None:
        """False positives over the events graded: how much of the staff's time the lists
        cost for nothing (governors ask; dashboard/precision.py has it per rule)."""
        graded = sum(n for s, n in self.by_grade if s != "new")
        false = sum(n for s, n in self.by_grade if s == "false_positive")
        return false / graded if graded else None


def term_for(today: date) -> Span:
    """The English school term containing ``today`` (autumn Sep-Dec, spring Jan-Mar, summer Apr-Aug)."""
    if today.month >= 9:
        return Span(date(today.year, 9, 1), date(today.year, 12, 31))
    if today.month <= 3:
        return Span(date(today.year, 1, 1), date(today.year, 3, 31))
    return Span(date(today.year, 4, 1), date(today.year, 8, 31))


def term_summary(db: Session, span: Span, where: tuple[Any, ...] = (),
                 incidents_where: tuple[Any, ...] = ()) -> TermSummary:
    """The governors' termly figures; ``where`` and ``incidents_where``: the account's school's
    events and incidents (dashboard.scope), so a school's governor sees their school's."""
    in_span = (col(Event.time) >= span.lo, col(Event.time) < span.hi, *where)
    out = TermSummary(span=span)
    out.by_category = [
        (c, n)
        for c, n in db.exec(
            select(Event.category, func.count()).where(*in_span).group_by(Event.category)
            .order_by(func.count().desc())
        ).all()
    ]
    out.total = sum(n for _, n in out.by_category)
    severities = dict(
        db.exec(select(Event.severity, func.count()).where(*in_span).group_by(Event.severity)).all()
    )
    out.by_severity = [(s, int(severities.get(s, 0))) for s in range(5, 0, -1)]
    group = func.coalesce(Device.group, "")
    out.by_group = [
        (g or "(no group)", n)
        for g, n in db.exec(
            select(group, func.count())
            .select_from(Event)
            .join(Device, col(Device.id) == Event.device_id, isouter=True)
            .where(*in_span)
            .group_by(group)
            .order_by(func.count().desc())
        ).all()
    ]
    out.by_grade = [
        (s, n)
        for s, n in db.exec(
            select(Event.status, func.count()).where(*in_span).group_by(Event.status)
        ).all()
    ]
    waits = [
        (aware(graded) - aware(received)).total_seconds() / 3600
        for received, graded in db.exec(
            select(Event.received_at, Event.graded_at)
            .where(*in_span)
            .where(col(Event.graded_at).is_not(None))
        ).all()
    ]
    out.graded = len(waits)
    if waits:
        waits.sort()
        out.median_response_hours = round(statistics.median(waits), 1)
        out.p90_response_hours = round(waits[min(len(waits) - 1, int(len(waits) * 0.9))], 1)
    types: Counter[str] = Counter()
    for kinds in db.exec(
        select(Incident.incident_types).where(
            col(Incident.created_at) >= span.lo, col(Incident.created_at) < span.hi,
            *incidents_where,
        )
    ).all():
        out.incidents += 1
        types.update(kinds or [])
    out.incidents_by_type = types.most_common()
    return out

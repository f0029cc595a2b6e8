"""Precision learnt from grades: per rule and per category, how often what fired was a concern.

The technician's grades (``concern`` and ``escalated``: a real concern; ``no_concern`` and
``false_positive``: not) are the only ground truth a school has about its own lists. From the
events' clear metadata alone (rule, category, time, grade: nothing sealed is read) this gives,
over a window of days:

- per rule and per category: fired, graded, true concerns, false positives, precision
  (concerns / graded) and false-positive rate (false positives / graded);
- per category and month: precision over time, so a change to the lists shows in the next month;
- noisy rules: at least ``NOISY_MIN_GRADED`` graded and precision below ``NOISY_PRECISION``;
  disabling such a rule would have removed exactly its row's events over the window, and its
  concerns are the cost of doing so, shown beside it.

A rule the model fired (``model:<category>``) is a row like any other; the image check's too.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from collector.store.models import Event, Grade

__all__ = ["NOISY_MIN_GRADED", "NOISY_PRECISION", "Precision", "PrecisionRow", "precision"]

CONCERN = frozenset({Grade.CONCERN.value, Grade.ESCALATED.value})
NOT_CONCERN = frozenset({Grade.NO_CONCERN.value, Grade.FALSE_POSITIVE.value})
NOISY_MIN_GRADED = 10
NOISY_PRECISION = 0.1


@dataclass
class PrecisionRow:
    """One rule's or one category's figures over the window."""

    key: str
    category: str = ""
    fired: int = 0
    concerns: int = 0
    no_concern: int = 0
    false_positives: int = 0

    @property
    def graded(self) -> int:
        return self.concerns + self.no_concern + self.false_positives

    @property
    def precision(self) -> float | None:
        return self.concerns / self.graded if self.graded else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.false_positives / self.graded if self.graded else None

    @property
    def noisy(self) -> bool:
        return self.graded >= NOISY_MIN_GRADED and (self.precision or 0.0) < NOISY_PRECISION

    def add(self, status: str, count: int) -> None:
        self.fired += count
        if status in CONCERN:
            self.concerns += count
        elif status == Grade.FALSE_POSITIVE.value:
            self.false_positives += count
        elif status == Grade.NO_CONCERN.value:
            self.no_concern += count


@dataclass
class Precision:
    since: datetime
    days: int
    rules: list[PrecisionRow] = field(default_factory=list)
    categories: list[PrecisionRow] = field(default_factory=list)
    total: PrecisionRow = field(default_factory=lambda: PrecisionRow("all"))
    months: list[str] = field(default_factory=list)  # "2026-11", oldest first
    by_month: dict[str, dict[str, PrecisionRow]] = field(default_factory=dict)  # category -> month

    @property
    def noisy(self) -> list[PrecisionRow]:
        return [r for r in self.rules if r.noisy]


def _month(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m")
    return str(value)[:7]  # SQLite hands back text


def precision(db: Session, now: datetime, days: int = 90,
              where: tuple[Any, ...] = ()) -> Precision:
    """Figures for events received in the ``days`` before ``now``; ``where``: the account's
    scope (dashboard.scope), so a school's staff see their school's."""
    since = now - timedelta(days=days)
    out = Precision(since=since, days=days)
    rules: dict[str, PrecisionRow] = {}
    categories: dict[str, PrecisionRow] = {}
    months: dict[str, dict[str, PrecisionRow]] = defaultdict(dict)
    query = (select(Event.rule, Event.category, Event.status, Event.received_at)
             .where(col(Event.received_at) >= since, *where))
    # One pass over (rule, category, status, time): a school's 90 days are thousands of rows.
    for rule, category, status, received in db.exec(query):
        rules.setdefault(rule, PrecisionRow(rule, category)).add(status, 1)
        categories.setdefault(category, PrecisionRow(category, category)).add(status, 1)
        month = _month(received)
        months[category].setdefault(month, PrecisionRow(month, category)).add(status, 1)
        out.total.add(status, 1)
    out.rules = sorted(rules.values(), key=lambda r: (-r.fired, r.key))
    out.categories = sorted(categories.values(), key=lambda r: (-r.fired, r.key))
    out.months = sorted({m for per in months.values() for m in per})
    out.by_month = dict(months)
    return out


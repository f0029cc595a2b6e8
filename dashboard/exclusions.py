"""Exclusion suggestions from grades (issue 18): where a rule's false positives concentrate.

A rule whose graded false positives mostly come from one place is a rule to narrow there rather
than to switch off. This finds, per rule, the one value of a facet that holds most of its false
positives, and says so with the figures ("drugs.weed: 9 of 11 graded false positives on
devices of group year-8") and what narrowing it would cost (the concerns graded in that same
place). It suggests; nothing here changes a list.

Facets come from two places, and only these:

- **clear metadata**, which the server holds for every event: the device's enrolment group
  (``group``). Computed for anyone who may see the precision page.
- **the sealed header**, opened in the request of a keyholder who has unlocked their key, and
  only then: the application (``app``) and the window title (``title``) the rule fired in. The
  values are used for this one page and never stored or logged (dashboard.routes.precision).

Only false positives count towards the concentration (a "no concern" grade means the rule was
right to fire). A value is suggested when the rule has at least ``MIN_FALSE_POSITIVES`` of them
and the value holds at least ``MIN_SHARE`` of them, unless every graded event of the rule has
that value: then narrowing is the same as disabling, which the noisy-rules table covers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from collector.store.models import Device, Event, Grade
from dashboard.precision import CONCERN

__all__ = [
    "FACETS",
    "MAX_OPENED",
    "MIN_FALSE_POSITIVES",
    "MIN_SHARE",
    "Graded",
    "Row",
    "Suggestion",
    "from_headers",
    "from_metadata",
    "graded_events",
    "suggest",
    "to_open",
]

MAX_OPENED = 500  # headers one unlocked pass opens at most (newest first): a page, not a job
MIN_FALSE_POSITIVES = 5
MIN_SHARE = 0.6
# facet -> how a suggestion names the place, and what to consider doing there
FACETS: dict[str, tuple[str, str]] = {
    "group": ("on devices of group", "an unless context for the lessons it fires in there"),
    "app": ("in the application", "an unless context for what it matches there, or excluding it"),
    "title": ("in windows titled", "an unless context for that page or lesson, or excluding it"),
}


@dataclass(frozen=True, slots=True)
class Graded:
    """One graded event of a rule, with the facets known of it (facet -> value; "" unknown)."""

    rule: str
    category: str
    status: str
    facets: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Suggestion:
    rule: str
    category: str
    facet: str  # a key of FACETS
    value: str  # as the server or the header said it: the template escapes it
    false_positives_there: int
    false_positives: int
    concerns_there: int
    graded: int

    @property
    def share(self) -> float:
        return self.false_positives_there / self.false_positives

    @property
    def where(self) -> str:
        return FACETS[self.facet][0]

    @property
    def consider(self) -> str:
        return FACETS[self.facet][1]

    def text(self) -> str:
        """One line, plain text (for the page's template to escape, and for tests)."""
        cost = ("no graded concern there" if not self.concerns_there else
                f"{self.concerns_there} graded concern{'s' if self.concerns_there != 1 else ''} "
                "there would be missed too")
        return (f"{self.rule}: {self.false_positives_there} of {self.false_positives} graded "
                f"false positives {self.where} {self.value} — consider {self.consider} "
                f"({cost}).")


def suggest(graded: Iterable[Graded], facets: Iterable[str]) -> list[Suggestion]:
    """The suggestions for ``graded`` events over ``facets``, most concentrated first."""
    by_rule: dict[str, list[Graded]] = defaultdict(list)
    for g in graded:
        by_rule[g.rule].append(g)
    out: list[Suggestion] = []
    for rule, events in by_rule.items():
        false = [g for g in events if g.status == Grade.FALSE_POSITIVE.value]
        if len(false) < MIN_FALSE_POSITIVES:
            continue
        for facet in facets:
            counts = Counter(v for g in false if (v := g.facets.get(facet, "")))
            if not counts:
                continue
            value, there = counts.most_common(1)[0]
            everywhere = all(g.facets.get(facet, "") == value for g in events)
            if there / len(false) < MIN_SHARE or everywhere:
                continue
            out.append(Suggestion(
                rule=rule, category=events[0].category, facet=facet, value=value,
                false_positives_there=there, false_positives=len(false),
                concerns_there=sum(1 for g in events if g.status in CONCERN
                                   and g.facets.get(facet, "") == value),
                graded=len(events)))
    return sorted(out, key=lambda s: (-s.share, -s.false_positives_there, s.rule, s.facet))


@dataclass(frozen=True, slots=True)
class Row:
    """A graded event's clear metadata: what the suggestions need of it without opening it."""

    id: str
    rule: str
    category: str
    status: str
    group: str


def graded_events(db: Session, since: datetime, where: tuple[Any, ...] = ()) -> list[Row]:
    """Graded events received since ``since`` (newest first) with their device's group;
    ``where``: the account's scope (dashboard.scope). Columns only: a year of a school's
    grades is thousands of rows."""
    return [Row(*r) for r in db.exec(
        select(Event.id, Event.rule, Event.category, Event.status, Device.group)
        .join(Device, col(Device.id) == Event.device_id)
        .where(col(Event.status) != Grade.NEW.value, col(Event.received_at) >= since, *where)
        .order_by(col(Event.received_at).desc(), col(Event.id))).all()]


def from_metadata(rows: Iterable[Row]) -> list[Graded]:
    return [Graded(r.rule, r.category, r.status, {"group": r.group or ""}) for r in rows]


def to_open(rows: list[Row]) -> list[Row]:
    """The rows whose headers a look at the windows opens: the graded events of the rules with
    enough false positives to have a suggestion, newest first, at most MAX_OPENED."""
    false = Counter(r.rule for r in rows if r.status == Grade.FALSE_POSITIVE.value)
    wanted = {rule for rule, n in false.items() if n >= MIN_FALSE_POSITIVES}
    return [r for r in rows if r.rule in wanted][:MAX_OPENED]


def from_headers(rows: list[Row], events: Mapping[str, Event],
                 open_header: Callable[[Event], Mapping[str, Any] | None]) -> list[Graded]:
    """``rows`` (from :func:`to_open`) with the application and window title from their sealed
    headers, opened one by one by ``open_header`` from ``events`` (id -> row); one that cannot be
    opened (None) or is gone is left out. The values live in the returned objects only: nothing
    is written anywhere."""
    out: list[Graded] = []
    for row in rows:
        event = events.get(row.id)
        header = open_header(event) if event is not None else None
        if header is None:
            continue
        out.append(Graded(row.rule, row.category, row.status, {
            "group": row.group or "",
            "app": str(header.get("app") or "").strip().lower()[:64],
            "title": str(header.get("title") or "").strip()[:120]}))
    return out

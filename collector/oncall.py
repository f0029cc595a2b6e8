"""Out-of-hours escalation (issue 18): a school's working hours and its rota of on-call DSLs.

A routing rule (collector.routing) may say that an event routed outside the school's working
hours goes to whoever the rota has on call then, as well as or instead of the rule's targets.
This module answers the two questions that takes, from rows loaded once per routing run:
is this moment out of the school's hours, and who is on call at it.

Times are wall-clock times in Europe/London, whatever the server's zone: a rota says "18:00 to
08:00", and that means 18:00 in London in June (17:00 UTC) and in December (18:00 UTC). Each
moment is converted from UTC with zoneinfo, so the clocks changing needs nothing special and
no moment is missed or counted twice.

The moment that counts is when the event reached the collector, not the time the desktop
stamped on it: that is when someone has to act (an event fired at 17:55 on a laptop that only
reached the collector at 18:20 goes to the on-call DSL, since the day's DSL may have gone), and
it is the server's clock, which a pupil cannot set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from collector.errors import CollectorError
from collector.store.models import OnCallShift, WorkingHours

__all__ = [
    "DAY_NAMES",
    "DEFAULT_HOURS",
    "LONDON",
    "MODES",
    "Rota",
    "RotaError",
    "Span",
    "check_days",
    "check_time",
    "describe",
]

LONDON = ZoneInfo("Europe/London")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# What a rule does out of hours: its targets only, the on-call DSL as well, or instead.
MODES = ("", "also", "instead")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class RotaError(CollectorError):
    code = "rota-invalid"


def check_time(text: str) -> str:
    """ "08:00" as typed (or as a browser's time input sends it); RotaError if not HH:MM."""
    text = text.strip()
    if not _TIME.match(text):
        raise RotaError(f"{text[:8]!r} is not a time like 08:00 or 18:30 (24-hour clock).")
    return text


def check_days(days: Iterable[int]) -> list[int]:
    chosen = sorted(set(days))
    if not chosen or any(not 0 <= d <= 6 for d in chosen):
        raise RotaError("Choose at least one day of the week.")
    return chosen


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class Span:
    """Some days of the week from ``start`` to ``end``, London time. ``end`` after ``start``:
    within one day, ``start`` in and ``end`` out (08:00 to 18:00 holds 17:59, not 18:00).
    ``end`` before ``start``: overnight, from ``start`` on one of the days to ``end`` the next
    morning (Friday 18:00 to 08:00 holds Saturday 07:59). Equal: the whole of each day."""

    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def of(cls, days: Iterable[int], start: str, end: str) -> Span:
        return cls(frozenset(days), _clock(start), _clock(end))

    def holds(self, moment: datetime) -> bool:
        """Whether ``moment`` (timezone-aware; a naive one is taken as UTC) falls in the span."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo("UTC"))
        local = moment.astimezone(LONDON)
        day, clock = local.weekday(), local.time().replace(tzinfo=None)
        if self.start == self.end:
            return day in self.days
        if self.start < self.end:
            return day in self.days and self.start <= clock < self.end
        return ((day in self.days and clock >= self.start)
                or ((day - 1) % 7 in self.days and clock < self.end))


DEFAULT_HOURS = Span.of(range(5), "08:00", "18:00")  # a school that set none: Mon-Fri 8 to 6


@dataclass(frozen=True)
class Rota:
    """The working hours and live rota lines of every school, for one routing run."""

    hours: dict[int | None, Span]
    shifts: list[OnCallShift]

    @classmethod
    def of(cls, hours: Iterable[WorkingHours], shifts: Iterable[OnCallShift]) -> Rota:
        return cls({h.school_id: Span.of(h.days or [], h.start, h.end) for h in hours},
                   [s for s in shifts if s.removed_at is None])

    def working_hours(self, school_id: int | None) -> Span:
        """The school's hours; a school without its own follows the trust's, then the default."""
        return self.hours.get(school_id) or self.hours.get(None) or DEFAULT_HOURS

    def out_of_hours(self, school_id: int | None, moment: datetime) -> bool:
        return not self.working_hours(school_id).holds(moment)

    def on_call(self, school_id: int | None, moment: datetime) -> list[OnCallShift]:
        """The school's lines covering ``moment``; when it has none then, the trust's (so a
        trust's out-of-hours DSL covers a school with no rota of its own, or a gap in one)."""
        def covering(owner: int | None) -> list[OnCallShift]:
            return [s for s in self.shifts if s.school_id == owner
                    and Span.of(s.days or [], s.start, s.end).holds(moment)]

        found = covering(school_id)
        if not found and school_id is not None:
            found = covering(None)
        return found

    @staticmethod
    def targets(shifts: Iterable[OnCallShift]) -> list[int]:
        """The routing targets of the on-call lines: each one's e-mail, and webhook if given."""
        out: list[int] = []
        for s in shifts:
            out.append(s.email_target_id)
            if s.webhook_target_id is not None:
                out.append(s.webhook_target_id)
        return out


def describe(span: Span) -> str:
    """ "Mon-Fri 08:00-18:00", for pages and audit entries."""
    days = sorted(span.days)
    if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        named = f"{DAY_NAMES[days[0]]}-{DAY_NAMES[days[-1]]}"
    else:
        named = ", ".join(DAY_NAMES[d] for d in days)
    if span.start == span.end:
        return f"{named}, all day"
    overnight = " (next day)" if span.end < span.start else ""
    return f"{named} {span.start:%H:%M}-{span.end:%H:%M}{overnight}"

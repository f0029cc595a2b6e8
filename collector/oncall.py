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

Closed days (bank holidays, school holidays, INSET days) are set with the working hours: on a
closed date it is out of hours all day, whatever the weekday. An on-call line can be for "closed
days" (day ``CLOSED_DAY``), which then holds on each closed date as a weekday would: a line for
closed days from 08:00 to 18:00 covers Christmas Day's daytime, which a rota of weekday nights
and weekends does not. Bank holidays are not built in: England, Wales, Scotland and Northern
Ireland differ, schools add their own closures, and the collector downloads nothing; the head
types the year's dates in once (gov.uk lists the bank holidays).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from collector.errors import CollectorError
from collector.store.models import OnCallShift, WorkingHours

__all__ = [
    "CLOSED_DAY",
    "DAY_NAMES",
    "DEFAULT_HOURS",
    "LONDON",
    "MODES",
    "SHIFT_DAY_NAMES",
    "Rota",
    "RotaError",
    "Span",
    "check_closed",
    "check_days",
    "check_time",
    "closed_dates",
    "describe",
    "describe_closed",
]

LONDON = ZoneInfo("Europe/London")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
CLOSED_DAY = 7  # an on-call line's "day" that stands for each of the school's closed dates
SHIFT_DAY_NAMES = (*DAY_NAMES, "Closed days")
MAX_CLOSED = 100  # entries (a date or a range) per school: a year's holidays need about 20
MAX_CLOSED_RANGE = 120  # days in one range: the summer holiday is about 45
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


def check_days(days: Iterable[int], closed_day: bool = False) -> list[int]:
    """The chosen days of the week (0 Monday .. 6 Sunday), and ``CLOSED_DAY`` where allowed
    (an on-call line; working hours are never on a closed day)."""
    chosen = sorted(set(days))
    last = CLOSED_DAY if closed_day else 6
    if not chosen or any(not 0 <= d <= last for d in chosen):
        raise RotaError("Choose at least one day of the week." if not closed_day else
                        "Choose at least one day of the week, or closed days.")
    return chosen


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _day(text: str, line: str) -> date:
    try:
        found = date.fromisoformat(text)
    except ValueError:
        raise RotaError(f"{line[:40]!r}: {text} is not a date.") from None
    if not 2000 <= found.year <= 2100:
        raise RotaError(f"{line[:40]!r}: {found.year} is not a year the school will be open in.")
    return found


def check_closed(text: str) -> list[list[str]]:
    """Closed days as typed, one per line: ``2026-12-25``, or a range ``2026-12-21 to
    2027-01-01`` (both ends closed; "..", "-" and "–" also join them), with anything after a #
    a comment. Returns [[first, last], ...] as ISO dates, sorted; RotaError on the first line
    that is not one of these, naming it."""
    out: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        found = _DATE.findall(line)
        rest = _DATE.sub("", line).strip().lower()
        if len(found) not in (1, 2) or rest not in ("", "to", "..", "-", "\u2013", "until"):
            raise RotaError(f"{line[:40]!r} is not a date like 2026-12-25 or a range like "
                            "2026-12-21 to 2027-01-01.")
        first, last = _day(found[0], line), _day(found[-1], line)
        if last < first:
            raise RotaError(f"{line[:40]!r}: the range ends before it starts.")
        if (last - first).days >= MAX_CLOSED_RANGE:
            raise RotaError(f"{line[:40]!r}: a range is at most {MAX_CLOSED_RANGE} days.")
        out.append([first.isoformat(), last.isoformat()])
    if len(out) > MAX_CLOSED:
        raise RotaError(f"At most {MAX_CLOSED} closed days or ranges (there were {len(out)}).")
    return sorted(out)


def closed_dates(entries: Iterable[Iterable[str]] | None) -> frozenset[date]:
    """Every date of the stored ranges ([[first, last], ...], as check_closed returns)."""
    days: set[date] = set()
    for first_text, last_text in (tuple(e) for e in entries or ()):
        first, last = date.fromisoformat(first_text), date.fromisoformat(last_text)
        days.update(first + timedelta(n) for n in range((last - first).days + 1))
    return frozenset(days)


def describe_closed(entries: Iterable[Iterable[str]] | None) -> str:
    """ "25 Dec 2026; 21 Dec 2026 to 1 Jan 2027", for pages and audit entries."""
    def day(text: str) -> str:
        d = date.fromisoformat(text)
        return f"{d.day} {d:%b %Y}"

    parts = [day(a) if a == b else f"{day(a)} to {day(b)}" for a, b in (tuple(e) for e in
                                                                       entries or ())]
    return "; ".join(parts) or "none"


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _london(moment: datetime) -> datetime:
    """``moment`` in London's wall-clock time; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(LONDON)


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

    def holds(self, moment: datetime, closed: frozenset[date] = frozenset()) -> bool:
        """Whether ``moment`` (timezone-aware; a naive one is taken as UTC) falls in the span.
        ``closed``: the school's closed dates, which a span with ``CLOSED_DAY`` covers."""
        local = _london(moment)
        today, clock = local.date(), local.time().replace(tzinfo=None)

        def on(day: date) -> bool:
            return day.weekday() in self.days or (CLOSED_DAY in self.days and day in closed)

        if self.start == self.end:
            return on(today)
        if self.start < self.end:
            return on(today) and self.start <= clock < self.end
        return ((on(today) and clock >= self.start)
                or (on(today - timedelta(days=1)) and clock < self.end))


DEFAULT_HOURS = Span.of(range(5), "08:00", "18:00")  # a school that set none: Mon-Fri 8 to 6


@dataclass(frozen=True)
class Rota:
    """The working hours and live rota lines of every school, for one routing run."""

    hours: dict[int | None, Span]
    shifts: list[OnCallShift]
    closed: dict[int | None, frozenset[date]]

    @classmethod
    def of(cls, hours: Iterable[WorkingHours], shifts: Iterable[OnCallShift]) -> Rota:
        rows = list(hours)
        return cls({h.school_id: Span.of(h.days or [], h.start, h.end) for h in rows},
                   [s for s in shifts if s.removed_at is None],
                   {h.school_id: closed_dates(h.closed) for h in rows})

    def follows(self, school_id: int | None) -> int | None:
        """Whose working hours row the school follows: its own if it set one, else the trust's
        (None; with no trust row either, the default hours and no closed days)."""
        return school_id if school_id in self.hours else None

    def closed_days(self, school_id: int | None) -> frozenset[date]:
        """The closed dates the school follows (set with the hours, so from the same row)."""
        return self.closed.get(self.follows(school_id), frozenset())

    def working_hours(self, school_id: int | None) -> Span:
        """The school's hours; a school without its own follows the trust's, then the default."""
        return self.hours.get(school_id) or self.hours.get(None) or DEFAULT_HOURS

    def out_of_hours(self, school_id: int | None, moment: datetime) -> bool:
        if _london(moment).date() in self.closed_days(school_id):
            return True  # a closed day is out of hours from midnight to midnight
        return not self.working_hours(school_id).holds(moment)

    def on_call(self, school_id: int | None, moment: datetime) -> list[OnCallShift]:
        """The school's lines covering ``moment``; when it has none then, the trust's (so a
        trust's out-of-hours DSL covers a school with no rota of its own, or a gap in one)."""
        def covering(owner: int | None) -> list[OnCallShift]:
            closed = self.closed_days(owner)
            return [s for s in self.shifts if s.school_id == owner
                    and Span.of(s.days or [], s.start, s.end).holds(moment, closed)]

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
    days = sorted(d for d in span.days if d != CLOSED_DAY)
    if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 2:
        named = f"{DAY_NAMES[days[0]]}-{DAY_NAMES[days[-1]]}"
    else:
        named = ", ".join(DAY_NAMES[d] for d in days)
    if CLOSED_DAY in span.days:
        named = f"{named}, closed days" if named else "closed days"
    if span.start == span.end:
        return f"{named}, all day"
    overnight = " (next day)" if span.end < span.start else ""
    return f"{named} {span.start:%H:%M}-{span.end:%H:%M}{overnight}"

"""The school filter, as query conditions (issue 18): the one definition of which devices,
events, incidents and routing rows are a school's. ``dashboard.scope`` applies it to every
dashboard request of a school's account; ``collector.routing`` to a school's rules and digest.

A device is of its ``school_id`` (from its enrolment token); an event of its device's school;
an incident, a routing target and a routing rule of their own ``school_id``; so are the
school's working hours and its out-of-hours rota (collector.oncall), where NULL is the trust's.
Within a school, an account's year groups: an event is in them by its cohort tag, an incident
when it has events and all of them are (dashboard.scope says why). A roster pupil is a school's
when of its ``school_id`` or of none (rows from before rosters were per school, which every
school keeps seeing); a login's name beside an event follows the same rule (dashboard.roster).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, or_
from sqlmodel import col, select

from collector.store.models import (
    Device,
    EnrolToken,
    Event,
    Incident,
    IncidentEvent,
    OnCallShift,
    RosterPupil,
    RouteRule,
    RouteTarget,
    WorkingHours,
)

__all__ = ["devices_of", "events_in_years", "events_of", "hours_of", "incidents_in_years",
           "incidents_of", "pupils_of", "rules_of", "shifts_of", "targets_of",
           "tokens_of"]


def devices_of(school_id: int) -> Any:
    return col(Device.school_id) == school_id


def events_of(school_id: int) -> Any:
    return col(Event.device_id).in_(select(Device.id).where(devices_of(school_id)))


def incidents_of(school_id: int) -> Any:
    return col(Incident.school_id) == school_id


def events_in_years(years: frozenset[str]) -> Any:
    """Untagged events (year "") are never in: ``years`` holds no empty year."""
    return col(Event.year).in_(sorted(years))


def incidents_in_years(years: frozenset[str]) -> tuple[Any, Any]:
    """An incident with events, none of them outside ``years`` (two conditions, both needed)."""
    of_incident = col(IncidentEvent.incident_id) == Incident.id
    events = select(IncidentEvent.event_id).join(Event, col(Event.id) == IncidentEvent.event_id)
    return (exists(events.where(of_incident)),
            ~exists(events.where(of_incident, col(Event.year).not_in(sorted(years)))))


def tokens_of(school_id: int) -> Any:
    return col(EnrolToken.school_id) == school_id


def targets_of(school_id: int) -> Any:
    return col(RouteTarget.school_id) == school_id


def rules_of(school_id: int) -> Any:
    return col(RouteRule.school_id) == school_id


def hours_of(school_id: int | None) -> Any:
    """The working hours row of a school; of the trust (or a collector without schools): None."""
    return (col(WorkingHours.school_id) == school_id if school_id is not None
            else col(WorkingHours.school_id).is_(None))


def shifts_of(school_id: int) -> Any:
    return col(OnCallShift.school_id) == school_id


def pupils_of(school_id: int) -> Any:
    return or_(col(RosterPupil.school_id) == school_id, col(RosterPupil.school_id).is_(None))

"""Which school's rows a dashboard account may see: the one place the school filter is made.

An account with ``school_id`` is scoped to that school (a school's DSL, head or technician); one
without is trust-wide (the trust's safeguarding lead), and so is every account of a collector
with no schools, which therefore behaves as before schools existed. Every route that lists or
shows devices, events, incidents or their exports and reports takes ``ScopeDep`` and puts its
conditions into its queries, or fetches by id through ``event``/``incident``, which answer 404
for a row of another school exactly as for a row that does not exist, so ids do not leak.

A device's school comes from its enrolment token; an event is of its device's school; an
incident is of the school it was created in (dashboard.routes.incidents); routing targets and
rules, and the out-of-hours rota's lines, are of the school whose account added them. The conditions themselves are defined once,
in collector.schools, which the routing job uses too. Rows of no school
(devices enrolled before schools were added) are seen by trust-wide accounts only.

Within its school an account may be limited to some year groups (``Account.years``, a deputy DSL
for Year 7): it then sees only events whose cohort tag (``Event.year``) is one of them, so an
untagged event is seen by whole-school accounts only, and an incident only when it has events
and every one of them is in its years (what an incident's record says is about those pupils).
Devices, tokens and routing are not a pupil's, so they stay the school's; event figures on the
devices page honour the years. A year scope without a school is refused on every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from sqlmodel import Session, col, select

from collector import schools
from collector.store.models import (
    Device,
    EnrolToken,
    Event,
    Incident,
    OnCallShift,
    RouteRule,
    RouteTarget,
    School,
)
from core.cohort import join_years, split_years
from dashboard.deps import MaybeSignedInDep, SessionDep
from dashboard.errors import Forbidden, NotFound

__all__ = ["AUDIT_SCHOOL", "Scope", "ScopeDep", "scope_for", "scope_label", "trust_wide_only",
           "whole_school_only"]

YEARS_WITHOUT_SCHOOL = ("This account is limited to some year groups but to no school: ask a "
                        "trust-wide account to give it a school or all years.")

# The key of Session.info under which the school of the request is kept for the audit entry
# (dashboard.auditing.audit adds it to every entry the request writes).
AUDIT_SCHOOL = "vigil_school"


@dataclass(frozen=True, slots=True)
class Scope:
    """The rows one account may see. ``school`` None: the whole trust; ``years`` (normalised as
    core.cohort makes them) empty: every year of the school."""

    school: School | None
    years: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.years and self.school is None:
            raise ValueError(YEARS_WITHOUT_SCHOOL)

    @property
    def school_id(self) -> int | None:
        return self.school.id if self.school is not None else None

    @property
    def trust_wide(self) -> bool:
        return self.school is None

    # Conditions to put in a query's WHERE (none when trust-wide).

    def devices(self) -> tuple[Any, ...]:
        return self._where(schools.devices_of)

    def events(self) -> tuple[Any, ...]:
        return self._where(schools.events_of) + self._in_years()

    def incidents(self) -> tuple[Any, ...]:
        where = self._where(schools.incidents_of)
        return (*where, *schools.incidents_in_years(self.years)) if self.years else where

    def tokens(self) -> tuple[Any, ...]:
        return self._where(schools.tokens_of)

    def route_targets(self) -> tuple[Any, ...]:
        return self._where(schools.targets_of)

    def route_rules(self) -> tuple[Any, ...]:
        return self._where(schools.rules_of)

    def oncall_shifts(self) -> tuple[Any, ...]:
        return self._where(schools.shifts_of)

    def pupils(self) -> tuple[Any, ...]:
        """Roster pupils of the school, and of no school (collector.schools.pupils_of)."""
        return self._where(schools.pupils_of)

    def _where(self, condition: Any) -> tuple[Any, ...]:
        return () if self.school_id is None else (condition(self.school_id),)

    def _in_years(self) -> tuple[Any, ...]:
        return (schools.events_in_years(self.years),) if self.years else ()

    # Fetching one row by id: 404 for another school's row, as for a missing one.

    def event(self, db: Session, event_id: str, missing: str) -> Event:
        event = db.get(Event, event_id[:36])
        school_id = event_school(db, event) if event is not None else None
        if (event is None or not self._may_see(school_id)
                or (self.years and event.year not in self.years)):
            raise NotFound(missing)
        _note_school(db, school_id)
        return event

    def incident(self, db: Session, incident_id: int, missing: str) -> Incident:
        incident = db.get(Incident, incident_id)
        if incident is None or not self._may_see(incident.school_id):
            raise NotFound(missing)
        if self.years and db.exec(select(Incident.id).where(
                col(Incident.id) == incident_id, *self.incidents())).first() is None:
            raise NotFound(missing)
        _note_school(db, incident.school_id)
        return incident

    def token(self, db: Session, token_id: int, missing: str) -> EnrolToken:
        return self._row(db, EnrolToken, token_id, missing)

    def route_target(self, db: Session, target_id: int, missing: str) -> RouteTarget:
        """A routing target not removed, in the account's school (a trust-wide account: any)."""
        return self._row(db, RouteTarget, target_id, missing)

    def route_rule(self, db: Session, rule_id: int, missing: str) -> RouteRule:
        return self._row(db, RouteRule, rule_id, missing)

    def oncall_shift(self, db: Session, shift_id: int, missing: str) -> OnCallShift:
        """A line of the out-of-hours rota, not removed, of the account's school."""
        return self._row(db, OnCallShift, shift_id, missing)

    def _row(self, db: Session, model: Any, row_id: int, missing: str) -> Any:
        row = db.get(model, row_id)
        if (row is None or not self._may_see(row.school_id)
                or getattr(row, "removed_at", None) is not None):
            raise NotFound(missing)
        return row

    def trust_only(self, what: str) -> None:
        """Refuse a school-scoped account a page that is set for the whole trust."""
        if self.school is not None:
            raise Forbidden(f"{what} is set for the whole trust: ask a trust-wide account.")

    def whole_school_only(self, what: str) -> None:
        """Refuse a year-scoped account a change that acts on every year of its school."""
        if self.years:
            raise Forbidden(f"{what} is set for the whole school: ask a whole-school account.")

    def _may_see(self, school_id: int | None) -> bool:
        return self.school is None or school_id == self.school_id


def event_school(db: Session, event: Event) -> int | None:
    device = db.get(Device, event.device_id)
    return device.school_id if device is not None else None


def _note_school(db: Session, school_id: int | None) -> None:
    """A trust-wide account acting on a school's row: the audit entry names that school."""
    if school_id is not None and AUDIT_SCHOOL not in db.info:
        school = db.get(School, school_id)
        if school is not None:
            db.info[AUDIT_SCHOOL] = school.code


def scope_for(db: Session, school_id: int | None, years: str = "") -> Scope:
    """``years``: as stored in ``Account.years``. A year scope with no school is refused (403)
    rather than read as the whole trust, which is what a NULL school would otherwise mean."""
    school = db.get(School, school_id) if school_id is not None else None
    if school_id is not None and school is None:  # a dangling scope sees nothing, not everything
        school = School(id=school_id, code="?", name="?")
    chosen = split_years(years)
    if chosen and school is None:
        raise Forbidden(YEARS_WITHOUT_SCHOOL)
    if school is not None:
        db.info[AUDIT_SCHOOL] = school.code
    return Scope(school, chosen)


def scope_label(db: Session, school_id: int | None, years: str) -> str:
    """What an account sees, for the page header: "North Hill Academy, Years 7, 8"; "" when it
    sees the whole trust."""
    school = db.get(School, school_id) if school_id is not None else None
    if school_id is None:
        return ""
    name = school.name if school is not None else "an unknown school"
    chosen = join_years(split_years(years)).split(",") if years.strip() else []
    if not chosen:
        return name
    return f"{name}, Year{'s' if len(chosen) > 1 else ''} {', '.join(chosen)}"


def _scope(who: MaybeSignedInDep, db: SessionDep) -> Scope:
    # The route's role alias refuses a request with no one signed in; its scope is then moot.
    if who is None:
        return scope_for(db, None)
    return scope_for(db, who.account.school_id, who.account.years)


ScopeDep = Annotated[Scope, Depends(_scope)]


def trust_wide_only(what: str) -> Any:
    """A router or route dependency for what is the trust's, not a school's: pages not yet
    scoped (the roster, the audit log) and changes to what every school runs or who reads every
    school (wordlists, the policy, the keyholders). A school-scoped account gets 403."""

    async def dependency(scope: ScopeDep) -> None:
        scope.trust_only(what)

    return Depends(dependency)


def whole_school_only(what: str) -> Any:
    """A route dependency for changes that act on every year of a school: routing rules and
    targets match and tell about all its events, so a deputy for Year 7 adding one would be
    told about Year 9's. A year-scoped account gets 403; it still reads the page."""

    async def dependency(scope: ScopeDep) -> None:
        scope.whole_school_only(what)

    return Depends(dependency)

"""Out-of-hours escalation by a school's rota (collector.oncall, collector.routing; issue 18):
working hours and on-call lines in London time at their edges (weekend, 17:59 against 18:00,
the clocks changing in March and October), and the routing job sending an out-of-hours event to
the on-call DSL as well as or instead of a rule's targets, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from collector.oncall import (
    CLOSED_DAY,
    DEFAULT_HOURS,
    Rota,
    RotaError,
    Span,
    check_closed,
    check_days,
    check_time,
    closed_dates,
    describe,
    describe_closed,
)
from collector.store.models import (
    AuditEntry,
    Device,
    Event,
    OnCallShift,
    RouteDelivery,
    RouteRule,
    RouteTarget,
    School,
    WorkingHours,
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


HOURS = Span.of(range(5), "08:00", "18:00")


@pytest.mark.parametrize(("moment", "in_hours"), [
    (utc(2026, 12, 7, 17, 59), True),  # Monday 17:59 GMT: still working hours
    (utc(2026, 12, 7, 18, 0), False),  # Monday 18:00 GMT: out
    (utc(2026, 12, 7, 7, 59), False),  # Monday before 08:00
    (utc(2026, 12, 7, 8, 0), True),
    (utc(2026, 12, 5, 12, 0), False),  # Saturday noon
    (utc(2026, 12, 6, 12, 0), False),  # Sunday noon
    (utc(2026, 12, 11, 17, 59, 59), True),  # Friday 17:59:59
    (utc(2026, 12, 11, 18, 0), False),
    # Summer time: 18:00 in London is 17:00 UTC.
    (utc(2026, 6, 15, 16, 59), True),  # Monday 17:59 BST
    (utc(2026, 6, 15, 17, 0), False),  # Monday 18:00 BST
    (utc(2026, 6, 15, 7, 0), True),  # 08:00 BST is 07:00 UTC
    # The clocks go forward at 01:00 UTC on Sunday 29 March 2026.
    (utc(2026, 3, 27, 17, 30), True),  # Friday before: GMT, 17:30 in London
    (utc(2026, 3, 30, 17, 30), False),  # Monday after: BST, 18:30 in London
    (utc(2026, 3, 30, 16, 59), True),  # 17:59 BST
    (utc(2026, 3, 30, 6, 59), False),  # 07:59 BST
    # And back at 01:00 UTC on Sunday 25 October 2026.
    (utc(2026, 10, 23, 17, 0), False),  # Friday before: BST, 18:00 in London
    (utc(2026, 10, 26, 17, 0), True),  # Monday after: GMT, 17:00 in London
    (utc(2026, 10, 26, 18, 0), False),
])
def test_working_hours_at_their_edges(moment: datetime, in_hours: bool) -> None:
    assert HOURS.holds(moment) is in_hours
    assert DEFAULT_HOURS.holds(moment) is in_hours  # the default is the same Mon-Fri 8 to 6


def test_an_overnight_line_runs_into_the_next_morning_across_the_clocks_changing() -> None:
    friday_night = Span.of([4], "18:00", "08:00")  # Friday 18:00 to Saturday 08:00
    assert friday_night.holds(utc(2026, 12, 11, 18, 0))
    assert friday_night.holds(utc(2026, 12, 12, 7, 59))  # Saturday 07:59
    assert not friday_night.holds(utc(2026, 12, 12, 8, 0))
    assert not friday_night.holds(utc(2026, 12, 11, 17, 59))
    assert not friday_night.holds(utc(2026, 12, 10, 23, 0))  # Thursday night is not its
    saturday_night = Span.of([5], "18:00", "08:00")
    # The night of 28-29 March 2026 is an hour shorter: 08:00 BST on Sunday is 07:00 UTC.
    assert saturday_night.holds(utc(2026, 3, 29, 6, 59))
    assert not saturday_night.holds(utc(2026, 3, 29, 7, 0))
    # And 24-25 October an hour longer: 08:00 GMT is 08:00 UTC; 01:30 happens twice, both held.
    assert Span.of([5], "18:00", "08:00").holds(utc(2026, 10, 25, 7, 59))
    assert Span.of([5], "18:00", "08:00").holds(utc(2026, 10, 25, 0, 30))  # 01:30 BST
    assert Span.of([5], "18:00", "08:00").holds(utc(2026, 10, 25, 1, 30))  # 01:30 GMT
    weekend = Span.of([5, 6], "00:00", "00:00")  # all of Saturday and Sunday
    assert weekend.holds(utc(2026, 12, 12, 0, 0)) and weekend.holds(utc(2026, 12, 13, 23, 59))
    assert not weekend.holds(utc(2026, 12, 14, 0, 0))
    assert describe(HOURS) == "Mon-Fri 08:00-18:00"
    assert describe(friday_night) == "Fri 18:00-08:00 (next day)"
    assert describe(weekend) == "Sat, Sun, all day"


def test_times_and_days_are_checked() -> None:
    assert check_time(" 18:00 ") == "18:00"
    for bad in ("6pm", "24:00", "18:60", "1800", ""):
        with pytest.raises(RotaError, match="not a time"):
            check_time(bad)
    assert check_days([4, 0, 4]) == [0, 4]
    for bad_days in ([], [7], [-1]):
        with pytest.raises(RotaError, match="at least one day"):
            check_days(bad_days)


def test_closed_days_are_read_as_typed_and_refused_in_one_line() -> None:
    typed = """
    2026-12-21 to 2027-01-01  # Christmas holiday
    2026-05-25
    2027-02-15..2027-02-19
    # half term in October is below, a range with a dash
    2026-10-26 - 2026-10-30
    """
    entries = check_closed(typed)
    assert entries == [["2026-05-25", "2026-05-25"], ["2026-10-26", "2026-10-30"],
                       ["2026-12-21", "2027-01-01"], ["2027-02-15", "2027-02-19"]]
    days = closed_dates(entries)
    assert len(days) == 1 + 5 + 12 + 5
    assert describe_closed(entries[:1] + entries[2:3]) == "25 May 2026; 21 Dec 2026 to 1 Jan 2027"
    assert describe_closed(None) == "none" and check_closed("  \n# nothing\n") == []
    for bad, says in (("next tuesday", "not a date like"),
                      ("2026-12-25 and 2026-12-26", "not a date like"),
                      ("2026-02-30", "is not a date"),
                      ("1999-12-25", "not a year"),
                      ("2027-01-01 to 2026-12-21", "ends before it starts"),
                      ("2026-01-01 to 2026-12-31", "at most 120 days"),
                      ("2026-12-25 2026-12-26 2026-12-27", "not a date like")):
        with pytest.raises(RotaError, match=says):
            check_closed(f"2026-12-24\n{bad}")
    with pytest.raises(RotaError, match="At most 100"):
        check_closed("\n".join(f"2026-01-01 to 2026-01-0{n % 9 + 1}" for n in range(101)))
    assert check_days([CLOSED_DAY, 5], closed_day=True) == [5, CLOSED_DAY]
    with pytest.raises(RotaError, match="or closed days"):
        check_days([8], closed_day=True)
    with pytest.raises(RotaError, match="at least one day"):
        check_days([CLOSED_DAY])  # working hours are never on a closed day


def test_a_closed_day_is_out_of_hours_all_day_and_a_line_for_closed_days_covers_it() -> None:
    rota = Rota.of(
        [WorkingHours(school_id=1, days=[0, 1, 2, 3, 4], start="08:00", end="18:00",
                      closed=[["2026-12-21", "2027-01-01"], ["2026-05-25", "2026-05-25"]],
                      updated_by="t"),
         WorkingHours(school_id=None, days=[0, 1, 2, 3, 4], start="08:00", end="18:00",
                      closed=[["2026-12-25", "2026-12-25"]], updated_by="t")],
        [_shift(1, 11, [0, 1, 2, 3, 4], "18:00", "08:00"),
         _shift(1, 31, [CLOSED_DAY], "08:00", "18:00"),
         _shift(1, 41, [CLOSED_DAY], "20:00", "07:00")])
    christmas_monday = utc(2026, 12, 21, 10, 0)  # a Monday of the holiday, 10:00 GMT
    assert rota.out_of_hours(1, christmas_monday)
    assert Rota.targets(rota.on_call(1, christmas_monday)) == [31]
    assert Rota.targets(rota.on_call(1, utc(2026, 12, 21, 19, 0))) == [11]  # weeknight line
    assert Rota.targets(rota.on_call(1, utc(2026, 12, 21, 21, 0))) == [11, 41]
    # The closed-days night line runs from the last closed day (Friday 1 January) into the next
    # morning, beside the weeknight line that runs from Friday into Saturday.
    assert Rota.targets(rota.on_call(1, utc(2027, 1, 2, 6, 59))) == [11, 41]  # Saturday 06:59
    assert Rota.targets(rota.on_call(1, utc(2027, 1, 2, 7, 0))) == [11]
    assert not rota.on_call(1, utc(2027, 1, 2, 8, 0))
    assert not rota.out_of_hours(1, utc(2027, 1, 4, 10, 0))  # the Monday of term: open
    # The spring bank holiday is in summer time: 08:30 BST is 07:30 UTC, closed all the same.
    assert rota.out_of_hours(1, utc(2026, 5, 25, 7, 30))
    assert Rota.targets(rota.on_call(1, utc(2026, 5, 25, 7, 30))) == [31]
    assert not rota.out_of_hours(1, utc(2026, 5, 26, 7, 30))  # Tuesday 08:30 BST: open
    # School 2 has no hours of its own: it follows the trust's, closed days included.
    assert rota.out_of_hours(2, utc(2026, 12, 25, 12, 0))  # Friday noon, Christmas Day
    assert not rota.out_of_hours(2, utc(2026, 12, 24, 12, 0))
    assert not rota.out_of_hours(2, utc(2026, 12, 21, 12, 0))  # school 1's holiday, not its
    assert describe(Span.of([CLOSED_DAY], "08:00", "18:00")) == "closed days 08:00-18:00"
    assert describe(Span.of([5, 6, CLOSED_DAY], "00:00", "00:00")) == "Sat, Sun, closed days, all day"


def _shift(school_id: int | None, email: int, days: list[int], start: str, end: str,
           webhook: int | None = None) -> OnCallShift:
    return OnCallShift(school_id=school_id, name=f"on call {email}", days=days, start=start,
                       end=end, email_target_id=email, webhook_target_id=webhook,
                       created_by="head")


def test_a_school_follows_its_own_hours_then_the_trusts_and_its_own_rota_then_the_trusts() -> None:
    rota = Rota.of(
        [WorkingHours(school_id=None, days=[0, 1, 2, 3, 4], start="08:30", end="16:00",
                      updated_by="t"),
         WorkingHours(school_id=2, days=[0, 1, 2, 3, 4], start="08:00", end="18:00",
                      updated_by="t")],
        [_shift(1, 11, [0, 1, 2, 3, 4], "18:00", "08:00", webhook=12),
         _shift(None, 21, [0, 1, 2, 3, 4, 5, 6], "00:00", "00:00")])
    monday_5pm = utc(2026, 12, 7, 17, 0)
    assert rota.out_of_hours(1, monday_5pm)  # school 1 has no hours: the trust's 08:30-16:00
    assert not rota.out_of_hours(2, monday_5pm)  # school 2's own, until 18:00
    assert Rota.targets(rota.on_call(1, utc(2026, 12, 7, 19, 0))) == [11, 12]
    # school 1's line starts at 18:00: at 17:00 it has nobody, so the trust's all-day line
    assert Rota.targets(rota.on_call(1, monday_5pm)) == [21]
    assert Rota.targets(rota.on_call(None, monday_5pm)) == [21]
    assert Rota.of([], []).out_of_hours(None, utc(2026, 12, 5, 12, 0))  # the default hours


# The routing job, against a real database.


def _setup(database: Any, mode: str) -> dict[str, Any]:
    with database.session() as s:
        school = School(code="NHA", name="North Hill")
        s.add(school)
        s.flush()
        device = Device(id=str(uuid.uuid4()), hostname="NHA-PC", secret_hash="h",
                        school_id=school.id)
        s.add(device)
        targets = [RouteTarget(kind="email", label=label, address=f"{label}@nha.example",
                               created_by="head", school_id=school.id)
                   for label in ("dsl", "oncall", "trust-oncall")]
        for t in targets:
            s.add(t)
        s.flush()
        dsl, oncall, trust = (t.id for t in targets)
        s.add(RouteRule(name="sev5", min_severity=5, targets=[dsl], out_of_hours=mode,
                        created_by="head", school_id=school.id))
        s.add(WorkingHours(school_id=school.id, days=[0, 1, 2, 3, 4], start="08:00", end="18:00",
                           updated_by="head"))
        # Weeknights 18:00 to 08:00 only: the weekend is left to the trust's line.
        s.add(_shift(school.id, oncall, [0, 1, 2, 3, 4], "18:00", "08:00"))
        s.add(_shift(None, trust, [5, 6], "00:00", "00:00"))
        s.commit()
        return {"device": device.id, "dsl": dsl, "oncall": oncall, "trust": trust}


def _routed(database: Any, ids: dict[str, Any], received: datetime) -> set[int]:
    from collector.routing import plan

    event_id = str(uuid.uuid4())
    database.write(lambda s: s.add(Event(
        id=event_id, device_id=ids["device"], time=received, received_at=received,
        category="suicide", severity=5, rule="suicide.x", blob_key="k", size=1,
        sha256="0" * 64)))
    plan(database, now=received + timedelta(seconds=5))
    with database.session() as s:
        return {d.target_id for d in s.exec(select(RouteDelivery).where(
            RouteDelivery.event_id == event_id)).all()}


def _planned(database: Any) -> list[AuditEntry]:
    with database.session() as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == "route.planned")
                           .order_by(col(AuditEntry.seq))).all())


def test_out_of_hours_events_go_to_the_on_call_dsl_as_well_or_instead(database: Any) -> None:
    also = _setup(database, "also")
    assert _routed(database, also, utc(2026, 12, 7, 17, 59)) == {also["dsl"]}  # in hours
    assert _routed(database, also, utc(2026, 12, 7, 18, 0)) == {also["dsl"], also["oncall"]}
    assert _routed(database, also, utc(2026, 12, 5, 12, 0)) == {also["dsl"], also["trust"]}
    assert [e.details.get("on_call", 0) for e in _planned(database)] == [0, 1, 1]

    # Instead: the on-call DSL alone; with nobody on call, the rule's own targets, audited.
    database.write(lambda s: [setattr(r, "out_of_hours", "instead") or s.add(r)
                              for r in s.exec(select(RouteRule)).all()])
    assert _routed(database, also, utc(2026, 12, 8, 19, 0)) == {also["oncall"]}
    assert _routed(database, also, utc(2026, 12, 8, 10, 0)) == {also["dsl"]}
    # A line whose target was removed on the Targets table is nobody, not a dropped alert.
    database.write(lambda s: [setattr(t, "removed_at", utc(2026, 12, 1)) or s.add(t)
                              for t in s.exec(select(RouteTarget)).all()
                              if t.id == also["oncall"]])
    assert _routed(database, also, utc(2026, 12, 8, 19, 30)) == {also["dsl"]}
    database.write(lambda s: [setattr(x, "removed_at", utc(2026, 12, 1)) or s.add(x)
                              for x in s.exec(select(OnCallShift)).all()])
    assert _routed(database, also, utc(2026, 12, 8, 19, 0)) == {also["dsl"]}
    assert [e.details.get("nobody", 0) for e in _planned(database)][-2:] == [1, 1]


def test_a_rule_without_escalation_ignores_the_rota(database: Any) -> None:
    ids = _setup(database, "")
    assert _routed(database, ids, utc(2026, 12, 7, 22, 0)) == {ids["dsl"]}

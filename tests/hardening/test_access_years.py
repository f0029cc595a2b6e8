"""The access matrix's third axis: year groups within a school (issue 18), against the real server
over TLS, on SQLite and PostgreSQL.

North Hill (NHA) has one device with three events: a Year 7 pupil's, a Year 9 pupil's and one
with no cohort tag. The head is NHA's deputy DSL for Year 7 only; the technician is first the
trust's lead (trust-wide), then NHA's DSL (the whole school). The deputy sees the Year 7 event
and an incident made of it; every route that takes the Year 9 or the untagged event, or an
incident with any event outside Year 7, answers 404 exactly as for a row that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from tests.e2e.dashboard_helpers import SeedEvent, audit_entries, seed_events
from tests.hardening.clients import DashClient, sign_in
from tests.hardening.test_access_scope import (
    _incident,
    schools_server,
    unreachable_by_incident,
    wrong_answers,
)

pytestmark = [pytest.mark.slow]


@dataclass
class School:
    server: Any
    deputy: DashClient  # NHA, Year 7 only
    lead: DashClient  # trust-wide; NHA's DSL after whole_school()
    year7: str
    year9: str
    untagged: str
    incident7: int
    incident9: int
    incident_mixed: int  # Year 7's event and Year 9's
    incident_untagged: int

    def rescope(self, username: str, school: str, years: str | None = None) -> None:
        from collector.admin import set_account_school

        db = self.server.database()
        try:
            set_account_school(db, username, school, actor="test", years=years)
        finally:
            db.close()

    def whole_school(self) -> None:
        self.rescope(self.lead.username, "NHA", years="")


@pytest.fixture
def school(collector_factory: Any, db_url: str) -> Iterator[School]:
    server, accounts = schools_server(collector_factory, db_url, ("NHA", "North Hill Academy"))
    y7 = SeedEvent("suicide", 5, "suicide.kill_myself", "Chat", "i want to kill myself",
                   "kill myself", user="pupil.y7", year="7")
    y9 = SeedEvent("bullying", 3, "bullying.go_die", "Chat", "just go die", "go die",
                   user="pupil.y9", year="9")
    untagged = SeedEvent("drugs", 2, "drugs.weed", "Notes", "buy weed", "weed", user="visitor")
    seed_events(server, [y7, y9, untagged], hostname="NHA-PC-01", school="NHA")
    deputy = sign_in(server, "head", *accounts["head"])
    lead = sign_in(server, "technician", *accounts["technician"])
    deputy.unlock()
    lead.unlock()
    mixed = lead.post_form("/incidents", {"title": "mixed", "event": [y7.id, y9.id]})
    assert mixed.status_code == 303, mixed.text[:300]
    s = School(server, deputy, lead, y7.id, y9.id, untagged.id, _incident(lead, y7.id),
               _incident(lead, y9.id), int(mixed.headers["location"].rsplit("/", 1)[-1]),
               _incident(lead, untagged.id))
    s.rescope(deputy.username, "NHA", years="Year 7")  # from the deputy's next request
    try:
        yield s
    finally:
        deputy.close()
        lead.close()


def test_a_year_deputy_gets_404_for_other_years_and_untagged_rows(school: School) -> None:
    wrong = []
    for event, incident in ((school.year9, school.incident9),
                            (school.untagged, school.incident_untagged),
                            (school.year9, school.incident_mixed)):
        wrong += wrong_answers(school.deputy, event, incident, (404,), "the Year 7 deputy")
    missing = school.deputy.http.get("/events/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    # Nor can Year 9's event reach the deputy by way of their own incident or a new one.
    wrong += unreachable_by_incident(school.deputy, school.incident7, school.year9,
                                     "Year 9's event")
    assert not wrong, "\n".join(wrong)


def test_a_year_deputy_does_not_see_an_incident_with_no_events(school: School) -> None:
    """The dashboard makes none, but nothing in the database forbids one: with no events to
    say whose it is, it stays with the whole-school accounts."""
    from sqlmodel import select

    from collector.store.models import Incident
    from collector.store.models import School as SchoolRow

    db = school.server.database()
    try:
        with db.session() as session:
            nha = session.exec(select(SchoolRow).where(SchoolRow.code == "NHA")).one().id
            empty = Incident(title="empty", created_by="test", school_id=nha)
            session.add(empty)
            session.commit()
            empty_id = empty.id
    finally:
        db.close()
    assert school.deputy.http.get(f"/incidents/{empty_id}").status_code == 404
    assert f'/incidents/{empty_id}"' not in school.deputy.http.get("/incidents").text
    school.whole_school()
    assert school.lead.http.get(f"/incidents/{empty_id}").status_code == 200


def test_a_year_deputy_works_on_their_years_rows(school: School) -> None:
    wrong = wrong_answers(school.deputy, school.year7, school.incident7, (200, 303),
                          "the Year 7 deputy")
    assert not wrong, "\n".join(wrong)
    # An incident the deputy makes from a mix keeps only the events in their years.
    made = school.deputy.post_form("/incidents", {"title": "y7", "event": [school.year7,
                                                                            school.year9]})
    assert made.status_code == 303
    page = school.deputy.http.get(made.headers["location"]).text
    assert school.year7 in page and school.year9 not in page


def test_a_year_deputys_lists_figures_and_header(school: School) -> None:
    http = school.deputy.http
    triage = http.get("/triage").text
    assert school.year7 in triage
    assert school.year9 not in triage and school.untagged not in triage
    incidents = http.get("/incidents").text
    assert f'/incidents/{school.incident7}"' in incidents
    for other in (school.incident9, school.incident_mixed, school.incident_untagged):
        assert f'/incidents/{other}"' not in incidents
    new = http.get(f"/incidents/new?event={school.year7}&event={school.year9}").text
    assert school.year7 in new and school.year9 not in new
    event_page = http.get(f"/events/{school.year7}").text
    assert f"/incidents/{school.incident7}" in event_page
    assert f"/incidents/{school.incident_mixed}" not in event_page
    review = http.get("/review")
    assert review.status_code == 200 and school.year9 not in review.text
    assert f'/incidents/{school.incident_mixed}"' not in review.text
    assert "1 event(s) in the period" in http.get("/reports/termly").text
    assert http.get("/reports").status_code == 200
    assert http.get("/precision").status_code == 200
    # The page header says what the deputy sees, so a missing pupil is not a mystery.
    assert 'id="who-scope"' in triage and "North Hill Academy, Year 7<" in triage
    draft = {"name": "years.toml", "open": "true",
             "text": 'category = "suicide"\n\n[[exclude]]\nphrase = "i want to kill myself"\n'}
    replay = school.deputy.post_form("/wordlists/replay", draft)
    assert replay.status_code == 200 and "Of 1 event since" in replay.text
    opened = audit_entries(school.server, "event.headers_decrypted")[-1]
    assert opened.details["events"] == [school.year7]


def test_the_school_dsl_and_the_trust_lead_see_every_year(school: School) -> None:
    everything = (school.year7, school.year9, school.untagged)
    incidents = (school.incident7, school.incident9, school.incident_mixed,
                 school.incident_untagged)
    for stage in ("trust", "school"):
        if stage == "school":
            school.whole_school()
        triage = school.lead.http.get("/triage").text
        assert all(e in triage for e in everything), stage
        listed = school.lead.http.get("/incidents").text
        assert all(f'/incidents/{i}"' in listed for i in incidents), stage
        for event in everything:
            assert school.lead.http.get(f"/events/{event}").status_code == 200, (stage, event)
        assert "3 event(s) in the period" in school.lead.http.get("/reports/termly").text
    assert 'id="who-scope"' in triage and "North Hill Academy<" in triage


def test_a_year_deputys_device_figures_count_their_years_only(school: School) -> None:
    tamper = SeedEvent("tamper", 4, "tamper.agent_stopped", "Vigil", "agent stopped", "stopped",
                       user="pupil.y9", year="9")
    seed_events(school.server, [tamper], hostname="NHA-PC-02", school="NHA")
    school.whole_school()
    mine = school.deputy.http.get("/devices").text
    whole = school.lead.http.get("/devices").text
    assert "NHA-PC-02" in mine and "NHA-PC-02" in whole  # devices are the school's
    assert 'id="tamper-notice"' in whole and 'id="tamper-notice"' not in mine


def test_a_year_scope_with_no_school_is_refused(school: School) -> None:
    from sqlmodel import select

    from collector.store.models import Account

    db = school.server.database()
    try:  # as if edited in the database: the CLI and collector.admin refuse to make this
        with db.session() as session:
            account = session.exec(select(Account).where(
                Account.username == school.deputy.username)).one()
            account.school_id = None
            session.add(account)
            session.commit()
    finally:
        db.close()
    answer = school.deputy.http.get("/triage")
    assert answer.status_code == 403 and "year groups but to no school" in answer.text
    assert school.year7 not in answer.text


def test_a_year_deputys_audit_entries_name_their_school(school: School) -> None:
    school.deputy.http.get(f"/events/{school.year7}")
    views = {(e.actor, e.target): e.details for e in audit_entries(school.server, "event.view")}
    assert views[(school.deputy.username, school.year7)]["school"] == "NHA"
    (scoped,) = [e for e in audit_entries(school.server, "account.scope")
                 if e.target == school.deputy.username]
    assert scoped.details == {"school": "NHA", "years": "7"}


def test_a_year_deputy_cannot_change_the_schools_routing(school: School) -> None:
    """A routing rule tells about every year's events: a Year 7 deputy adding one would hear of
    Year 9's. They read the page; the school's DSL changes it."""
    deputy = school.deputy
    page = deputy.http.get("/routing")
    assert page.status_code == 200
    assert 'id="add-rule"' not in page.text and 'id="look-only"' in page.text  # no dead buttons
    target = {"kind": "email", "label": "Deputy", "address": "deputy@nha.example"}
    attempts = {"/routing/targets": target,
                "/routing/rules": {"name": "all", "min_severity": "1", "targets": "1"},
                "/routing/hours": {"days": ["0"], "start": "08:30", "end": "16:00"}}
    for path, form in attempts.items():
        answer = deputy.post_form(path, form)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "set for the whole school" in answer.text
    school.whole_school()
    school.rescope(deputy.username, "NHA", years="")
    assert deputy.post_form("/routing/targets", target).status_code == 303
    assert 'id="add-rule"' in deputy.http.get("/routing").text



def test_the_routing_pages_year_suggestions_are_the_schools_own(school: School) -> None:
    """The Year field suggests the year groups of the school's pupils (and of pupils of no
    school), not another school's: the suggestions come from the trust's roster table."""
    from collector.store.models import RosterPupil
    from collector.store.models import School as SchoolRow

    db = school.server.database()
    try:
        with db.session() as session:
            other = SchoolRow(code="SHB", name="South Hill")
            session.add(other)
            session.flush()
            nha = session.exec(select(SchoolRow).where(SchoolRow.code == "NHA")).one()
            session.add_all([RosterPupil(username="a.pupil", year="7", school_id=nha.id),
                             RosterPupil(username="b.pupil", year="11", school_id=other.id),
                             RosterPupil(username="c.pupil", year="Reception")])
            session.commit()
    finally:
        db.close()
    school.rescope(school.deputy.username, "NHA", years="")
    page = school.deputy.http.get("/routing").text
    suggested = re.findall(r'<option value="([^"]*)">', page.split('id="years"', 1)[1]
                           .split("</datalist>", 1)[0])
    assert suggested == ["7", "Reception"]

"""The access matrix's second axis: school scope (issue 18), against the real server over TLS.

A trust with two schools, North Hill (NHA) and South Bank (SHB), each with a device and events.
The head is scoped to NHA (a school's DSL), the governor too; the technician is trust-wide (the
trust's safeguarding lead). Every route that takes an event, incident, export or enrolment token
by id answers 404 to the NHA accounts for SHB's row, exactly as for a row that does not exist, so
ids do not leak; lists and reports leave SHB's rows out; the trust-wide account sees both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from tests.e2e.dashboard_helpers import (
    SeedEvent,
    add_schools,
    audit_entries,
    make_accounts,
    seed_events,
)
from tests.hardening.clients import DashClient, sign_in

pytestmark = [pytest.mark.slow]


@dataclass
class Trust:
    server: Any
    head: DashClient  # NHA's DSL
    tech: DashClient  # trust-wide
    governor: DashClient  # NHA's governor
    event_a: str
    event_b: str
    device_a: str
    device_b: str
    incident_a: int
    incident_b: int


def _incident(client: DashClient, event_id: str) -> int:
    answer = client.post_form("/incidents", {"title": "scope", "event": event_id})
    assert answer.status_code == 303, answer.text[:300]
    return int(answer.headers["location"].rstrip("/").split("/")[-1])


def schools_server(collector_factory: Any, db_url: str, *schools: tuple[str, str]
                   ) -> tuple[Any, dict[str, tuple[str, str]]]:
    """A collector on ``db_url`` with ``schools`` (code, name) and the accounts by role; sign-in
    limits high, since a matrix signs in many times."""
    from collector.settings import DashboardSettings as CollectorDashboard

    server = collector_factory(database_url=db_url, dashboard=CollectorDashboard(
        login_max_failures=1000, extra={"account_free_failures": 1000}))
    accounts = make_accounts(server)
    add_schools(server, *schools)
    return server, accounts


@pytest.fixture
def trust(collector_factory: Any, db_url: str) -> Iterator[Trust]:
    """On SQLite and on PostgreSQL (the school filter is a subquery on both)."""
    from collector.admin import set_account_school

    server, accounts = schools_server(collector_factory, db_url, ("nha", "North Hill Academy"),
                                      ("SHB", "South Bank School"))
    db = server.database()
    try:
        set_account_school(db, accounts["head"][0], "NHA", actor="test")
        set_account_school(db, accounts["governor"][0], "NHA", actor="test")
    finally:
        db.close()
    a = SeedEvent("suicide", 5, "suicide.kill_myself", "Chat", "i want to kill myself",
                  "kill myself")
    b1 = SeedEvent("bullying", 3, "bullying.go_die", "Chat", "just go die", "go die")
    b2 = SeedEvent("drugs", 2, "drugs.weed", "Notes", "buy weed", "weed")
    device_a = seed_events(server, [a], hostname="NHA-PC-01", school="NHA")
    device_b = seed_events(server, [b1, b2], hostname="SHB-PC-01", school="SHB")
    head = sign_in(server, "head", *accounts["head"])
    tech = sign_in(server, "technician", *accounts["technician"])
    governor = sign_in(server, "governor", *accounts["governor"])
    head.unlock()
    tech.unlock()
    t = Trust(server, head, tech, governor, a.id, b1.id, device_a, device_b,
              _incident(tech, a.id), _incident(tech, b1.id))
    try:
        yield t
    finally:
        for client in (head, tech, governor):
            client.close()


def _calls(event: str, incident: int) -> list[tuple[str, str, dict[str, str] | None]]:
    """Every route that takes an event or an incident by id (method, path, form)."""
    return [
        ("GET", f"/events/{event}", None),
        ("GET", f"/events/{event}/screenshot", None),
        ("GET", f"/events/{event}/sealed", None),
        ("POST", f"/events/{event}/grade", {"grade": "concern"}),
        ("POST", f"/events/{event}/notes", {"text": "scope"}),
        ("GET", f"/incidents/{incident}", None),
        ("POST", f"/incidents/{incident}/status", {"status": "open"}),
        ("POST", f"/incidents/{incident}/record", {"description": "scope"}),
        ("POST", f"/incidents/{incident}/events", {"event": event}),
        ("POST", f"/incidents/{incident}/export", {}),
        ("POST", f"/incidents/{incident}/handoff", {"format": "myconcern"}),
    ]


def _status(client: DashClient, method: str, path: str, form: dict[str, str] | None) -> int:
    if method == "GET":
        return client.http.get(path).status_code
    return client.post_form(path, form).status_code


def wrong_answers(client: DashClient, event: str, incident: int, expected: tuple[int, ...],
                  who: str) -> list[str]:
    """Every route of :func:`_calls` for ``event`` and ``incident`` whose status is not one of
    ``expected``, as a line saying so."""
    wrong = []
    for method, path, form in _calls(event, incident):
        got = _status(client, method, path, form)
        if got not in expected:
            wrong.append(f"{method} {path} as {who}: {got}, expected {' or '.join(map(str, expected))}")
    return wrong


def unreachable_by_incident(client: DashClient, own_incident: int, event: str, what: str
                            ) -> list[str]:
    """What is wrong if ``event``, out of ``client``'s scope, can be added to its own incident
    or made into a new one."""
    wrong = []
    got = client.post_form(f"/incidents/{own_incident}/events", {"event": event}).status_code
    if got != 404:
        wrong.append(f"adding {what} to {client.username}'s incident: {got}, expected 404")
    got = client.post_form("/incidents", {"title": "x", "event": event}).status_code
    if got != 400:
        wrong.append(f"an incident from {what} only: {got}, expected 400 (no event)")
    return wrong


def test_a_school_account_gets_404_for_another_schools_rows(trust: Trust) -> None:
    wrong = wrong_answers(trust.head, trust.event_b, trust.incident_b, (404,), "NHA's head")
    # The answer is the same as for an id that does not exist (nothing leaks).
    missing = trust.head.http.get("/events/00000000-0000-4000-8000-000000000000")
    foreign = trust.head.http.get(f"/events/{trust.event_b}")
    assert missing.status_code == foreign.status_code == 404
    # Its own school's incident cannot take the other school's event either.
    wrong += unreachable_by_incident(trust.head, trust.incident_a, trust.event_b, "SHB's event")
    got = trust.tech.post_form(f"/incidents/{trust.incident_a}/events",
                               {"event": trust.event_b}).status_code
    if got != 400:
        wrong.append(f"trust lead adding SHB's event to NHA's incident: {got}, expected 400")
    assert not wrong, "\n".join(wrong)


def test_a_school_account_sees_its_own_rows(trust: Trust) -> None:
    wrong = wrong_answers(trust.head, trust.event_a, trust.incident_a, (200, 303), "NHA's head")
    assert not wrong, "\n".join(wrong)


def test_the_trust_wide_account_sees_both_schools(trust: Trust) -> None:
    wrong = []
    for event, incident in ((trust.event_a, trust.incident_a), (trust.event_b, trust.incident_b)):
        wrong += wrong_answers(trust.tech, event, incident, (200, 303), "the trust lead")
    assert not wrong, "\n".join(wrong)
    triage = trust.tech.http.get("/triage").text
    assert trust.event_a in triage and trust.event_b in triage
    devices = trust.tech.http.get("/devices").text
    assert "NHA-PC-01" in devices and "SHB-PC-01" in devices
    incidents = trust.tech.http.get("/incidents").text
    assert f"/incidents/{trust.incident_a}" in incidents
    assert f"/incidents/{trust.incident_b}" in incidents
    assert "3 event(s) in the period" in trust.tech.http.get("/reports/termly").text


def test_lists_and_reports_leave_out_another_schools_rows(trust: Trust) -> None:
    head = trust.head.http
    triage = head.get("/triage").text
    assert trust.event_a in triage and trust.event_b not in triage
    assert "SHB-PC-01" not in triage  # the device filter's list
    by_device = head.get(f"/triage?device={trust.device_b}")
    assert by_device.status_code == 200 and trust.event_b not in by_device.text
    devices = head.get("/devices").text
    assert "NHA-PC-01" in devices and "SHB-PC-01" not in devices
    incidents = head.get("/incidents").text
    assert f"/incidents/{trust.incident_a}" in incidents
    assert f"/incidents/{trust.incident_b}" not in incidents
    new = head.get(f"/incidents/new?event={trust.event_a}&event={trust.event_b}").text
    assert trust.event_a in new and trust.event_b not in new
    review = head.get("/review")
    assert review.status_code == 200 and trust.event_b not in review.text
    # Governors' figures are their school's: NHA has one event, SHB two.
    termly = trust.governor.http.get("/reports/termly")
    assert termly.status_code == 200
    assert "1 event(s) in the period" in termly.text and "North Hill Academy" in termly.text
    assert trust.governor.http.get("/reports").status_code == 200
    # Pages still set for the whole trust are refused to a school's account.
    for path in ("/roster", "/audit"):
        assert head.get(path).status_code == 403, path
        assert trust.tech.http.get(path).status_code == 200, path


def test_the_trusts_termly_summary_has_a_row_per_school_and_prints_one_school(
        trust: Trust) -> None:
    """Governors' figures per school (issue 18): the trust's lead sees each school's events,
    false-positive rate and response times side by side, and prints one school's summary for
    its governors; a school's account has no such table and cannot name another school."""
    page = trust.tech.http.get("/reports/termly").text
    rows = dict(re.findall(r'<tr data-school="(\w+)"><th><a [^>]*>[^<]*</a></th><td>(\d+)</td>',
                           page))
    assert rows == {"NHA": "1", "SHB": "2"}
    one = trust.tech.http.get("/reports/termly?school=SHB")
    assert one.status_code == 200
    assert "South Bank School: online safety" in one.text and "2 event(s) in the period" in one.text
    assert 'id="by-school"' not in one.text
    own = trust.head.http.get("/reports/termly")
    assert 'id="by-school"' not in own.text and "1 event(s) in the period" in own.text
    assert trust.head.http.get("/reports/termly?school=NHA").status_code == 200
    assert trust.head.http.get("/reports/termly?school=SHB").status_code == 404
    assert trust.governor.http.get("/reports/termly?school=SHB").status_code == 404


def test_audit_entries_record_the_school(trust: Trust) -> None:
    trust.head.http.get(f"/events/{trust.event_a}")
    trust.tech.http.get(f"/events/{trust.event_b}")
    views = {(e.actor, e.target): e.details for e in audit_entries(trust.server, "event.view")}
    assert views[(trust.head.username, trust.event_a)]["school"] == "NHA"
    assert views[(trust.tech.username, trust.event_b)]["school"] == "SHB"
    created = [e for e in audit_entries(trust.server, "incident.create")]
    assert {e.details.get("school") for e in created} == {"NHA", "SHB"}


def test_devices_take_their_school_from_the_token(trust: Trust) -> None:
    from collector.store.models import Device, School

    db = trust.server.database()
    try:
        with db.session() as session:
            codes = dict(session.exec(select(Device.hostname, School.code)
                                      .join(School, School.id == Device.school_id)).all())
    finally:
        db.close()
    assert codes == {"NHA-PC-01": "NHA", "SHB-PC-01": "SHB"}
    # A trust-wide technician chooses the school on the token form; NHA's own accounts cannot.
    page = trust.tech.post_form("/devices/tokens", {"group": "y7", "school": "SHB"})
    assert page.status_code == 200 and "(SHB)" in page.text
    assert trust.tech.post_form("/devices/tokens", {"school": "NOPE"}).status_code == 404


def test_a_school_technician_enrols_into_and_revokes_only_their_school(trust: Trust) -> None:
    from collector.admin import create_enrol_token, set_account_school

    db = trust.server.database()
    try:
        token_a = create_enrol_token(db, school="NHA", actor="test").id
        token_b = create_enrol_token(db, school="SHB", actor="test").id
        set_account_school(db, trust.tech.username, "NHA", actor="test")  # from its next request
    finally:
        db.close()
    tech = trust.tech
    assert tech.post_form(f"/devices/tokens/{token_b}/revoke").status_code == 404
    assert tech.post_form("/devices/tokens/999999/revoke").status_code == 404
    assert tech.post_form(f"/devices/tokens/{token_a}/revoke").status_code == 303
    devices = tech.http.get("/devices").text
    assert "NHA-PC-01" in devices and "SHB-PC-01" not in devices
    assert 'id="token-school"' not in devices  # no choice: their school's tokens only
    # The form's school is ignored for a school's technician: the token is NHA's.
    page = tech.post_form("/devices/tokens", {"group": "y8", "school": "SHB"})
    assert page.status_code == 200 and "(NHA)" in page.text and "(SHB)" not in page.text
    assert tech.http.get(f"/events/{trust.event_b}").status_code == 404


def test_routing_is_per_school_for_a_schools_head(trust: Trust) -> None:
    from collector.store.models import OnCallShift, RouteRule, RouteTarget, School, WorkingHours

    db = trust.server.database()
    try:  # South Bank's head's target and rule, as they would have added them
        with db.session() as session:
            shb = session.exec(select(School).where(School.code == "SHB")).one().id
            target = RouteTarget(kind="email", label="South Bank DSL", address="dsl@shb.example",
                                 created_by="test", school_id=shb)
            session.add(target)
            session.flush()
            rule = RouteRule(name="South Bank severe", min_severity=4, targets=[target.id],
                             created_by="test", school_id=shb)
            session.add(rule)
            shift = OnCallShift(school_id=shb, name="South Bank on call", days=[5, 6],
                                start="00:00", end="00:00", email_target_id=target.id,
                                created_by="test")
            session.add(shift)
            session.commit()
            target_b, rule_b, shift_b = target.id, rule.id, shift.id
    finally:
        db.close()
    head = trust.head
    answer = head.post_form("/routing/targets", {"kind": "email", "label": "North Hill DSL",
                                                 "address": "dsl@nha.example"})
    assert answer.status_code == 303
    page = head.http.get("/routing").text
    assert "North Hill DSL" in page and "South Bank DSL" not in page
    assert "South Bank severe" not in page and "SHB-PC-01" not in page
    assert head.post_form(f"/routing/targets/{target_b}/remove").status_code == 404
    assert head.post_form(f"/routing/targets/{target_b}/test").status_code == 404
    assert head.post_form("/routing/rules", {"name": "x", "min_severity": "5",
                                             "targets": str(target_b)}).status_code == 404
    assert head.post_form(f"/routing/rules/{rule_b}/remove").status_code == 404
    # The rota is per school too: another school's on-call line is not shown, and is a 404.
    assert "South Bank on call" not in page
    assert head.post_form(f"/routing/oncall/{shift_b}/remove").status_code == 404
    assert head.post_form("/routing/hours", {"days": ["0", "1"], "start": "08:30",
                                             "end": "16:00"}).status_code == 303
    # The trust-wide account sees both schools' targets, rules and rota.
    page = trust.tech.http.get("/routing").text
    assert "North Hill DSL" in page and "South Bank DSL" in page and "South Bank severe" in page
    assert "South Bank on call" in page
    db = trust.server.database()
    try:
        with db.session() as session:
            added = session.exec(select(RouteTarget).where(
                RouteTarget.label == "North Hill DSL")).one()
            nha = session.exec(select(School).where(School.code == "NHA")).one().id
            hours = session.exec(select(WorkingHours)).all()
    finally:
        db.close()
    assert added.school_id == nha
    assert [(h.school_id, h.start, h.end) for h in hours] == [(nha, "08:30", "16:00")]


def test_a_wordlist_replay_counts_and_opens_the_accounts_schools_events_only(
        trust: Trust) -> None:
    """The replay of a draft (dashboard.replay) is of the account's school's events: a school's
    head, unlocked, has only their school's headers opened and counted; the trust-wide
    technician all of them."""
    from tests.e2e.dashboard_helpers import audit_entries

    draft = {"name": "school-scope.toml", "open": "true",
             "text": 'category = "suicide"\n\n[[exclude]]\nphrase = "i want to kill myself"\n'}
    page = trust.head.post_form("/wordlists/replay", draft)
    assert page.status_code == 200, page.text[:300]
    assert "Of 1 event since" in page.text and "1 would no longer have fired" in page.text
    (opened,) = audit_entries(trust.server, "event.headers_decrypted")
    assert opened.details["events"] == [trust.event_a] and opened.target == "wordlists.replay"
    page = trust.tech.post_form("/wordlists/replay", draft)
    assert "Of 3 events since" in page.text
    opened = audit_entries(trust.server, "event.headers_decrypted")[-1]
    assert trust.event_b in opened.details["events"] and len(opened.details["events"]) == 3


def test_only_trust_wide_accounts_change_the_lists_the_policy_and_the_keyholders(
        trust: Trust) -> None:
    """The wordlists, the policy and the keyholders are the trust's: every school's agents run
    them and the keyholders read every school. A school's technician (NHA) and a school's head
    get 403 for every change and nothing changes; they still read the pages, try a sentence and
    replay a draft. The trust-wide technician saves a file and signs the policy."""
    from collector.admin import set_account_school
    from collector.store.models import Keyholder, PolicyRecord, WordlistFile

    def state() -> tuple[Any, ...]:
        db = trust.server.database()
        try:
            with db.session() as session:
                return (sorted(f.name for f in session.exec(select(WordlistFile))),
                        sorted((k.name, k.retired_at) for k in session.exec(select(Keyholder))),
                        len(session.exec(select(PolicyRecord)).all()))
        finally:
            db.close()

    db = trust.server.database()
    try:
        with db.session() as session:
            holder_id = session.exec(select(Keyholder.id)).first()
        set_account_school(db, trust.tech.username, "NHA", actor="test")  # from its next request
    finally:
        db.close()
    before = state()
    school_file = {"name": "school-x.toml", "text": 'category = "bullying"\n'}
    for client in (trust.tech, trust.head):
        attempts = {
            "/wordlists/files": school_file,
            "/wordlists/files/school-x.toml/delete": {},
            "/wordlists/publish": {},
            f"/keyholders/{holder_id}/remove": {},
            f"/keyholders/{holder_id}/reject": {},
            "/keyholders/approve": {"change": "x" * 64, "password": client.password},
        }
        for path, form in attempts.items():
            answer = client.post_form(path, form)
            # The head is no technician: the role check answers first for the files.
            assert answer.status_code == 403, (client.role, path, answer.status_code)
        added = client.http.post("/keyholders/add", data={"csrf": client.csrf},
                                 files={"key": ("k.pub", b"{}", "application/json")})
        assert added.status_code == 403, (client.role, added.status_code)
        page = client.http.get("/keyholders")
        assert page.status_code == 200 and 'id="trust-adds"' in page.text
        assert 'id="add-form"' not in page.text and "/remove" not in page.text
        lists = client.http.get("/wordlists")
        assert lists.status_code == 200 and 'id="trust-lists"' in lists.text
        assert 'id="save-file"' not in lists.text and 'id="publish-policy"' not in lists.text
        tried = client.post_form("/wordlists/test", {"sentence": "i want to kill myself"})
        assert tried.status_code == 200 and "suicide." in tried.text
    assert state() == before
    # Trust-wide again, the technician saves the file and signs the policy.
    db = trust.server.database()
    try:
        set_account_school(db, trust.tech.username, "", actor="test")
    finally:
        db.close()
    assert trust.tech.post_form("/wordlists/files", school_file).status_code == 303
    assert trust.tech.post_form("/wordlists/publish").status_code == 303
    after = state()
    assert after[0] == ["school-x.toml"] and after[2] == before[2] + 1

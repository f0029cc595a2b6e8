"""Issue 18: the head sets routing in the dashboard of a real collector; a severity-5 event from
a Year 7 device reaches the DSL's inbox on a real SMTP server (aiosmtpd) and a Teams/Slack-style
webhook receiver, both on loopback, with no content; the technician may look but not change it;
the webhook URL is never shown in full or written to the audit log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text as sql
from sqlmodel import col, select

from collector.settings import SmtpSettings
from tests.fixtures.mail import HOOK_PATH, Hook, Inbox
from tests.fixtures.x11 import wait_until
from tests.hardening.clients import sign_in

pytestmark = [pytest.mark.slow]


def _routing_entries(session: Any) -> list[Any]:
    """The audit entries of routing (the head's changes and the job's plans and sends)."""
    from collector.store.models import AuditEntry

    return list(session.exec(select(AuditEntry).where(col(AuditEntry.action).like("rout%"))
                             .order_by(col(AuditEntry.seq))).all())


def test_the_head_routes_a_year_7_severity_5_event_to_the_dsl_and_a_channel(
        collector_factory: Any, smtp: tuple[Inbox, int], hook: Hook) -> None:
    inbox, port = smtp
    server = collector_factory(smtp=SmtpSettings(host="127.0.0.1", port=port,
                                                 sender="vigil@school.example"))
    year7 = server.enrol(hostname="Y7-TROLLEY-04", group="year7")
    year9 = server.enrol(hostname="Y9-SUITE-01", group="year9")
    head = sign_in(server, "head", server.keys.head.name, server.keys.head.password)
    tech = sign_in(server, "technician", server.keys.technician.name,
                   server.keys.technician.password)

    for form in ({"kind": "email", "label": "DSL", "address": "dsl@school.example",
                  "digest": "true"},
                 {"kind": "webhook", "label": "Safeguarding channel", "address": hook.url}):
        answer = head.post_form("/routing/targets", form)
        assert answer.status_code == 303, answer.text[:300]
    # The database holds the webhook sealed under the data directory's secrets.key, not its URL.
    db = server.database()
    try:
        with db.engine.connect() as raw:
            stored = [a for (a,) in raw.execute(sql(
                "SELECT address FROM route_target WHERE kind = 'webhook'"))]
    finally:
        db.close()
    assert len(stored) == 1 and HOOK_PATH not in stored[0] and hook.url not in stored[0]
    refused = tech.post_form("/routing/targets", {"kind": "email", "label": "Me",
                                                  "address": "tech@school.example"},
                             headers={"Accept": "application/json"})
    assert refused.status_code == 403
    bad = head.post_form("/routing/targets", {"kind": "webhook", "label": "x",
                                              "address": "http://hooks.example/x"},
                         headers={"Accept": "application/json"})
    assert bad.status_code == 400 and "https://" in bad.json()["detail"]

    hostile = '<img src=x onerror="alert(1)">'
    assert head.post_form("/routing/targets", {"kind": "email", "label": hostile,
                                               "address": "x@school.example"}).status_code == 303
    page = head.http.get("/routing")
    assert page.status_code == 200
    assert hostile not in page.text and "&lt;img src=x" in page.text  # text, never markup
    assert HOOK_PATH not in page.text and "…oken" in page.text  # masked: host and last four
    assert 'value="year7"' in page.text  # device groups are offered
    answer = head.post_form("/routing/rules", {"name": "Severity 5, Year 7", "category": "",
                                               "min_severity": "5", "group": "year7",
                                               "targets": ["1", "2"]})
    assert answer.status_code == 303, answer.text[:300]
    seen = tech.http.get("/routing")
    assert "Severity 5, Year 7" in seen.text and 'id="rule-form"' not in seen.text
    assert HOOK_PATH not in seen.text

    assert server.post_events(year9, 1, severity=5).status_code == 200  # not Year 7's device
    assert server.post_events(year7, 1, severity=4).status_code == 200  # below 5
    critical = server.post_events(year7, 1, severity=5)
    assert critical.status_code == 200
    wait_until(lambda: inbox.messages and hook.posts, timeout=60, interval=0.5,
               what="the routed e-mail and webhook")
    recipients, mail = inbox.messages[0]
    assert recipients == ["dsl@school.example"]
    assert str(mail["Subject"]) == "Vigil: an event needs review"
    assert hook.posts[0] == (HOOK_PATH, {
        "text": f"Vigil: an event needs review at {server.url}/triage"})
    text = mail.get_payload(decode=True).decode()
    for leak in ("suicide", "kill myself", "Y7-TROLLEY", "year7", year7.id, "pupil"):
        assert leak not in text and leak not in json.dumps(hook.posts)

    tested = head.post_form("/routing/targets/2/test")
    assert tested.status_code == 303
    wait_until(lambda: len(hook.posts) == 2, timeout=10, interval=0.2, what="the test post")
    gone = head.post_form("/routing/rules/1/remove")
    assert gone.status_code == 303
    head.close()
    tech.close()

    from collector.store.models import RouteDelivery

    db = server.database()
    try:
        with db.session() as s:
            (delivery_events,) = {tuple(sorted({d.event_id for d in s.exec(
                select(RouteDelivery)).all()}))}
            entries = _routing_entries(s)
    finally:
        db.close()
    assert delivery_events == tuple(critical.json()["stored"])  # one event, routed once
    actions = [e.action for e in entries]
    for action in ("routing.target_add", "routing.rule_add", "route.planned", "route.sent",
                   "routing.target_test", "routing.rule_remove"):
        assert action in actions, actions
    assert HOOK_PATH not in json.dumps([e.details for e in entries])
    assert "Traceback" not in server.log() and HOOK_PATH not in server.log()


def test_an_out_of_hours_severity_5_event_reaches_the_on_call_dsl_from_the_rota(
        collector_factory: Any, smtp: tuple[Inbox, int], hook: Hook) -> None:
    """The head sets working hours of every day but closed days round today (London dates),
    so that now is out of hours through the closed days alone, and an on-call line for closed
    days; a rule sends severity 5 to the DSL, or out of hours to the on-call DSL instead. The
    event reaches the on-call address (and webhook) only, with the same no-content alert. A
    closed day that is not a date is refused in one line."""
    from datetime import timedelta

    from collector.oncall import LONDON
    from collector.routing import target_address
    from collector.store.models import RouteDelivery, RouteTarget, utcnow

    inbox, port = smtp
    server = collector_factory(smtp=SmtpSettings(host="127.0.0.1", port=port,
                                                 sender="vigil@school.example"))
    device = server.enrol(hostname="Y7-TROLLEY-04", group="year7")
    head = sign_in(server, "head", server.keys.head.name, server.keys.head.password)
    tech = sign_in(server, "technician", server.keys.technician.name,
                   server.keys.technician.password)
    # Open every day, but closed from yesterday to tomorrow (London dates): out of hours now
    # through the closed days alone, and still so if the test crosses midnight.
    today = utcnow().astimezone(LONDON).date()
    closure = f"{today - timedelta(days=1)} to {today + timedelta(days=1)}  # a closure"

    assert head.post_form("/routing/targets", {"kind": "email", "label": "DSL",
                                               "address": "dsl@school.example"}
                          ).status_code == 303
    hours = {"days": [str(d) for d in range(7)], "start": "00:00", "end": "23:59",
             "closed": closure}
    for refused in (tech.post_form("/routing/hours", hours,
                                   headers={"Accept": "application/json"}),
                    tech.post_form("/routing/oncall", {"name": "Me", "email": "me@x.example",
                                                       "days": ["0"], "start": "18:00",
                                                       "end": "08:00"},
                                   headers={"Accept": "application/json"})):
        assert refused.status_code == 403
    bad = head.post_form("/routing/hours", {**hours, "end": "6pm"},
                         headers={"Accept": "application/json"})
    assert bad.status_code == 400 and "not a time" in bad.json()["detail"]
    bad = head.post_form("/routing/hours", {**hours, "closed": "2026-12-25\nnext tuesday"},
                         headers={"Accept": "application/json"})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("Closed days: 'next tuesday' is not a date")
    assert head.post_form("/routing/hours", hours).status_code == 303
    answer = head.post_form("/routing/oncall", {
        "name": "Mr Jones (deputy DSL)", "email": "oncall@school.example", "webhook": hook.url,
        "days": ["7"], "start": "00:00", "end": "00:00"})  # on call all day on closed days
    assert answer.status_code == 303, answer.text[:300]
    with_dsl = head.post_form("/routing/rules", {"name": "Severity 5", "min_severity": "5",
                                                 "out_of_hours": "instead", "targets": ["1"]})
    assert with_dsl.status_code == 303, with_dsl.text[:300]
    page = tech.http.get("/routing")  # the technician sees the rota, masked, and cannot change it
    assert "Mr Jones (deputy DSL)" in page.text and "out of hours" in page.text
    assert "closed days, all day" in page.text  # the line's days, as described
    first = today - timedelta(days=1)
    assert f"{first.day} {first:%b %Y} to " in page.text  # the closure, as described
    assert "the on-call DSL instead" in page.text and 'id="oncall-form"' not in page.text
    assert HOOK_PATH not in page.text

    critical = server.post_events(device, 1, severity=5)
    assert critical.status_code == 200
    wait_until(lambda: inbox.messages and hook.posts, timeout=60, interval=0.5,
               what="the on-call DSL's e-mail and webhook")
    assert [r for r, _ in inbox.messages] == [["oncall@school.example"]]
    _, mail = inbox.messages[0]
    assert str(mail["Subject"]) == "Vigil: an event needs review"
    text = mail.get_payload(decode=True).decode()
    assert f"{server.url}/triage" in text
    for leak in ("suicide", "Y7-TROLLEY", "year7", device.id):
        assert leak not in text and leak not in json.dumps(hook.posts)

    removed = head.post_form("/routing/oncall/1/remove")
    assert removed.status_code == 303
    head.close()
    tech.close()
    db = server.database()
    try:
        with db.session() as s:
            sent_to = {target_address(server.settings(), s.get(RouteTarget, d.target_id))
                       for d in s.exec(select(RouteDelivery)).all()}
            entries = _routing_entries(s)
            live = s.exec(select(RouteTarget).where(col(RouteTarget.removed_at).is_(None))).all()
    finally:
        db.close()
    assert sent_to == {"oncall@school.example", hook.url}  # not the DSL: "instead"
    assert [t.address for t in live] == ["dsl@school.example"]  # the line's targets went too
    actions = [e.action for e in entries]
    for action in ("routing.hours_set", "routing.oncall_add", "routing.oncall_remove"):
        assert action in actions, actions
    (planned,) = [e for e in entries if e.action == "route.planned"]
    assert planned.details["on_call"] == 1
    assert HOOK_PATH not in json.dumps([e.details for e in entries])
    assert "Traceback" not in server.log() and HOOK_PATH not in server.log()

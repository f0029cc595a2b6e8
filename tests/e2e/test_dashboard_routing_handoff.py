"""Browser tests (issue 18): the head sets routing (and an on-call line of the out-of-hours rota)
on the Routing page and a severity-5 event
from a Year 7 device reaches the DSL's inbox (aiosmtpd) and a Teams/Slack-style webhook receiver
on loopback; the head hands an incident off as a MyConcern JSON and a CPOMS CSV download."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from typing import Any

import pytest

from collector.settings import SmtpSettings
from tests.e2e.dashboard_helpers import (
    SeedEvent,
    audit_entries,
    make_accounts,
    seed_events,
    shoot,
    sign_in,
    unlock,
)
from tests.fixtures.mail import HOOK_PATH, Hook, Inbox
from tests.fixtures.x11 import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def routed_to(server: Any) -> set[tuple[str, int]]:
    """(event id, target id) of every delivery the routing job has planned."""
    from sqlmodel import select

    from collector.store.models import RouteDelivery

    db = server.database()
    try:
        with db.session() as session:
            return {(d.event_id, d.target_id) for d in session.exec(select(RouteDelivery)).all()}
    finally:
        db.close()


def test_the_head_routes_alerts_and_hands_an_incident_off(
        collector_factory: Any, new_context: Any, smtp: tuple[Inbox, int], hook: Hook) -> None:
    inbox, port = smtp
    server = collector_factory(smtp=SmtpSettings(host="127.0.0.1", port=port,
                                                 sender="vigil@school.example"))
    who = make_accounts(server)
    server.enrol(hostname="Y7-TROLLEY-04", group="year-7")  # so the group is offered
    page = new_context().new_page()
    sign_in(page, server, who["head"])

    page.goto(f"{server.url}/routing")
    for label, kind, address in (("DSL (Mrs Patel)", "email", "dsl@school.example"),
                                 ("Safeguarding channel", "webhook", hook.url)):
        page.fill("#target-form input[name=label]", label)
        page.select_option("#target-form select[name=kind]", kind)
        page.fill("#target-form input[name=address]", address)
        if kind == "email":
            page.check("#target-form input[name=digest]")
        page.click("#add-target")
        page.wait_for_selector(f"#targets td:has-text('{label}')")
    assert HOOK_PATH not in page.content()
    # A weekend on-call line for the rota (the rule below keeps to its targets out of hours).
    page.fill("#oncall-form input[name=name]", "Mr Jones (deputy DSL)")
    page.fill("#oncall-form input[name=email]", "oncall@school.example")
    page.check("#oncall-form input[name=days][value='5']")
    page.check("#oncall-form input[name=days][value='6']")
    page.fill("#oncall-form input[name=start]", "00:00")
    page.fill("#oncall-form input[name=end]", "00:00")
    page.click("#add-oncall")
    page.wait_for_selector("#rota td:has-text('Sat, Sun, all day')")
    assert "Mr Jones (deputy DSL)" in page.locator("#rota").inner_text()
    page.fill("#rule-form input[name=name]", "Severity 5, Year 7")
    page.select_option("#rule-form select[name=min_severity]", "5")
    page.select_option("#rule-form select[name=group]", "year-7")
    page.fill("#rule-year", "Year 7")  # as a head types it; events carry the roster's "7"
    page.check("#rule-form input[name=targets][value='1']")
    page.check("#rule-form input[name=targets][value='2']")
    page.click("#add-rule")
    page.wait_for_selector("#rules td:has-text('Severity 5, Year 7')")
    assert page.locator("#rules tbody tr td").nth(5).inner_text() == "7"
    shoot(page, "routing")

    # A Year 9 pupil's event on the Year 7 trolley, then a Year 7 pupil's: only the second is
    # the rule's (the first, sealed and stored, reaches nobody).
    other = SeedEvent("suicide", 5, "suicide.kill_myself", "Chat - Chromium",
                      "i want to kill myself", "kill myself", user="BExample", year="9")
    event = SeedEvent("suicide", 5, "suicide.kill_myself", "Chat - Chromium",
                      "i want to kill myself", "kill myself", user="AExample", year="7")
    seed_events(server, [other], hostname="Y7-TROLLEY-09", group="year-7")
    seed_events(server, [event], hostname="Y7-TROLLEY-09", group="year-7")
    wait_until(lambda: inbox.messages and hook.posts, timeout=60, interval=0.5,
               what="the routed e-mail and webhook post")
    assert [m[0] for m in inbox.messages] == [["dsl@school.example"]]
    assert routed_to(server) == {(event.id, 1), (event.id, 2)}  # nothing for the Year 9 pupil
    assert hook.posts == [(HOOK_PATH, {"text": f"Vigil: an event needs review at "
                                                f"{server.url}/triage"})]

    unlock(page, server, "head")
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    made = page.request.post(f"{server.url}/incidents", max_redirects=0, form={
        "title": "Disclosure on a Year 7 laptop", "event": event.id, "csrf": csrf,
        "description": "Typed a disclosure", "action": "DSL spoke to the pupil"})
    assert made.status == 303
    page.goto(server.url + made.headers["location"])
    page.wait_for_url(re.compile(r"/incidents/\d+$"))
    with page.expect_download() as info:
        page.click("#export")
    zip_sha = hashlib.sha256(info.value.path().read_bytes()).hexdigest()

    page.select_option("#handoff-format", "myconcern")
    with page.expect_download() as info:
        page.click("#handoff")
    assert info.value.suggested_filename.endswith(".json")
    doc = json.loads(info.value.path().read_bytes())
    assert doc["concern"]["action_taken"] == "DSL spoke to the pupil"
    assert doc["evidence"]["zips"][0]["sha256"] == zip_sha
    assert doc["subjects"][0]["login_name"] == "AExample"

    page.select_option("#handoff-format", "cpoms")
    with page.expect_download() as info:
        page.click("#handoff")
    data = info.value.path().read_bytes()
    (row,) = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    assert (row["description"], row["evidence_zip_sha256"]) == ("Typed a disclosure", zip_sha)
    shoot(page, "incident-handoff")
    handoffs = audit_entries(server, "incident.handoff")
    assert [h.details["format"] for h in handoffs] == ["myconcern", "cpoms"]
    assert handoffs[1].details["sha256"] == hashlib.sha256(data).hexdigest()

"""Browser test: a trust with two schools (issue 18). North Hill's DSL (the head, scoped to NHA)
sees North Hill's events in the triage list and cannot reach South Bank's, neither in the list,
nor through the device filter, nor by typing an event's URL (404, as for an event that does not
exist); the trust's safeguarding lead (the technician, trust-wide) sees both schools.

A real collector (uvicorn over TLS, the dashboard mounted) and Debian's headless Chromium.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.dashboard_helpers import (
    NORTH_HILL,
    SOUTH_BANK,
    SeedEvent,
    add_schools,
    make_accounts,
    seed_events,
    shoot,
    sign_in,
    unlock,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_schools_dsl_sees_only_their_school_and_the_trust_lead_sees_both(
        collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    add_schools(server, NORTH_HILL, SOUTH_BANK, scopes={who["head"][0]: ("NHA", None)})
    north = [SeedEvent("suicide", 5, "suicide.kill_myself", "Chat - Edge",
                       "i want to kill myself", "kill myself", user="pupil.nha", minutes_ago=3)]
    south = [SeedEvent("bullying", 3, "bullying.go_die", "Chat - Edge", "just go die",
                       "go die", user="pupil.shb", minutes_ago=4),
             SeedEvent("drugs", 2, "drugs.weed", "Notes", "buy weed", "weed",
                       user="pupil.shb", minutes_ago=6)]
    seed_events(server, north, hostname="NHA-PC-01", school="NHA")
    south_device = seed_events(server, south, hostname="SHB-PC-01", school="SHB")

    dsl = new_context().new_page()
    sign_in(dsl, server, who["head"])
    unlock(dsl, server, "head")
    dsl.goto(server.url + "/triage")
    rows = dsl.locator("#queue tr.row")
    assert rows.count() == 1
    assert rows.nth(0).get_attribute("data-id") == north[0].id
    queue = dsl.locator("#queue").inner_text()
    assert "pupil.nha" in queue and "pupil.shb" not in queue and "SHB-PC-01" not in queue
    assert "SHB-PC-01" not in dsl.content()  # nor in the device filter's choices
    shoot(dsl, "triage-one-school")
    # Filtering by South Bank's device id shows nothing.
    dsl.goto(f"{server.url}/triage?device={south_device}")
    assert dsl.locator("#queue tr.row").count() == 0
    # By URL: the same 404 page as an event that does not exist.
    for event in south:
        answer = dsl.goto(f"{server.url}/events/{event.id}")
        assert answer is not None and answer.status == 404
        assert "go die" not in dsl.content() and "weed" not in dsl.content()
        shot = dsl.request.get(f"{server.url}/events/{event.id}/screenshot")
        assert shot.status == 404
    answer = dsl.goto(f"{server.url}/events/{north[0].id}")
    assert answer is not None and answer.status == 200
    assert dsl.locator("mark").first.inner_text() == "kill myself"
    # The trust-wide pages are not in a school's navigation.
    nav = dsl.locator("nav").inner_text()
    assert "Roster" not in nav and "Audit" not in nav

    lead = new_context().new_page()
    sign_in(lead, server, who["technician"])
    unlock(lead, server, "technician")
    lead.goto(server.url + "/triage")
    ids = {lead.locator("#queue tr.row").nth(i).get_attribute("data-id")
           for i in range(lead.locator("#queue tr.row").count())}
    assert ids == {north[0].id, south[0].id, south[1].id}
    queue = lead.locator("#queue").inner_text()
    assert "pupil.nha" in queue and "pupil.shb" in queue
    answer = lead.goto(f"{server.url}/events/{south[0].id}")
    assert answer is not None and answer.status == 200
    assert lead.locator("mark").first.inner_text() == "go die"
    nav = lead.locator("nav").inner_text()
    assert "Roster" in nav and "Audit" in nav
    lead.goto(server.url + "/devices")  # the trust lead sees every school's devices, by school
    assert lead.locator("#devices span.school").all_inner_texts() == ["(NHA)", "(SHB)"]
    shoot(lead, "devices-trust")
    # The trust's termly summary compares the schools, and links to each one's own.
    lead.goto(server.url + "/reports/termly")
    rows = lead.locator("#by-school tr[data-school]")
    counts = {rows.nth(i).get_attribute("data-school"): rows.nth(i).locator("td").first.inner_text()
              for i in range(rows.count())}  # the first cell: the school's events
    assert counts == {"NHA": "1", "SHB": "2"}
    shoot(lead, "termly-trust")
    lead.click("#by-school a:has-text('South Bank')")
    lead.wait_for_url(re.compile(r"school=SHB"))
    assert "2 event(s) in the period" in lead.locator("main").inner_text()


def test_a_year_7_deputy_sees_year_7_and_not_year_9(collector_server: Any,
                                                    new_context: Any) -> None:
    """A deputy DSL scoped to North Hill's Year 7: the triage page lists the Year 7 pupil's
    event, not the Year 9 pupil's nor the untagged one; the header says what they see."""
    server = collector_server
    who = make_accounts(server)
    add_schools(server, NORTH_HILL, scopes={who["head"][0]: ("NHA", "7")})
    y7, y9, untagged = (
        SeedEvent("suicide", 5, "suicide.kill_myself", "Chat - Edge", "i want to kill myself",
                  "kill myself", user="pupil.y7", minutes_ago=3, year="7"),
        SeedEvent("bullying", 3, "bullying.go_die", "Chat - Edge", "just go die", "go die",
                  user="pupil.y9", minutes_ago=4, year="9"),
        SeedEvent("drugs", 2, "drugs.weed", "Notes", "buy weed", "weed", user="visitor",
                  minutes_ago=5))
    seed_events(server, [y7, y9, untagged], hostname="NHA-PC-01", school="NHA")

    deputy = new_context().new_page()
    sign_in(deputy, server, who["head"])
    unlock(deputy, server, "head")
    deputy.goto(server.url + "/triage")
    rows = deputy.locator("#queue tr.row")
    rows.first.wait_for(state="visible", timeout=10_000)
    assert [rows.nth(i).get_attribute("data-id") for i in range(rows.count())] == [y7.id]
    queue = deputy.locator("#queue").inner_text()
    assert "pupil.y7" in queue and "pupil.y9" not in queue and "visitor" not in queue
    assert deputy.locator("#who-scope").inner_text() == "North Hill Academy, Year 7"
    shoot(deputy, "triage-year-scope")
    answer = deputy.goto(f"{server.url}/events/{y9.id}")
    assert answer is not None and answer.status == 404 and "go die" not in deputy.content()

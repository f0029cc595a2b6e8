"""Browser test: pupils' names from the MIS (issue 18).

The technician uploads a SIMS-shaped roster, sees the preview (counts and first rows, a row that
cannot be read with its reason), confirms, and the unlocked triage queue and the event page show
the pupil's name, year and form beside the login name the desktop sealed; a login the roster does
not know says so. The audit log has the import's counts and no names. A governor gets 403.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.dashboard_helpers import (
    GOVERNOR,
    NORTH_HILL,
    SOUTH_BANK,
    SeedEvent,
    add_schools,
    audit_entries,
    make_accounts,
    seed_events,
    shoot,
    sign_in,
    unlock,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROSTER = (
    "Adno,UPN,Legal Surname,Forename,Year,Reg Group,SEN Status,In Care,Username\r\n"
    "001234,A123456789012,Example,Ann,Year 7,7B,N,N,AExample\r\n"
    "001235,B123456789012,O'Sample <b>,Ben,Year 8,8R,K,Y,bsample\r\n"
    "001236,,Testcase,Cara,Year 9,9G,N,N,\r\n"
)


def test_roster_import_names_pupils_on_the_triage_page(collector_server: Any, new_context: Any,
                                                      tmp_path: Path) -> None:
    server = collector_server
    who = make_accounts(server)
    events = [
        SeedEvent("bullying", 3, "bullying.nobody_likes_you", "Chat", "nobody likes you at all",
                  "nobody likes you", user=r"SCHOOL\aexample"),
        SeedEvent("self_harm", 4, "self_harm.cut_myself", "Notes", "i want to cut myself",
                  "cut myself", user="bsample", minutes_ago=6),
        SeedEvent("bullying", 2, "bullying.loser", "Chat", "what a loser", "loser",
                  user="stranger.user", minutes_ago=7),
    ]
    seed_events(server, events)
    page = new_context().new_page()
    sign_in(page, server, who["technician"])

    # A wrong file: one line, nothing held.
    page.goto(server.url + "/roster")
    junk = tmp_path / "notes.csv"
    junk.write_text("Name,Colour\nAnn,blue\n")
    page.set_input_files("#import-form input[type=file]", str(junk))
    page.click("#preview")
    assert "header row is not one Vigil knows" in page.inner_text("main")
    assert "SIMS" in page.inner_text("main")

    # The SIMS export: previewed, nothing applied yet.
    page.goto(server.url + "/roster")
    upload = tmp_path / "sims-export.csv"
    upload.write_text(ROSTER)
    page.set_input_files("#import-form input[type=file]", str(upload))
    page.click("#preview")
    page.wait_for_selector("#counts")
    assert "SIMS" in page.inner_text("#shape")
    assert page.inner_text("#count-new") == "2"
    assert page.inner_text("#count-unreadable") == "1"
    assert "no username" in page.inner_text("#unreadable-rows")
    assert "O'Sample <b>" in page.inner_text("#new-rows")  # shown as text, not markup
    assert page.locator("#new-rows b").count() == 0
    page.click("#apply")
    page.wait_for_url(re.compile(r"/roster\?applied=\d+$"))
    assert page.locator("#pupils tbody tr").count() == 2
    assert "looked after" in page.inner_text("#pupils")
    shoot(page, "roster")

    # The same file again changes nothing.
    page.set_input_files("#import-form input[type=file]", str(upload))
    page.click("#preview")
    page.wait_for_selector("#counts")
    assert (page.inner_text("#count-new"), page.inner_text("#count-unchanged")) == ("0", "2")

    # Locked: no names (the login name is sealed). Unlocked: name, year and form by the login.
    page.goto(server.url + "/triage")
    assert "Ann Example" not in page.inner_text("#queue")
    unlock(page, server, "technician")
    row = page.locator(f"tr[data-id='{events[0].id}'] .user-cell")
    assert "Ann Example" in row.inner_text()
    assert row.locator(".pupil-year").inner_text() == "Year 7"
    assert row.locator(".pupil-form").inner_text() == "7B"
    other = page.locator(f"tr[data-id='{events[1].id}'] .user-cell .pupil-name").inner_text()
    assert other == "Ben O'Sample <b>"
    unknown = page.locator(f"tr[data-id='{events[2].id}'] .user-cell").inner_text()
    assert "not on the roster" in unknown
    page.goto(f"{server.url}/events/{events[0].id}")
    assert page.inner_text("#pupil").startswith("Ann Example, Year 7, 7B")

    # Audited with counts, never names.
    imports = audit_entries(server, "roster.import")
    assert len(imports) == 1
    assert imports[0].details["new"] == 2 and imports[0].details["unreadable"] == 1
    logged = json.dumps([e.details for e in audit_entries(server, "roster.import")
                         + audit_entries(server, "roster.preview")])
    assert "Example" not in logged and "aexample" not in logged

    # Governors: refused on the server.
    gov = new_context().new_page()
    sign_in(gov, server, GOVERNOR)
    answer = gov.goto(server.url + "/roster")
    assert answer is not None and answer.status == 403
    assert "Roster" not in gov.inner_text("header")


def test_each_school_imports_its_own_file_and_a_move_is_shown_then_applied(
        collector_server: Any, new_context: Any, tmp_path: Path) -> None:
    """Two schools: the file says whose it is; South Bank's file leaves North Hill's pupils
    alone but for Ben, who has moved (shown, then applied); a login is named only on its own
    school's devices."""
    server = collector_server
    who = make_accounts(server)
    add_schools(server, NORTH_HILL, SOUTH_BANK)
    # Cara is South Bank's pupil: the same login on a North Hill desktop is not her.
    at_north = [SeedEvent("bullying", 3, "bullying.loser", "Chat", "what a loser", "loser",
                          user="ctestcase"),
                SeedEvent("drugs", 2, "drugs.weed", "Notes", "buy weed", "weed",
                          user="aexample", minutes_ago=7)]
    at_south = [SeedEvent("bullying", 3, "bullying.nobody_likes_you", "Chat",
                          "nobody likes you at all", "nobody likes you", user="bsample",
                          minutes_ago=5)]
    seed_events(server, at_north, hostname="NHA-PC-01", school="NHA")
    seed_events(server, at_south, hostname="SHB-PC-01", school="SHB")
    head = "Adno,Legal Surname,Forename,Year,Reg Group,Username\r\n"
    north, south = tmp_path / "north.csv", tmp_path / "south.csv"
    north.write_text(head + "1,Example,Ann,7,7B,aexample\r\n2,Sample,Ben,8,8R,bsample\r\n")
    south.write_text(head + "1,Testcase,Cara,9,9G,ctestcase\r\n2,Sample,Ben,8,8S,bsample\r\n")
    page = new_context().new_page()
    sign_in(page, server, who["technician"])

    def preview(school: str, upload: Path, on: Any = page) -> None:
        on.goto(server.url + "/roster")
        on.select_option("#import-school", school)
        on.set_input_files("#import-form input[type=file]", str(upload))
        on.click("#preview")
        on.wait_for_selector("#counts")

    # No school chosen (the browser's own check taken off): the server refuses in one line.
    page.goto(server.url + "/roster")
    page.eval_on_selector("#import-school", "el => el.removeAttribute('required')")
    page.set_input_files("#import-form input[type=file]", str(north))
    page.click("#preview")
    assert "Say which school this file is for (NHA, SHB)" in page.inner_text("main")

    preview("NHA", north)
    assert "NHA: North Hill Academy" in page.inner_text("#school")
    assert page.inner_text("#count-new") == "2"
    page.click("#apply")
    page.wait_for_url(re.compile(r"/roster\?applied=\d+$"))

    preview("SHB", south)
    assert (page.inner_text("#count-new"), page.inner_text("#count-moved"),
            page.inner_text("#count-removed")) == ("1", "1", "0")  # Ann stays North Hill's
    assert "moves from NHA to SHB" in page.inner_text("#moved-rows")
    shoot(page, "roster-move")
    page.click("#apply")
    page.wait_for_url(re.compile(r"/roster\?applied=\d+$"))
    counts = {school: page.inner_text(f"#per-school tr[data-school='{school}'] .pupils")
              for school in ("NHA", "SHB")}
    assert counts == {"NHA": "1", "SHB": "2"}
    # North Hill's old file again (not applied): Ann unchanged, Ben would move back.
    preview("NHA", north)
    assert (page.inner_text("#count-unchanged"), page.inner_text("#count-moved")) == ("1", "1")
    assert "moves from SHB to NHA" in page.inner_text("#moved-rows")
    # South Bank's next file (Cara changes form) is applied while that preview waits: it did
    # not touch the rows North Hill's preview read, so the preview still applies.
    south.write_text(head + "1,Testcase,Cara,9,9H,ctestcase\r\n2,Sample,Ben,8,8S,bsample\r\n")
    other = new_context().new_page()
    sign_in(other, server, who["technician"])
    preview("SHB", south, on=other)
    assert other.inner_text("#count-changed") == "1"
    other.click("#apply")
    other.wait_for_url(re.compile(r"/roster\?applied=\d+$"))
    page.click("#apply")
    page.wait_for_url(re.compile(r"/roster\?applied=\d+$"))
    assert page.inner_text("#per-school tr[data-school='NHA'] .pupils") == "2"

    unlock(page, server, "technician")
    page.goto(server.url + "/triage")
    # Ben is North Hill's again: his login on South Bank's desktop is no longer named; Cara's
    # on North Hill's never was.
    for event in (at_south[0], at_north[0]):
        assert "not on the roster" in page.inner_text(f"tr[data-id='{event.id}'] .user-cell")
    ann = page.locator(f"tr[data-id='{at_north[1].id}'] .user-cell .pupil-name").inner_text()
    assert ann == "Ann Example"

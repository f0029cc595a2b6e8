"""What a wordlist change would have done to the last 90 days (issue 18), in a real Chromium
against a real collector: the technician tries a draft school file (disable a rule, raise a
severity, add an exclusion) without saving it. Locked, the page gives what the metadata says
for certain (a disabled rule's events and their grades, severity moves) and counts the events
that need their words as not tested; unlocked and asked, those are tested against the sealed
context around each match, opened for that request only and audited. Nothing is saved."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from collector.store.models import Event, WordlistFile
from tests.e2e.dashboard_helpers import (
    SeedEvent,
    audit_entries,
    make_accounts,
    seed_events,
    shoot,
    sign_in,
    unlock,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DRAFT = """category = "drugs"
disable = ["suicide.kill_myself"]

[[rule]]
id = "drugs.dmt"
phrase = "dmt"
severity = 4

[[exclude]]
phrase = "weed out"
"""


def test_a_draft_list_replayed_over_the_last_90_days(collector_server: Any,
                                                     new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    suicide = [SeedEvent("suicide", 5, "suicide.kill_myself", "Notes", "i want to kill myself",
                         "kill myself") for _ in range(3)]
    dmt = [SeedEvent("drugs", 3, "drugs.dmt", "Chat", "someone offered me dmt", "dmt")
           for _ in range(2)]
    weed_out = [SeedEvent("drugs", 2, "drugs.weed", "English - Year 9",
                          "time to weed out the weak answers", "weed") for _ in range(4)]
    smoking = [SeedEvent("drugs", 2, "drugs.weed", "Chat", "he smokes weed behind the gym",
                         "weed") for _ in range(2)]
    seed_events(server, suicide + dmt + weed_out + smoking)
    grades = {suicide[0].id: "concern", suicide[1].id: "escalated"}
    grades |= {e.id: "false_positive" for e in weed_out[:3]}
    grades |= {e.id: "concern" for e in smoking}
    db = server.database()
    try:
        db.write(lambda s: [s.exec(update(Event).where(Event.id == i).values(status=g))
                            for i, g in grades.items()])
    finally:
        db.close()

    page = new_context().new_page()
    sign_in(page, server, who["technician"])  # locked: the metadata only

    def try_draft(open_text: bool = False) -> None:
        page.goto(f"{server.url}/wordlists")
        page.fill("#file-form input[name=name]", "school-replay.toml")
        page.fill("#file-form textarea[name=text]", DRAFT)
        if open_text:
            page.check("#replay-open")
        page.click("#replay-file")
        page.wait_for_selector("#replay-summary")

    def row(table: str, key: str, attr: str = "data-category") -> list[str]:
        return page.locator(f"#{table} tr[{attr}='{key}'] td").all_inner_texts()

    try_draft()
    assert page.locator("#replay-summary").inner_text().startswith(
        "Of 11 events since")
    assert "3 would no longer have fired, and 8 could not be tested" in \
        page.locator("#replay-summary").inner_text()
    # category, events, no longer, concerns, false positives, up, down, not tested, cannot tell
    assert row("replay-categories", "suicide") == ["suicide", "3", "3", "2", "0", "0", "0", "0",
                                                   "0"]
    assert row("replay-categories", "drugs") == ["drugs", "8", "0", "0", "0", "2", "0", "8", "0"]
    assert row("replay-rules", "drugs.dmt", "data-rule")[2] == "severity 3 -> 4, new exclusions"
    assert row("replay-moves", "3-4", "data-move") == ["3", "4", "2"]
    assert page.locator("#replay-untested").count() == 1
    assert audit_entries(server, "event.headers_decrypted") == []

    unlock(page, server, "technician", "/wordlists")
    try_draft(open_text=True)
    assert "7 would no longer have fired" in page.locator("#replay-summary").inner_text()
    # The four "weed out" events would no longer fire (three were false positives); the two
    # where he smokes weed, and the dmt ones, still would.
    assert row("replay-categories", "drugs") == ["drugs", "8", "4", "0", "3", "2", "0", "0", "0"]
    assert row("replay-rules", "drugs.weed", "data-rule")[3:] == ["6", "4", "0", "3"]
    assert "8 sealed headers opened" in page.locator("#replay-opened").inner_text()
    assert "time to weed out" not in page.content()  # the words are used, never shown
    shoot(page, "wordlist-replay")
    (opened,) = audit_entries(server, "event.headers_decrypted")
    assert opened.target == "wordlists.replay" and len(opened.details["events"]) == 8
    replays = audit_entries(server, "wordlist.replay")
    assert [(r.details["no_longer"], r.details["untested"]) for r in replays] == [(3, 8), (7, 0)]

    db = server.database()
    try:
        with db.session() as session:
            assert session.get(WordlistFile, "school-replay.toml") is None  # nothing saved
    finally:
        db.close()

    # A draft that does not load is refused in one line, as saving it would be.
    page.goto(f"{server.url}/wordlists")
    page.fill("#file-form textarea[name=text]", "category = \"nonsense\"\n")
    page.click("#replay-file")
    assert page.locator("#edit-error").count() == 1

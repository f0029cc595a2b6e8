"""Rule precision from the technician's grades (issue 18), in a real Chromium against a real
collector: per rule and per category, a noisy rule flagged with what disabling it would cost,
months side by side, events older than the window left out, and nothing sealed needed; an
exclusion suggestion from the device group without unlocking, and from the application and
window once the technician unlocks and asks (the opening audited, the title escaped)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from collector.store.models import Event, utcnow
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

HOSTILE_TITLE = "<b>BBC</b> Bitesize - Chromium"


def test_precision_page_flags_the_noisy_rule_and_counts_each_grade(
        collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    noisy = [SeedEvent("drugs", 3, "drugs.weed", "Science - Year 8", "weed killer", "weed")
             for _ in range(12)]
    for e in noisy[:9]:  # nine of its false positives in one application and window (sealed)
        e.extra = {"app": "chrome.exe", "title": HOSTILE_TITLE}
    real = [SeedEvent("suicide", 5, "suicide.kill_myself", "Notes", "i want to kill myself",
                      "kill myself") for _ in range(3)]
    model = [SeedEvent("self_harm", 3, "model:self_harm", "Chat", "i hurt myself where no one "
                       "can see", "i hurt myself where no one can see") for _ in range(2)]
    old = [SeedEvent("drugs", 3, "drugs.weed", "Chat", "weed", "weed")]
    seed_events(server, noisy + real + model + old)
    # The same rule on Year 11's devices: one concern and one false positive.
    elsewhere = [SeedEvent("drugs", 3, "drugs.weed", "History - Year 11", "weed", "weed")
                 for _ in range(2)]
    seed_events(server, elsewhere, hostname="Y11-PC-02", group="year-11")
    grades = {e.id: "false_positive" for e in noisy[:11]} | {noisy[11].id: "no_concern"}
    grades |= {elsewhere[0].id: "concern", elsewhere[1].id: "false_positive"}
    grades |= {real[0].id: "escalated", real[1].id: "concern"}  # real[2] left ungraded
    grades |= {model[0].id: "concern", model[1].id: "false_positive", old[0].id: "concern"}
    db = server.database()
    try:
        def apply(session: Any) -> None:
            for event_id, status in grades.items():
                session.exec(update(Event).where(Event.id == event_id).values(status=status))
            # one event from before the window: not counted
            session.exec(update(Event).where(Event.id == old[0].id)
                         .values(received_at=utcnow() - timedelta(days=120)))
        db.write(apply)
    finally:
        db.close()

    page = new_context().new_page()
    sign_in(page, server, who["technician"])  # no unlock: metadata only
    page.goto(f"{server.url}/precision")
    assert page.locator("#precision-total").inner_text().startswith("19 events, 18 graded")

    def cells(table: str, key: str, attr: str = "data-rule") -> list[str]:
        return page.locator(f"#{table} tr[{attr}='{key}'] td").all_inner_texts()

    # drugs.weed: 14 fired in the window, 14 graded, 1 concern, 12 false positives: noisy
    assert cells("noisy", "drugs.weed") == ["drugs.weed", "drugs", "14", "14", "1", "12", "7%"]
    assert cells("by-rule", "suicide.kill_myself") == [
        "suicide.kill_myself", "suicide", "3", "2", "2", "0", "0", "100%"]
    assert cells("by-rule", "model:self_harm")[2:] == ["2", "2", "1", "0", "1", "50%"]
    assert page.locator("#noisy tr[data-rule]").count() == 1
    assert cells("by-category", "drugs", "data-category")[:5] == ["drugs", "14", "14", "7%", "86%"]

    # Exclusion suggestions: without unlocking, from the device group (clear metadata) only.
    def suggestion(facet: str) -> list[str]:
        return page.locator(f"#suggestions tr[data-rule='drugs.weed'][data-facet='{facet}'] td"
                            ).all_inner_texts()

    assert suggestion("group")[1:4] == ["on devices of group year-9", "11 of 12", "0"]
    assert suggestion("group")[4].startswith(
        "drugs.weed: 11 of 12 graded false positives on devices of group year-9 — consider")
    assert page.locator("#suggestions tr[data-facet='app']").count() == 0
    assert page.locator("#look-windows").count() == 0  # locked: the offer is to unlock
    assert audit_entries(server, "event.headers_decrypted") == []

    # Unlocked, the technician asks for the applications and windows: opened for this page.
    unlock(page, server, "technician", "/precision")
    page.click("#look-windows")
    page.wait_for_selector("#suggestions tr[data-facet='app']")
    assert suggestion("app")[1:4] == ["in the application chrome.exe", "9 of 12", "0"]
    assert suggestion("title")[1:3] == [f"in windows titled {HOSTILE_TITLE}", "9 of 12"]
    assert "<b>BBC</b>" not in page.content()  # a desktop's title is text, never markup
    (opened,) = audit_entries(server, "event.headers_decrypted")
    assert opened.target == "precision" and len(opened.details["events"]) == 14
    shoot(page, "precision")

    governor = new_context().new_page()
    sign_in(governor, server, who["governor"])  # governors see reports, not rules
    answer = governor.goto(f"{server.url}/precision")
    assert answer is not None and answer.status == 403

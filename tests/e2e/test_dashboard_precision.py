"""Rule precision from the technician's grades (issue 18), in a real Chromium against a real
collector: per rule and per category, a noisy rule flagged with what disabling it would cost,
months side by side, events older than the window left out, and nothing sealed needed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from collector.store.models import Event, utcnow
from tests.e2e.dashboard_helpers import SeedEvent, make_accounts, seed_events, shoot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_precision_page_flags_the_noisy_rule_and_counts_each_grade(
        collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    noisy = [SeedEvent("drugs", 3, "drugs.weed", "Science - Year 8", "weed killer", "weed")
             for _ in range(12)]
    real = [SeedEvent("suicide", 5, "suicide.kill_myself", "Notes", "i want to kill myself",
                      "kill myself") for _ in range(3)]
    model = [SeedEvent("self_harm", 3, "model:self_harm", "Chat", "i hurt myself where no one "
                       "can see", "i hurt myself where no one can see") for _ in range(2)]
    old = [SeedEvent("drugs", 3, "drugs.weed", "Chat", "weed", "weed")]
    seed_events(server, noisy + real + model + old)
    grades = {e.id: "false_positive" for e in noisy[:11]} | {noisy[11].id: "no_concern"}
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
    assert page.locator("#precision-total").inner_text().startswith("17 events, 16 graded")

    def cells(table: str, key: str, attr: str = "data-rule") -> list[str]:
        return page.locator(f"#{table} tr[{attr}='{key}'] td").all_inner_texts()

    # drugs.weed: 12 fired in the window, 12 graded, 0 concerns, 11 false positives: noisy
    assert cells("noisy", "drugs.weed") == ["drugs.weed", "drugs", "12", "12", "0", "11", "0%"]
    assert cells("by-rule", "suicide.kill_myself") == [
        "suicide.kill_myself", "suicide", "3", "2", "2", "0", "0", "100%"]
    assert cells("by-rule", "model:self_harm")[2:] == ["2", "2", "1", "0", "1", "50%"]
    assert page.locator("#noisy tr[data-rule]").count() == 1
    assert cells("by-category", "drugs", "data-category")[:5] == ["drugs", "12", "12", "0%", "92%"]
    shoot(page, "precision")

    governor = new_context().new_page()
    sign_in(governor, server, who["governor"])  # governors see reports, not rules
    answer = governor.goto(f"{server.url}/precision")
    assert answer is not None and answer.status == 403

"""Browser tests: triage, escalation, the head's review, escaping and CSRF.

A real collector (uvicorn over TLS, the dashboard mounted) and Debian's headless Chromium.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlmodel import select

from collector.store.models import AuditEntry
from tests.e2e.dashboard_helpers import (
    SeedEvent,
    event_status,
    make_accounts,
    seed_events,
    shoot,
    sign_in,
    unlock,
)
from tests.fixtures.x11 import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

XSS_TITLE = "<img src=x onerror=alert(1)>"


def _events() -> list[SeedEvent]:
    return [
        SeedEvent("suicide", 5, "suicide.kill_myself", "Chat - Microsoft Edge",
                  "i just want to kill myself tonight", "kill myself", minutes_ago=3),
        SeedEvent("bullying", 3, "bullying.go_die", XSS_TITLE,
                  "nobody likes you just go die <b>now</b>", "go die", minutes_ago=8),
        SeedEvent("drugs", 2, "drugs.weed", "Notes.txt - Notepad",
                  "where can i buy weed near school", "weed", user="pupil.y11", minutes_ago=30),
    ]


def _audit_actions(server: Any, target: str) -> list[str]:
    db = server.database()
    try:
        with db.session() as session:
            rows = session.exec(select(AuditEntry).where(AuditEntry.target == target)).all()
            return [r.action for r in rows]
    finally:
        db.close()


def test_dashboard_triage_grade_escalate_and_head_review(collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    events = _events()
    seed_events(server, events)
    sev5, _, drugs = events

    tech = new_context().new_page()
    tech.goto(server.url + "/login")
    shoot(tech, "login")
    sign_in(tech, server, who["technician"])
    assert tech.url.endswith("/triage")
    rows = tech.locator("#queue tr.row")
    assert rows.count() == 3
    # Newest first; before unlock only the clear metadata shows.
    assert rows.nth(0).get_attribute("data-id") == sev5.id
    assert "kill myself" not in tech.content()

    unlock(tech, server, "technician")
    assert tech.locator("#queue mark").first.inner_text() == "kill myself"
    assert "pupil.y11" in tech.locator("#queue").inner_text()
    # The screenshot opens in place under its row (v), blurred for severity 5 until revealed.
    tech.keyboard.press("j")
    tech.keyboard.press("v")
    inline = tech.locator("#queue tr.preview-row .shot")
    assert "blurred" in (inline.get_attribute("class") or "")
    wait_until(lambda: tech.evaluate(
        "() => document.querySelector('#queue tr.preview-row img').naturalWidth") > 0,
        timeout=15, what="the in-place screenshot to load")
    shoot(tech, "triage")
    tech.keyboard.press("v")
    assert tech.locator("#queue tr.preview-row").count() == 0
    tech.goto(server.url + "/triage")  # a fresh page starts with no row selected

    # Keyboard: j selects the first row, o opens it.
    tech.keyboard.press("j")
    tech.keyboard.press("o")
    tech.wait_for_url(re.compile(rf"/events/{sev5.id}$"))
    img = tech.locator("#shot-img")
    wait_until(lambda: tech.evaluate("() => document.getElementById('shot-img').naturalWidth") > 0,
               timeout=15, what="the screenshot to load")
    # Severity 5: blurred until revealed.
    assert "blurred" in (tech.locator("#shot").get_attribute("class") or "")
    tech.click("#reveal")
    assert "blurred" not in (tech.locator("#shot").get_attribute("class") or "")
    assert img.is_visible()
    shoot(tech, "event")
    # The screenshot is served with no-store, straight from memory.
    shot = tech.request.get(f"{server.url}/events/{sev5.id}/screenshot")
    assert shot.status == 200 and shot.headers["cache-control"].startswith("no-store")
    assert shot.body() == sev5.body

    # Grade with the keyboard (3 = concern), then escalate with the button.
    tech.keyboard.press("3")
    tech.wait_for_load_state()
    wait_until(lambda: event_status(server, sev5.id) == "concern", timeout=10, what="grade concern")
    tech.click("button[data-grade=escalated]")
    wait_until(lambda: event_status(server, sev5.id) == "escalated", timeout=10, what="escalation")
    tech.fill("textarea[name=text]", "Spoke to DSL; pupil seen by pastoral team.")
    tech.click("#notes button[type=submit]")
    tech.wait_for_selector("text=Spoke to DSL")

    # Grade another from the queue with the keyboard only: k/j to the third row, 1 = false positive.
    tech.goto(server.url + "/triage")
    for key in ("j", "j", "j", "1"):
        tech.keyboard.press(key)
    wait_until(lambda: event_status(server, drugs.id) == "false_positive", timeout=10,
               what="keyboard grade from the queue")

    actions = _audit_actions(server, sev5.id)
    for action in ("event.view", "capture.view", "event.grade", "event.note"):
        assert action in actions, actions

    # The head sees the escalated event first.
    head = new_context().new_page()
    sign_in(head, server, who["head"])
    assert head.url.endswith("/review")
    escalated = head.locator("#escalated tr.row")
    assert escalated.count() == 1
    assert escalated.first.get_attribute("data-id") == sev5.id
    shoot(head, "review")
    head.click(f"#escalated a[href='/events/{sev5.id}']")
    head.wait_for_selector("#status")
    assert "Escalated" in head.locator("#status").inner_text()


def test_dashboard_escapes_desktop_text(collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    events = _events()
    seed_events(server, events)
    xss = events[1]
    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    sign_in(page, server, who["technician"])
    unlock(page, server, "technician")
    cell = page.locator(f"#queue tr[data-id='{xss.id}'] .title-cell")
    assert cell.inner_text() == XSS_TITLE
    assert page.locator("#queue img").count() == 0
    page.goto(f"{server.url}/events/{xss.id}")
    assert page.locator("#window-title").inner_text() == XSS_TITLE
    assert page.locator("#context").inner_text() == "nobody likes you just go die <b>now</b>"
    assert page.locator("dl.meta img, dl.meta b").count() == 0
    # An injected <img onerror> would have run before the load event (every image has loaded or
    # failed by then); a dialog raised after it proves the listener catches what was there.
    page.wait_for_load_state("load")
    page.evaluate("window.alert('probe after load')")
    assert dialogs == ["probe after load"]
    # Nothing on the pages needed an inline script or style that the CSP would block.
    assert not [m for m in console_errors if "Content Security Policy" in m], console_errors
    csp = page.request.get(f"{server.url}/events/{xss.id}").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


SENTENCE_XSS = "<img src=x onerror=alert('after')> see you tomorrow"


def test_event_view_shows_the_detector_its_score_and_the_sentences(
        collector_server: Any, new_context: Any) -> None:
    """Issue 13: a model event says "sentence model (score 0.93)" with the sentence before, the
    trigger sentence (emphasised) and the one after; a list event names its rule; an event from
    an older agent, whose header has none of these, renders as it always did. All escaped."""
    server = collector_server
    who = make_accounts(server)
    model = SeedEvent(
        "suicide", 4, "model:suicide", "Chat - Microsoft Edge",
        "nobody would even notice if i wasnt here", "nobody would even notice if i wasnt here",
        minutes_ago=2,
        extra={"detector": "model", "score": 0.9312, "sentences": {
            "before": "this maths homework is so long.",
            "trigger": "nobody would even notice if i wasnt here.",
            "after": SENTENCE_XSS}})
    listed = SeedEvent(
        "bullying", 3, "bullying.go_die", "Notes.txt - Notepad", "just go die", "go die",
        minutes_ago=4,
        extra={"detector": "list", "score": None,
               "sentences": {"before": "", "trigger": "just go die", "after": ""}})
    older = SeedEvent("drugs", 2, "drugs.weed", "Notes.txt - Notepad",
                      "where can i buy weed near school", "weed", minutes_ago=6)
    image = SeedEvent("pornography", 5, "image:nudity", "Photos", "", "", minutes_ago=8,
                      extra={"detector": "image", "score": 0.81,
                             "sentences": {"before": "", "trigger": "", "after": ""}})
    seed_events(server, [model, listed, older, image])

    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, server, who["technician"])
    # The rule id is clear metadata: readable in the queue before any unlock.
    rule_cell = page.locator(f"#queue tr[data-id='{model.id}'] td.mono")
    assert rule_cell.inner_text() == "model: suicide"
    page.goto(f"{server.url}/events/{model.id}")
    assert page.locator("h1 .mono").inner_text() == "model: suicide"
    assert page.locator("#detected-by, #sentences").count() == 0  # sealed until unlocked

    unlock(page, server, "technician", next_path=f"/events/{model.id}")
    page.goto(f"{server.url}/events/{model.id}")
    page.wait_for_selector("#detected-by")
    assert page.locator("#detected-by").inner_text() == "sentence model (score 0.93)"
    assert page.locator("#sentence-before").inner_text() == "this maths homework is so long."
    trigger = page.locator("#sentence-trigger")
    assert trigger.inner_text() == "nobody would even notice if i wasnt here."
    assert trigger.evaluate("e => e.tagName") == "STRONG"
    assert trigger.evaluate("e => getComputedStyle(e).fontWeight") in ("700", "bold")
    assert page.locator("#sentence-after").inner_text() == SENTENCE_XSS
    assert " ".join(page.locator("#sentences").inner_text().split()) == (
        "this maths homework is so long. nobody would even notice if i wasnt here. "
        + SENTENCE_XSS)
    assert page.locator("dl.meta img").count() == 0
    assert page.locator("#context mark").inner_text() == model.matched  # as before

    page.goto(f"{server.url}/events/{listed.id}")
    page.wait_for_selector("#detected-by")
    assert page.locator("#detected-by").inner_text() == "word list rule bullying.go_die"
    assert page.locator("#sentence-trigger").inner_text() == "just go die"
    assert page.locator("#sentence-before, #sentence-after").count() == 0

    page.goto(f"{server.url}/events/{image.id}")  # issue 16: the image check on the screen
    page.wait_for_selector("#detected-by")
    assert page.locator("#detected-by").inner_text().startswith(
        "image check on the screen (score 0.81): an explicit image was in the window in front")

    page.goto(f"{server.url}/events/{older.id}")
    page.wait_for_selector("#context mark")
    assert page.locator("#context mark").inner_text() == "weed"
    assert page.locator("#detected-by, #sentences").count() == 0
    assert "Detected by" not in page.locator("dl.meta").inner_text()

    page.wait_for_load_state("load")
    page.evaluate("window.alert('probe after load')")
    assert dialogs == ["probe after load"]


def test_dashboard_refuses_posts_without_csrf_token(collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    events = _events()
    seed_events(server, events)
    target = events[0]
    context = new_context()
    page = context.new_page()
    sign_in(page, server, who["technician"])
    # The browser's own cookies go with these requests; only the token is missing or wrong.
    for form in ({"grade": "escalated"}, {"grade": "escalated", "csrf": "forged-token"}):
        answer = context.request.post(f"{server.url}/events/{target.id}/grade", form=form)
        assert answer.status == 403
        assert answer.json()["code"] == "csrf"
    answer = context.request.post(f"{server.url}/logout", form={})
    assert answer.status == 403
    assert event_status(server, target.id) == "new"
    # A fresh browser cannot post the sign-in form without the token either.
    other = new_context()
    answer = other.request.post(f"{server.url}/login",
                                form={"username": who["technician"][0],
                                      "password": who["technician"][1]})
    assert answer.status == 403
    # The same request with the page's token works.
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    answer = context.request.post(f"{server.url}/events/{target.id}/grade",
                                  form={"grade": "no_concern", "csrf": token},
                                  headers={"Accept": "application/json"})
    assert answer.status == 200
    assert event_status(server, target.id) == "no_concern"

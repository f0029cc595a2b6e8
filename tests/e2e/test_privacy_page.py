"""The public page for pupils and parents, generated from the live policy and settings.

A real collector (uvicorn over TLS, the dashboard mounted) and a real headless Chromium.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from collector.settings import PolicySettings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCHOOL_DAY = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30", "end": "16:00",
              "timezone": "Europe/London"}


def test_privacy_page_states_the_live_policy_to_anyone(
    collector_factory: Callable[..., Any], browser_context: Any
) -> None:
    server = collector_factory(retention_days=200,
                               policy=PolicySettings(schedule=SCHOOL_DAY,
                                                     onsite_networks=["10.0.0.0/8"],
                                                     screen={"enabled": True}))
    page = browser_context.new_page()
    answer = page.goto(f"{server.url}/privacy")
    assert answer.status == 200  # no sign-in
    text = page.inner_text("main")

    assert "Monday to Friday, from 08:30 to 16:00 (Europe/London time)" in text
    assert "only while the computer is on the school's own network" in text
    assert "after 200 days" in text
    # Who can see it: the keyholders named in the signed policy, in plain words.
    assert "the headteacher" in text and "the ICT technician" in text
    assert "recovery key kept offline" in text
    # What is monitored: categories from the policy's wordlists, never the phrases themselves.
    assert "self-harm" in text and "eating disorders" in text and "bullying" in text
    assert "kill myself" not in text.lower()
    assert PolicySettings().notice in text
    # Screen reading is on in this policy: the page says so, and that the image check runs.
    assert "the text shown in the window in front" in text and "sexual images" in text
    # Staff navigation is not offered to the public.
    assert page.locator("a[href='/triage']").count() == 0


def test_privacy_page_before_any_policy_says_nothing_is_monitored(
    collector_factory: Callable[..., Any], browser_context: Any
) -> None:
    server = collector_factory()
    db = server.database()
    try:
        from sqlmodel import delete

        from collector.store.models import PolicyRecord

        db.write(lambda s: s.exec(delete(PolicyRecord)))  # as on a fresh install
    finally:
        db.close()
    page = browser_context.new_page()
    assert page.goto(f"{server.url}/privacy").status == 200
    assert "Monitoring has not been switched on yet" in page.inner_text("main")


def test_pupils_and_parents_doc_says_what_the_default_page_says(
    collector_factory: Callable[..., Any], browser_context: Any
) -> None:
    """docs/pupils-and-parents.md is the page under the default policy, paragraph for paragraph."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs/pupils-and-parents.md").read_text()
    flat_doc = " ".join(re.sub(r"[*>]", "", doc).split())
    server = collector_factory()
    page = browser_context.new_page()
    page.goto(f"{server.url}/privacy")
    for heading in page.locator("main h2").all_inner_texts():
        assert f"## {heading}" in doc
    for paragraph in page.locator("main li, main blockquote").all_inner_texts():
        paragraph = re.sub(r" \([^)]*\)$", "", paragraph)  # a keyholder's own name
        assert " ".join(paragraph.split()) in flat_doc, paragraph
    assert "after 365 days" in page.inner_text("main") and "*365 days*" in doc
    # Screen reading is off under the default policy, and the page does not claim it.
    assert "window in front (for example a message" not in page.inner_text("main")

"""Exclusion suggestions from grades (dashboard.exclusions; issue 18): a rule whose graded false
positives concentrate in one place gets a suggestion with the figures; a rule with too few, too
spread, or all in the one place (narrowing = disabling) does not; only the rules that could have
one have their headers opened, at most MAX_OPENED."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from collector.store.models import Event
from dashboard import exclusions
from dashboard.exclusions import Graded, Row, from_headers, from_metadata, suggest, to_open

FP, NC, CONCERN, ESC = "false_positive", "no_concern", "concern", "escalated"


def graded(rule: str, status: str, **facets: str) -> Graded:
    return Graded(rule, rule.split(".")[0], status, facets)


def test_nine_of_eleven_false_positives_in_one_application_is_suggested_with_its_figures() -> None:
    events = ([graded("drugs.weed", FP, app="chrome.exe", group="year-8") for _ in range(9)]
              + [graded("drugs.weed", FP, app="winword.exe", group="year-8") for _ in range(2)]
              + [graded("drugs.weed", CONCERN, app="chrome.exe", group="year-9"),
                 graded("drugs.weed", ESC, app="teams.exe", group="year-9"),
                 graded("drugs.weed", NC, app="chrome.exe", group="year-8")])
    (s,) = suggest(events, ("app",))
    assert (s.rule, s.category, s.facet, s.value) == ("drugs.weed", "drugs", "app", "chrome.exe")
    assert (s.false_positives_there, s.false_positives, s.concerns_there, s.graded) == (9, 11, 1, 14)
    assert s.text() == ("drugs.weed: 9 of 11 graded false positives in the application "
                        "chrome.exe — consider an unless context for what it matches there, or "
                        "excluding it (1 graded concern there would be missed too).")
    # By group: all 11 false positives are year-8, but year-9 has its concerns: suggested.
    (g,) = suggest(events, ("group",))
    assert (g.value, g.false_positives_there, g.concerns_there) == ("year-8", 11, 0)
    assert "no graded concern there" in g.text()


@pytest.mark.parametrize(("events", "why"), [
    ([graded("r.a", FP, app="x") for _ in range(4)] + [graded("r.a", CONCERN, app="y")],
     "four false positives are too few"),
    ([graded("r.a", FP, app=app) for app in "abcabcabca"], "spread: at most 40% in one app"),
    ([graded("r.a", FP, app="x") for _ in range(8)] + [graded("r.a", CONCERN, app="x")],
     "every graded event in x: narrowing there is disabling it"),
    ([graded("r.a", NC, app="x") for _ in range(8)] + [graded("r.a", CONCERN, app="y")],
     "no concern grades are not false positives"),
    ([graded("r.a", FP, app="") for _ in range(8)] + [graded("r.a", CONCERN, app="y")],
     "an unknown application is no place"),
])
def test_no_suggestion(events: list[Graded], why: str) -> None:
    assert suggest(events, ("app",)) == [], why


def test_suggestions_come_most_concentrated_first() -> None:
    events = ([graded("a.one", FP, group="g1") for _ in range(6)]
              + [graded("a.one", FP, group="g2") for _ in range(4)]
              + [graded("b.two", FP, group="g3") for _ in range(5)]
              + [graded("b.two", CONCERN, group="g4")])
    assert [(s.rule, s.value) for s in suggest(events, ("group",))] == [("b.two", "g3"),
                                                                        ("a.one", "g1")]


def _row(rule: str, status: str, group: str) -> Row:
    return Row(str(uuid.uuid4()), rule, "c", status, group)


def test_only_rules_that_could_have_a_suggestion_are_opened_and_at_most_the_cap(
        monkeypatch: Any) -> None:
    rows = ([_row("noisy.rule", FP, "y8") for _ in range(6)] + [_row("noisy.rule", CONCERN, "y9")]
            + [_row("quiet.rule", FP, "y8") for _ in range(4)])
    wanted = to_open(rows)
    assert {r.rule for r in wanted} == {"noisy.rule"} and len(wanted) == 7
    events = {r.id: Event(id=r.id, device_id="d", category="c", severity=3, rule=r.rule,
                          status=r.status, blob_key="k", size=1, sha256="0")
              for r in wanted[1:]}  # the newest has gone (retention) since it was listed

    def open_header(event: Event) -> dict[str, Any] | None:
        if event.status == CONCERN:
            return None  # could not be opened: left out
        return {"app": " Chrome.EXE ", "title": "Science - Year 8", "user": "never used"}

    found = from_headers(wanted, events, open_header)
    assert len(found) == 5
    assert {(g.facets["app"], g.facets["title"], g.facets["group"]) for g in found} == {
        ("chrome.exe", "Science - Year 8", "y8")}
    assert all("user" not in g.facets for g in found)
    monkeypatch.setattr(exclusions, "MAX_OPENED", 3)
    assert len(to_open(rows)) == 3
    assert [g.facets for g in from_metadata(rows[:1])] == [{"group": "y8"}]

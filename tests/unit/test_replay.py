"""What a wordlist change would have done to the last 90 days (dashboard.replay; issue 18),
against a real database (SQLite and PostgreSQL): a disabled rule's events would no longer fire,
with their grades; a changed severity moves its events; a new ``unless`` context is tested
against the stored context only when headers can be opened (otherwise: not tested), and a
context the current rules do not fire on either is "cannot tell"; the model's events and events
older than the window are left alone; added rules are listed, not judged."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from collector.store.models import Device, Event, utcnow
from core.rules import load_policy_files
from dashboard import replay as replay_module
from dashboard.replay import replay

DEFAULTS = {"default/t.toml": """
category = "drugs"

[[rule]]
id = "t.weed"
phrase = "weed"
severity = 2
unless = ["weed killer"]

[[rule]]
id = "t.pills"
phrase = "pills"
severity = 4

[[rule]]
id = "t.gone"
phrase = "skunk"
severity = 3
"""}

DRAFT = """
category = "drugs"
disable = ["t.gone"]

[[rule]]
id = "t.pills"
phrase = "pills"
severity = 5

[[rule]]
id = "t.weed"
phrase = "weed"
severity = 2
unless = ["weed killer", "weed the garden"]

[[rule]]
id = "school.new"
phrase = "brand new phrase"
severity = 3
"""

CONTEXTS = {  # the words around each t.weed match, as its sealed header holds them
    "garden": ("we had to weed the garden today", "weed"),
    "smoke": ("he said he smokes weed at lunch", "weed"),
    "cut": ("ed at lunch", "ed"),  # cut short: the rule does not fire on it today either
}


def _seed(database: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    now = utcnow()

    def add(session: Any) -> None:
        session.add(Device(id="d1", hostname="PC", secret_hash="h"))
        session.flush()
        rows = [("gone1", "t.gone", 3, "concern", 1), ("gone2", "t.gone", 3, "false_positive", 1),
                ("gone3", "t.gone", 3, "new", 1), ("pills1", "t.pills", 4, "new", 2),
                ("pills2", "t.pills", 4, "concern", 2), ("garden", "t.weed", 2, "false_positive", 3),
                ("smoke", "t.weed", 2, "concern", 3), ("cut", "t.weed", 2, "new", 3),
                ("model", "model:self_harm", 4, "concern", 4),
                ("old", "t.gone", 3, "concern", 120)]
        for name, rule, severity, status, days_ago in rows:
            ids[name] = str(uuid.uuid4())
            when = now - timedelta(days=days_ago)
            session.add(Event(id=ids[name], device_id="d1", time=when, received_at=when,
                              category="self_harm" if rule.startswith("model") else "drugs",
                              severity=severity, rule=rule, status=status, blob_key="k", size=1,
                              sha256="0" * 64))

    database.write(add)
    return ids


def _rulesets() -> tuple[Any, Any]:
    return (load_policy_files(DEFAULTS),
            load_policy_files({**DEFAULTS, "school/school.toml": DRAFT}))


def test_metadata_only_removed_rules_and_severity_moves_are_certain(database: Any) -> None:
    _seed(database)
    current, draft = _rulesets()
    with database.session() as s:
        result = replay(s, utcnow(), current, draft)
    assert result.events == 9 and not result.tested and result.opened == []
    drugs = result.categories["drugs"]
    assert (drugs.events, drugs.no_longer, drugs.no_longer_concerns,
            drugs.no_longer_false_positives) == (8, 3, 1, 1)
    assert (drugs.up, drugs.down, drugs.untested, drugs.cannot_tell) == (2, 0, 3, 0)
    assert result.categories["self_harm"].no_longer == 0  # the model's event: left alone
    assert dict(result.moves) == {(4, 5): 2}
    assert result.rules["t.gone"].change == "removed or disabled"
    assert result.rules["t.pills"].change == "severity 4 -> 5"
    assert result.rules["t.weed"].change == "1 new unless context"
    assert (result.rules["t.gone"].no_longer, result.rules["t.weed"].no_longer) == (3, 0)
    assert result.added == ["school.new"]
    assert (result.no_longer, result.untested) == (3, 3)


def test_with_headers_a_new_context_is_tested_against_the_stored_words(
        database: Any, monkeypatch: Any) -> None:
    ids = _seed(database)
    by_id = {ids[name]: name for name in CONTEXTS}
    current, draft = _rulesets()
    asked: list[str] = []

    def open_header(event: Event) -> dict[str, Any] | None:
        asked.append(event.rule)
        context, matched = CONTEXTS[by_id[event.id]]
        start = context.index(matched)
        return {"context": context, "match": {"start": start, "end": start + len(matched),
                                              "text": matched}}

    with database.session() as s:
        result = replay(s, utcnow(), current, draft, open_header=open_header)
    assert set(asked) == {"t.weed"}  # only the events whose outcome needs their words
    assert sorted(result.opened) == sorted(ids[n] for n in CONTEXTS)
    drugs = result.categories["drugs"]
    assert (drugs.no_longer, drugs.untested, drugs.cannot_tell) == (4, 0, 1)
    weed = result.rules["t.weed"]
    assert (weed.events, weed.no_longer, weed.false_positives, weed.concerns) == (3, 1, 1, 0)

    # The cap: what is not opened is not tested.
    monkeypatch.setattr(replay_module, "MAX_OPENED", 1)
    with database.session() as s:
        limited = replay(s, utcnow(), current, draft, open_header=open_header)
    assert len(limited.opened) == 1 and limited.categories["drugs"].untested == 2


def test_an_unchanged_draft_changes_nothing(database: Any) -> None:
    _seed(database)
    current = load_policy_files(DEFAULTS)
    with database.session() as s:
        result = replay(s, utcnow(), current, current)
    assert (result.no_longer, result.untested, dict(result.moves), result.rules) == (0, 0, {}, {})


def test_an_event_that_would_no_longer_fire_does_not_also_move(database: Any) -> None:
    ids = _seed(database)
    by_id = {ids[name]: name for name in CONTEXTS}
    both = DRAFT.replace('severity = 2\nunless = ["weed killer", "weed the garden"]',
                         'severity = 3\nunless = ["weed killer", "weed the garden"]')
    current = load_policy_files(DEFAULTS)
    draft = load_policy_files({**DEFAULTS, "school/school.toml": both})

    def open_header(event: Event) -> dict[str, Any]:
        context, matched = CONTEXTS[by_id[event.id]]
        start = context.index(matched)
        return {"context": context, "match": {"start": start, "end": start + len(matched)}}

    with database.session() as s:
        result = replay(s, utcnow(), current, draft, open_header=open_header)
    assert result.rules["t.weed"].change == "severity 2 -> 3, 1 new unless context"
    # garden: gone, not moved; smoke: stays and moves; cut: cannot tell, may still fire: moves
    assert dict(result.moves) == {(4, 5): 2, (2, 3): 2}
    assert result.rules["t.weed"].no_longer == 1

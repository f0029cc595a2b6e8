"""Flood control: same rule + same user within the window is one event with a count."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from agent.flood import FloodControl

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_repeats_within_window_share_one_event(tmp_path: Path) -> None:
    fc = FloodControl(600, tmp_path / "repeats.json")
    first = fc.decide("suicide.kill_myself", "pupil", 0.0, NOW)
    assert first.is_new and first.count == 1
    for n in range(2, 301):
        d = fc.decide("suicide.kill_myself", "pupil", float(n), NOW)
        assert not d.is_new and d.event_id == first.event_id
    assert fc.pending() == [{"id": first.event_id, "count": 300, "last_seen": NOW.isoformat()}]


def test_other_rule_or_user_or_after_window_is_new(tmp_path: Path) -> None:
    fc = FloodControl(600)
    a = fc.decide("r1", "u1", 0.0, NOW)
    assert fc.decide("r2", "u1", 1.0, NOW).is_new
    assert fc.decide("r1", "u2", 1.0, NOW).is_new
    later = fc.decide("r1", "u1", 600.0, NOW)
    assert later.is_new and later.event_id != a.event_id


def test_pending_counts_survive_restart_and_clear_when_reported(tmp_path: Path) -> None:
    state = tmp_path / "repeats.json"
    fc = FloodControl(600, state)
    eid = fc.decide("r", "u", 0.0, NOW).event_id
    fc.decide("r", "u", 1.0, NOW)
    fc.decide("r", "u", 2.0, NOW)
    reloaded = FloodControl(600, state)
    assert reloaded.pending()[0]["count"] == 3
    sent = reloaded.pending()
    reloaded.reported(sent)
    assert reloaded.pending() == [] and FloodControl(600, state).pending() == []
    assert eid == sent[0]["id"]


def test_count_that_grew_while_reporting_is_kept(tmp_path: Path) -> None:
    fc = FloodControl(600)
    fc.decide("r", "u", 0.0, NOW)
    fc.decide("r", "u", 1.0, NOW)
    sent = fc.pending()
    fc.decide("r", "u", 2.0, NOW)  # arrives while the POST is in flight
    fc.reported(sent)
    assert fc.pending()[0]["count"] == 3

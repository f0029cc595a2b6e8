"""The collector is down for a long time while the agent keeps firing (real X server, real typing).

The agent's spool is bounded to a few events for the test; distinct trigger phrases of every
severity are typed with xdotool while the collector is dead. The spool must stay within its
bound except for severity 4 and 5 (never dropped), count what it dropped, and report the count in
the heartbeat once the collector is back, where it lands on the Device row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.faults import AgentRun, device_row, stored_event_ids
from tests.fixtures.x11 import X11, wait_until

pytestmark = [pytest.mark.x11, pytest.mark.slow]

SPOOL_BOUND = 5
HIGH, LOW = 3, 12  # phrases typed of severity 4-5, and of severity 1-3


def _phrases() -> tuple[list[str], list[str]]:
    """Distinct phrases that each fire exactly one rule: (severity >= 4, severity <= 3)."""
    from core.matcher import Matcher
    from core.rules import default_dir, load_dirs

    ruleset = load_dirs(default_dir())
    matcher = Matcher(ruleset)
    high: list[str] = []
    low: list[str] = []
    for rule in ruleset.rules:
        if not re.fullmatch(r"[a-z ]{6,24}", rule.phrase):
            continue
        found = matcher.match(rule.phrase)
        if len(found) != 1 or found[0].rule.id != rule.id:
            continue
        bucket = high if rule.severity >= 4 else low
        if len(bucket) < (HIGH if bucket is high else LOW):
            bucket.append(rule.phrase)
    assert len(high) == HIGH and len(low) == LOW
    return high, low


def _fired(agent: AgentRun) -> int:
    return agent.log().count(" fired; event ")


def _severities_in_spool(agent: AgentRun) -> list[int]:
    return sorted(int(p.name[0]) for p in agent.spool_dir.glob("*.evt"))


def test_collector_down_spool_stays_bounded_keeps_severe_and_reports_drops(
        collector_server: Any, agent_factory: Callable[..., AgentRun], x11: X11) -> None:
    server = collector_server
    high, low = _phrases()
    # The lists alone: the count of events must be the phrases', and the sentence model may
    # add its own event on a bare phrase (tests/integration/test_agent_model.py tests it).
    agent = agent_factory(VIGIL_AGENT_SPOOL_MAX_EVENTS=SPOOL_BOUND, VIGIL_AGENT_MODEL="0")
    device_id = agent.enrol(server)  # the policy (and so the wordlists) arrives with enrolment
    server.kill()

    agent.start()  # waits for the agent's readiness and its notice window (which takes focus)
    agent.open_window("Homework - Notes")  # returns once the agent has seen it in front
    # Every phrase must fire the first time; the severe ones first: lesser ones must not push
    # them out of the bounded spool.
    for phrase in high + low:
        x11.type(phrase)
        x11.key("Return")
    fired = HIGH + LOW
    wait_until(lambda: _fired(agent) >= fired, 120, interval=0.2,
               what=f"{fired} rules to fire")

    severities = _severities_in_spool(agent)
    assert len(severities) == SPOOL_BOUND
    assert severities.count(4) + severities.count(5) == HIGH  # every severe event kept
    state = json.loads((agent.spool_dir / "state.json").read_text())
    assert state["dropped"] == fired - SPOOL_BOUND
    assert agent.proc is not None and agent.proc.poll() is None  # still running, still firing

    server.start()
    wait_until(lambda: not list(agent.spool_dir.glob("*.evt")), 60, interval=0.2,
               what="the spool to drain when the collector is back")
    stored = stored_event_ids(server)
    assert len(stored) == SPOOL_BOUND
    def reported() -> bool:
        row = device_row(server, device_id)
        return row.dropped == fired - SPOOL_BOUND and row.spool_depth == 0

    wait_until(reported, 30, interval=0.2,
               what="the heartbeat to report the dropped count and an empty spool")

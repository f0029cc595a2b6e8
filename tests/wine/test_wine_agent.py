"""End to end on Windows code paths: ``vigil agent`` in the Windows CPython under Wine.

The agent is enrolled (``vigil agent enrol``, run under Wine: httpx and the CPython's own OpenSSL
on Windows, the collector's certificate pinned by fingerprint) against a real collector on loopback
over TLS (tests/fixtures/collector.py), then ``vigil agent run`` watches a ``wine notepad`` into
which xdotool types a trigger phrase. The sealed capture must reach the collector and open with the
head's key, with the Windows title, process name and a GDI screenshot inside.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

from PIL import Image

from tests.fixtures.x11 import wait_until
from tests.integration.test_agent_x11 import open_event, wait_events
from tests.wine.conftest import NOTEPAD_TITLE, Wine, wine_env

FOCUS = re.compile(r"focus: window (0x[0-9a-f]+)")


def vigil_argv(wine: Wine, *args: str) -> list[str]:
    return [str(wine.python_exe), "-m", "vigil", *args]


def test_typed_trigger_in_notepad_reaches_the_collector_sealed(
        collector_server: Any, wine: Wine, tmp_path: Path) -> None:
    started = time.monotonic()
    config, spool = tmp_path / "config", tmp_path / "spool"
    argv = collector_server.enrol_command(collector_server.make_token())[1:]
    i = argv.index("--token")
    argv[i:i + 2] = [f"--token={argv[i + 1]}"]
    done = wine.run(*vigil_argv(wine, *argv, "--config-dir", wine_env.winpath(config)),
                    timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "enrolled as device" in done.stdout
    for name in ("enrolment.json", "trust.json", "policy.json"):
        assert (config / name).exists(), (name, done.stdout + done.stderr)

    agent = wine.start(*vigil_argv(wine, "agent", "run", "--config-dir", wine_env.winpath(config),
                                   "--spool-dir", wine_env.winpath(spool)),
                       extra={"VIGIL_AGENT_LOG_LEVEL": "debug", "VIGIL_AGENT_HEARTBEAT_S": "2",
                              "VIGIL_AGENT_BACKOFF_INITIAL_S": "0.2",
                              "VIGIL_AGENT_BACKOFF_MAX_S": "1"})
    agent.wait_line("agent running", 90, "the agent to start under Wine")
    assert "windows backend" in agent.output()
    # the first tray icon makes Wine open its "Wine System Tray" window, which takes the focus:
    # let it appear before notepad (on Windows the notification area is already there)
    agent.wait_line("tray icon shown", 60, "the tray icon")
    seen = len(agent.lines)
    notepad = wine.notepad()

    def focused_nonzero() -> bool:
        return any((m := FOCUS.search(line)) and int(m.group(1), 16)
                   for line in agent.lines[seen:])

    wait_until(focused_nonzero, 30, interval=0.05, what="the agent to see notepad in front")
    wine.x.activate(notepad)
    wine.x.type("i want to kill myself")
    wine.x.key("Return")

    (row,) = wait_events(collector_server, 1, timeout=60)
    assert (row.category, row.severity, row.source) == ("suicide", 5, "typed")
    opened = open_event(collector_server, row)
    assert opened.header["match"]["text"] == "kill myself"
    assert opened.header["title"] == NOTEPAD_TITLE
    assert opened.header["app"].lower() == "notepad.exe"
    img = Image.open(io.BytesIO(opened.body))
    img.load()
    assert img.size == (1920, 1080)
    assert opened.header["media_type"] == Image.MIME[img.format]
    print(f"agent under Wine: enrol to sealed capture at the collector in "
          f"{time.monotonic() - started:.1f} s")

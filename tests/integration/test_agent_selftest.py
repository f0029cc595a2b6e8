"""``vigil agent selftest`` on Linux under Xvfb: a real enrolled agent config (tests/fixtures/faults.py
AgentRun, its agent running) and a real collector over pinned TLS (tests/fixtures/collector.py).

With everything up every check is OK (the supervisor line is SKIP: no root supervisor here); with
the collector stopped, the collector line is FAIL with a one-line reason and the exit code is 1.
Nothing secret (the device secret) or personal (the window title) is printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agent.config import ConfigDir
from tests.fixtures.faults import AgentRun

TITLE = "Selftest window of a pupil"


def lines_of(out: str) -> dict[str, tuple[str, str]]:
    """{check name: (state, reason)} from the checklist."""
    found = {}
    for line in out.splitlines():
        if line.startswith(("OK ", "FAIL", "SKIP")):
            state, name, reason = line.split(None, 2)
            found[name] = (state, reason)
    return found


def test_selftest_all_ok_then_collector_fail(agent_factory: Callable[..., AgentRun],
                                             collector_server: Any) -> None:
    agent = agent_factory()
    agent.enrol(collector_server)
    agent.start()
    agent.open_window(TITLE)  # something in front, and a screen that is not blank
    secret = ConfigDir(agent.config_dir).load_enrolment().secret

    t0 = time.monotonic()
    done = agent.vigil("agent", "selftest", "--config-dir", str(agent.config_dir))
    took = time.monotonic() - t0
    checks = lines_of(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(checks) == ["enrolment", "collector", "policy", "keyboard", "title",
                            "screenshot", "model", "supervised"], done.stdout
    for name in ("enrolment", "collector", "policy", "keyboard", "title", "screenshot", "model"):
        assert checks[name][0] == "OK", (name, done.stdout)
    assert checks["supervised"][0] == "SKIP", done.stdout
    assert f"{len(TITLE)} characters" in checks["title"][1]
    assert TITLE not in done.stdout + done.stderr
    assert secret not in done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("selftest: all checks passed")
    print(f"selftest, all OK (model loaded): {took:.1f} s")

    collector_server.stop()
    done = agent.vigil("agent", "selftest", "--config-dir", str(agent.config_dir))
    checks = lines_of(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr
    state, reason = checks["collector"]
    assert state == "FAIL" and "unreachable over the pinned TLS" in reason, done.stdout
    assert "\n" not in reason
    # the cached policy still verifies offline; the sensors do not need the collector
    for name in ("enrolment", "policy", "keyboard", "title", "screenshot"):
        assert checks[name][0] == "OK", (name, done.stdout)
    assert [n for n, (s, _) in checks.items() if s == "FAIL"] == ["collector"]
    assert done.stdout.rstrip().endswith("selftest: 1 check(s) failed")

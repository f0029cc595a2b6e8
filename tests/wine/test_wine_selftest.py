"""``vigil agent selftest`` in the Windows CPython under Wine: the real low-level keyboard hook
(pynput's SetWindowsHookExW), GetForegroundWindow/GetWindowTextW on ``wine notepad`` and a GDI
screenshot through mss are each reported OK, with no title printed.

The device is not enrolled here (the enrolment, collector and policy lines are proved on Linux by
tests/integration/test_agent_selftest.py and on Windows code paths by test_wine_agent.py), so
the exit code is 1 and those lines are FAIL/SKIP; the model is switched off (SKIP).
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.wine.conftest import NOTEPAD_TITLE, Wine, wine_env


def test_selftest_reports_hook_title_and_screenshot_ok(wine: Wine, tmp_path: Path) -> None:
    wine.notepad()
    t0 = time.monotonic()
    done = wine.run(str(wine.python_exe), "-m", "vigil", "agent", "selftest", "--config-dir",
                    wine_env.winpath(tmp_path / "config"), timeout=180,
                    extra={"VIGIL_AGENT_MODEL": "0"})
    took = time.monotonic() - t0
    out = done.stdout.replace("\r\n", "\n")
    states = {line.split()[1]: line.split()[0] for line in out.splitlines()
              if line.startswith(("OK ", "FAIL", "SKIP"))}
    for name in ("keyboard", "title", "screenshot"):
        assert states.get(name) == "OK", (name, out + done.stderr)
    assert "GetForegroundWindow/GetWindowTextW" in out
    assert f"({len(NOTEPAD_TITLE)} characters, not shown)" in out
    assert NOTEPAD_TITLE not in out
    assert states["enrolment"] == "FAIL" and states["model"] == "SKIP"
    assert states["supervised"] == "SKIP"
    assert done.returncode == 1, out
    print(f"selftest under Wine: {took:.1f} s\n{out}")

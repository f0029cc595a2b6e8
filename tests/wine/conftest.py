"""The Wine harness: the Windows CPython of ``make wine-env`` run under Wine on the tests' Xvfb.

Every test here runs the agent's real Windows code (agent/sensors/windows.py, pynput's win32
backend, mss's GDI backend, ``vigil agent run``) in the embeddable CPython 3.13.2 win_amd64 under
Debian's Wine 8.0, on the session's Xvfb + openbox (tests/fixtures/x11.py). Nothing in the Win32
API is faked; the only help is Wine's own gap-fillers of scripts/wine/ (bcryptprimitives.dll,
sitecustomize.py).

No silent skip: when Wine or the environment is missing, the tests fail and say to run
``make wine-env``. Wine is driven with WINEDEBUG=-all, stdin from /dev/null and stdout as a pipe
(python.exe under Wine 8.0 dies in init_sys_streams with "Invalid handle" when a standard handle
is a regular file), and every Wine call has a timeout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.x11 import X11, XWindow, wait_until

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "wine"))
import wine_env  # scripts/wine/wine_env.py: the paths and the Wine environment

NOTEPAD_TITLE = "Untitled - Notepad"


def _missing() -> str | None:
    if shutil.which("wine") is None:
        return "wine is not installed"
    if not (wine_env.PYTHON / "python.exe").exists():
        return f"{wine_env.PYTHON / 'python.exe'} does not exist"
    if not (wine_env.PREFIX / "drive_c" / "windows" / "system32" / "bcryptprimitives.dll").exists():
        return f"the Wine prefix {wine_env.PREFIX} is not prepared"
    return None


@dataclass
class WineProcess:
    """A Windows process under Wine whose stdout+stderr lines are collected as they come."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\r\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, pred: Callable[[str], bool] | str, timeout: float,
                  what: str = "") -> str:
        """The first line matching ``pred`` (a callable or a substring), failing at the deadline
        (or at once, with the output, if the process ends first)."""
        test = pred if callable(pred) else (lambda line: pred in line)

        def found() -> str | None:
            for line in list(self.lines):
                if test(line):
                    return line
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader drain the pipe
                tail = "\n".join(self.lines[-40:])
                raise AssertionError(f"the Wine process ended (exit {self.proc.returncode}) "
                                     f"before {what or pred!r}:\n{tail}")
            return None

        try:
            return str(wait_until(found, timeout, interval=0.05, what=what or repr(pred)))
        except AssertionError as exc:
            if "timed out" in str(exc):
                raise AssertionError(f"{exc}; output so far:\n" + "\n".join(self.lines[-40:]))
            raise

    def json_lines(self, prefix: str) -> list[Any]:
        return [json.loads(line[len(prefix):]) for line in list(self.lines)
                if line.startswith(prefix)]

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._reader.join(5)


@dataclass
class Wine:
    """The Wine prefix and its Windows CPython, on the test session's X display."""

    x: X11
    processes: list[WineProcess] = field(default_factory=list)

    @property
    def python_exe(self) -> Path:
        return wine_env.PYTHON / "python.exe"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = wine_env.wine_environ(self.x.display)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra or {})
        return env

    def run(self, *argv: str, timeout: float = 120.0, extra: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``wine argv...`` to completion (stdout and stderr captured through pipes)."""
        return subprocess.run(["wine", *argv], env=self.env(extra), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=REPO)

    def python(self, code: str, timeout: float = 120.0, extra: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
        return self.run(str(self.python_exe), "-c", code, timeout=timeout, extra=extra)

    def python_json(self, code: str, prefix: str, timeout: float = 60.0) -> Any:
        """Run ``code``; the JSON of its one output line that starts with ``prefix``."""
        done = self.python(code, timeout=timeout)
        assert done.returncode == 0, done.stdout + done.stderr
        (line,) = [ln for ln in done.stdout.splitlines() if ln.startswith(prefix)]
        return json.loads(line[len(prefix):])

    def start(self, *argv: str, extra: dict[str, str] | None = None) -> WineProcess:
        """``wine argv...`` in the background; stop() ends it at teardown."""
        proc = subprocess.Popen(["wine", *argv], env=self.env(extra), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                encoding="utf-8", errors="replace", cwd=REPO)
        wp = WineProcess(proc)
        self.processes.append(wp)
        return wp

    def start_python(self, code: str, extra: dict[str, str] | None = None) -> WineProcess:
        return self.start(str(self.python_exe), "-c", code, extra=extra)

    def notepad(self, timeout: float = 60.0) -> XWindow:
        """``wine notepad``, open and focused (xdotool windowactivate), as an :class:`XWindow`."""
        proc = subprocess.Popen(["wine", "notepad"], env=self.env(), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wid = wait_until(lambda: self.x.find_window(NOTEPAD_TITLE), timeout,
                         what="wine notepad's window")
        win = XWindow(title=NOTEPAD_TITLE, wid=int(wid), proc=proc)
        self.x.windows.append(win)
        self.x.activate(win, 20)
        return win

    def stop_all(self) -> None:
        for wp in self.processes:
            wp.stop()
            # shown by pytest when a test fails
            print(f"--- {' '.join(wp.proc.args[1:3])} ---\n" + "\n".join(wp.lines[-60:]))
        self.processes.clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.wine)


@pytest.fixture(scope="session")
def wine_ready() -> None:
    problem = _missing()
    if problem:
        pytest.fail(f"the Wine test environment is missing ({problem}): run `make wine-env`",
                    pytrace=False)


@pytest.fixture
def wine(wine_ready: None, x11: X11) -> Iterator[Wine]:
    w = Wine(x11)
    try:
        yield w
    finally:
        w.stop_all()
        x11.close_windows()
        # end every Windows process of the prefix (notepad, the agent, its helpers)
        subprocess.run(["wineserver", "-k"], env=w.env(), timeout=30, check=False,
                       capture_output=True)
        subprocess.run(["wineserver", "-w"], env=w.env(), timeout=30, check=False,
                       capture_output=True)

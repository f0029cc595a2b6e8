"""The agent's sensors on a real X server: the keyboard hook, its supervisor, the active window."""

from __future__ import annotations

import queue
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from agent.sensors.events import FocusChange, KeyInput, ListenerRestarted
from agent.sensors.keyboard import InputHooks, translate
from agent.sensors.x11 import X11Windows
from tests.fixtures.x11 import X11, wait_until

pytestmark = pytest.mark.x11


class Collected:
    """Drains a sensor queue on demand, translating raw hook records like the worker does."""

    def __init__(self) -> None:
        self.q: queue.SimpleQueue = queue.SimpleQueue()
        self.items: list[Any] = []

    def drain(self) -> list[Any]:
        while not self.q.empty():
            item = self.q.get()
            self.items.append(translate(item) if isinstance(item, tuple) else item)
        return self.items

    def typed(self) -> str:
        out = []
        for k in self.drain():
            if isinstance(k, KeyInput) and k.pressed:
                out.append(" " if k.name == "space" else (k.char or ""))
        return "".join(out)


@pytest.fixture
def on_display(x11: X11, monkeypatch: pytest.MonkeyPatch) -> X11:
    monkeypatch.setenv("DISPLAY", x11.display)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return x11


@pytest.fixture
def hooks(on_display: X11) -> Iterator[tuple[InputHooks, Collected]]:
    got = Collected()
    h = InputHooks(got.q, mouse=False)
    h.start()
    try:
        yield h, got
    finally:
        h.stop()
        on_display.key("shift")  # lets pynput's record thread see its stop and end


def test_keys_typed_with_xdotool_reach_the_queue(hooks: tuple[InputHooks, Collected],
                                                 on_display: X11) -> None:
    _, got = hooks
    on_display.open_window("Typing target")
    on_display.type("hello world")
    wait_until(lambda: got.typed().endswith("hello world"), 10, what="the typed keys")
    assert not any(k.injected for k in got.items if isinstance(k, KeyInput))  # XTEST is not XSendEvent


def test_supervisor_restarts_a_dead_listener_and_reports_it(hooks: tuple[InputHooks, Collected],
                                                            on_display: X11) -> None:
    h, got = hooks
    on_display.open_window("Restart target")
    first = h.listener()
    first.stop()  # the hook ends without the supervisor asking: as if it had died
    on_display.key("shift")  # pynput's record thread notices the stop on the next event

    def restarted() -> bool:
        got.drain()
        return any(isinstance(i, ListenerRestarted) for i in got.items) and \
            h.listener() is not first and h.listener().recording.is_set()

    wait_until(restarted, 10, what="a new listener")
    assert h.restarts == 1
    got.items.clear()
    # Once the new hook says it is recording, nothing typed is missed: type once, no retries.
    on_display.type("still here")
    wait_until(lambda: got.typed().endswith("still here"), 10, what="keys after the restart")


@pytest.fixture
def windows(on_display: X11) -> Iterator[tuple[X11Windows, list[FocusChange]]]:
    seen: list[FocusChange] = []
    w = X11Windows(seen.append, on_display.display)
    w.start()
    try:
        yield w, seen
    finally:
        w.stop()


def test_active_window_title_and_class(windows: tuple[X11Windows, list[FocusChange]],
                                       on_display: X11) -> None:
    _, seen = windows
    on_display.open_window("Plain xmessage title")
    wait_until(lambda: any(c.window and c.window.title == "Plain xmessage title" for c in seen),
               10, what="the xmessage title")
    change = next(c for c in seen if c.window and c.window.title == "Plain xmessage title")
    assert change.window is not None and change.window.app == "Xmessage"
    x, y, w, h = change.window.rect or (0, 0, 0, 0)
    assert 0 <= x < 1920 and 0 <= y < 1080 and w > 0 and h > 0


def test_utf8_title_and_title_change_of_the_same_window(
        windows: tuple[X11Windows, list[FocusChange]], on_display: X11) -> None:
    _, seen = windows
    win = on_display.open_window("Élève – café ☕", kind="tk")
    wait_until(lambda: any(c.window and c.window.title == "Élève – café ☕" for c in seen), 10,
               what="the UTF-8 title")
    # Retitle the same window (like a browser tab changing): PropertyNotify, no focus change.
    subprocess.run(["xdotool", "set_window", "--name", "second title", str(win.wid)],
                   env=on_display.env, check=True)
    wait_until(lambda: any(c.window and c.window.title == "second title" for c in seen), 10,
               what="the retitled window")


def test_display_gone_ends_the_watcher(on_display: X11) -> None:
    from tests.fixtures.x11 import start_x11

    own = start_x11()
    closed: list[bool] = []
    w = X11Windows(lambda c: None, own.display, on_closed=lambda: closed.append(True))
    w.start()
    own.stop()
    wait_until(lambda: closed, 10, what="the session-ended callback")
    w.stop()


def test_agent_import_without_display_fails_cleanly() -> None:
    code = ("import os; os.environ.pop('DISPLAY', None)\n"
            "from agent.sensors import select_backend\n"
            "from agent.errors import NoDisplay\n"
            "try:\n    select_backend({})\nexcept NoDisplay as e:\n    print('NoDisplay:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.stdout.startswith("NoDisplay: no display")

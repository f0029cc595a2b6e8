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


# --- the lean XRecord listeners (agent/sensors/xrecord.py) -----------------------------------
def test_this_pynput_gets_the_lean_listeners(on_display: X11) -> None:
    """The pinned pynput and python-xlib have the shape xrecord.py relies on; a version that
    does not would silently fall back to the stock (costlier) listener."""
    from pynput import keyboard, mouse

    from agent.sensors.xrecord import lean_supported, recording_listener

    assert lean_supported(keyboard.Listener) and lean_supported(mouse.Listener)
    assert recording_listener(keyboard.Listener).__name__ == "LeanListener"


def test_struct_decoder_agrees_with_python_xlib(on_display: X11) -> None:
    """The one-struct decoder reads what python-xlib's own parser reads, send_event included."""
    from Xlib import X, display
    from Xlib.protocol import event, rq

    from agent.sensors.xrecord import decode_events

    d = display.Display(on_display.display)
    try:
        root = d.screen().root
        made = [
            event.KeyPress(time=123456, root=root, window=root, child=X.NONE, root_x=-5,
                           root_y=1079, event_x=7, event_y=8, state=X.ShiftMask | X.ControlMask,
                           same_screen=1, detail=38),
            event.KeyRelease(time=1, root=root, window=root, child=X.NONE, root_x=1919,
                             root_y=0, event_x=0, event_y=0, state=0, same_screen=1, detail=255,
                             send_event=True),
            event.ButtonPress(time=2, root=root, window=root, child=X.NONE, root_x=300,
                              root_y=-200, event_x=0, event_y=0, state=X.Mod1Mask,
                              same_screen=1, detail=3),
        ]
        data = b"".join(e._binary for e in made)
        ours = decode_events(data + b"\x00" * 7)  # a stray tail is not an event
        parser = rq.EventField(None)
        rest: bytes = data
        for mine in ours:
            theirs, rest = parser.parse_binary_value(rest, d.display, None, None)
            assert (mine.type, mine.detail, mine.state, mine.send_event, mine.root_x,
                    mine.root_y) == (theirs.type, theirs.detail, theirs.state,
                                     bool(theirs.send_event), theirs.root_x, theirs.root_y)
        assert len(ours) == 3 and not rest
    finally:
        d.close()


def test_mouse_hook_reports_clicks_and_records_no_motion(on_display: X11) -> None:
    """The mouse hook asks XRecord for ButtonPress only: a click arrives, pointer motion and the
    button's release never reach Python (each costs ~300 µs of parsing)."""
    got = Collected()
    h = InputHooks(got.q, mouse=True)
    h.start()
    try:
        listener = h.listener("mouse")
        wait_until(lambda: listener.recording.is_set(), 10, what="the mouse hook")
        handled: list[int] = []
        original = listener._handle_message

        def counting(display: Any, event: Any, injected: bool) -> None:
            handled.append(event.type)
            original(display, event, injected)

        listener._handle_message = counting
        on_display.open_window("Click target")
        for x in range(100, 400, 30):
            on_display.xdotool("mousemove", str(x), "300")
        on_display.xdotool("click", "1")
        wait_until(lambda: any(type(i).__name__ == "Click" for i in got.drain()), 10,
                   what="the click")
        assert handled == [4]  # one ButtonPress; no MotionNotify (6) or ButtonRelease (5)
    finally:
        h.stop()
        on_display.xdotool("click", "1")  # lets the record threads see their stop
        on_display.key("shift")


def test_tray_process_without_a_tray_gives_up_in_one_line(on_display: X11) -> None:
    """No tray on the desktop (openbox has none): the tray process waits, then ends cleanly
    with one line, while the agent (holding its stdin) is still there."""
    proc = subprocess.Popen([sys.executable, "-m", "vigil", "agent", "tray", "--wait", "1",
                             "The notice"], env=on_display.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(60)  # stdin stays open meanwhile: the "agent" is alive
        assert proc.stderr is not None and proc.stdin is not None
        err = proc.stderr.read()
        proc.stdin.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert any("no system tray on this desktop yet" in line for line in lines)
    assert lines[-1].endswith("no system tray appeared; the notice window and the log carry "
                              "the notice")
    assert "Traceback" not in err and "Fatal" not in err

"""The agent's Windows sensors, run for real in the Windows CPython under Wine.

Each test starts a short script in the embeddable CPython 3.13.2 win_amd64 (make wine-env) that
imports the agent's own modules from the working tree and prints what it sees as JSON lines; keys
are typed with xdotool into a real ``wine notepad`` on Xvfb, so they travel X -> Wine's input
queue -> the WH_KEYBOARD_LL hook pynput installs with SetWindowsHookExW.
"""

from __future__ import annotations

import base64
import io
import json

from PIL import Image

from tests.fixtures.x11 import wait_until
from tests.wine.conftest import NOTEPAD_TITLE, Wine

KEY_SCRIPT = r"""
import json, queue, sys, time
from agent.sensors.events import KeyInput
from agent.sensors.keyboard import InputHooks, translate
import pynput.keyboard
q = queue.SimpleQueue()
hooks = InputHooks(q, mouse=False)
hooks.start()
ok = hooks.wait_ready(30)
print("READY " + json.dumps({"ok": ok, "backend": type(hooks.listener()).__module__}), flush=True)
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        raw = q.get(timeout=0.5)
    except queue.Empty:
        continue
    ev = translate(raw)
    if isinstance(ev, KeyInput) and ev.pressed:
        print("KEY " + json.dumps([ev.char, ev.name, ev.injected]), flush=True)
"""

TITLE_SCRIPT = r"""
import json
from agent.sensors.windows import WinApi, WindowsWindows, describe_foreground
api = WinApi()
info = describe_foreground(api)
seen = []
w = WindowsWindows(seen.append, api)
w.poll()
w.poll()  # no change: no second event
print("INFO " + json.dumps({"title": info.title, "app": info.app, "rect": info.rect,
                            "wid": info.wid, "events": [e.window.title for e in seen]}))
"""

MSS_SCRIPT = r"""
import base64, json, time
import mss
from agent.capture import Capturer
c = Capturer(fmt="png")
t = time.perf_counter()
img = c.grab(None)
ms = (time.perf_counter() - t) * 1000
sct = c._mss()
print("SHOT " + json.dumps({"ms": ms, "backend": type(getattr(sct, "_impl", sct)).__module__,
                            "monitors": [m.__dict__ if hasattr(m, "__dict__") else repr(m)
                                         for m in c.monitors()][:2],
                            "size": [img.width, img.height], "media": img.media_type,
                            "png": base64.b64encode(img.data).decode()}))
"""


def test_low_level_keyboard_hook_receives_keys_typed_into_notepad(wine: Wine) -> None:
    notepad = wine.notepad()
    hook = wine.start_python(KEY_SCRIPT)
    ready = json.loads(hook.wait_line("READY ", 60, "the hook to be live")[len("READY "):])
    assert ready == {"ok": True, "backend": "pynput.keyboard._win32"}
    wine.x.activate(notepad)
    wine.x.type("hello vigil")
    wine.x.key("Return")

    def typed() -> str | None:
        keys = hook.json_lines("KEY ")
        text = "".join(c if c is not None else (" " if n == "space" else "")
                       for c, n, _ in keys)
        return text if ["enter"] == [n for c, n, _ in keys if n == "enter"] else None

    text = wait_until(typed, 30, what="hello vigil<enter> at the hook")
    assert text == "hello vigil"


def test_foreground_window_title_and_process(wine: Wine) -> None:
    wine.notepad()
    info = wine.python_json(TITLE_SCRIPT, "INFO ")
    assert info["title"] == NOTEPAD_TITLE
    assert info["app"].lower() == "notepad.exe"
    assert info["wid"] and info["rect"][2] > 100 and info["rect"][3] > 100
    assert info["events"] == [NOTEPAD_TITLE]


def test_screenshot_through_gdi(wine: Wine) -> None:
    wine.notepad()
    shot = wine.python_json(MSS_SCRIPT, "SHOT ")
    assert shot["backend"].startswith("mss.windows"), shot["backend"]  # GDI: BitBlt/GetDIBits
    assert shot["size"] == [1920, 1080]
    img = Image.open(io.BytesIO(base64.b64decode(shot["png"])))
    assert img.size == (1920, 1080)
    # not a blank frame: notepad's white page and its title bar differ from the Xvfb background
    assert len(img.convert("L").getcolors(1 << 16) or []) > 2
    print(f"mss grab + PNG under Wine: {shot['ms']:.0f} ms")

"""The platform backends, chosen at start: X11 (Linux, also XWayland) or Windows.

``select_backend`` fails with :class:`agent.errors.NoDisplay` and one clear line when there is
nothing to watch: no DISPLAY, or a Wayland session without XWayland (pynput has no Wayland
backend and a Wayland compositor does not tell clients which window is in front).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.errors import NoDisplay
from agent.sensors.events import FocusChange

__all__ = ["Backend", "select_backend"]

log = logging.getLogger(__name__)


@dataclass
class Backend:
    name: str
    # (emit, on_closed) -> a watcher with start() and stop()
    windows: Callable[[Callable[[FocusChange], None], Callable[[], None]], Any]
    clipboard: Callable[[], str | None]


def _x11_clipboard() -> str | None:
    if shutil.which("xclip") is None:
        log.warning("xclip is not installed: pasted text cannot be matched")
        return None
    try:
        done = subprocess.run(["xclip", "-selection", "clipboard", "-o"], capture_output=True,
                              timeout=1.0, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None  # nothing on the clipboard, or not text
    return done.stdout[:64 * 1024].decode("utf-8", "replace")


def select_backend(environ: dict[str, str] | None = None) -> Backend:
    env = os.environ if environ is None else environ
    if sys.platform == "win32":
        from agent.sensors.windows import WinApi, WindowsWindows, read_clipboard

        api = WinApi()
        return Backend("windows", lambda emit, on_closed: WindowsWindows(emit, api),
                       lambda: read_clipboard(api))
    display = env.get("DISPLAY", "")
    if not display:
        if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE") == "wayland":
            raise NoDisplay("this is a Wayland session without XWayland: the agent needs X11 "
                            "(enable XWayland or sign in to an X11 session)")
        raise NoDisplay("no display: DISPLAY is not set (the agent runs in a desktop session)")
    from agent.sensors.x11 import X11Windows, open_display

    open_display(display).close()  # fail now, in one line, if the server is not there
    return Backend("x11", lambda emit, on_closed: X11Windows(emit, display, on_closed),
                   _x11_clipboard)

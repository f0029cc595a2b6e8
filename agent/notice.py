"""The monitoring notice: shown once per session, so nobody is monitored without being told.

Every run writes the notice to the log. On a desktop it also opens a small window (Tk, in its own
process, ``vigil agent notice-window``, so a slow or closed window never touches the sensors)
that the user dismisses; the window is a normal, visible, titled window. The tray icon
(agent/tray.py) stays for the whole session and opens the window again on a click. "Once per
session" is kept by a marker in the user's runtime directory named after the session
(XDG_SESSION_ID or, failing that, the X display and boot id).
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import platformdirs

from agent.children import vigil_command

__all__ = ["DEFAULT_NOTICE", "NOTICE_TITLE", "notice_window", "open_notice_window", "session_key",
           "show_notice"]

log = logging.getLogger(__name__)

NOTICE_TITLE = "Vigil: this device is monitored"
DEFAULT_NOTICE = ("This device is monitored for safeguarding under the school's Acceptable Use "
                  "Policy. What you type and the windows you use are checked against safeguarding "
                  "wordlists; a match takes a screenshot that only the school's safeguarding "
                  "keyholders can open.")


def notice_window(text: str, timeout_s: float = 300.0) -> None:
    """Show the notice in a small always-on-top window until OK or ``timeout_s`` (blocks)."""
    import tkinter as tk

    root = tk.Tk()
    root.title(NOTICE_TITLE)
    root.attributes("-topmost", True)
    tk.Message(root, text=text, width=460, padx=16, pady=12).pack()
    tk.Button(root, text="OK", width=10, command=root.destroy).pack(pady=(0, 12))
    root.after(int(timeout_s * 1000), root.destroy)
    root.mainloop()


def open_notice_window(text: str, timeout_s: float = 300.0) -> subprocess.Popen | None:
    """``notice_window`` in a process of its own; None if it could not be started (logged)."""
    try:
        return subprocess.Popen(
            vigil_command("agent", "notice-window", "--timeout", str(timeout_s), "--", text),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        log.warning("could not open the notice window (%s); the notice is in the log", exc)
        return None


def session_key() -> str:
    sid = os.environ.get("XDG_SESSION_ID")
    if sid:
        return f"session-{sid}"
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "noboot"
    display = os.environ.get("DISPLAY", "").replace(":", "_").replace("/", "_")
    return f"display{display}-{boot}"


def _marker(runtime_dir: Path | None) -> Path:
    base = runtime_dir or Path(platformdirs.user_runtime_dir("vigil-agent", appauthor=False))
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    return base / f"notice-{session_key()}"


def show_notice(text: str, *, graphical: bool, runtime_dir: Path | None = None,
                timeout_s: float = 300.0) -> subprocess.Popen | None:
    """Tell the user, once per session. Returns the window's process, if one was opened."""
    text = text.strip() or DEFAULT_NOTICE
    log.info("monitoring notice: %s", " ".join(text.split()))
    marker = _marker(runtime_dir)
    if marker.exists():
        return None
    marker.touch(mode=0o600)
    if not graphical:
        return None
    window = open_notice_window(text, timeout_s)
    if window is not None:
        log.info("notice window opened (once this session)")
    return window

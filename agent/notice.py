"""The monitoring notice: shown once per session, so nobody is monitored without being told.

Every run writes the notice to the log. On a desktop it also opens a small window (Tk, in its own
process so a slow or closed window never touches the sensors) that the user dismisses; the
window is a normal, visible, titled window. A tray icon is not drawn: no tray library is a
dependency (see docs/agent.md). "Once per session" is kept by a marker in the user's runtime
directory named after the session (XDG_SESSION_ID or, failing that, the X display and boot id).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import platformdirs

__all__ = ["DEFAULT_NOTICE", "NOTICE_TITLE", "session_key", "show_notice"]

log = logging.getLogger(__name__)

NOTICE_TITLE = "Vigil: this device is monitored"
DEFAULT_NOTICE = ("This device is monitored for safeguarding under the school's Acceptable Use "
                  "Policy. What you type and the windows you use are checked against safeguarding "
                  "wordlists; a match takes a screenshot that only the school's safeguarding "
                  "keyholders can open.")

_WINDOW = r"""
import sys, tkinter as tk
root = tk.Tk()
root.title(sys.argv[1])
root.attributes("-topmost", True)
msg = tk.Message(root, text=sys.argv[2], width=460, padx=16, pady=12)
msg.pack()
tk.Button(root, text="OK", width=10, command=root.destroy).pack(pady=(0, 12))
root.after(int(float(sys.argv[3]) * 1000), root.destroy)
root.mainloop()
"""


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
    try:
        return subprocess.Popen([sys.executable, "-c", _WINDOW, NOTICE_TITLE, text, str(timeout_s)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError as exc:
        log.warning("could not open the notice window (%s); the notice is in the log", exc)
        return None

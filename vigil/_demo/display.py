"""A virtual X display (Xvfb + openbox) for machines without a desktop.

Xvfb picks its own free display number (-displayfd), so several demos or test runs never collide.
openbox is needed because without a window manager there is no active window to monitor.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import time

from vigil._demo.errors import DemoError
from vigil._demo.processes import Children, wait_until

__all__ = ["start_virtual_display", "x_env"]

SCREEN = "1280x800x24"


def x_env(display: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DISPLAY"] = display
    env.pop("WAYLAND_DISPLAY", None)
    return env


def _read_display(fd: int, timeout: float) -> str:
    # Read up to the newline: Xvfb writes the number and the newline separately, and dies of
    # SIGPIPE if the pipe is closed in between.
    deadline = time.monotonic() + timeout
    raw = b""
    while not raw.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 64) if ready else b""
        if not chunk:
            raise DemoError(f"Xvfb did not report a display within {timeout:.0f}s (see its log)")
        raw += chunk
    number = raw.decode().strip()
    if not number.isdigit():
        raise DemoError("Xvfb did not start (see its log)")
    return f":{number}"


def start_virtual_display(children: Children, timeout: float = 20.0) -> str:
    """Start Xvfb and openbox; return the DISPLAY value once the window manager is up."""
    for tool in ("Xvfb", "openbox", "xdotool", "xprop"):
        if shutil.which(tool) is None:
            raise DemoError(f"{tool} is not installed: run scripts/system-deps.sh "
                            "(or `make install`)")
    read_fd, write_fd = os.pipe()
    try:
        xvfb = children.start("xvfb", ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", SCREEN,
                                       "-nolisten", "tcp"], pass_fds=[write_fd])
        os.close(write_fd)
        write_fd = -1
        display = _read_display(read_fd, timeout)
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    xvfb.check_alive()
    env = x_env(display)
    children.start("openbox", ["openbox", "--sm-disable"], env=env)

    def wm_ready() -> bool:
        done = subprocess.run(["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"], env=env,
                              capture_output=True, text=True, timeout=10, check=False)
        return "window id" in done.stdout

    wait_until(wm_ready, timeout, "the window manager (openbox) to start")
    return display

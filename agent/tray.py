"""The tray icon: a standing sign, for as long as the agent runs, that this desktop is monitored.

The notice window is dismissed once per session; the icon stays. It runs in a process of its own
(``vigil agent tray``), like the notice window, so a GUI event loop or an X error in it can
never touch the sensors, and it cannot outlive the agent: its stdin is a pipe from the agent and
it exits when that closes, however the agent ended (even SIGKILL), so no icon ever claims
monitoring that is not happening. Its one action (a left click on X11; the menu on Windows)
opens the monitoring notice again. There is deliberately no "quit".

"Where one is available": on X11 a tray is the client that owns the ``_NET_SYSTEM_TRAY_S<n>``
selection (freedesktop System Tray Protocol; GNOME has none without an extension). Panels often
start after the session's autostart programs, so when there is none the process waits up to
``wait_s`` for one to announce itself (the MANAGER client message the protocol has a new tray
send to the root window), sleeping in select() meanwhile, then gives up with one log line. A
tray that restarts later in the session gets the icon back the same way. On Windows the
notification area always exists. The icon is drawn by pystray (its xorg backend on Linux, which
needs no GTK; its win32 backend on Windows).
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any

from agent.children import vigil_command

__all__ = ["TRAY_TITLE", "icon_image", "run_tray", "start_tray"]

log = logging.getLogger("agent.tray")

TRAY_TITLE = "Vigil: monitoring is on (click for the notice)"
DEFAULT_WAIT_S = 120.0
DOCK_ATTEMPTS = 5  # dock requests before giving up on a tray that never takes the icon
DOCK_CONFIRM_S = 2.0  # how long a tray has to embed the icon before it is asked again
STOP_GRACE_S = 5.0  # how long the icon has to stop once the agent has gone


def start_tray(text: str, wait_s: float = DEFAULT_WAIT_S) -> subprocess.Popen | None:
    """Start the tray icon's process; None if it could not be started (said in the log)."""
    try:
        return subprocess.Popen(vigil_command("agent", "tray", "--wait", str(wait_s), "--", text),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=None)
    except OSError as exc:
        log.warning("could not start the tray icon (%s); the notice window and the log carry "
                    "the notice", exc)
        return None


def icon_image(size: int = 64) -> Any:
    """A shield with an open eye, drawn with Pillow (no image file to ship or lose)."""
    from PIL import Image, ImageDraw

    s = size / 64
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.polygon([(32 * s, 3 * s), (58 * s, 12 * s), (55 * s, 38 * s), (32 * s, 61 * s),
               (9 * s, 38 * s), (6 * s, 12 * s)], fill=(18, 82, 150, 255))
    d.ellipse((14 * s, 22 * s, 50 * s, 42 * s), fill=(255, 255, 255, 255))
    d.ellipse((25 * s, 25 * s, 39 * s, 39 * s), fill=(18, 82, 150, 255))
    d.ellipse((29 * s, 29 * s, 35 * s, 35 * s), fill=(10, 20, 40, 255))
    return img


# --- the tray's own process --------------------------------------------------------------------
class _X11Trays:
    """Finds the X11 tray manager, and wakes when a new one announces itself."""

    def __init__(self) -> None:
        from Xlib import X, display

        self._X = X
        self._d = display.Display()
        self._screen = self._d.get_default_screen()
        self._selection = self._d.intern_atom(f"_NET_SYSTEM_TRAY_S{self._screen}")
        self._manager = self._d.intern_atom("MANAGER")
        # The protocol has a new tray send MANAGER to the root with StructureNotifyMask.
        self._d.screen().root.change_attributes(event_mask=X.StructureNotifyMask)
        self._d.flush()

    def wait_docked(self, wid: int, timeout: float) -> bool:
        """Block until window ``wid`` has been reparented out of the root window (a tray
        embedded it: True), or ``timeout`` passes, a new tray announces itself or the display
        goes (False)."""
        deadline = time.monotonic() + timeout
        try:
            root = self._d.screen().root
            win = self._d.create_resource_object("window", wid)
            # Our own selection on the icon window (masks are per client): ReparentNotify
            # wakes us; pystray's selection on it is untouched.
            win.change_attributes(event_mask=self._X.StructureNotifyMask)
            self._d.flush()
            while True:
                if win.query_tree().parent.id != root.id:
                    return True
                while self._d.pending_events():
                    ev = self._d.next_event()
                    if self._is_new_tray(ev):
                        return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                select.select([self._d.fileno()], [], [], left)
        except Exception as exc:  # noqa: BLE001 - the window or the display went away
            log.info("stopped watching the icon: %s", exc)
            return False

    def _is_new_tray(self, ev: Any) -> bool:
        return bool(ev.type == self._X.ClientMessage and ev.client_type == self._manager
                    and ev.data[1][1] == self._selection)

    def present(self) -> bool:
        return self._d.get_selection_owner(self._selection) != self._X.NONE

    def wait_for_new(self, timeout: float | None) -> bool:
        """Block until a tray announces itself (True), ``timeout`` passes or the display goes
        (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                while self._d.pending_events():  # reads whatever the server has sent
                    if self._is_new_tray(self._d.next_event()):
                        return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                select.select([self._d.fileno()], [], [], left)
        except Exception as exc:  # noqa: BLE001 - the display closing raises python-xlib's errors
            log.info("stopped watching for a tray: %s", exc)
            return False


def _on_agent_gone(stop: threading.Event, icon_box: dict[str, Any]) -> None:
    """The lifeline: the agent holds our stdin's other end; EOF means it has gone."""
    if sys.stdin is None:  # started without the pipe (a windowed program run by hand)
        log.info("no lifeline from the agent: the icon stays until this process is ended")
        return
    try:
        # os.read on the descriptor, not sys.stdin's buffered reader: a daemon thread blocked
        # inside that reader holds its lock, and the interpreter aborts at exit waiting for it.
        fd = sys.stdin.fileno()
        while os.read(fd, 4096):
            pass
    except (OSError, ValueError):
        pass
    stop.set()
    icon = icon_box.get("icon")
    if icon is not None:
        icon.stop()
        # The icon's loop normally ends at once and run_tray returns. If it does not (twice in
        # some hundred test runs the process outlived a SIGKILLed agent: an X call that never
        # returned), the icon must still go: close the notice it opened and end the process.
        if icon_box["finished"].wait(STOP_GRACE_S):
            return
        log.warning("the tray icon did not stop within %.0f s of the agent going; ending it",
                    STOP_GRACE_S)
        notice = icon_box.get("notice", {}).get("proc")
        if notice is not None and notice.poll() is None:
            notice.terminate()
    os._exit(0)  # still waiting for a tray, in select(), or stuck: nothing to tidy


def _run_icon(text: str, trays: _X11Trays | None, stop: threading.Event,
              icon_box: dict[str, Any]) -> None:
    import pystray

    from agent.notice import open_notice_window

    window: dict[str, subprocess.Popen] = {}
    icon_box["notice"] = window  # the lifeline closes it if the icon's loop cannot

    def show_notice() -> None:
        current = window.get("proc")
        if current is not None and current.poll() is None:
            return  # already open
        window["proc"] = open_notice_window(text)

    icon_class = _single_dock(pystray.Icon) if trays is not None else pystray.Icon
    icon = icon_class("vigil", icon_image(), TRAY_TITLE,
                      menu=pystray.Menu(pystray.MenuItem("Show the monitoring notice",
                                                         show_notice, default=True)))
    icon_box["icon"] = icon

    def setup(ic: Any) -> None:
        ic.visible = True
        if trays is None:
            log.info("tray icon shown")
            return
        _listen_for_clicks(ic)
        threading.Thread(target=_keep_docked, args=(ic, trays, stop), daemon=True,
                         name="vigil-tray-dock").start()

    icon.run(setup)
    proc = window.get("proc")
    if proc is not None and proc.poll() is None:
        proc.terminate()


def _single_dock(base: type) -> type:
    """pystray 0.19's xorg Icon with one dock request per ``visible = True``, not two.

    Its ``_update_icon`` (run first, while the image is not drawn yet) asks the tray to dock the
    icon, and ``_show`` asks again. A tray under load acted on both requests for the one window
    and dropped it back on the root as a 1x1 window (seen with trayer, about one start in three
    on a loaded machine). Docking stays ``_show``'s job; the update only redraws.
    """
    if not all(hasattr(base, name) for name in ("_update_icon", "_draw", "_show")):
        return base  # another pystray: its docking is its own business

    class SingleDock(base):  # type: ignore[misc, valid-type]
        def _update_icon(self) -> None:
            self._icon_data = None
            self._draw()
            self._icon_valid = True

    return SingleDock


def _listen_for_clicks(icon: Any) -> None:
    """pystray 0.19's xorg backend handles ButtonPress but never selects it on its window, so
    X never delivers a click to it (pystray issue #151: "clicking does nothing"). Add the mask;
    its own loop then runs the default action."""
    from Xlib import X

    window, display = getattr(icon, "_window", None), getattr(icon, "_display", None)
    if window is None or display is None:
        return  # another pystray: its clicks are its own business
    window.change_attributes(
        event_mask=X.ExposureMask | X.StructureNotifyMask | X.ButtonPressMask)
    display.flush()


def _keep_docked(icon: Any, trays: _X11Trays, stop: threading.Event) -> None:
    """Dock the icon and confirm the tray took it, asking again if it did not; then dock it
    again in every tray that appears later (a panel crash, a settings change).

    A tray that has only just started can drop a dock request: under load, trayer left the
    icon as a 1x1 window on the root and never embedded it. The tray reparenting the icon is
    the confirmation.
    """
    wid = getattr(getattr(icon, "_window", None), "id", None)
    while not stop.is_set():
        for _ in range(DOCK_ATTEMPTS):
            if wid is None or trays.wait_docked(wid, DOCK_CONFIRM_S):
                log.info("tray icon shown")  # docked and listening for clicks
                break
            if stop.is_set():
                return
            icon.visible = False
            icon.visible = True
            log.info("the tray did not take the icon; asking again")
        else:
            log.warning("the tray did not take the icon after %d requests; the notice window "
                        "and the log carry the notice", DOCK_ATTEMPTS)
        if not trays.wait_for_new(None) or stop.is_set():
            return
        icon.visible = False
        icon.visible = True
        log.info("a new tray appeared; docking the icon there")


def run_tray(text: str, wait_s: float = DEFAULT_WAIT_S) -> int:
    """The tray process's body (``vigil agent tray``): show the icon until the agent goes."""
    # pystray logs an expected missing or vanished tray as an error with a traceback; this
    # module says it in one line instead.
    logging.getLogger("pystray").setLevel(logging.CRITICAL)
    stop = threading.Event()
    icon_box: dict[str, Any] = {"finished": threading.Event()}
    threading.Thread(target=_on_agent_gone, args=(stop, icon_box), daemon=True,
                     name="vigil-tray-lifeline").start()
    trays: _X11Trays | None = None
    if sys.platform.startswith("linux"):
        os.environ.setdefault("PYSTRAY_BACKEND", "xorg")  # no GTK needed, and no D-Bus
        try:
            trays = _X11Trays()
        except Exception as exc:  # noqa: BLE001 - python-xlib raises several kinds here
            log.warning("no tray icon: cannot open the X display (%s)", exc)
            return 0
        if not trays.present():
            log.info("no system tray on this desktop yet; waiting up to %.0f s for one", wait_s)
            if not trays.wait_for_new(wait_s):
                log.info("no system tray appeared; the notice window and the log carry the "
                         "notice")
                return 0
    try:
        _run_icon(text, trays, stop, icon_box)
    except Exception as exc:  # noqa: BLE001 - a broken tray must not look like a crash
        log.warning("the tray icon failed (%s); the notice window and the log carry the notice",
                    exc)
    finally:
        icon_box["finished"].set()
    return 0

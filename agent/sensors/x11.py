"""The active window on X11, event-driven.

The root window's _NET_ACTIVE_WINDOW names the window in front (it needs a window manager);
its title is _NET_WM_NAME (UTF-8) with WM_NAME as the fallback, and WM_CLASS names the
application. Rather than polling, the watcher selects PropertyNotify on the root window (the
active window changed) and on the active window itself (its title changed, e.g. a browser tab),
and sleeps in select() on the X connection until something happens.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.errors import NoDisplay
from agent.sensors.events import FocusChange, WindowInfo

__all__ = ["X11Windows", "open_display"]

log = logging.getLogger(__name__)


def open_display(name: str | None = None) -> Any:
    """Connect to the X server, or raise :class:`NoDisplay` with the reason in one line."""
    try:
        from Xlib import display as xdisplay
        from Xlib.error import DisplayError
    except ImportError as exc:  # pragma: no cover - python-xlib is a dependency on Linux
        raise NoDisplay("python-xlib is not installed; reinstall vigil with the agent extra") from exc
    try:
        return xdisplay.Display(name)
    except DisplayError as exc:
        raise NoDisplay(f"cannot open X display {name or os.environ.get('DISPLAY', '')!r}: {exc}") from exc
    except OSError as exc:
        raise NoDisplay(f"cannot connect to the X display: {exc}") from exc


class X11Windows:
    """Reports the active window (and its title changes) as :class:`FocusChange` via ``emit``."""

    def __init__(self, emit: Callable[[FocusChange], None], display: str | None = None,
                 on_closed: Callable[[], None] = lambda: None) -> None:
        self._emit = emit
        self._on_closed = on_closed
        self._display_name = display
        self._d: Any = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = -1, -1
        self._stopping = threading.Event()
        self._watched: Any = None  # the window whose title we listen to
        self.current: WindowInfo | None = None

    # --- reading properties -------------------------------------------------------------
    def _atom(self, name: str) -> int:
        return self._d.intern_atom(name)

    def _active_id(self) -> int:
        from Xlib import X

        prop = self._d.screen().root.get_full_property(self._a_active, X.AnyPropertyType)
        if prop is None or not prop.value:
            return 0
        return int(prop.value[0])

    def describe(self, wid: int) -> WindowInfo | None:
        """Title, application and root geometry of window ``wid`` (None if it is gone)."""
        from Xlib import X, Xatom
        from Xlib.error import XError

        if not wid:
            return None
        try:
            win = self._d.create_resource_object("window", wid)
            title = ""
            prop = win.get_full_property(self._a_net_name, self._a_utf8)
            if prop is not None and prop.value:
                raw = prop.value
                title = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            else:
                legacy = win.get_full_property(Xatom.WM_NAME, X.AnyPropertyType)
                if legacy is not None and legacy.value:
                    raw = legacy.value
                    title = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
            wm_class = win.get_wm_class()
            app = wm_class[1] if wm_class else ""
            geom = win.get_geometry()
            pos = win.translate_coords(self._d.screen().root, 0, 0)
            rect = (-int(pos.x), -int(pos.y), int(geom.width), int(geom.height))
            return WindowInfo(wid=wid, title=title, app=app or "", rect=rect)
        except XError:
            return None  # the window went away between the event and our question

    # --- the loop -------------------------------------------------------------------------
    def start(self) -> None:
        from Xlib import X, Xatom

        self._d = open_display(self._display_name)
        # Windows vanish between an event and our request; such errors arrive asynchronously
        # and are expected, so they go to the debug log instead of stderr.
        self._d.set_error_handler(lambda err, request=None: log.debug("X error: %s", err))
        self._a_active = self._atom("_NET_ACTIVE_WINDOW")
        self._a_net_name = self._atom("_NET_WM_NAME")
        self._a_utf8 = self._atom("UTF8_STRING")
        self._a_wm_name = Xatom.WM_NAME
        root = self._d.screen().root
        root.change_attributes(event_mask=X.PropertyChangeMask)
        self._d.flush()
        self._wake_r, self._wake_w = os.pipe()
        self._refresh()
        self._thread = threading.Thread(target=self._run, name="vigil-x11-windows", daemon=True)
        self._thread.start()

    def _watch(self, wid: int) -> None:
        from Xlib import X
        from Xlib.error import XError

        if self._watched is not None and self._watched.id == wid:
            return
        if self._watched is not None:
            try:
                self._watched.change_attributes(event_mask=X.NoEventMask)
            except XError:
                pass
        self._watched = None
        if wid:
            try:
                win = self._d.create_resource_object("window", wid)
                win.change_attributes(event_mask=X.PropertyChangeMask)
                self._watched = win
            except XError:
                self._watched = None

    def _refresh(self) -> None:
        wid = self._active_id()
        self._watch(wid)
        info = self.describe(wid)
        if info != self.current:
            self.current = info
            self._emit(FocusChange(info, time.monotonic()))

    def _run(self) -> None:
        from Xlib import X
        from Xlib.error import ConnectionClosedError, XError

        fd = self._d.fileno()
        relevant = {self._a_active, self._a_net_name, self._a_wm_name}
        try:
            while not self._stopping.is_set():
                if not self._d.pending_events():
                    ready, _, _ = select.select([fd, self._wake_r], [], [])
                    if self._wake_r in ready:
                        break
                changed = False
                while self._d.pending_events():
                    ev = self._d.next_event()
                    if ev.type == X.PropertyNotify and ev.atom in relevant:
                        changed = True
                if changed:
                    self._refresh()
        except (ConnectionClosedError, XError, OSError) as exc:
            if not self._stopping.is_set():
                log.info("the X display closed (%s): the session has ended", exc)
                self._on_closed()
        finally:
            try:
                self._d.close()
            except Exception as exc:  # noqa: BLE001 - closing a dead connection may fail any way
                log.debug("closing the X connection: %s", exc)

    def stop(self) -> None:
        self._stopping.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(5)
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1

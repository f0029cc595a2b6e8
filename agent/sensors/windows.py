"""The active window and the clipboard on Windows, through ctypes (user32, kernel32).

GetForegroundWindow gives the window in front (0 while a UAC prompt or the lock screen has the
desktop: "no window"); GetWindowTextW its title; GetWindowThreadProcessId, OpenProcess and
QueryFullProcessImageNameW the process image, whose file name is the application. Windows has no
PropertyNotify; the watcher asks every ``interval`` seconds (a handful of cheap calls) and emits
only on change. The API object is passed in, so the logic is tested here with a fake of the
Windows API (tests named *_mock_windows*); it has not been run on Windows in this repository.
"""

from __future__ import annotations

import ctypes
import ntpath
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.sensors.events import FocusChange, WindowInfo

__all__ = ["WinApi", "WindowsWindows", "describe_foreground", "read_clipboard"]

PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
CF_UNICODETEXT = 13


class _RECT(ctypes.Structure):
    _fields_ = [("left", ctypes.c_long), ("top", ctypes.c_long),
                ("right", ctypes.c_long), ("bottom", ctypes.c_long)]


class WinApi:
    """The few Win32 functions the agent calls, loaded lazily (only on Windows)."""

    def __init__(self) -> None:
        from ctypes import wintypes

        windll = ctypes.windll  # type: ignore[attr-defined]
        self.user32 = windll.user32
        self.kernel32 = windll.kernel32
        # Handles and pointers are 64-bit on 64-bit Windows; ctypes' default int would cut them.
        self.user32.GetForegroundWindow.restype = wintypes.HWND
        self.user32.GetClipboardData.restype = wintypes.HANDLE
        self.user32.GetClipboardData.argtypes = [wintypes.UINT]
        self.kernel32.OpenProcess.restype = wintypes.HANDLE
        self.kernel32.GlobalLock.restype = ctypes.c_void_p
        self.kernel32.GlobalLock.argtypes = [wintypes.HGLOBAL]
        self.kernel32.GlobalUnlock.argtypes = [wintypes.HGLOBAL]
        self.kernel32.CloseHandle.argtypes = [wintypes.HANDLE]


def _title(api: Any, hwnd: int) -> str:
    length = api.user32.GetWindowTextLengthW(hwnd)
    buf = ctypes.create_unicode_buffer(max(0, int(length)) + 1)
    api.user32.GetWindowTextW(hwnd, buf, len(buf))
    return buf.value


def _process_name(api: Any, hwnd: int) -> str:
    pid = ctypes.c_ulong(0)
    api.user32.GetWindowThreadProcessId(hwnd, ctypes.byref(pid))
    if not pid.value:
        return ""
    handle = api.kernel32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, False, pid.value)
    if not handle:
        return ""  # an elevated or protected process: we may not ask
    try:
        size = ctypes.c_ulong(1024)
        buf = ctypes.create_unicode_buffer(size.value)
        if not api.kernel32.QueryFullProcessImageNameW(handle, 0, buf, ctypes.byref(size)):
            return ""
        return ntpath.basename(buf.value)
    finally:
        api.kernel32.CloseHandle(handle)


def _rect(api: Any, hwnd: int) -> tuple[int, int, int, int] | None:
    r = _RECT()
    if not api.user32.GetWindowRect(hwnd, ctypes.byref(r)):
        return None
    return (r.left, r.top, r.right - r.left, r.bottom - r.top)


def describe_foreground(api: Any) -> WindowInfo | None:
    """The window in front, or None when there is none (UAC prompt, lock screen)."""
    hwnd = api.user32.GetForegroundWindow()
    if not hwnd:
        return None
    return WindowInfo(wid=int(hwnd), title=_title(api, hwnd), app=_process_name(api, hwnd),
                      rect=_rect(api, hwnd))


def read_clipboard(api: Any) -> str | None:
    """The clipboard's Unicode text, or None if it holds none or another program has it open."""
    if not api.user32.OpenClipboard(None):
        return None
    try:
        handle = api.user32.GetClipboardData(CF_UNICODETEXT)
        if not handle:
            return None
        pointer = api.kernel32.GlobalLock(handle)
        if not pointer:
            return None
        try:
            return ctypes.wstring_at(pointer)
        finally:
            api.kernel32.GlobalUnlock(handle)
    finally:
        api.user32.CloseClipboard()


class WindowsWindows:
    """Emits a :class:`FocusChange` whenever the foreground window or its title changes."""

    def __init__(self, emit: Callable[[FocusChange], None], api: Any = None,
                 interval: float = 0.25) -> None:
        self._emit = emit
        self._api = api
        self._interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: WindowInfo | None = None

    def poll(self) -> None:
        """Check the foreground window once; emit if it changed."""
        info = describe_foreground(self._api)
        if info != self.current:
            self.current = info
            self._emit(FocusChange(info, time.monotonic()))

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.poll()

    def start(self) -> None:
        if self._api is None:
            self._api = WinApi()
        self.poll()
        self._thread = threading.Thread(target=self._run, name="vigil-win-windows", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)

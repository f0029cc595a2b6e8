"""The Windows backend against a fake of the Windows API (user32/kernel32 cannot run here).

Only the Win32 functions are faked; the agent's own code (describe_foreground, read_clipboard,
WindowsWindows) runs as it would on Windows, including its ctypes buffers and structures.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import pytest

from agent.sensors.events import FocusChange
from agent.sensors.windows import WindowsWindows, describe_foreground, read_clipboard

pytestmark = pytest.mark.mock_windows


@dataclass
class FakeWindow:
    title: str
    pid: int
    rect: tuple[int, int, int, int]  # left, top, right, bottom


@dataclass
class FakeUser32:
    windows: dict[int, FakeWindow]
    foreground: int = 0
    clipboard: str | None = None
    clipboard_busy: bool = False
    opened: int = 0
    _buf: object = None

    def GetForegroundWindow(self) -> int:
        return self.foreground

    def GetWindowTextLengthW(self, hwnd: int) -> int:
        return len(self.windows[hwnd].title)

    def GetWindowTextW(self, hwnd: int, buf: ctypes.Array, size: int) -> int:
        text = self.windows[hwnd].title[: size - 1]
        buf.value = text
        return len(text)

    def GetWindowThreadProcessId(self, hwnd: int, pid_ref: object) -> int:
        ctypes.cast(pid_ref, ctypes.POINTER(ctypes.c_ulong)).contents.value = self.windows[hwnd].pid
        return 1

    def GetWindowRect(self, hwnd: int, rect_ref: object) -> int:
        from agent.sensors.windows import _RECT

        r = ctypes.cast(rect_ref, ctypes.POINTER(_RECT)).contents
        r.left, r.top, r.right, r.bottom = self.windows[hwnd].rect
        return 1

    def OpenClipboard(self, owner: object) -> int:
        if self.clipboard_busy:
            return 0
        self.opened += 1
        return 1

    def CloseClipboard(self) -> int:
        self.opened -= 1
        return 1

    def GetClipboardData(self, fmt: int) -> int:
        if self.clipboard is None:
            return 0
        self._buf = ctypes.create_unicode_buffer(self.clipboard)
        return ctypes.addressof(self._buf)  # stands for the HGLOBAL


@dataclass
class FakeKernel32:
    images: dict[int, str]
    handles: set[int] = field(default_factory=set)

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        if pid not in self.images:
            return 0  # elevated: access denied
        self.handles.add(pid)
        return pid

    def QueryFullProcessImageNameW(self, handle: int, flags: int, buf: ctypes.Array,
                                   size_ref: object) -> int:
        buf.value = self.images[handle]
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.handles.discard(handle)
        return 1

    def GlobalLock(self, handle: int) -> int:
        return handle

    def GlobalUnlock(self, handle: int) -> int:
        return 1


@dataclass
class FakeApi:
    user32: FakeUser32
    kernel32: FakeKernel32


@pytest.fixture
def api() -> FakeApi:
    windows = {
        0x10: FakeWindow("how to kill myself - Google Chrome", 100, (-1280, 10, -200, 700)),
        0x20: FakeWindow("Administrator: Command Prompt", 200, (0, 0, 800, 600)),
    }
    return FakeApi(FakeUser32(windows), FakeKernel32({100: r"C:\Program Files\Google\chrome.exe"}))


def test_foreground_window_title_process_and_rect_mock_windows(api: FakeApi) -> None:
    api.user32.foreground = 0x10
    info = describe_foreground(api)
    assert info is not None
    assert info.title == "how to kill myself - Google Chrome"
    assert info.app == "chrome.exe"
    assert info.rect == (-1280, 10, 1080, 690)
    assert api.kernel32.handles == set()  # the process handle was closed


def test_no_foreground_window_mock_windows(api: FakeApi) -> None:
    api.user32.foreground = 0  # UAC prompt or lock screen
    assert describe_foreground(api) is None


def test_elevated_process_gives_empty_app_mock_windows(api: FakeApi) -> None:
    api.user32.foreground = 0x20
    info = describe_foreground(api)
    assert info is not None and info.app == "" and info.title == "Administrator: Command Prompt"


def test_watcher_emits_only_on_change_mock_windows(api: FakeApi) -> None:
    seen: list[FocusChange] = []
    watcher = WindowsWindows(seen.append, api)
    api.user32.foreground = 0x10
    watcher.poll()
    watcher.poll()
    api.user32.windows[0x10].title = "new tab - Google Chrome"
    watcher.poll()
    api.user32.foreground = 0
    watcher.poll()
    assert [c.window.title if c.window else None for c in seen] == [
        "how to kill myself - Google Chrome", "new tab - Google Chrome", None]


def test_clipboard_text_mock_windows(api: FakeApi) -> None:
    api.user32.clipboard = "i want to kill myself"
    assert read_clipboard(api) == "i want to kill myself"
    assert api.user32.opened == 0  # always closed again
    api.user32.clipboard = None
    assert read_clipboard(api) is None
    api.user32.clipboard_busy = True
    assert read_clipboard(api) is None

"""What the sensors put on the monitor's queue: plain values, cheap to build in a hook callback."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Click", "FocusChange", "KeyInput", "ListenerRestarted", "Rect", "WindowInfo"]

Rect = tuple[int, int, int, int]  # x, y, width, height in root (virtual screen) coordinates


@dataclass(frozen=True, slots=True)
class KeyInput:
    """One key press or release, translated from the platform's key object by the worker."""

    pressed: bool
    char: str | None  # the character it types, if any
    name: str | None  # a named key: "backspace", "enter", "shift", "ctrl_l", ...
    dead: bool = False  # a dead key (accent) waiting for the next key
    injected: bool = False  # sent by software rather than a keyboard
    at: float = 0.0  # time.monotonic() when the hook saw it


@dataclass(frozen=True, slots=True)
class Click:
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """The window in front: its title, its application and where it is."""

    wid: int
    title: str
    app: str
    rect: Rect | None = None


@dataclass(frozen=True, slots=True)
class FocusChange:
    """The active window changed, or the active window's title changed."""

    window: WindowInfo | None  # None: no window (lock screen, UAC prompt, empty desktop)
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class ListenerRestarted:
    """The supervisor started a new hook because the previous one died."""

    which: str
    reason: str
    restarts: int

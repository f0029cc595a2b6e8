"""How the agent starts its helper processes (the notice window, the tray icon).

They run as ``vigil agent <part>`` with the very interpreter, or the very frozen program
(PyInstaller's vigil-agent.exe on Windows, where ``python -c`` does not exist), that runs the
agent: the same code and the same libraries, wherever and however the agent was installed.
"""

from __future__ import annotations

import sys

__all__ = ["vigil_command"]


def vigil_command(*args: str) -> list[str]:
    """The argv that runs ``vigil <args>`` the way this process was started."""
    if getattr(sys, "frozen", False):
        return [sys.executable, *args]
    return [sys.executable, "-m", "vigil", *args]

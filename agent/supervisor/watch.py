"""What the supervisor watches besides its own files: the clock, and the agent's code.

**The clock.** The monitoring schedule and every event's time come from the wall clock, which
an administrator (or a pupil who got the right to) can move: back, to seem outside school
hours, or forward. The supervisor compares the wall clock with the boot clock, which nobody can
set and which keeps counting through suspend (CLOCK_BOOTTIME on Linux; Windows' monotonic clock
counts sleep too). A change of their difference by more than ``clock_jump_s`` is a move; NTP
corrects by slewing milliseconds, far below it.

**The code.** The agent that reads the keyboard is Python files on disk. A changed file (a
rule-blind matcher, a hook that drops keys) is what "the agent's binary changed" means here.
The supervisor records size and modification time of every file under the code paths at start,
looks again every ``code_check_s`` (stat only), and reports the files that changed, appeared or
went. Upgrades stop the supervisor first (the installers do), so a new version starts from a
new baseline.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["ClockWatch", "CodeWatch", "default_code_paths"]

_SUFFIXES = (".py", ".so", ".pyd", ".dll", ".exe", ".toml", ".onnx", ".json")


def _boot_clock() -> float:
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


class ClockWatch:
    """Finds moves of the wall clock against the boot clock."""

    def __init__(self, threshold_s: float, wall: Callable[[], float] = time.time,
                 boot: Callable[[], float] = _boot_clock) -> None:
        self.threshold_s = threshold_s
        self._wall, self._boot = wall, boot
        self._offset = wall() - boot()

    def moved(self) -> float:
        """Seconds the wall clock moved since the last look (0.0 when it did not)."""
        offset = self._wall() - self._boot()
        jump = offset - self._offset
        self._offset = offset  # one report per move, then the new time is the reference
        return jump if abs(jump) > self.threshold_s else 0.0


def default_code_paths() -> list[Path]:
    """The installed agent: the agent, core and vigil packages, and the interpreter."""
    import agent
    import core
    import vigil

    return [Path(m.__file__).parent for m in (agent, core, vigil)] + [Path(sys.executable)]


Snapshot = dict[str, tuple[int, int]]  # path -> (size, mtime_ns)


def _snapshot(roots: Iterable[Path]) -> Snapshot:
    found: Snapshot = {}
    for root in roots:
        paths = [root] if root.is_file() else (
            Path(d) / f for d, _, files in os.walk(root) for f in files if f.endswith(_SUFFIXES))
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                continue
            found[str(path)] = (st.st_size, st.st_mtime_ns)
    return found


class CodeWatch:
    """Finds files of the agent's code changed, added or removed since the baseline."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = [Path(r) for r in roots]
        self._known = _snapshot(self.roots)

    @property
    def files(self) -> int:
        return len(self._known)

    def changed(self) -> dict[str, list[str]]:
        """{"changed": [...], "added": [...], "removed": [...]} since the last look (empty when
        nothing moved); the new state becomes the baseline, so each change is reported once."""
        now = _snapshot(self.roots)
        diff = {
            "changed": sorted(p for p in now.keys() & self._known.keys()
                              if now[p] != self._known[p]),
            "added": sorted(now.keys() - self._known.keys()),
            "removed": sorted(self._known.keys() - now.keys()),
        }
        self._known = now
        return {k: v for k, v in diff.items() if v}

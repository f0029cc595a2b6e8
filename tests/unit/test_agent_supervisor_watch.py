"""agent.supervisor.watch: a moved clock and changed agent code, with clocks and files the test
controls (the supervisor's end-to-end path is tests/integration/test_supervisor_linux.py)."""

from __future__ import annotations

import os
from pathlib import Path

from agent.supervisor.watch import ClockWatch, CodeWatch


class Clocks:
    def __init__(self) -> None:
        self.wall, self.boot = 1_800_000_000.0, 1000.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.boot += seconds


def test_the_clock_set_back_or_forward_is_a_move_and_time_passing_is_not() -> None:
    clocks = Clocks()
    watch = ClockWatch(300.0, wall=lambda: clocks.wall, boot=lambda: clocks.boot)
    clocks.tick(3600)  # an hour of lessons, suspend included: both clocks move together
    assert watch.moved() == 0.0
    clocks.wall += 2.5  # NTP nudges
    assert watch.moved() == 0.0
    clocks.wall -= 4 * 3600  # set back to before school started
    assert watch.moved() == -4 * 3600
    assert watch.moved() == 0.0  # reported once; the new time is the reference
    clocks.wall += 86_400
    assert watch.moved() == 86_400


def test_changed_added_and_removed_code_is_reported_once(tmp_path: Path) -> None:
    code = tmp_path / "agent"
    (code / "sensors").mkdir(parents=True)
    matcher = code / "matcher.py"
    matcher.write_text("RULES = load()\n")
    (code / "sensors" / "keyboard.py").write_text("hook()\n")
    (code / "notes.txt").write_text("not code")
    watch = CodeWatch([code])
    assert watch.files == 2 and watch.changed() == {}

    matcher.write_text("RULES = []  # blind\n")
    os.utime(matcher, ns=(1, 1))  # whatever time it claims, the size or time differs
    (code / "sensors" / "keyboard.py").unlink()
    (code / "sensors" / "shim.py").write_text("pass\n")
    (code / "notes.txt").write_text("still not code")
    assert watch.changed() == {"changed": [str(matcher)],
                               "added": [str(code / "sensors" / "shim.py")],
                               "removed": [str(code / "sensors" / "keyboard.py")]}
    assert watch.changed() == {}

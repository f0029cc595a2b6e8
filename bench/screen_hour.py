"""An hour of ordinary use with screen reading on, against the same agent with it off (issue 16).

Run:  .venv/bin/python bench/screen_hour.py [--seconds 3600]

Issue 16's cost target is "average agent CPU <= 2% of a core over an hour of ordinary use with
screen reading on". bench/agent.py --screen measures one minute of a static page and one of a
busy chat; this runs a scripted desktop for an hour. Two agents (both with the sentence model)
run at once on the same Xvfb 1920x1080 + openbox and see the same desktop: one under a signed
policy with screen reading on, the other with it off, so the difference is what reading costs,
measured in the same run on the same load (the machine is shared: the ratio is the figure to
trust more than either absolute number).

One cycle of "ordinary use", repeated until the time is up (about 5 minutes each):

- a lesson page left open (nothing changes) for 90 s;
- a chat whose newest message changes every second, for 60 s;
- switching between three windows (the lesson, the chat, notes) every 15 s, for 60 s;
- typing ordinary sentences into a notes window at about 4 keys a second, for 60 s;
- nothing in front changing for 30 s.

The policy's flood window and title cool-down are the defaults a school runs with (600 and
60 s): text left on screen is remembered for the flood window, as on a pupil's desktop. (Runs
before 2026-12-07 07:20 UTC had both at 0, bench/agent.py's setting for latency trials, so every
read judged every line again.) The agents' monitoring notices are dismissed first.

Busy pause off (``VIGIL_AGENT_SCREEN_BUSY_PCT=100``) so reading is never skipped because other
work shares the machine; battery not present. CPU is psutil's cpu_times of each agent process
with its children (the tesseract command, if libtesseract did not load), over the whole run and
per scene; RSS is the kernel's peak (VmHWM). The last line:
``screen_hour_cpu_pct=N baseline_cpu_pct=N added_pct=N reads=N rss_mb=N``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.x11 import start_x11, wait_until


def _bench_agent() -> object:
    """bench/agent.py (its name would shadow the agent package on sys.path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_agent", REPO / "bench" / "agent.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_agent = _bench_agent()
_TICKING, BENIGN = _agent._TICKING, _agent.BENIGN  # type: ignore[attr-defined]
peak_rss_mb, stop_agent, start_screen_agent = (  # type: ignore[attr-defined]
    _agent.peak_rss_mb, _agent.stop_agent, _agent.start_screen_agent)  # type: ignore[attr-defined]

LESSON = ("Year 9 History: the Battle of the Somme\n"
          "In July 1916 British and French armies attacked German lines.\n"
          "Write a paragraph on why the generals kept attacking.")
NOTES = """
import sys, tkinter as tk
root = tk.Tk(); root.title(sys.argv[1]); root.geometry("900x500+140+140")
t = tk.Text(root, font=("DejaVu Sans", 13)); t.pack(fill="both", expand=True); t.focus_force()
root.mainloop()
"""
CPU_FIELDS = ("user", "system", "children_user", "children_system")


class Desktop:
    """The scripted windows on display ``x``."""

    def __init__(self, x: object) -> None:
        self.x = x
        self.env = x.env  # type: ignore[attr-defined]
        self.procs: list[subprocess.Popen] = []
        self.wids: dict[str, str] = {}

    def open(self, title: str, argv: list[str]) -> None:
        self.procs.append(subprocess.Popen(argv, env=self.env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        self.wids[title] = wait_until(lambda: self.x.find_window(title), 20,  # type: ignore[attr-defined]
                                      what=f"window {title!r}")

    def front(self, title: str) -> None:
        subprocess.run(["xdotool", "windowactivate", str(self.wids[title])], env=self.env,
                       capture_output=True, check=False, timeout=10)

    def type(self, text: str) -> None:
        subprocess.run(["xdotool", "type", "--delay", "250", "--", text], env=self.env,
                       capture_output=True, check=False, timeout=600)

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(5)


def start(x: object, run: Path, screen: bool) -> tuple[subprocess.Popen, Path]:
    return start_screen_agent(dict(x.env), run, screen,  # type: ignore[attr-defined]
                              school_flood=True)


def dismiss_notices(agents: list[subprocess.Popen]) -> None:
    """Close each agent's monitoring notice, as the pupil does with its OK button: the two
    notices are always on top for up to 5 minutes, over every window the script shows, and a
    pupil's desktop has at most one, dismissed. (Left open, they were read with each window,
    differently as they restacked: the first 5 minutes of a run cost twice the rest.)"""
    import psutil

    for agent in agents:
        wait_until(lambda a=agent: any("notice-window" in " ".join(c.cmdline())
                                       for c in _children(a.pid)), 30, what="the notice window")
        for child in _children(agent.pid):
            if "notice-window" in " ".join(child.cmdline()):
                child.terminate()
                psutil.wait_procs([child], timeout=10)


def _children(pid: int) -> list:
    import psutil

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            child.cmdline()
        except psutil.Error:  # gone, or a zombie
            continue
        found.append(child)
    return found


def cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return sum(getattr(times, f) for f in CPU_FIELDS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3600)
    args = ap.parse_args()
    x = start_x11()
    os.environ["DISPLAY"] = x.display
    tmp = Path(tempfile.mkdtemp(prefix="vigil-bench-screen-hour-"))
    desktop = Desktop(x)
    agents: dict[str, tuple[subprocess.Popen, Path]] = {}
    try:
        agents["on"] = start(x, tmp / "on", screen=True)
        agents["off"] = start(x, tmp / "off", screen=False)
        for name, (_, log_path) in agents.items():
            wait_until(lambda p=log_path: "sentence model loaded" in p.read_text(), 90,
                       what=f"the {name} agent's model")
        wait_until(lambda: "screen reader on" in agents["on"][1].read_text(), 60,
                   what="the screen reader")
        dismiss_notices([a for a, _ in agents.values()])
        desktop.open("Lesson", ["xmessage", "-fn", "10x20", "-title", "Lesson", "-geometry",
                                "900x500+100+100", LESSON])
        desktop.open("Chat", [sys.executable, "-c", _TICKING, "Chat"])
        desktop.open("Notes", [sys.executable, "-c", NOTES, "Notes"])
        per_scene: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        seconds: dict[str, float] = defaultdict(float)

        def scene(name: str, duration: float, action: object = None) -> None:
            before = {k: cpu_s(a.pid) for k, (a, _) in agents.items()}
            t0 = time.monotonic()
            if action is not None:
                action()  # type: ignore[operator]
            left = duration - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)  # measuring an interval of use, not waiting for a condition
            seconds[name] += time.monotonic() - t0
            for k, (a, _) in agents.items():
                per_scene[name][k] += cpu_s(a.pid) - before[k]

        def switching() -> None:
            for i in range(4):
                desktop.front(("Lesson", "Chat", "Notes", "Chat")[i])
                time.sleep(15)

        def typing() -> None:
            desktop.front("Notes")
            desktop.type(BENIGN[:200])

        start_cpu = {k: cpu_s(a.pid) for k, (a, _) in agents.items()}
        began = time.monotonic()
        while time.monotonic() - began < args.seconds:
            desktop.front("Lesson")
            scene("lesson page left open", 90)
            desktop.front("Chat")
            scene("chat changing every second", 60)
            scene("switching windows every 15 s", 60, switching)
            scene("typing ordinary text", 60, typing)
            desktop.front("Lesson")
            scene("nothing changing", 30)
        wall = time.monotonic() - began
        total = {k: cpu_s(a.pid) - start_cpu[k] for k, (a, _) in agents.items()}
        rss = {k: peak_rss_mb(a.pid) for k, (a, _) in agents.items()}
    finally:
        desktop.close()
        for agent, _ in agents.values():
            stop_agent(agent)
        x.stop()

    log_on = agents["on"][1].read_text()
    reads = re.search(r"screen reader: (\d+) window read\(s\) of (\d+) poll\(s\), median (\d+) ms "
                      r"per read \((\d+) ms of OCR CPU", log_on)
    kinds = re.search(r"(\d+) of them the changed lines only; (\d+) unchanged, (\d+) rate-limited, "
                      r"(\d+) back-as-read and (\d+) caret", log_on)
    events = len(list((tmp / "on" / "spool").glob("*.evt")))
    width = 34
    print(f"{wall / 60:.1f} minutes of scripted use, two agents on one display")
    print(f"{'scene':<{width}} {'minutes':>8} {'screen on':>12} {'screen off':>12} {'added':>8}")
    for name in per_scene:
        on, off = (100 * per_scene[name][k] / seconds[name] for k in ("on", "off"))
        print(f"{name:<{width}} {seconds[name] / 60:>8.1f} {on:>11.2f}% {off:>11.2f}% "
              f"{on - off:>7.2f}%")
    on, off = 100 * total["on"] / wall, 100 * total["off"] / wall
    print(f"{'whole run':<{width}} {wall / 60:>8.1f} {on:>11.2f}% {off:>11.2f}% {on - off:>7.2f}%")
    print(f"{'peak RSS (VmHWM)':<{width}} {'':>8} {rss['on']:>9.0f} MB {rss['off']:>9.0f} MB")
    if reads:
        print(f"reads {reads.group(1)} of {reads.group(2)} polls, median {reads.group(3)} ms per "
              f"read ({reads.group(4)} ms OCR CPU); sealed events {events} (benign desktop: 0)")
    if kinds:
        print(f"reads of the changed lines only {kinds.group(1)}; polls skipped: unchanged "
              f"{kinds.group(2)}, rate-limited {kinds.group(3)}, window back as read "
              f"{kinds.group(4)}, caret or noise {kinds.group(5)}")
    print(f"screen_hour_cpu_pct={on:.2f} baseline_cpu_pct={off:.2f} added_pct={on - off:.2f} "
          f"reads={reads.group(1) if reads else 0} rss_mb={rss['on']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`vigil demo`: the whole system on one machine, for a newcomer or for CI.

It initialises a collector with two demo keyholders (head and technician), publishes the policy,
serves the collector and its dashboard on loopback, enrols an agent, runs it on the real desktop
or on a virtual one (Xvfb + openbox), types trigger and harmless sentences into a window with
xdotool, and shows where to look. Every step uses the real commands and processes.

With ``check=True`` it exits as soon as a capture has reached the collector and been opened with
the head's key, or fails after ``timeout`` seconds. Either way it stops every process it started
and leaves its directories in place.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TextIO

from vigil._demo import agent, collector, typist
from vigil._demo.check import OpenedCapture, open_captures, stored_event_ids
from vigil._demo.display import start_virtual_display, x_env
from vigil._demo.errors import DemoError
from vigil._demo.processes import Child, Children, wait_until

__all__ = ["DemoError", "DemoOptions", "run"]

Say = Callable[[str], None]

# After typing, how long to wait for a capture before typing the triggers again: the agent's
# keyboard hook may not have been listening yet the first time.
RETYPE_AFTER_S = 20.0


@dataclass(frozen=True)
class DemoOptions:
    directory: Path | None = None  # default: a new directory under the system's temp dir
    port: int = 0  # 0: any free port
    check: bool = False
    timeout: float = 120.0
    virtual_display: bool = False  # even when $DISPLAY is set


def _existing_port(data_dir: Path) -> int | None:
    try:
        return int(tomllib.loads((data_dir / "settings.toml").read_text())["port"])
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError):
        return None


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(options: DemoOptions, out: TextIO) -> int:
    base = options.directory or Path(tempfile.mkdtemp(prefix="vigil-demo-"))
    base = base.resolve()
    data_dir, agent_dir = base / "collector", _new_run_dir(base / "agent")
    port = _existing_port(data_dir) or options.port or collector.free_port()
    children = Children(base / "logs", tag={"VIGIL_DEMO_DIR": str(base)})
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # Ctrl-C must stop the demo even when it was started with SIGINT ignored (a background job
    # of a shell without job control passes SIG_IGN on, and Python then installs no handler).
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    try:
        say(f"data_dir={data_dir}")
        say("setting up the collector (keys are derived slowly on purpose: a few seconds)")
        passwords = collector.prepare(data_dir, port)
        collector_child, url = collector.serve(children, data_dir, port)
        say(f"collector and dashboard running at {url}/")

        real = os.environ.get("DISPLAY")
        if real and not (options.check or options.virtual_display):
            display = real
            say(f"using your display {display}")
        else:
            display = start_virtual_display(children)
            say(f"started a virtual display {display} (Xvfb + openbox)")
        dirs = agent.AgentDirs.under(agent_dir)
        say(f"spool_dir={dirs.spool}")

        agent.enrol(collector.enrol_token(data_dir), dirs)
        agent_child = agent.start(children, dirs, display)
        env = x_env(display)
        try:
            wait_until(lambda: (agent_child.check_alive(), agent.has_reported(dirs))[1], 30,
                       "the agent's first heartbeat", interval=0.5, log=agent_child.log)
        except DemoError:
            if not agent_child.alive():
                raise
            say("the agent has not reported yet; typing anyway")
        say("agent enrolled and running; typing into a window:")
        typist.open_window(children, env)
        for sentence in typist.TRIGGERS + typist.BENIGN:
            say(f"  {'trigger' if sentence in typist.TRIGGERS else 'benign '}  {sentence}")
        earlier = set(stored_event_ids(data_dir))  # from a previous demo in the same directory
        _type_until_captured(env, data_dir, agent_child, earlier, options.timeout)

        if options.check:
            return _check(data_dir, passwords, earlier, say)
        _banner(url, passwords, base, say)
        _follow(data_dir, (collector_child, agent_child), earlier, say)
        return 0
    except KeyboardInterrupt:
        say("stopping")
        return 130 if not options.check else 1
    finally:
        children.stop_all()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        say(f"stopped everything the demo started; its files are left in {base}")


def _new_run_dir(parent: Path) -> Path:
    """A fresh agent directory per run: a rerun in the same directory must capture anew, not
    count repeats against the previous run's flood-control state."""
    n = 1
    while (parent / f"run-{n}").exists():
        n += 1
    return parent / f"run-{n}"


def _type_until_captured(env: dict[str, str], data_dir: Path, agent_child: Child,
                         earlier: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    sentences = typist.TRIGGERS + typist.BENIGN
    while True:
        typist.type_sentences(env, sentences)
        wait_s = min(RETYPE_AFTER_S, max(1.0, deadline - time.monotonic()))
        try:
            wait_until(lambda: _captured(data_dir, agent_child, earlier), wait_s,
                       "a capture to reach the collector", interval=0.5, log=agent_child.log)
            return
        except DemoError:
            if time.monotonic() >= deadline:
                raise
        sentences = typist.TRIGGERS


def _captured(data_dir: Path, agent_child: Child, earlier: set[str]) -> list[str]:
    agent_child.check_alive()
    return [e for e in stored_event_ids(data_dir) if e not in earlier]


def _check(data_dir: Path, passwords: dict[str, str], earlier: set[str], say: Say) -> int:
    opened: list[OpenedCapture] = [
        cap for cap in open_captures(data_dir, "head", passwords["head"])
        if cap.event_id not in earlier
    ]
    if not opened:
        raise DemoError("no capture could be opened with the head's key")
    for cap in opened:
        say(f"opened {cap.event_id}: {cap.category} severity {cap.severity} rule {cap.rule}, "
            f"{cap.media_type} {cap.image_size[0]}x{cap.image_size[1]}, context {cap.context!r}")
    say(f"check passed: {len(opened)} capture(s) reached the collector "
        "and opened with the head's key")
    return 0


def _banner(url: str, passwords: dict[str, str], base: Path, say: Say) -> None:
    lines = [
        "",
        f"Open the dashboard: {url}/  (a self-signed certificate: accept it in the browser)",
        "Sign in, then unlock your key with the same password to see the screenshots:",
        *(f"  {name:<11} password {pw}" for name, pw in passwords.items()),
        f"The passwords are also in {base / 'collector' / collector.PASSWORDS_FILE}.",
        "Type in the 'Homework notes' window to make more captures. Ctrl-C stops everything.",
        "",
    ]
    for line in lines:
        say(line)


def _follow(data_dir: Path, vital: tuple[Child, ...], earlier: set[str], say: Say) -> None:
    """Report this run's captures (clear metadata only) until Ctrl-C."""
    seen = set(earlier)
    while True:
        for child in vital:
            child.check_alive()
        for event_id in stored_event_ids(data_dir):
            if event_id not in seen:
                seen.add(event_id)
                say(f"new capture {event_id} stored (open it in the dashboard)")
        time.sleep(2)

"""The processes the demo starts, and stopping every one of them (and only them) on the way out."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from vigil._demo.errors import DemoError

__all__ = ["Child", "Children", "last_line", "wait_until"]

T = TypeVar("T")


def wait_until(pred: Callable[[], T], timeout: float, what: str, interval: float = 0.1,
               log: Path | None = None) -> T:
    """Poll ``pred`` until it returns something truthy, or fail with a one-line DemoError."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            line = last_line(log)
            hint = f" (last log line: {line})" if line else ""
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}{hint}")
        time.sleep(interval)


def last_line(log: Path | None) -> str:
    if log is None:
        return ""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise DemoError(f"{self.name} exited with code {self.proc.returncode}: "
                            f"{last_line(self.log) or 'no output'} (log: {self.log})")


@dataclass
class Children:
    """Started processes, each in its own session so a stray signal never reaches just half."""

    log_dir: Path
    # Set in every child's environment, so that anyone can find what this demo started.
    tag: dict[str, str] = field(default_factory=dict)
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
              pass_fds: Sequence[int] = ()) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        env = {**(os.environ if env is None else env), **self.tag}
        with open(log, "ab") as out:
            try:
                proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True,
                                        pass_fds=tuple(pass_fds))
            except OSError as exc:
                raise DemoError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from None
        child = Child(name, proc, log)
        self.started.append(child)
        return child

    def stop_all(self, grace: float = 10.0) -> None:
        """Newest first: the agent before the collector, the collector before the display."""
        for child in reversed(self.started):
            self._stop(child, grace)
        self.started.clear()

    @staticmethod
    def _stop(child: Child, grace: float) -> None:
        if child.proc.poll() is not None:
            return
        try:
            os.killpg(child.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            child.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait(5)

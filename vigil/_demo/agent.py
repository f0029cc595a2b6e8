"""Enrol and run a demo agent whose config and spool live inside the demo's directory."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vigil._demo.collector import Enrolment, vigil_argv
from vigil._demo.display import x_env
from vigil._demo.errors import DemoError
from vigil._demo.processes import Child, Children

__all__ = ["AgentDirs", "enrol", "has_reported", "start"]


@dataclass(frozen=True)
class AgentDirs:
    config: Path
    spool: Path

    @classmethod
    def under(cls, base: Path) -> AgentDirs:
        return cls(config=base / "config", spool=base / "spool")


def enrol(enrolment: Enrolment, dirs: AgentDirs) -> None:
    done = subprocess.run(vigil_argv(*enrolment.argv, "--config-dir", str(dirs.config)),
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DemoError(f"enrolling the agent failed: {why}")


def start(children: Children, dirs: AgentDirs, display: str) -> Child:
    return children.start("agent", vigil_argv("agent", "run", "--config-dir", str(dirs.config),
                                              "--spool-dir", str(dirs.spool)), env=x_env(display))


def has_reported(dirs: AgentDirs) -> bool:
    """True once the running agent has sent a heartbeat (its hooks start before that)."""
    done = subprocess.run(vigil_argv("agent", "status", "--json", "--config-dir", str(dirs.config),
                                     "--spool-dir", str(dirs.spool)),
                          capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        return False
    try:
        return bool(json.loads(done.stdout).get("last_heartbeat"))
    except ValueError:
        return False

"""Enrol and run a demo agent whose config and spool live inside the demo's directory.

The agent finds its directories with platformdirs, which follows the XDG variables, so the demo
points those at its own directory instead of the user's home.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vigil._demo.collector import Enrolment, vigil_argv
from vigil._demo.display import x_env
from vigil._demo.errors import DemoError
from vigil._demo.processes import Child, Children

__all__ = ["agent_env", "spool_dir", "enrol", "start"]


def agent_env(agent_dir: Path, display: str) -> dict[str, str]:
    env = x_env(display)
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_STATE_HOME", "state"), ("XDG_CACHE_HOME", "cache")):
        env[var] = str(agent_dir / sub)
    return env


def spool_dir(env: dict[str, str]) -> Path:
    """Where the agent will spool, asked of the agent's own settings under the same environment."""
    done = subprocess.run(
        [sys.executable, "-c", "from agent.settings import default_spool_dir as d; print(d())"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    if done.returncode != 0:
        raise DemoError("cannot load the agent's settings: "
                        + (done.stderr.strip().splitlines() or ["no message"])[-1])
    return Path(done.stdout.strip())


def enrol(enrolment: Enrolment, env: dict[str, str]) -> None:
    done = subprocess.run(vigil_argv(*enrolment.argv), env=env, capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DemoError(f"enrolling the agent failed: {why}")


def start(children: Children, env: dict[str, str]) -> Child:
    return children.start("agent", vigil_argv("agent", "run"), env=env)

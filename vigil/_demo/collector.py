"""Set up a demo collector (data directory, keyholders, policy, enrolment token) and serve it.

Everything goes through the real `vigil collector ...` commands, run as separate processes, so
the demo exercises exactly what an administrator types (docs/admin-guide.md).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import ssl
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vigil._demo.errors import DemoError
from vigil._demo.processes import Child, Children, wait_until

__all__ = ["KEYHOLDERS", "Enrolment", "enrol_token", "free_port", "prepare", "serve", "vigil_argv"]

# The two keyholders DESIGN.md names: the head reviews, the technician triages.
KEYHOLDERS = (("head", "head"), ("technician", "technician"))
PASSWORDS_FILE = "demo-passwords.json"


def vigil_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "vigil", *args]


def _run(step: str, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
         timeout: float = 120.0) -> str:
    try:
        done = subprocess.run(vigil_argv(*args), input=stdin, capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise DemoError(f"{step}: no answer after {timeout:.0f}s") from None
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DemoError(f"{step} failed: {why}")
    return done.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _passwords(data_dir: Path) -> dict[str, str]:
    """Fresh random passwords for a new demo, or the ones printed when this directory was made."""
    path = data_dir / PASSWORDS_FILE
    if path.exists():
        return dict(json.loads(path.read_text()))
    passwords = {name: secrets.token_urlsafe(12) for name, _ in KEYHOLDERS}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(passwords, out)
    return passwords


def prepare(data_dir: Path, port: int) -> dict[str, str]:
    """Initialise the collector and its keyholders once, publish the policy; the passwords."""
    url = f"https://127.0.0.1:{port}"
    if not (data_dir / "settings.toml").exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        _run("vigil collector init", "collector", "init", "--data", str(data_dir),
             "--port", str(port), "--public-url", url)
        passwords = _passwords(data_dir)
        for name, role in KEYHOLDERS:
            key = _keyholder_key(data_dir, name, role, passwords[name])
            _register(data_dir, key)
        _run("publishing the policy", "collector", "policy", "publish", "--data", str(data_dir),
             "--keyholder", "technician", "--password-stdin",
             stdin=passwords["technician"] + "\n")
    return _passwords(data_dir)


def keyholder_machine(data_dir: Path) -> Path:
    """Where the demo's keyholders make their keys, standing in for their own machines (inside
    the demo's directory only so that removing the demo removes them too)."""
    return data_dir / "keyholders-own-machines"


def _keyholder_key(data_dir: Path, name: str, role: str, password: str) -> Path:
    """The keyholder makes their key on their own machine, as docs/admin-guide.md says."""
    home = keyholder_machine(data_dir)
    home.mkdir(mode=0o700, exist_ok=True)
    path = home / f"{name}.key"
    if not path.exists():
        _run(f"making the {role}'s key", "keys", "create", "--name", name, "--role", role,
             "--out", str(path), "--password-stdin", stdin=password + "\n")
    return path


def _register(data_dir: Path, key: Path) -> None:
    """Give the collector the key file the keyholder made, as a school does: the account's
    password is the key's, proved at the keyholder's first sign-in, never typed here."""
    _run(f"adding the keyholder key {key.name}", "collector", "keyholder", "add",
         "--data", str(data_dir), "--key", str(key))


def _healthy(url: str) -> bool:
    # Loopback to the collector we just started; its certificate is pinned by the agent, not here.
    ctx = ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(f"{url}/healthz", context=ctx, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def serve(children: Children, data_dir: Path, port: int,
          timeout: float = 60.0) -> tuple[Child, str]:
    url = f"https://127.0.0.1:{port}"
    child = children.start("collector", vigil_argv("collector", "serve", "--data", str(data_dir),
                                                   "--host", "127.0.0.1", "--port", str(port)))

    def up() -> bool:
        child.check_alive()
        return _healthy(url)

    wait_until(up, timeout, f"the collector to answer at {url}", interval=0.2, log=child.log)
    return child, url


@dataclass(frozen=True)
class Enrolment:
    """The agent command printed by `vigil collector enrol-token`, split into its pins."""

    argv: tuple[str, ...]  # "agent", "enrol", "--collector", URL, ...


def enrol_token(data_dir: Path) -> Enrolment:
    out = _run("making an enrolment token", "collector", "enrol-token", "--data", str(data_dir),
               "--uses", "1", "--expires", "1h")
    lines = [ln for ln in out.splitlines() if ln.startswith("vigil agent enrol ")]
    if not lines:
        raise DemoError("`vigil collector enrol-token` printed no `vigil agent enrol` line")
    return Enrolment(tuple(shlex.split(lines[-1])[1:]))

"""Which graphical sessions are there, and whose are they.

In order: the sessions given explicitly (``Settings.sessions``, ":N=USER,..." or
``vigil agent supervise --display :N --user NAME``: machines without logind, and the tests on
Xvfb); else logind (``loginctl list-sessions`` / ``show-session``: local, active or online, type
x11, with a display; DISPLAY and XAUTHORITY taken from the session leader's environment); else
the X displays in use (/tmp/.X11-unix/X<N>) with the user owning most of the processes whose
environment names that display.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

try:
    import pwd
except ImportError:  # Windows: agent/supervisor/windows.py finds the sessions there
    pwd = None  # type: ignore[assignment]

__all__ = ["Session", "discover", "parse_explicit"]

log = logging.getLogger(__name__)

X11_DIR = Path("/tmp/.X11-unix")
_DISPLAY = re.compile(r":(\d+)(?:\.\d+)?\Z")


@dataclass(frozen=True)
class Session:
    user: str
    uid: int
    gid: int
    home: str
    display: str
    xauthority: str | None = None
    session_id: str = ""  # logind's id, or "" for explicit and X-socket sessions

    @property
    def key(self) -> str:
        return f"{self.user}@{self.display}"


def _x_socket(display: str) -> Path | None:
    m = _DISPLAY.match(display)
    return X11_DIR / f"X{m.group(1)}" if m else None


def _display_live(display: str) -> bool:
    sock = _x_socket(display)
    return sock is not None and sock.exists()


def _session_for(user: str, display: str, xauthority: str | None = None,
                 session_id: str = "") -> Session | None:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        log.warning("no such user %r for display %s", user, display)
        return None
    if xauthority is None:
        candidate = Path(pw.pw_dir) / ".Xauthority"
        xauthority = str(candidate) if candidate.exists() else None
    return Session(user, pw.pw_uid, pw.pw_gid, pw.pw_dir, display, xauthority, session_id)


def parse_explicit(spec: str) -> list[tuple[str, str]]:
    """':5=alice, :6=bob' -> [(':5', 'alice'), (':6', 'bob')]."""
    pairs = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        display, sep, user = item.partition("=")
        if not sep or not _DISPLAY.match(display.strip()) or not user.strip():
            raise ValueError(f"session {item!r} is not :N=USER")
        pairs.append((display.strip(), user.strip()))
    return pairs


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def _logind() -> list[Session] | None:
    """The local X11 sessions logind knows, or None if logind cannot be asked."""
    if shutil.which("loginctl") is None:
        return None
    try:
        listed = subprocess.run(["loginctl", "list-sessions", "--no-legend"], capture_output=True,
                                text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if listed.returncode != 0:
        return None
    sessions = []
    for line in listed.stdout.splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            shown = subprocess.run(
                ["loginctl", "show-session", fields[0], "-p", "Name", "-p", "Display", "-p",
                 "Type", "-p", "State", "-p", "Remote", "-p", "Class", "-p", "Leader"],
                capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        props = dict(p.partition("=")[::2] for p in shown.stdout.splitlines())
        if (props.get("Class") != "user" or props.get("Remote") == "yes"
                or props.get("State") not in ("active", "online")):
            continue
        env = _environ(int(props["Leader"])) if props.get("Leader", "").isdigit() else {}
        display = props.get("Display") or env.get("DISPLAY", "")
        if not display or props.get("Type") not in ("x11", "wayland"):
            continue  # a Wayland session counts only with XWayland (a display)
        found = _session_for(props.get("Name", ""), display, env.get("XAUTHORITY"), fields[0])
        if found is not None:
            sessions.append(found)
    return sessions


def _x_displays() -> list[Session]:
    """Each X display in use, with the (non-root) user owning most processes that use it."""
    if not X11_DIR.is_dir():
        return []
    displays = [f":{p.name[1:]}" for p in X11_DIR.iterdir() if re.fullmatch(r"X\d+", p.name)]
    owners: dict[str, Counter[int]] = {d: Counter() for d in displays}
    xauth: dict[tuple[str, int], str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        env = _environ(int(entry.name))
        display = env.get("DISPLAY", "").split(".")[0]
        if display not in owners:
            continue
        try:
            uid = entry.stat().st_uid
        except OSError:
            continue
        if uid == 0:
            continue
        owners[display][uid] += 1
        if env.get("XAUTHORITY"):
            xauth.setdefault((display, uid), env["XAUTHORITY"])
    sessions = []
    for display, counts in sorted(owners.items()):
        if not counts:
            continue
        uid = counts.most_common(1)[0][0]
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            continue
        found = _session_for(name, display, xauth.get((display, uid)))
        if found is not None:
            sessions.append(found)
    return sessions


def discover(explicit: str) -> list[Session]:
    """The graphical sessions now (see the module's docstring for the order)."""
    if explicit.strip():
        return [s for display, user in parse_explicit(explicit)
                if _display_live(display) and (s := _session_for(user, display)) is not None]
    found = _logind()
    if found is not None:
        return found
    return _x_displays()


def session_alive(session: Session, explicit: str) -> bool:
    return any(s.key == session.key for s in discover(explicit))


__all__.append("session_alive")

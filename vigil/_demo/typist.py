"""Open a window and type sentences into it with xdotool, as a pupil would at the keyboard."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from vigil._demo.errors import DemoError
from vigil._demo.processes import Child, Children, wait_until

__all__ = ["BENIGN", "TRIGGERS", "WINDOW_TITLE", "open_window", "type_sentences"]

WINDOW_TITLE = "Homework notes - Vigil demo"

# Each should fire a default rule (suicide, bullying, violence).
TRIGGERS = (
    "honestly nobody would notice, i just want to kill myself",
    "you are such a loser, go and kill yourself",
    "im going to shoot up the school on monday",
)
# Each must not fire: ordinary school work, and the exclusions and "unless" contexts at work.
BENIGN = (
    "The mitochondria is the powerhouse of the cell.",
    "That sketch was so funny I nearly killed myself laughing.",
    "We are playing Scunthorpe at football on Saturday.",
    "In sex education today we talked about consent.",
)


def _xdotool(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        return ""
    return done.stdout.strip()


def _window_argv() -> list[str]:
    # The Tk notepad shows the typed text in the screenshots; without tkinter (Debian package
    # python3-tk) an xmessage window still receives the keys, so the demo still works.
    if importlib.util.find_spec("tkinter") is not None:
        return [sys.executable, "-m", "vigil._demo.notepad", WINDOW_TITLE]
    return ["xmessage", "-title", WINDOW_TITLE, "-geometry", "900x300+60+60",
            "Vigil demo: the sentences are typed here (install python3-tk to see them)"]


def open_window(children: Children, env: dict[str, str],
                timeout: float = 30.0) -> tuple[Child, str]:
    """Start the notepad and wait until it is the active window; return it and its window id."""
    child = children.start("notepad", _window_argv(), env=env)

    def found() -> str:
        child.check_alive()
        ids = _xdotool(env, "search", "--name", f"^{WINDOW_TITLE}$").split()
        return ids[0] if ids else ""

    wid = wait_until(found, timeout, f"the window {WINDOW_TITLE!r}", log=child.log)

    def active() -> bool:
        if _xdotool(env, "getactivewindow") == wid:
            return True
        _xdotool(env, "windowactivate", wid)
        return False

    wait_until(active, timeout, f"the window {WINDOW_TITLE!r} to be active")
    return child, wid


def type_sentences(env: dict[str, str], sentences: tuple[str, ...], delay_ms: int = 30) -> None:
    for sentence in sentences:
        done = subprocess.run(["xdotool", "type", "--delay", str(delay_ms), sentence], env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise DemoError(f"xdotool could not type: {done.stderr.strip() or done.returncode}")
        # Enter ends the utterance, as a pupil finishing a line would.
        subprocess.run(["xdotool", "key", "Return"], env=env, capture_output=True, timeout=30,
                       check=False)

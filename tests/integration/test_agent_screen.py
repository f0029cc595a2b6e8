"""What is on the screen, in the real agent: Xvfb + openbox, a real collector over TLS.

A window showing a groomer's message (never typed by anyone: only shown) becomes a sealed event
with source ``screen`` within 5 s of appearing, in several fonts and sizes, light and dark; a
window of a history lesson does not (proved by a positive that follows it, judged after it); and
the same message left open, re-read as the window changes and as the focus comes back to it,
stays one event.

The windows are xmessage with the X core font 10x20 (FIELD-NOTES.md) and Tk labels in the fonts
Debian ships (DejaVu, URW base-35 through fontconfig). Screen reading is switched on by the
signed policy of this module's collector (``[policy] screen``), and off under the default
policy; the agents' busy pause is switched off (``VIGIL_AGENT_SCREEN_BUSY_PCT=100``) because
other suites share this machine's two cores, and is tested in tests/unit/test_agent_screen.py.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.faults import AgentRun
from tests.fixtures.x11 import X11, XWindow, wait_until
from tests.integration.test_agent_x11 import open_event, stored_events

pytestmark = [pytest.mark.x11, pytest.mark.slow,
              pytest.mark.skipif(shutil.which("tesseract") is None,
                                 reason="tesseract-ocr is not installed (scripts/system-deps.sh)")]

DEADLINE_S = 5.0  # issue 16: p95 from a harmful message appearing to a sealed event

# Shows lines in a font, light or dark; with "tick", a block that moves every 0.7 s
# (a window whose content keeps changing, so the reader re-reads it every interval).
_TK = """
import sys, tkinter as tk
title, family, size, fg, bg, tick, *lines = sys.argv[1:]
root = tk.Tk()
root.title(title)
root.geometry("760x300+120+120")
root.configure(bg=bg)
tk.Label(root, text="\\n\\n".join(lines), font=(family, int(size)), fg=fg, bg=bg,
         justify="left", anchor="nw").pack(fill="both", expand=True, padx=16, pady=16)
if tick == "1":
    block = tk.Frame(root, width=300, height=60, bg="#707070")
    block.place(x=400, y=220)
    def flip(on=[False]):
        on[0] = not on[0]
        block.place(x=60 if on[0] else 420, y=220)
        root.after(700, flip)
    flip()
root.mainloop()
"""

LIGHT, DARK = ("#141414", "#ffffff"), ("#e6e6e6", "#1e1e1e")
# (how it is drawn, the message, the list rule it must fire)
MESSAGES = [
    ("xmessage 10x20", ("hey are you still up?", "dont tell your parents about me ok"),
     "grooming.dont_tell_your_parents"),
    ("DejaVu Sans 11 light", ("lol ok", "this is our little secret"),
     "grooming.our_little_secret"),
    ("DejaVu Serif 16 dark", ("you should meet me alone after school",),
     "grooming.meet_me_alone"),
    ("Nimbus Mono PS 13 dark", ("its fine just come alone on saturday",), "grooming.come_alone"),
]
HISTORY = ("Year 9 History: the Battle of the Somme",
           "In July 1916 British and French armies attacked German lines",
           "More than a million soldiers were wounded or killed",
           "Write a paragraph on why the generals kept attacking")


def show(x11: X11, agent: AgentRun, title: str, style: str, lines: tuple[str, ...],
         tick: bool = False) -> tuple[XWindow, float]:
    """Open a window showing ``lines`` (xmessage, or Tk in "Family Size light|dark")."""
    if style.startswith("xmessage"):
        argv = ["xmessage", "-fn", "10x20", "-title", title, "-geometry", "760x200+120+120",
                "\n".join(lines)]
    else:
        *family, size, mode = style.split()
        fg, bg = DARK if mode == "dark" else LIGHT
        argv = [sys.executable, "-c", _TK, title, " ".join(family), size, fg, bg,
                "1" if tick else "0", *lines]
    return open_in_front(x11, agent, argv, title)


def open_in_front(x11: X11, agent: AgentRun, argv: list[str], title: str
                  ) -> tuple[XWindow, float]:
    """Start ``argv`` (a window titled ``title``), bring it to the front, wait until the agent
    has seen it there; the window and when it was first seen mapped (the clock's start)."""
    offset = len(agent.log())
    proc = subprocess.Popen(argv, env=x11.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wid = wait_until(lambda: x11.find_window(title), 15, interval=0.01, what=f"window {title!r}")
    shown = time.monotonic()
    win = XWindow(title, int(wid), proc)  # type: ignore[call-overload]
    x11.windows.append(win)
    x11.activate(win)
    agent.wait_focus(win.wid, offset)
    return win, shown


def wait_read(agent: AgentRun, win: XWindow) -> None:
    """Wait for the reader's debug line (counts only) saying it read window ``win``: a window
    that loses the focus before it settled is never read, and a negative must have been."""
    wait_until(lambda: f"screen: read window {win.wid:#x} " in agent.log(), 30, interval=0.05,
               what=f"the reader to read window {win.title!r}")


def screen_events(server: Any) -> list[Any]:
    return [r for r in stored_events(server) if r.source == "screen"]


def wait_rule(server: Any, rule: str, deadline: float) -> Any:
    """The stored event of ``rule``, waited for until the monotonic ``deadline`` (then fail)."""
    return wait_until(lambda: next((r for r in stored_events(server) if r.rule == rule), None),
                      max(0.0, deadline - time.monotonic()), interval=0.05,
                      what=f"an event of {rule} at the collector")


@pytest.fixture
def collector_server(collector_factory: Callable[..., Any]) -> Any:
    """This module's collector: its signed policy switches screen reading on."""
    from collector.settings import PolicySettings

    return collector_factory(policy=PolicySettings(screen={"enabled": True, "interval_s": 5}))


@pytest.fixture
def screen_agent(agent_factory: Callable[..., AgentRun], collector_server: Any) -> AgentRun:
    agent = agent_factory(VIGIL_AGENT_SCREEN_BUSY_PCT="100")
    agent.enrol(collector_server)
    agent.start()
    try:
        wait_until(lambda: "screen reader on" in agent.log(), 30, what="the screen reader to start")
        wait_until(lambda: "sentence model loaded" in agent.log(), 60, what="the model to load")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the agent's log:\n{agent.log()[-4000:]}") from None
    return agent


def test_a_shown_grooming_message_is_a_sealed_screen_event_within_5_s(
        screen_agent: AgentRun, x11: X11, collector_server: Any) -> None:
    latencies = []
    for i, (style, lines, rule) in enumerate(MESSAGES):
        title = f"Messages {i}"
        win, shown = show(x11, screen_agent, title, style, lines)
        # At the collector, not only in the spool: sealed, uploaded and stored within 5 s.
        row = wait_rule(collector_server, rule, shown + DEADLINE_S)
        latencies.append(time.monotonic() - shown)
        assert (row.source, row.category) == ("screen", "grooming")
        header = open_event(collector_server, row).header
        assert header["source"] == "screen" and header["detector"] == "list"
        assert header["title"] == title
        phrase = rule.split(".", 1)[1].replace("_", " ")
        assert header["match"]["text"].lower() == phrase
        # the matched context only: the sentence it is in, not the window's whole text
        assert phrase in header["context"].lower()
        win.close()
    print("window shown -> event at the collector, s:", [f"{t:.2f}" for t in latencies])
    # Nothing the reader saw is in the agent's log (rule ids are; the lines are not).
    log = screen_agent.log()
    assert not any(line in log for _, lines, _ in MESSAGES for line in lines)


def test_a_history_lesson_on_screen_does_not_fire(screen_agent: AgentRun, x11: X11,
                                                  collector_server: Any) -> None:
    lesson, _ = show(x11, screen_agent, "History - Year 9", "DejaVu Serif 14 light", HISTORY)
    wait_read(screen_agent, lesson)
    # The positive that follows holds a line the sentence model fires on; the judge takes
    # utterances in order, so once its model event is in, the lesson was judged before it.
    show(x11, screen_agent, "Chat", "DejaVu Sans 12 light",
         ("you looked really grown up in that photo", "this is our little secret"))
    wait_rule(collector_server, "grooming.our_little_secret", time.monotonic() + 30)
    wait_rule(collector_server, "model:grooming", time.monotonic() + 30)
    rows = stored_events(collector_server)
    assert {r.rule for r in rows} == {"grooming.our_little_secret", "model:grooming"}
    assert all(open_event(collector_server, r).header["title"] == "Chat" for r in rows)


def test_the_same_message_left_open_is_one_event(screen_agent: AgentRun, x11: X11,
                                                 collector_server: Any) -> None:
    win, _ = show(x11, screen_agent, "Chat", "DejaVu Sans 12 dark",
                  ("hey", "dont tell your parents about me ok"), tick=True)
    wait_rule(collector_server, "grooming.dont_tell_your_parents", time.monotonic() + 30)

    def reads() -> int:
        return screen_agent.log().count(f"screen: read window {win.wid:#x}")

    # The window keeps changing (the ticking block), so it is re-read every interval (5 s);
    # focus away and back reads it again at once.
    first = reads()
    wait_until(lambda: reads() >= first + 2, 30, interval=0.2, what="two more reads of the window")
    show(x11, screen_agent, "Notes", "xmessage", ("Vigil test window",))
    offset = len(screen_agent.log())
    x11.activate(win)
    screen_agent.wait_focus(win.wid, offset)
    wait_until(lambda: reads() >= first + 3, 30, interval=0.2, what="a read after the focus")
    rows = stored_events(collector_server)
    assert [r.rule for r in rows] == ["grooming.dont_tell_your_parents"]
    assert screen_events(collector_server) == rows
    assert not screen_agent.spooled()


# --- the image check: never explicit, never a person (tests/fixtures/screen_images.py) ----------

_TK_IMAGE = """
import sys, tkinter as tk
root = tk.Tk()
root.title(sys.argv[1])
root.geometry("700x700+120+60")
photo = tk.PhotoImage(file=sys.argv[2])
tk.Label(root, image=photo, bg="white").pack(fill="both", expand=True)
root.mainloop()
"""


def show_image(x11: X11, agent: AgentRun, title: str, image: Any, tmp: Any) -> tuple[XWindow, float]:
    path = tmp / f"{title}.png"
    image.save(path)
    return open_in_front(x11, agent, [sys.executable, "-c", _TK_IMAGE, title, str(path)], title)


def test_the_image_check_fires_on_the_synthetic_shape_and_not_on_neutral_images(
        screen_agent: AgentRun, x11: X11, collector_server: Any, tmp_path: Any) -> None:
    from tests.fixtures.screen_images import positive_shape

    # Neutral: the same ellipse without its dot (the model scores it about 0.2).
    neutral, _ = show_image(x11, screen_agent, "Art - shapes", positive_shape(dot=False),
                            tmp_path)
    wait_read(screen_agent, neutral)
    _, shown = show_image(x11, screen_agent, "Art - more shapes", positive_shape(), tmp_path)
    row = wait_rule(collector_server, "image:nudity", shown + DEADLINE_S)
    print(f"image shown -> event at the collector: {time.monotonic() - shown:.2f} s")
    assert (row.source, row.category, row.severity) == ("screen", "pornography", 5)
    header = open_event(collector_server, row).header
    assert header["detector"] == "image" and header["score"] >= 0.5
    assert header["match"]["text"] == "FEMALE_BREAST_EXPOSED"
    assert header["title"] == "Art - more shapes" and header["context"] == ""
    # The reader checks frames in order, so the neutral window was checked before: one event.
    assert [r.rule for r in stored_events(collector_server)] == ["image:nudity"]


def test_what_the_pupil_types_is_not_fired_again_when_it_shows_on_screen(
        screen_agent: AgentRun, x11: X11, collector_server: Any) -> None:
    import re

    # A chat's input box: a Tk entry with the keyboard focus shows what is typed and keeps it.
    entry = ("import sys, tkinter as tk\nroot = tk.Tk(); root.title(sys.argv[1])\n"
             "root.geometry('700x160+120+120')\ne = tk.Entry(root, width=50, font=('DejaVu Sans', 14))\n"
             "e.pack(padx=10, pady=20); e.focus_force(); root.mainloop()\n")
    win, _ = open_in_front(x11, screen_agent, [sys.executable, "-c", entry, "Chat - typing"],
                           "Chat - typing")
    offset = len(screen_agent.log())
    x11.type("dont tell your parents about me")
    (row,) = wait_until(lambda: stored_events(collector_server), 30, interval=0.1,
                        what="the typed event at the collector")  # type: ignore[misc]
    assert (row.rule, row.source) == ("grooming.dont_tell_your_parents", "typed")
    # The reader reads the entry once the typing has settled and finds the line new ...
    line = re.compile(rf"screen: read window {win.wid:#x} in \d+ ms, [1-9]\d* new line")
    wait_until(lambda: line.search(screen_agent.log()[offset:]), 30, interval=0.2,
               what="a read of the entry with the typed line in it")
    # ... and its match is the pupil's own typing shown back: no screen event, no count.
    wait_until(lambda: not screen_agent.spooled(), 30, what="the spool to empty")
    assert [(r.rule, r.source, r.repeat_count) for r in stored_events(collector_server)] == \
        [("grooming.dont_tell_your_parents", "typed", 1)]


def test_under_the_default_policy_the_screen_is_not_read(
        agent_factory: Callable[..., AgentRun], collector_factory: Callable[..., Any],
        x11: X11) -> None:
    # The school switches screen reading on in its signed policy; until it does, a groomer's
    # message on screen is not read. Typing still is: the agent runs, its status says why.
    server = collector_factory()
    agent = agent_factory(VIGIL_AGENT_SCREEN_BUSY_PCT="100")
    agent.enrol(server)
    agent.start()
    wait_until(lambda: "sentence model loaded" in agent.log(), 60, what="the model to load")
    show(x11, agent, "Chat", "xmessage 10x20", ("dont tell your parents about me ok",))
    x11.type("i want to kill myself")
    x11.key("Return")
    wait_until(lambda: any(r.source == "typed" for r in stored_events(server)), 30,
               interval=0.1, what="the typed event (the agent is monitoring)")
    assert screen_events(server) == []
    assert "screen reader on" not in agent.log()
    status = wait_until(lambda: (st := agent.status()).get("screen") and st, 30,
                        what="the agent's status")
    assert status["screen"] == "off" and "policy" in status["screen_note"], status

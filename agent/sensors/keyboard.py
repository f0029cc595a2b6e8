"""The keyboard and mouse hooks (pynput) and the supervisor that keeps them alive.

The hook callbacks only put the raw key on a queue: on Windows a slow hook freezes typing
system-wide and Windows silently removes a hook that overruns its timeout. Translating the key
(``translate``) happens on the monitor's worker thread. pynput can lose its listener thread to an
exception inside its own key translation (dead keys on some layouts); a stopped listener cannot be
restarted, so the supervisor waits on the thread (no polling) and starts a fresh one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.errors import NoDisplay
from agent.sensors.events import Click, KeyInput, ListenerRestarted
from agent.sensors.xrecord import BUTTON_PRESS, recording_listener

__all__ = ["RAW_CLICK", "RAW_KEY", "InputHooks", "translate"]

log = logging.getLogger(__name__)

RAW_KEY = "key"
RAW_CLICK = "click"


def translate(raw: tuple[Any, ...]) -> KeyInput | Click:
    """Turn a queued raw hook record into a :class:`KeyInput` or :class:`Click`."""
    kind = raw[0]
    if kind == RAW_CLICK:
        return Click(at=raw[1])
    _, pressed, key, injected, at = raw
    char = getattr(key, "char", None)
    name = getattr(key, "name", None)  # pynput.keyboard.Key members have a name
    dead = bool(getattr(key, "is_dead", False))
    if char is None and name is None:
        vk = getattr(key, "vk", None)
        name = f"vk{vk}" if vk is not None else None
    if dead and char is not None:
        # pynput gives the combining form; keep it so the next key can be joined to it.
        return KeyInput(pressed, char, None, True, bool(injected), at)
    return KeyInput(pressed, char, name, False, bool(injected), at)


def _set_when_ready(listener: Any, hooked: threading.Event) -> None:
    listener.wait()
    if not isinstance(getattr(listener, "recording", None), threading.Event):
        hooked.set()  # other platforms: ready means hooked


class _Supervised:
    """One pynput listener kind, restarted whenever its thread ends without being asked to."""

    def __init__(self, which: str, factory: Callable[[], Any], report: Callable[[str, str], None],
                 stopping: threading.Event) -> None:
        self.which = which
        self._factory = factory
        self._report = report
        self._stopping = stopping
        self.listener: Any = None
        self._thread = threading.Thread(target=self._run, name=f"vigil-{which}-supervisor",
                                        daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            listener = self._factory()
            self.listener = listener
            started = time.monotonic()
            listener.start()
            # pynput's wait() never returns if the thread dies before the hook is ready, so
            # wait for it on a helper thread, with a deadline.
            hooked = getattr(listener, "recording", None)
            if not isinstance(hooked, threading.Event):
                hooked = threading.Event()
            threading.Thread(target=_set_when_ready, args=(listener, hooked), daemon=True).start()
            if hooked.wait(10):
                self._ready.set()
            else:  # a loaded machine: say so, and say again when keys are seen after all
                log.warning("the %s hook is not live after 10 s; input is not seen until it is",
                            self.which)
                threading.Thread(target=self._ready_later, args=(listener, hooked),
                                 daemon=True).start()
            reason = "listener thread ended"
            try:
                listener.join()  # blocks until the listener's thread ends: no polling
            except Exception as exc:  # noqa: BLE001 - pynput re-raises whatever killed its thread
                reason = f"{type(exc).__name__}: {exc}"
            if self._stopping.is_set():
                break
            if time.monotonic() - started > 60:
                failures = 0
            failures += 1
            self._report(self.which, reason)
            # Back off if it keeps dying at once, so a broken hook cannot spin a core.
            self._stopping.wait(min(0.05 * 2 ** (failures - 1), 30.0))

    def _ready_later(self, listener: Any, hooked: threading.Event) -> None:
        while not hooked.wait(1.0):
            if not listener.is_alive():
                return  # it died: the supervisor starts a new one, which gets its own chance
        log.info("the %s hook is live", self.which)
        self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)


class InputHooks:
    """Keyboard and mouse hooks feeding raw records to ``out``; supervised, restartable."""

    def __init__(self, out: queue.SimpleQueue, mouse: bool = True) -> None:
        self._out = out
        self._mouse = mouse
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.restarts = 0
        self._parts: list[_Supervised] = []

    def _report(self, which: str, reason: str) -> None:
        with self._lock:
            self.restarts += 1
            count = self.restarts
        log.warning("the %s hook died (%s); started a new one (restart %d)", which, reason, count)
        self._out.put(ListenerRestarted(which, reason, count))

    def start(self) -> None:
        try:
            from pynput import keyboard, mouse  # needs a display: import only now
        except ImportError as exc:  # pynput raises ImportError when there is no X connection
            raise NoDisplay(
                "cannot hook the keyboard: no X display (set DISPLAY; Wayland needs XWayland)"
            ) from exc
        put = self._out.put
        monotonic = time.monotonic

        def on_press(key: Any, injected: bool = False) -> None:
            put((RAW_KEY, True, key, injected, monotonic()))

        def on_release(key: Any, injected: bool = False) -> None:
            put((RAW_KEY, False, key, injected, monotonic()))

        def on_click(x: int, y: int, button: Any, pressed: bool, injected: bool = False) -> None:
            if pressed:
                put((RAW_CLICK, monotonic()))

        key_listener: type = keyboard.Listener
        mouse_listener: type = mouse.Listener
        # the X11 (XRecord) backend; win32's listener has a _handler too (found under Wine)
        if key_listener.__module__.endswith("._xorg"):
            key_listener = recording_listener(key_listener)
            # A click only ends an utterance: the press is all the agent needs (no releases,
            # no pointer motion).
            mouse_listener = recording_listener(mouse_listener, (BUTTON_PRESS, BUTTON_PRESS))
        self._parts = [
            _Supervised("keyboard",
                        lambda: key_listener(on_press=on_press, on_release=on_release),
                        self._report, self._stopping),
        ]
        if self._mouse:
            self._parts.append(_Supervised("mouse", lambda: mouse_listener(on_click=on_click),
                                           self._report, self._stopping))
        for part in self._parts:
            part.start()

    def wait_ready(self, timeout: float) -> bool:
        """Whether every hook is live (receiving input), waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        return all(part.wait_ready(max(0.0, deadline - time.monotonic())) for part in self._parts)

    def listener(self, which: str = "keyboard") -> Any:
        """The live pynput listener of that kind (for status and tests)."""
        for part in self._parts:
            if part.which == which:
                return part.listener
        return None

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the hooks, waiting at most ``timeout`` seconds in all.

        pynput's X11 listener only notices a stop at the next X input event (its thread sits in
        XRecord's enable_context), so on an idle display a join would wait for the user's next
        key. Its threads are daemons and hold nothing that needs flushing, so the agent does not
        wait for them: signing out must not take ten seconds. pynput's own ``stop()`` waits,
        with no deadline, for a hook that never became live (a busy or broken X server), so it
        is asked on a daemon thread too.
        """
        self._stopping.set()
        deadline = time.monotonic() + timeout
        stoppers = [threading.Thread(target=part.listener.stop, name=f"vigil-{part.which}-stop",
                                     daemon=True)
                    for part in self._parts if part.listener is not None]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(max(0.0, deadline - time.monotonic()))
        for part in self._parts:
            part.join(max(0.0, deadline - time.monotonic()))

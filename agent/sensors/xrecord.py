"""pynput's X11 (XRecord) listeners, made cheap enough to run all day on a school PC.

pynput's X11 listeners pass every recorded event through python-xlib's general protocol
machinery. On the bench machine that costs about 300 µs of Python per event, and it adds up:
typing at 10 keys/s is 20 events/s (press and release), which alone used 0.77 % of a core
against the agent's 1 % budget (BENCHMARKS.md, "Agent"). Three changes, each made through the
hooks pynput's own listeners override (``_EVENTS``, ``_initialize``, ``_handler``), so pynput
keeps the threads, the XRecord context, the key translation and the callbacks:

1. **Clicks only.** pynput gives XRecord the event *masks* ButtonPressMask..ButtonReleaseMask
   (4..8) as a range of event *types*, which records every ButtonRelease, MotionNotify,
   EnterNotify and LeaveNotify too: ~100 events/s of parsing while the mouse merely moves. The
   agent only needs to know that a click happened, so the mouse hook records ButtonPress alone.
2. **One struct per event.** Recorded device events are 32-byte core events of one fixed layout
   (KeyButtonPointer); they are decoded with one ``struct.unpack_from`` instead of python-xlib's
   field-by-field parser.
3. **A thin reply.** Each XRecord reply's 32-byte header is read directly instead of through
   python-xlib's reply parser; only ``category`` and ``data`` are used.

Both libraries' internals are checked when a listener class is made (:func:`lean_supported`):
with a pynput or python-xlib whose shape differs, the stock listener is used unchanged, so an
upgrade costs CPU, never keys.
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any

__all__ = ["CoreEvent", "decode_events", "lean_supported", "recording_listener"]

log = logging.getLogger(__name__)

# KeyButtonPointer: type detail sequence time root event child root_x root_y event_x event_y
# state same_screen pad, in the connection's (native) byte order, as python-xlib asks for it.
_CORE_EVENT = struct.Struct("=BBHIIIIhhhhHBx")
_SEND_EVENT = 0x80
_SEQUENCE = struct.Struct("=H")
_REPLY_HEADER = 32

BUTTON_PRESS = 4  # Xlib.X.ButtonPress


class CoreEvent:
    """The fields of a recorded key or button event that pynput's ``_handle_message`` reads."""

    __slots__ = ("detail", "root_x", "root_y", "send_event", "state", "type")

    def __init__(self, type_: int, detail: int, state: int, send_event: bool,
                 root_x: int, root_y: int) -> None:
        self.type = type_
        self.detail = detail
        self.state = state
        self.send_event = send_event
        self.root_x = root_x
        self.root_y = root_y


def decode_events(data: bytes | memoryview) -> list[CoreEvent]:
    """The core events in one XRecord reply's data (whole 32-byte events; a stray tail is
    ignored, as python-xlib would fail on it)."""
    out = []
    unpack = _CORE_EVENT.unpack_from
    for offset in range(0, len(data) - _CORE_EVENT.size + 1, _CORE_EVENT.size):
        kind, detail, _, _, _, _, _, root_x, root_y, _, _, state, _ = unpack(data, offset)
        out.append(CoreEvent(kind & 0x7F, detail, state, bool(kind & _SEND_EVENT), root_x, root_y))
    return out


class _Reply:
    __slots__ = ("category", "data")

    def __init__(self, category: int, data: bytes) -> None:
        self.category = category
        self.data = data


def _thin_enable_context() -> Any:
    """python-xlib's EnableContext request with a reply parser that reads the header only."""
    from Xlib.ext import record

    class ThinEnableContext(record.EnableContext):  # type: ignore[misc]
        def _parse_response(self, data: Any) -> None:
            # The same bookkeeping as python-xlib's own: the request stays queued for the
            # replies still to come until EndOfData, and StartOfData fixes its sequence number.
            category = data[1]
            reply = _Reply(category, bytes(data[_REPLY_HEADER:]))
            self._callback(reply)
            if category == record.StartOfData:
                self.sequence_number = _SEQUENCE.unpack_from(data, 2)[0]
            if category == record.EndOfData:
                with self._response_lock:
                    self._data = reply
            else:
                self._display.sent_requests.insert(0, self)

    return ThinEnableContext


def lean_supported(base: type) -> bool:
    """True when ``base`` (a pynput X11 listener) and python-xlib look as this module expects."""
    try:
        from Xlib.ext import record
    except ImportError:
        return False
    needed = ("_handler", "_handle_message", "_initialize", "_EVENTS", "StopException", "running")
    if not all(hasattr(base, name) for name in needed):
        return False
    parse = getattr(record.EnableContext, "_parse_response", None)
    names = getattr(getattr(parse, "__code__", None), "co_names", ())
    # The reply bookkeeping ThinEnableContext repeats must still be python-xlib's own.
    return {"sent_requests", "_response_lock", "_data", "sequence_number"} <= set(names)


def recording_listener(base: type, events: tuple[int, int] | None = None) -> type:
    """``base`` (a pynput X11 listener class) that reports when XRecord really delivers, and,
    where :func:`lean_supported`, records only ``events`` and decodes them cheaply.

    pynput marks an X11 listener ready just before it enables its XRecord context, so keys sent
    in between are lost. The server's first reply after enabling is StartOfData, which reaches
    ``_handler``: that, not ``wait()``, is when the hook is live (``recording``).
    """
    from pynput._util import AbstractListener

    if not lean_supported(base):
        log.info("pynput or python-xlib is not the expected version; using its stock "
                 "X11 listener (more CPU per key)")

        class Recording(base):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.recording = threading.Event()

            def _handler(self, events: Any) -> Any:
                self.recording.set()
                return super()._handler(events)

        return Recording

    thin = _thin_enable_context()

    class LeanRecording(base):  # type: ignore[misc, valid-type]
        _EVENTS = events if events is not None else base._EVENTS

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.recording = threading.Event()

        def _initialize(self, display: Any) -> None:
            from Xlib.ext import record

            super()._initialize(display)
            record_display = self._display_record
            low = record_display.display
            # Shadows the extension method python-xlib resolves through Display.__getattr__,
            # for this listener's own connection only.
            record_display.record_enable_context = lambda context, callback: thin(
                callback=callback, display=low,
                opcode=low.get_extension_major(record.extname), context=context)

        @AbstractListener._emitter
        def _handler(self, reply: Any) -> None:
            self.recording.set()
            if not self.running:
                raise self.StopException()
            handle, display = self._handle_message, self._display_stop
            for event in decode_events(reply.data):
                handle(display, event, event.send_event)

    LeanRecording.__name__ = LeanRecording.__qualname__ = f"Lean{base.__name__}"
    return LeanRecording

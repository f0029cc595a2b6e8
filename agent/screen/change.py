"""When a frame is worth reading, and which of its lines are new: pure, unit-tested, no display.

Why a perceptual hash and not a byte compare: a clock, a blinking caret or anti-aliasing noise
changes bytes on every frame, and an OCR read costs about 250 ms of CPU (BENCHMARKS.md). A
difference hash (dHash) of the frame shrunk to ``HASH_W + 1`` x ``HASH_H`` grey pixels records,
for each cell, whether it is brighter than its right neighbour; a new line of chat flips a row of
bits, a caret one or two. Frames within ``THRESHOLD_BITS`` of the last frame read are the same.

Why remember frames per window: switching between a few windows (a lesson, a chat, notes) brings
each back as it was; reading it again finds nothing new (an hour of bench/screen_hour.py spent a
third of its reading on window switches). A window whose frame is within ``THRESHOLD_BITS`` of
the one read there within ``repeat_s`` is not read again.

Why read only the rows that changed (:func:`what_changed`): a notes window being typed in, or a
chat with a new message, changes one or two lines; OCR costs about the area it reads, so reading
the whole window every few seconds while a pupil types was most of the reader's cost. The
changed rows, grown to the blank rows around them so that whole lines of text are read, are
read alone; the rest of the window was read before. A change one to three pixels wide (a caret
blinking or moving) is not read at all.

Why remember lines: a chat window re-read after a new message holds the old messages too. Only
lines not seen (in any window) within ``repeat_s`` go on to the detectors, so a message left on
screen fires once and costs the sentence model one encoding, not one per read. What is kept is a
16-byte digest of each line's folded text and when it was seen, never the text.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["HASH_H", "HASH_W", "THRESHOLD_BITS", "Change", "ChangeDetector", "LineMemory", "dhash",
           "hamming", "what_changed"]

HASH_W, HASH_H = 32, 18  # 576 bits: a line of text in a window flips a row of them
THRESHOLD_BITS = 2  # at most this many bits apart: the same frame (a caret, a clock's digit)
WINDOWS_REMEMBERED = 32
WINDOW_LINES = 500  # lines kept per window for LineMemory.touch

PIXEL_DELTA = 40  # grey levels: less is anti-aliasing, a shade of a bubble, a cursor's fade
CARET_MAX_W = 3  # a change this narrow (pixels) is a caret, not text
GROW_MAX = 160  # pixels: grown further than this to find a blank row, read the whole window
BLANK_PAD = 8  # blank rows kept around the changed lines: tesseract reads text off the edge badly
VERTICAL_RUN = 64  # ink this many rows on end in one column is not a line of text
WHOLE_SHARE = 0.5  # a change over half the window's height (a scroll, a new page): read it all
IMAGE_MIN = 96  # a change at least this tall and wide may be a picture: the image check runs


def dhash(image: Any) -> int:
    """Difference hash of a Pillow image: ``HASH_W * HASH_H`` bits as an int."""
    from PIL import Image

    grey = image.convert("L").resize((HASH_W + 1, HASH_H), Image.Resampling.BOX)
    px = grey.tobytes()
    bits = 0
    row = HASH_W + 1
    for y in range(HASH_H):
        base = y * row
        for x in range(HASH_W):
            bits = (bits << 1) | (px[base + x] > px[base + x + 1])
    return bits


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@dataclass
class _Seen:
    key: tuple[int, str]
    frame: int
    at: float


@dataclass(frozen=True, slots=True)
class Change:
    """Rows ``[top, bottom)`` of the frame to read; ``whole`` when that is all of it;
    ``image_sized`` when what changed is big enough to hold a picture."""

    top: int
    bottom: int
    whole: bool
    image_sized: bool


def grey_array(image: Any) -> Any:
    """A Pillow image as a 2-D uint8 numpy array of grey levels."""
    import numpy as np

    return np.asarray(image.convert("L"), dtype=np.uint8)


def what_changed(before: Any, after: Any) -> Change | None:
    """What to read of ``after`` (a grey array), given ``before`` (the grey array of the frame
    read last in the same window, or None): None when nothing but noise or a caret changed."""
    import numpy as np

    h = after.shape[0]
    if before is None or before.shape != after.shape:
        return Change(0, h, True, True)
    diff = np.abs(after.astype(np.int16) - before) > PIXEL_DELTA
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if c1 - c0 <= CARET_MAX_W:
        return None
    image_sized = r1 - r0 >= IMAGE_MIN and c1 - c0 >= IMAGE_MIN
    grown = _grow_to_blank_rows(after, r0, r1)
    if grown is None or grown[1] - grown[0] >= WHOLE_SHARE * h:
        return Change(0, h, True, image_sized)
    return Change(grown[0], grown[1], False, image_sized)


def _grow_to_blank_rows(grey: Any, r0: int, r1: int) -> tuple[int, int] | None:
    """``[r0, r1)`` grown up and down to the nearest rows with no ink, plus ``BLANK_PAD`` blank
    rows; None if no blank row is found within ``GROW_MAX`` (text packed tight: read it all).

    Ink is a pixel unlike both its row's median (the background behind the text) and its
    column's median (a border or a side panel runs down the whole column, so it is background
    too); dark mode works the same way. A column with ink in ``VERTICAL_RUN`` rows on end is a
    scrollbar's thumb, a divider or a picture, not text, and does not count."""
    import numpy as np

    h = grey.shape[0]
    lo, hi = max(0, r0 - GROW_MAX), min(h, r1 + GROW_MAX)
    region = grey[lo:hi].astype(np.int16)
    row_med = np.median(region, axis=1, keepdims=True)
    col_med = np.median(region, axis=0, keepdims=True)
    ink_px = (np.abs(region - row_med) > PIXEL_DELTA) & (np.abs(region - col_med) > PIXEL_DELTA)
    if ink_px.shape[0] >= VERTICAL_RUN:
        runs = np.concatenate([np.zeros((1, ink_px.shape[1]), np.int32),
                               np.cumsum(ink_px, axis=0, dtype=np.int32)])
        upright = ((runs[VERTICAL_RUN:] - runs[:-VERTICAL_RUN]) == VERTICAL_RUN).any(axis=0)
        ink_px = ink_px[:, ~upright]
    ink = ink_px.any(axis=1)
    top = r0
    while top > lo and ink[top - 1 - lo]:
        top -= 1
    if top == lo and lo > 0:
        return None
    bottom = r1
    while bottom < hi and ink[bottom - lo]:
        bottom += 1
    if bottom == hi and hi < h:
        return None
    pad_top = 0
    while pad_top < BLANK_PAD and top - pad_top > lo and not ink[top - pad_top - 1 - lo]:
        pad_top += 1
    pad_bottom = 0
    while pad_bottom < BLANK_PAD and bottom + pad_bottom < hi and not ink[bottom + pad_bottom - lo]:
        pad_bottom += 1
    return top - pad_top, bottom + pad_bottom


class ChangeDetector:
    """Decides, for each frame polled, whether to read it.

    - A different window, or the same window with a new title, is read at once (the caller has
      already waited ``settle_s`` for it to draw), unless it is back as it was when it was read
      within ``repeat_s`` (a pupil switching between a few windows).
    - The same window whose frame is within ``THRESHOLD_BITS`` of the last frame read is not.
    - A changed frame is read if ``interval_s`` have passed since the last read, else it waits
      (it is still different at the next poll, so it is read then).
    """

    def __init__(self, interval_s: float, threshold_bits: int = THRESHOLD_BITS,
                 repeat_s: float = 600.0) -> None:
        self.interval_s = interval_s
        self.threshold_bits = threshold_bits
        self.repeat_s = repeat_s
        self._last: _Seen | None = None
        self._windows: OrderedDict[tuple[int, str], _Seen] = OrderedDict()
        self.skipped_same = 0
        self.skipped_rate = 0
        self.skipped_back = 0

    def should_read(self, key: tuple[int, str], frame: int, now: float) -> bool:
        last = self._last
        if last is None or last.key != key:
            seen = self._windows.get(key)
            if seen is not None and now - seen.at < self.repeat_s \
                    and hamming(frame, seen.frame) <= self.threshold_bits:
                self.skipped_back += 1
                self._last = seen  # its next change is compared with what was read there
                return False
            return True
        if hamming(frame, last.frame) <= self.threshold_bits:
            self.skipped_same += 1
            return False
        if now - last.at < self.interval_s:
            self.skipped_rate += 1
            return False
        return True

    def read(self, key: tuple[int, str], frame: int, now: float) -> None:
        """The frame was read (whatever the OCR found)."""
        self._last = _Seen(key, frame, now)
        self._windows[key] = self._last
        self._windows.move_to_end(key)
        while len(self._windows) > WINDOWS_REMEMBERED:
            self._windows.popitem(last=False)

    def forget(self) -> None:
        self._last = None
        self._windows.clear()


_SPACE = re.compile(r"\s+")


def _digest(line: str) -> bytes:
    folded = _SPACE.sub(" ", line).strip().casefold()
    return hashlib.blake2b(folded.encode(), digest_size=16).digest()


class LineMemory:
    """Digests of lines already handed on, each forgotten ``repeat_s`` after it was last seen.

    Why lines are also kept per window: a partial read sees only the changed rows, so the lines
    above them (a chat's history) would not be refreshed although they never left the screen,
    and the next whole read of that window after ``repeat_s`` would judge them all again, and
    fire again on a risk message that had been on screen all along. A partial read of a window
    first refreshes the lines last seen in it (:meth:`touch`); a whole read replaces them.
    """

    def __init__(self, repeat_s: float, capacity: int = 5000,
                 per_window: int = WINDOW_LINES) -> None:
        self.repeat_s = repeat_s
        self.capacity = capacity
        self.per_window = per_window
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._windows: OrderedDict[Any, set[bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def touch(self, window: Any, now: float) -> None:
        """The lines last seen in ``window`` are still on screen (only other rows changed)."""
        self._expire(now)
        for key in self._windows.get(window, ()):
            if key in self._seen:
                self._seen[key] = now
                self._seen.move_to_end(key)

    def new_lines(self, text: str, now: float, window: Any = None, whole: bool = True
                  ) -> list[str]:
        """The lines of ``text`` (with a letter or digit) not seen within ``repeat_s``; every
        line's digest is refreshed, so text that stays on screen stays known. ``window`` (with
        ``whole``: the text is the whole window, not only its changed rows) records which lines
        that window shows, for :meth:`touch`."""
        self._expire(now)
        fresh: list[str] = []
        keys: set[bytes] = set()
        for line in text.splitlines():
            if not any(ch.isalnum() for ch in line):
                continue
            key = _digest(line)
            keys.add(key)
            if key not in self._seen:
                fresh.append(line.strip())
            self._seen[key] = now
            self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        if window is not None:
            shown = keys if whole else self._windows.get(window, set()) | keys
            if len(shown) > self.per_window:  # a long-running partial-read window: keep new
                shown = keys
            self._windows[window] = shown
            self._windows.move_to_end(window)
            while len(self._windows) > WINDOWS_REMEMBERED:
                self._windows.popitem(last=False)
        return fresh

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.repeat_s:
                break
            del self._seen[key]

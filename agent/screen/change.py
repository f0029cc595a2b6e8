"""When a frame is worth reading, and which of its lines are new: pure, unit-tested, no display.

Why a perceptual hash and not a byte compare: a clock, a blinking caret or anti-aliasing noise
changes bytes on every frame, and an OCR read costs about 250 ms of CPU (BENCHMARKS.md). A
difference hash (dHash) of the frame shrunk to ``HASH_W + 1`` x ``HASH_H`` grey pixels records,
for each cell, whether it is brighter than its right neighbour; a new line of chat flips a row of
bits, a caret one or two. Frames within ``THRESHOLD_BITS`` of the last frame read are the same.

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

__all__ = ["HASH_H", "HASH_W", "THRESHOLD_BITS", "ChangeDetector", "LineMemory", "dhash", "hamming"]

HASH_W, HASH_H = 32, 18  # 576 bits: a line of text in a window flips a row of them
THRESHOLD_BITS = 2  # at most this many bits apart: the same frame (a caret, a clock's digit)


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


class ChangeDetector:
    """Decides, for each frame polled, whether to read it.

    - A different window, or the same window with a new title, is read at once (the caller has
      already waited ``settle_s`` for it to draw).
    - The same window whose frame is within ``THRESHOLD_BITS`` of the last frame read is not.
    - A changed frame is read if ``interval_s`` have passed since the last read, else it waits
      (it is still different at the next poll, so it is read then).
    """

    def __init__(self, interval_s: float, threshold_bits: int = THRESHOLD_BITS) -> None:
        self.interval_s = interval_s
        self.threshold_bits = threshold_bits
        self._last: _Seen | None = None
        self.skipped_same = 0
        self.skipped_rate = 0

    def should_read(self, key: tuple[int, str], frame: int, now: float) -> bool:
        last = self._last
        if last is None or last.key != key:
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

    def forget(self) -> None:
        self._last = None


_SPACE = re.compile(r"\s+")


def _digest(line: str) -> bytes:
    folded = _SPACE.sub(" ", line).strip().casefold()
    return hashlib.blake2b(folded.encode(), digest_size=16).digest()


class LineMemory:
    """Digests of lines already handed on, each forgotten ``repeat_s`` after it was last seen."""

    def __init__(self, repeat_s: float, capacity: int = 5000) -> None:
        self.repeat_s = repeat_s
        self.capacity = capacity
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def new_lines(self, text: str, now: float) -> list[str]:
        """The lines of ``text`` (with a letter or digit) not seen within ``repeat_s``; every
        line's digest is refreshed, so text that stays on screen stays known."""
        self._expire(now)
        fresh: list[str] = []
        for line in text.splitlines():
            if not any(ch.isalnum() for ch in line):
                continue
            key = _digest(line)
            if key not in self._seen:
                fresh.append(line.strip())
            self._seen[key] = now
            self._seen.move_to_end(key)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return fresh

    def _expire(self, now: float) -> None:
        while self._seen:
            key, at = next(iter(self._seen.items()))
            if now - at < self.repeat_s:
                break
            del self._seen[key]

"""What the pupil typed, shown back on screen: not judged a second time.

A chat box or a document shows what is being typed, so the reader sees the pupil's own words a
few seconds after the sentence model judged them as typed text. Judging them again as screen text
is the reader's largest cost (an hour of scripted use in bench/screen_hour.py: 1,506 sentences
judged, most of them the typing window read again every few seconds as it grew) and adds nothing:
the typed judgement already fired or did not. The lists still run on every screen line (they are
cheap, and their echoes are dropped by the monitor's own rule memory).

A line is an echo when at least ``MIN_TOKENS`` of its words were read and ``SHARE`` of them are
among the words typed in the last ``window_s`` seconds (OCR misreads a word now and then, so the
test is a share, not equality). Only word sets are kept, in memory, bounded; never text, never on
disk or in a log.
"""

from __future__ import annotations

import re
import time
from collections import deque

__all__ = ["TypedEcho"]

MIN_TOKENS = 3
SHARE = 0.8
MAX_UTTERANCES = 64
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


class TypedEcho:
    def __init__(self, window_s: float = 120.0) -> None:
        self.window_s = window_s
        self._typed: deque[tuple[float, frozenset[str]]] = deque(maxlen=MAX_UTTERANCES)

    def typed(self, text: str, at: float | None = None) -> None:
        words = frozenset(_words(text))
        if words:
            self._typed.append((time.monotonic() if at is None else at, words))

    def is_echo(self, line: str, live: str = "", now: float | None = None) -> bool:
        """Whether ``line`` (read from the screen) is mostly words typed lately, counting
        ``live``: what is typed so far and not yet judged."""
        words = _words(line)
        if len(words) < MIN_TOKENS:
            return False
        now = time.monotonic() if now is None else now
        recent = set(_words(live))
        for at, typed in self._typed:
            if now - at <= self.window_s:
                recent |= typed
        return sum(w in recent for w in words) >= SHARE * len(words)

    def new_lines(self, text: str, live: str = "", now: float | None = None) -> str:
        """``text`` without its echo lines ("" if every line was one)."""
        return "\n".join(line for line in text.split("\n")
                         if line.strip() and not self.is_echo(line, live, now))

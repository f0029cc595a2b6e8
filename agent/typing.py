"""The typing buffer: applies keys to the matcher's stream and turns matches into hits.

Decisions this module makes on purpose (see docs/agent.md):

- Characters append; Backspace and Delete edit; Left/Right/Home/End move the cursor; Enter, Tab,
  Up/Down/Page keys, Escape, a click and a focus change end the utterance.
- Auto-repeat (a press of a key already held) of a printable key is kept up to
  ``max_repeat_run`` characters: no word needs more, and a held key must not flush the context
  out of the bounded buffer. Auto-repeated Backspace/Delete apply, as the user sees them apply.
- Injected keys (software keyboards, accessibility tools) are matched unless
  ``match_injected`` is off: they are what a pupil types as much as hardware keys are.
- A dead key is joined with the next key (NFC); a dead key followed by a space yields nothing.
- Ctrl/Alt/Super shortcuts type nothing. Ctrl+V and Shift+Insert read the clipboard and match
  the pasted text whole, as one block.
- The password guard (agent.privacy) can switch matching off for an utterance.
- A finished utterance the guard lets through (and a paste) is handed to ``on_utterance``, which
  the monitor passes to the sentence model (agent.judge); the model never sees single keys.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from agent.privacy import PasswordGuard
from agent.sensors.events import KeyInput
from core.detect.sentences import sentences_around

__all__ = ["Hit", "TypingBuffer", "context_around", "hits_in"]

_MODIFIERS = {
    "shift": "shift", "shift_l": "shift", "shift_r": "shift",
    "ctrl": "ctrl", "ctrl_l": "ctrl", "ctrl_r": "ctrl",
    "alt": "alt", "alt_l": "alt", "alt_r": "alt",
    "cmd": "cmd", "cmd_l": "cmd", "cmd_r": "cmd",
    "alt_gr": "alt_gr",
}
_EDIT_KEYS = {"backspace", "delete", "left", "right", "home", "end"}
_ENDING_KEYS = {"enter": "enter", "tab": "tab", "up": "cursor", "down": "cursor",
                "page_up": "cursor", "page_down": "cursor", "esc": "cursor"}
_CTRL_V = "\x16"


class _Stream(Protocol):
    text: str

    def feed(self, ch: str) -> list[Any]: ...
    def key(self, name: str) -> list[Any]: ...
    def end_utterance(self) -> list[Any]: ...


class _Matcher(Protocol):
    def match(self, text: str) -> list[Any]: ...
    def stream(self, capacity: int = 512) -> _Stream: ...


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule that fired on typed or pasted text, with the context that goes into the header."""

    match: Any  # core.matcher.Match
    context: str
    start: int  # the match's offsets inside ``context``
    end: int
    source: str  # "typed" | "paste" | "title"
    # The sentence before the match's, the match's, and the one after (agent.judge's context).
    sentences: tuple[str, str, str] = ("", "", "")


def context_around(text: str, start: int, end: int, width: int) -> tuple[str, int, int]:
    """``text`` cut to ``width`` characters either side of [start, end), with shifted offsets."""
    lo = max(0, start - width)
    hi = min(len(text), end + width)
    return text[lo:hi], start - lo, end - lo


def hits_in(matches: list[Any], text: str, source: str, width: int) -> list[Hit]:
    """Matches in ``text`` as hits, each with its context and its sentences."""
    return [Hit(m, *context_around(text, m.start, m.end, width), source,
                sentences_around(text, m.start, m.end)) for m in matches]


class TypingBuffer:
    """Feeds keys to a matcher stream and returns hits; owns no state beyond the bounded buffer."""

    def __init__(self, matcher: _Matcher, clipboard: Callable[[], str | None], *,
                 capacity: int = 512, context_chars: int = 60, max_repeat_run: int = 3,
                 match_injected: bool = True, guard: PasswordGuard | None = None,
                 on_utterance: Callable[[str, str], None] | None = None) -> None:
        self._matcher = matcher
        self._on_utterance = on_utterance  # (text, "typed" | "paste") when one is finished
        self._stream = matcher.stream(capacity=capacity)
        self._clipboard = clipboard
        self._context_chars = context_chars
        self._max_repeat_run = max_repeat_run
        self._match_injected = match_injected
        self.guard = guard or PasswordGuard()
        self._held: set[str] = set()  # keys down now, to tell auto-repeat from typing
        self._mods: set[str] = set()
        self._dead: str | None = None
        self._run_char: str | None = None
        self._run_len = 0

    @property
    def text(self) -> str:
        return self._stream.text

    # --- hits -------------------------------------------------------------------------------
    def _hits(self, matches: list[Any], text: str, source: str) -> list[Hit]:
        return hits_in(matches, text, source, self._context_chars) if matches else []

    @property
    def judgeable(self) -> bool:
        """Whether the text so far may go to the sentence model before the utterance ends: not
        while the guard suppresses it, and not a single token (it may be a password the guard
        has yet to judge at Enter; a lone word is not a sentence)."""
        text = self._stream.text.strip()
        return bool(text) and not self.guard.suppressed and any(c.isspace() for c in text)

    def end_utterance(self, by: str = "focus", report: bool = True) -> list[Hit]:
        """End the current utterance (Enter, Tab, click, focus change) and flush the stream;
        ``report=False`` forgets it (monitoring just went off): no hits, nothing judged."""
        text = self._stream.text
        matches = self._stream.end_utterance()
        keep = self.guard.utterance_ended(text, by)
        self._dead = None
        self._run_char, self._run_len = None, 0
        if not keep or not report:
            return []
        if self._on_utterance is not None and text.strip():
            self._on_utterance(text, "typed")
        return self._hits(matches, text, "typed")

    def reset_keys(self) -> None:
        """Forget which keys are held: after a hook restart a release may have been missed,
        and a Ctrl that looks held forever would turn all typing into shortcuts."""
        self._held.clear()
        self._mods.clear()
        self._dead = None

    def window_changed(self, title: str, app: str) -> list[Hit]:
        hits = self.end_utterance("focus")
        self.guard.window_changed(title, app)
        self._held.clear()
        return hits

    # --- keys -------------------------------------------------------------------------------
    def on_key(self, k: KeyInput) -> list[Hit]:
        ident = k.char if k.char is not None else (k.name or "")
        if not k.pressed:
            self._held.discard(ident)
            if k.name in _MODIFIERS:
                self._mods.discard(_MODIFIERS[k.name])
            return []
        repeat = ident in self._held
        self._held.add(ident)
        if k.name in _MODIFIERS:
            self._mods.add(_MODIFIERS[k.name])
            return []
        if k.injected and not self._match_injected:
            return []
        if self._is_paste(k):
            return self._paste()
        if self._mods & {"ctrl", "alt", "cmd"}:
            if k.name == "backspace" and "ctrl" in self._mods:
                return self._delete_word()
            return []  # a shortcut types nothing
        if k.name in _ENDING_KEYS:
            return self.end_utterance(_ENDING_KEYS[k.name])
        if k.name == "space":
            return self._type(" ", repeat)
        if k.name in _EDIT_KEYS:
            self._run_char, self._run_len = None, 0
            return self._edit(k.name)
        if k.dead and k.char:
            self._dead = k.char
            return []
        if k.char is not None and k.char.isprintable():
            return self._type(k.char, repeat)
        return []

    def _is_paste(self, k: KeyInput) -> bool:
        if k.char == _CTRL_V:
            return True
        if "ctrl" in self._mods and k.char is not None and k.char.lower() == "v" \
                and not self._mods & {"alt", "cmd"}:
            return True
        return k.name == "insert" and "shift" in self._mods and not self._mods & {"ctrl", "alt"}

    def _type(self, ch: str, repeat: bool) -> list[Hit]:
        if self._dead is not None:
            accent, self._dead = self._dead, None
            if ch == " ":
                return []
            ch = unicodedata.normalize("NFC", ch + _combining(accent))
        if repeat and ch == self._run_char:
            self._run_len += 1
            if self._run_len > self._max_repeat_run:
                return []
        else:
            self._run_char, self._run_len = ch, 1
        if self.guard.suppressed:
            return []
        hits: list[Hit] = []
        for c in ch:
            hits += self._hits(self._stream.feed(c), self._stream.text, "typed")
        return hits

    def _edit(self, name: str) -> list[Hit]:
        if self.guard.suppressed:
            return []
        return self._hits(self._stream.key(name), self._stream.text, "typed")

    def _delete_word(self) -> list[Hit]:
        """Ctrl+Backspace: the trailing spaces and the word before them."""
        if self.guard.suppressed:
            return []
        text = self._stream.text
        rest = text.rstrip(" ")
        count = len(text) - (rest.rfind(" ") + 1)
        hits: list[Hit] = []
        for _ in range(count):
            hits += self._hits(self._stream.key("backspace"), self._stream.text, "typed")
        return hits

    def _paste(self) -> list[Hit]:
        """Match the clipboard whole; the paste ends what was being typed before it."""
        hits = self.end_utterance("paste")
        if self.guard.suppressed:
            return hits
        text = self._clipboard()
        if not text:
            return hits
        if self._on_utterance is not None:
            self._on_utterance(text, "paste")
        return hits + self._hits(self._matcher.match(text), text, "paste")


def _combining(accent: str) -> str:
    """The combining form of a dead key's accent (pynput may give the spacing form)."""
    if unicodedata.combining(accent):
        return accent
    decomposed = unicodedata.normalize("NFD", "a" + accent)
    spacing = {"´": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "¨": "\u0308",
               "¸": "\u0327", "˚": "\u030a", "ˇ": "\u030c"}
    return spacing.get(accent, decomposed[1:] if len(decomposed) > 1 else accent)

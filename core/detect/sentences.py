"""Cut text into the sentences (utterances) the model judges.

Why: the model scores meaning, which lives in a sentence, not a keystroke or a whole page; and a
model match's span is the sentence it judged, so the technician sees exactly what was scored.
Sentence ends are Latin, Arabic/Urdu, Devanagari/Bengali/Gurmukhi and CJK stops, and line
breaks. Spans exclude the surrounding white space, so ``text[start:end]`` is the sentence.
"""

from __future__ import annotations

import re

__all__ = ["MAX_CHARS", "SENTENCE_CHARS", "sentences_around", "split_sentences"]

MAX_CHARS = 400  # a longer run without a stop is cut at a space: the model reads ~512 tokens
_SEPARATORS = "-–—|"  # a window title's " - " joins parts that are judged apart
_END = re.compile(r"[.!?…。！？؟۔।]+(?=\s|$)|\n+|\s[-–—|]\s")


def _trimmed(text: str, start: int, end: int) -> list[tuple[int, int]]:
    while start < end and (text[start].isspace() or text[start] in _SEPARATORS):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _SEPARATORS):
        end -= 1
    if not any(ch.isalnum() for ch in text[start:end]):
        return []
    if end - start <= MAX_CHARS:
        return [(start, end)]
    cut = text.rfind(" ", start, start + MAX_CHARS)
    cut = start + MAX_CHARS if cut <= start else cut
    return [*_trimmed(text, start, cut), *_trimmed(text, cut, end)]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text`` that holds a letter or digit, in order."""
    spans: list[tuple[int, int]] = []
    at = 0
    for m in _END.finditer(text):
        spans.extend(_trimmed(text, at, m.end()))
        at = m.end()
    spans.extend(_trimmed(text, at, len(text)))
    return spans


SENTENCE_CHARS = 300  # each sentence of an event's context is cut to this many characters


def sentences_around(text: str, start: int, end: int) -> tuple[str, str, str]:
    """The sentence before the one holding ``text[start:end]``, that sentence, and the one after.

    Why: a technician reading "i want to die" needs to see whether the sentence before it was
    "this maths homework is so long" or "nobody would notice"; the event carries all three,
    sealed. Each is cut to ``SENTENCE_CHARS`` around the part nearest the trigger; any may be "".
    """
    spans = split_sentences(text)
    at = next((i for i, (a, b) in enumerate(spans) if a < end and start < b), None)
    if at is None:  # the trigger is not inside a sentence (e.g. punctuation only): its own text
        return "", text[start:end][:SENTENCE_CHARS], ""
    before = text[slice(*spans[at - 1])][-SENTENCE_CHARS:] if at > 0 else ""
    a, b = spans[at]
    lo = max(a, min(start, end - SENTENCE_CHARS // 2) - SENTENCE_CHARS // 2)
    trigger = text[lo:min(b, lo + SENTENCE_CHARS)]
    after = text[slice(*spans[at + 1])][:SENTENCE_CHARS] if at + 1 < len(spans) else ""
    return before, trigger, after

"""Text folding for matching, with an offset map back to the original text.

Rules and text go through the same steps, word by word:

1. Split into words: letters, digits, combining marks and invisible format characters, plus the
   leetspeak symbols ``@`` and ``$``; ``! | + *`` count only *inside* a word ("k!ll", but
   "kill!"). A star stands for hidden letters when exactly one rule word fits ("b*tch"), else it
   only separates letters.
   Three or more single letters joined by short separators ("k i l l", "k.i.l.l", "k-i-l-l")
   become one word. Words joined by one dot or hyphen ("sui.cide", "k-ill") are read both ways:
   as separate words, and in a second reading (``Window.alt``) as one; in that reading spaced-out
   letters are also split back into the rules' words where they fit exactly ("i c u t m y s e l
   f" -> "i cut myself").
2. Per character: NFKD (fullwidth, mathematical and circled letters, ligatures), drop combining
   marks and invisible characters, map small capitals.
3. Only in a word that mixes Latin with Cyrillic or Greek (the UTS #39 idea): map look-alikes to
   Latin, so "kіll" with a Cyrillic "і" is "kill" while a list written in Cyrillic still matches
   as itself.
4. Case folding; leetspeak digits and symbols, but only in words that have letters, so "2024",
   "10am" and "y9" stay what they are. "1", "|" and a capital "I" can be "i" or "l": the
   reading found in the rules' vocabulary wins ("a1coho1", "myseIf").
5. Runs of one letter collapse to one character ("killlll" -> "kil"), with the run lengths kept
   so that the matcher can tell "as" from "ass" and "looser" from "loser" afterwards.

The result for a stretch of text is a :class:`Window`: the folded words joined by single spaces
between a leading and a trailing space, and for every folded character the span of original text
it came from. Folding one word is cached, because typed text repeats its words all the time.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "BOUNDARY",
    "INNER",
    "INNER_CHARS",
    "JOINERS",
    "WORD",
    "Folded",
    "Normalizer",
    "Vocabulary",
    "Window",
    "char_class",
    "fold_phrase",
    "is_inner_char",
    "is_word_char",
    "normalize",
    "short_gap",
    "word_start_before",
]


# --------------------------------------------------------------------------- character classes


def _invisible_ranges() -> str:
    """Regex ranges of combining marks and format characters, which belong inside words.

    Python's ``\\w`` has letters and digits but not marks (a decomposed "é" would split a word)
    nor zero-width characters (a classic way to hide a word). Computed for the BMP at import
    (~15 ms). Staying inside the BMP keeps the class a bitmap in ``re``: one range beyond it
    makes every character test a linear walk over some 700 ranges, ten times slower.
    """
    ranges: list[tuple[int, int]] = []
    start = prev = -2
    for cp in range(0x10000):
        cat = unicodedata.category(chr(cp))
        if cat[0] == "M" or cat == "Cf":
            if cp != prev + 1:
                if start >= 0:
                    ranges.append((start, prev))
                start = cp
            prev = cp
    if start >= 0:
        ranges.append((start, prev))
    return "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_WORD_CLASS = rf"[\w@${_invisible_ranges()}]"
# Only between word characters: leetspeak "k!ll", "sh+t" and the censor's star "f*ck"; "kill!"
# and "*bold*" end a word.
INNER_CHARS = "!|+*"
_TOKEN = re.compile(rf"{_WORD_CLASS}+(?:[{re.escape(INNER_CHARS)}]+{_WORD_CLASS}+)*")
_WORD_CHAR = re.compile(_WORD_CLASS)

_class_cache: dict[str, int] = {}


BOUNDARY, INNER, WORD = 0, 1, 2


def char_class(ch: str) -> int:
    """WORD (letter, digit, mark, invisible, ``@ $``), INNER (``! | +``) or BOUNDARY."""
    value = _class_cache.get(ch)
    if value is None:
        value = WORD if _WORD_CHAR.match(ch) else INNER if ch in INNER_CHARS else BOUNDARY
        if len(_class_cache) < 65536:
            _class_cache[ch] = value
    return value


def is_word_char(ch: str) -> bool:
    """True for a character that always belongs to a word."""
    return char_class(ch) == WORD


def is_inner_char(ch: str) -> bool:
    """True for a character that is part of a word only between word characters (``! | +``)."""
    return char_class(ch) == INNER


# --------------------------------------------------------------------------- per-character folding

_SMALL_CAPS = dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢɑıɩ", "abcdefghijklmnoprstuvwyzaii"))

# Cyrillic and Greek letters that look like Latin ones, by case (before case folding, so that
# Greek capital eta "Η" becomes "H" and not the "n" its small form resembles).
_CONFUSABLE = dict(
    zip(
        "АВЕКМНОРСТХУЅІЈԁԛԝһӏаеорсуххѕіїјкмтвгпьнёүӀ"
        "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαβγεικνορτυχωημς",
        "ABEKMHOPCTXYSIJdqwhlaeopcyxxsiijkmtbrnbheyl"
        "ABEZHIKMNOPTYXabyeikvoptuxwnuc",
    )
)

_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
         "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e", "¡": "i"}
_LEET_ALT = {"1": "l", "|": "i"}  # the other reading of an ambiguous character
_LEET_SYMBOLS = frozenset("@$!|+€¡")
_STAR = "*"  # a letter left out on purpose

# Words with digits that are not leetspeak: numbers with a unit or ordinal ("10am", "2nd",
# "100m") and codes with one letter ("y9", "a1", "m25").
_NOT_LEET = re.compile(
    r"\d*1st|\d*2nd|\d*3rd|\d+th"   # real ordinals only: "3nd" is "end" in leetspeak
    r"|\d+(?:s|am|pm|k|m|g|kg|km|cm|mm|ml|mb|gb|kb|tb|hz|mhz|ghz|fps|p|x|d|yr|yrs"
    r"|min|mins|hr|hrs|h|ft|lb|lbs|mph|v|w|mp)|[a-z]\d+"
)

_base_cache: dict[str, str] = {}


def _base(ch: str) -> str:
    """NFKD without marks or invisible characters, small capitals mapped; case kept."""
    value = _base_cache.get(ch)
    if value is None:
        out = []
        for c in unicodedata.normalize("NFKD", ch):
            cat = unicodedata.category(c)
            if cat[0] == "M" or cat == "Cf" or c == "_":
                continue
            c = _SMALL_CAPS.get(c, c)
            if c.isalnum() or c in _LEET_SYMBOLS or c == _STAR:
                out.append(c)
        value = "".join(out)
        if len(_base_cache) < 65536:
            _base_cache[ch] = value
    return value


def _script(c: str) -> int:
    """1 Latin, 2 Cyrillic or Greek, 0 anything else."""
    o = ord(c)
    if o < 0x80:
        return 1 if c.isalpha() else 0
    if 0x00C0 <= o <= 0x024F or 0x1E00 <= o <= 0x1EFF:
        return 1
    if 0x0370 <= o <= 0x052F or 0x1F00 <= o <= 0x1FFF:
        return 2
    return 0


# --------------------------------------------------------------------------- words


@dataclass(frozen=True, slots=True)
class Folded:
    """One folded word: collapsed key, run length per key character, original span per character.

    Spans are relative to the offset the word was folded at (0 for a cached single word).
    """

    key: str
    runs: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]

    @property
    def word(self) -> str:
        """The folded word before collapsing: "kill" for key "kil" with runs (1, 1, 2)."""
        return "".join(c * n for c, n in zip(self.key, self.runs))

    @property
    def single(self) -> bool:
        """A lone letter or digit: a candidate for joining "k i l l" back into a word."""
        return len(self.runs) == 1 and self.runs[0] == 1


_EMPTY = Folded("", (), ())
Item = tuple[str, int, int]  # (folded character, original start, original end)


def _items(word: str, offset: int = 0) -> list[Item]:
    items: list[Item] = []
    for i, ch in enumerate(word):
        base = _base(ch)
        if base:
            for c in base:
                items.append((c, offset + i, offset + i + 1))
        elif items:  # a dropped mark or invisible character stays inside the previous span
            c, lo, _ = items[-1]
            items[-1] = (c, lo, offset + i + 1)
    return items


class Vocabulary:
    """The folded words of the rules, for readings that only the rules can decide: "1", "|"
    and a capital "I" as "i" or "l", and a star standing for the letter(s) it hides."""

    def __init__(self, words: Iterable[str] = ()) -> None:
        self.words = frozenset(words)
        self.longest = max(map(len, self.words), default=0)
        self.keys = frozenset(_collapse_key(list(w)) for w in self.words)
        self._by_shape: dict[tuple[int, str, str], list[str]] = {}
        for w in sorted(self.words):
            self._by_shape.setdefault((len(w), w[0], w[-1]), []).append(w)

    def fill(self, chars: list[str]) -> list[str] | None:
        """The rule word that ``chars`` (with ``*`` for unknown letters) can only be, if one:
        "f*ck", "sh*t", "b**ch". The first and last letters must be there."""
        if chars[0] == _STAR or chars[-1] == _STAR:
            return None
        fits = [
            w for w in self._by_shape.get((len(chars), chars[0], chars[-1]), ())
            if all(c == _STAR or c == x for c, x in zip(chars, w))
        ]
        return list(fits[0]) if len(fits) == 1 else None



def _finish(items: list[Item], vocab: Vocabulary) -> Folded:
    if not items:
        return _EMPTY
    scripts = {_script(c) for c, _, _ in items}
    if 1 in scripts and 2 in scripts:
        items = [(_CONFUSABLE.get(c, c), lo, hi) for c, lo, hi in items]
    folded: list[Item] = []
    capital_i: list[bool] = []  # "I" doubles as "l" in sans-serif fonts: "kill myseIf"
    for c, lo, hi in items:
        f = c.casefold()
        if len(f) == 1:
            folded.append((f, lo, hi))
            capital_i.append(c == "I")
        else:
            folded.extend((x, lo, hi) for x in f)
            capital_i.extend(False for _ in f)
    chars = [c for c, _, _ in folded]
    leet = any(c.isalpha() for c in chars) and not _NOT_LEET.fullmatch("".join(chars))
    plain = [_LEET.get(c, c) for c in chars] if leet else chars
    alts = [
        "l" if ci else _LEET_ALT.get(c) if leet else None for c, ci in zip(chars, capital_i)
    ]
    if any(alts):
        alt = [a or p for a, p in zip(alts, plain)]
        if _collapse_key(plain) not in vocab.keys and _collapse_key(alt) in vocab.keys:
            plain = alt
    if _STAR in plain:
        filled = vocab.fill(plain) if leet else None
        if filled is not None:
            plain = filled
        else:  # not a word the rules know: the stars only separate letters ("k*i*l*l")
            kept = [i for i, c in enumerate(plain) if c != _STAR]
            if not kept:
                return _EMPTY
            plain = [plain[i] for i in kept]
            folded = [folded[i] for i in kept]
    return _collapse(plain, folded)


def _collapse_key(chars: list[str]) -> str:
    out = []
    prev = ""
    for c in chars:
        if c != prev:
            out.append(c)
            prev = c
    return "".join(out)


def _collapse(chars: list[str], items: list[Item]) -> Folded:
    key: list[str] = []
    runs: list[int] = []
    spans: list[tuple[int, int]] = []
    for c, (_, lo, hi) in zip(chars, items):
        if key and key[-1] == c:
            runs[-1] += 1
            spans[-1] = (spans[-1][0], hi)
        else:
            key.append(c)
            runs.append(1)
            spans.append((lo, hi))
    return Folded("".join(key), tuple(runs), tuple(spans))


# --------------------------------------------------------------------------- windows


@dataclass(slots=True)
class Window:
    """Folded text of ``original[lo:hi]``: ``string`` is " w1 w2 ... wn " (empty: " ")."""

    original: str
    string: str
    folds: list[Folded]
    offsets: list[int]       # add to a word's spans to index ``original``
    starts: list[int]        # index in ``string`` of each word's first character
    bounds: list[tuple[int, int]]  # each word's span in ``original``
    joined: list[bool]       # lone letters, or letters joined from "k i l l"
    alt: Window | None = None  # the same text with dotted and hyphenated words joined

    def locate(self, pos: int) -> tuple[int, int]:
        """(word index, character index in its key) of a position in ``string``."""
        w = bisect_right(self.starts, pos) - 1
        return w, pos - self.starts[w]

    def span(self, a: int, b: int) -> tuple[int, int]:
        """Original span of ``string[a:b]``; both ends must fall on word characters."""
        wa, ca = self.locate(a)
        wb, cb = self.locate(b - 1)
        return (self.offsets[wa] + self.folds[wa].spans[ca][0],
                self.offsets[wb] + self.folds[wb].spans[cb][1])


class Normalizer:
    """Folds words (cached) and stretches of text into :class:`Window` objects.

    ``vocab`` holds the folded words the rules use (see :class:`Vocabulary`).
    """

    CACHE_LIMIT = 20_000  # words (a few MB); dropped when full rather than growing forever

    def __init__(self, vocab: Iterable[str] = ()) -> None:
        self.vocab = Vocabulary(vocab)
        self._cache: dict[str, Folded] = {}

    def fold_word(self, word: str) -> Folded:
        folded = self._cache.get(word)
        if folded is None:
            folded = _finish(_items(word), self.vocab)
            if len(self._cache) >= self.CACHE_LIMIT:
                self._cache.clear()
            self._cache[word] = folded
        return folded

    def window(self, text: str, lo: int = 0, hi: int | None = None) -> Window:
        """Fold ``text[lo:hi]``. With ``lo > 0`` a word cut by ``lo``, and words right after it
        that the text before ``lo`` could change (lone letters, a part after a joiner), are left
        out. When words are joined by a dot or hyphen ("sui.cide"), ``alt`` holds the reading
        with each such chain as one word."""
        hi = len(text) if hi is None else hi
        found: list[_Found] = []
        for m in _TOKEN.finditer(text, lo, hi):
            s, e = m.span()
            f = self.fold_word(m.group())
            if f.key:
                found.append((s, e, f, s))
        if lo > 0 and found:
            if found[0][0] == lo and char_class(text[lo - 1]):
                found.pop(0)
            while found and (found[0][2].single or _after_joiner(text, found[0][0])):
                found.pop(0)
        win, has_run = self._assemble(text, found)
        chained = self._chain(text, found) if _JOINED.search(text, lo, hi) else None
        if chained is not None or has_run:
            alt, segmented = self._assemble(text, chained or found, segment=True)
            if chained is not None or segmented:
                win.alt = alt
        return win

    def _chain(self, text: str, found: list[_Found]) -> list[_Found] | None:
        """``found`` with each chain of words joined by single dots or hyphens as one word, or
        None if there is no such chain. Chains of lone letters are left to :meth:`_assemble`."""
        out: list[_Found] = []
        i, n = 0, len(found)
        while i < n:
            j = i + 1
            while j < n and found[j][0] - found[j - 1][1] == 1 and text[found[j][0] - 1] in JOINERS:
                j += 1
            if j - i >= 2 and not all(f[2].single for f in found[i:j]):
                s, e = found[i][0], found[j - 1][1]
                out.append((s, e, self.fold_word(text[s:e]), s))
            else:
                out.extend(found[i:j])
            i = j
        return out if len(out) < n else None

    def _assemble(self, text: str, found: list[_Found],
                  segment: bool = False) -> tuple[Window, bool]:
        """Lay the words out, joining runs of lone letters. Also says whether there was such a
        run, or with ``segment``, whether one was split back into the rules' words."""
        flag = False
        folds: list[Folded] = []
        offsets: list[int] = []
        bounds: list[tuple[int, int]] = []
        joined: list[bool] = []
        i, n = 0, len(found)
        while i < n:
            s, e, f, off = found[i]
            if not f.single:
                folds.append(f)
                offsets.append(off)
                bounds.append((s, e))
                joined.append(False)
                i += 1
                continue
            j = i + 1
            while j < n and found[j][2].single and short_gap(text, found[j - 1][1], found[j][0]):
                j += 1
            if j - i >= 3:
                run = found[i:j]
                merged = self._fold_run(text, run)
                pieces = self._segment(merged.word) if segment and len(merged.word) == len(run) \
                    else None
                flag = flag or (pieces is not None if segment else True)
                for a, b in pieces or [(0, len(run))]:
                    folds.append(self._fold_run(text, run[a:b]) if pieces else merged)
                    offsets.append(0)
                    bounds.append((run[a][0], run[b - 1][1]))
                    joined.append(True)
            else:
                for s2, e2, f2, off2 in found[i:j]:
                    folds.append(f2)
                    offsets.append(off2)
                    bounds.append((s2, e2))
                    joined.append(True)
            i = j

        starts: list[int] = []
        pos = 1
        for f in folds:
            starts.append(pos)
            pos += len(f.key) + 1
        string = " " + " ".join(f.key for f in folds) + " " if folds else " "
        return Window(text, string, folds, offsets, starts, bounds, joined), flag

    def _fold_run(self, text: str, run: list[_Found]) -> Folded:
        items: list[Item] = []
        for s, e, _, _ in run:
            items.extend(_items(text[s:e], s))
        return _finish(items, self.vocab)

    def _segment(self, letters: str) -> list[tuple[int, int]] | None:
        """Split spaced-out letters back into the rules' words and text-speak letters ("i c u t
        m y s e l f" -> i | cut | myself), fewest lone letters first; None unless every letter
        is used and there are at least two parts. Others ("k i l l e r") stay one word."""
        words, longest = self.vocab.words, self.vocab.longest
        n = len(letters)
        if n > 64 or not words:
            return None
        best: list[tuple[int, int] | None] = [None] * (n + 1)  # (lone letters, previous cut)
        best[0] = (0, 0)
        for i in range(1, n + 1):
            for j in range(max(0, i - longest), i):
                before = best[j]
                if before is None:
                    continue
                piece = letters[j:i]
                if i - j == 1:  # not the rules' lone letters: "what's" gives them an "s"
                    if piece not in _TEXT_SPEAK:
                        continue
                    cost = before[0] + 1
                elif piece in words:
                    cost = before[0]
                else:
                    continue
                if best[i] is None or cost < best[i][0]:
                    best[i] = (cost, j)
        if best[n] is None:
            return None
        cuts: list[tuple[int, int]] = []
        i = n
        while i > 0:
            j = best[i][1]
            cuts.append((j, i))
            i = j
        return cuts[::-1] if len(cuts) >= 2 else None


_Found = tuple[int, int, Folded, int]  # word start, end, folding, offset of its spans
_TEXT_SPEAK = frozenset("iuary")  # one-letter words: I, you, a, are, why
JOINERS = ".-"  # one of these between two words may join them: "sui.cide", "k-ill"
_JOINED = re.compile(rf"{_WORD_CLASS}[{re.escape(JOINERS)}]{_WORD_CLASS}")


def _after_joiner(text: str, s: int) -> bool:
    """Whether the word at ``s`` follows a single joiner right after another word."""
    return s >= 2 and text[s - 1] in JOINERS and char_class(text[s - 2]) != BOUNDARY


def short_gap(text: str, a: int, b: int) -> bool:
    """Whether ``text[a:b]`` may separate spaced-out letters: at most 3 characters, one line."""
    return b - a <= 3 and "\n" not in text[a:b]


def word_start_before(text: str, pos: int, words: int) -> int:
    """Start of the ``words``-th word ending at or before ``pos`` (0 if there are fewer), found
    by scanning backwards; moved further back past lone letters, which may belong to a run, and
    past words joined to the one before them."""
    if pos <= 0:
        return 0
    # the word pattern reads the same reversed
    for count, m in enumerate(_TOKEN.finditer(text[pos - 1::-1]), start=1):
        start = pos - m.end()
        if count >= words and m.end() - m.start() > 1 and not _after_joiner(text, start):
            return start
    return 0


_plain = Normalizer()


def normalize(text: str) -> Window:
    """Fold a whole text with no rule vocabulary (ambiguous "1" reads as "i")."""
    return _plain.window(text)


def fold_phrase(phrase: str, normalizer: Normalizer | None = None) -> str:
    """The folded form of a rule phrase: its words' keys joined by single spaces."""
    return (normalizer or _plain).window(phrase).string.strip()


"""Multi-pattern matching over folded text: one-shot for strings, streaming for keystrokes.

One Aho-Corasick automaton (pyahocorasick) holds every rule, ``unless`` phrase and exclusion in
folded form (see :mod:`core.normalize`). A whole-word pattern is stored with a space on each side
(" kil myself "), and folded text has a space between words, so "skillset" never contains " kil ";
an embedded stem ("suicid") is stored bare. A hit is then confirmed against the run lengths that
folding collapsed ("as" is not "ass", "looser" is not "loser", "killll" is "kill").

The stream never refolds its whole buffer: typing a letter only appends it; when a word ends it
folds the last few words (from a per-word cache) and scans them, and only when a rule fires there
does it fold the wider context its cancellers need. The work per keystroke therefore depends on
how many words the longest phrase has, not on how many rules there are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import ahocorasick

from core.normalize import (
    BOUNDARY,
    INNER_CHARS,
    JOINERS,
    Folded,
    Normalizer,
    Window,
    char_class,
    short_gap,
    word_start_before,
)
from core.rules import Mode, Rule, RuleSet
from core.topic_context import CUES, NEAR

__all__ = ["KEYS", "Match", "Matcher", "Stream"]

KEYS = ("backspace", "delete", "left", "right", "home", "end")

_RULE, _UNLESS, _EXCLUDE, _CUE = 0, 1, 2, 3
# what ends a sentence between a cue and a topic word; not a window title's " - ", which joins
# a help site's name to its page ("YoungMinds - Self-harm - Google Chrome")
_SENTENCE_END = re.compile(r"[.!?…。！？؟۔।]|\n")
_NO_OWNERS: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Match:
    """A rule firing on ``text[start:end]``; ``matched`` is exactly that original substring."""

    rule: Rule
    start: int
    end: int
    matched: str

    def as_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule.id,
            "category": self.rule.category,
            "severity": self.rule.severity,
            "start": self.start,
            "end": self.end,
            "matched": self.matched,
        }


class _Entry:
    """What a key in the automaton stands for; several entries may share one key."""

    __slots__ = ("embedded", "kind", "owners", "rule", "runs")

    def __init__(self, kind: int, rule: int, owners: frozenset[int], runs: tuple[int, ...],
                 embedded: bool) -> None:
        self.kind = kind
        self.rule = rule            # index into Matcher.rules (kind _RULE)
        self.owners = owners        # rule indices an ``unless`` phrase belongs to
        self.runs = runs            # run length per key character; 0 for a space
        self.embedded = embedded


@dataclass(slots=True)
class _Hit:
    rule: int
    start: int
    end: int
    first: int   # first and last word index in the window
    last: int


_Cue = tuple[int, int]  # first and last word index of a topic cue in the window
_View = tuple[Window, list[_Hit], list[tuple[int, int]], list[tuple[frozenset[int], int, int]],
              list[_Cue]]


def _expand(folds: list[Folded]) -> list[str]:
    return [c for f in folds for c in f.word]


def _pattern(folds: list[Folded]) -> tuple[str, tuple[int, ...]]:
    key = " ".join(f.key for f in folds)
    runs: list[int] = []
    for i, f in enumerate(folds):
        if i:
            runs.append(0)
        runs.extend(f.runs)
    return key, tuple(runs)


def _joined(folds: list[Folded]) -> tuple[str, tuple[int, ...]] | None:
    """"kill yourself" also as "killyourself": how hashtags and "k i l l y o u r s e l f" read.

    Only for words of two letters or more and a long result, so short phrases do not turn into
    unrelated words.
    """
    if len(folds) < 2 or any(sum(f.runs) < 2 for f in folds):
        return None
    chars = _expand(folds)
    if len(chars) < 7:
        return None
    key: list[str] = []
    runs: list[int] = []
    for c in chars:
        if key and key[-1] == c:
            runs[-1] += 1
        else:
            key.append(c)
            runs.append(1)
    return "".join(key), tuple(runs)


def _run_ok(t: int, p: int, edge: bool) -> bool:
    # Equal runs match; a longer run matches only when it looks stretched (3+ and longer than the
    # rule's), so "looser" (oo) is not "loser" but "looooser" is. A stem's first and last letters
    # may be part of a longer run ("kil" inside "killing").
    return t == p or (edge and t >= p) or t >= max(p + 1, 3)


class Matcher:
    """Every rule of a :class:`RuleSet` in one automaton; thread-safe for ``match`` calls."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.rules: tuple[Rule, ...] = tuple(ruleset.rules)
        plain = Normalizer()
        table: dict[str, list[_Entry]] = {}
        words = [1, 1, 1, 1]  # most words in a key, per kind
        vocab: set[str] = set()
        unless_owners: dict[tuple[str, bool], set[int]] = {}
        unless_phrases: dict[int, list[str]] = {}
        # Most run tuples are alike ("all ones"): sharing them saves a tuple per key.
        shared_runs: dict[tuple[int, ...], tuple[int, ...]] = {}

        def add(folds: list[Folded], entry_of: tuple[int, int, frozenset[int], bool]) -> None:
            kind, rule, owners, embedded = entry_of
            words[kind] = max(words[kind], len(folds))
            variants = [_pattern(folds)]
            if not embedded:
                joined = _joined(folds)
                if joined:
                    variants.append(joined)
            for key, runs in variants:
                if not embedded:
                    key, runs = f" {key} ", (0, *runs, 0)
                runs = shared_runs.setdefault(runs, runs)
                table.setdefault(key, []).append(_Entry(kind, rule, owners, runs, embedded))

        for index, rule in enumerate(self.rules):
            folds = plain.window(rule.phrase).folds
            vocab.update(f.word for f in folds)
            embedded = rule.mode is Mode.EMBEDDED
            add(folds, (_RULE, index, _NO_OWNERS, embedded))
            for phrase in rule.unless:
                unless_owners.setdefault((phrase, embedded), set()).add(index)
                unless_phrases.setdefault(index, []).append(phrase)
        for (phrase, embedded), owners in unless_owners.items():
            folds = plain.window(phrase).folds
            vocab.update(f.word for f in folds)
            add(folds, (_UNLESS, -1, frozenset(owners), embedded))
        exclusions = sorted({e.phrase for e in ruleset.exclusions})
        for phrase in exclusions:
            folds = plain.window(phrase).folds
            vocab.update(f.word for f in folds)
            add(folds, (_EXCLUDE, -1, _NO_OWNERS, False))
        self._topic = [rule.topic for rule in self.rules]
        if any(self._topic):
            for phrase in CUES:
                folds = plain.window(phrase).folds
                vocab.update(f.word for f in folds)
                add(folds, (_CUE, -1, _NO_OWNERS, False))

        self._automaton = ahocorasick.Automaton()
        for key, entries in table.items():
            # One entry (the usual case) is stored bare; len(entry.runs) == len(key).
            self._automaton.add_word(key, entries[0] if len(entries) == 1 else tuple(entries))
        if table:
            self._automaton.make_automaton()
        self._empty = not table
        self._normalizer = Normalizer(vocab)
        # How many words behind the first undecided one the stream refolds: enough for a rule to
        # start there, and, when something fires, for a canceller to reach further back.
        self.rule_words = words[_RULE] + 1
        reach = max(words[_UNLESS], words[_EXCLUDE])
        if any(self._topic):
            reach = max(reach, NEAR + words[_CUE])
        self.context_words = words[_RULE] + reach + 1
        self._need = self._right_context(exclusions, unless_phrases)
        for index, topic in enumerate(self._topic):
            if topic:  # a cue may follow the topic word ("anorexia lesson notes")
                self._need[index] = max(self._need[index], NEAR)

    # ------------------------------------------------------------------ construction helpers

    def _right_context(self, exclusions: list[str],
                       unless_phrases: dict[int, list[str]]) -> list[int]:
        """Words that must follow a rule's match before a stream can rule out its cancellers.

        "sex" inside the exclusion "sex education" needs one more word; "kill myself" with
        ``unless = ["kill myself laughing"]`` needs one.
        """
        need = [0] * len(self.rules)
        for phrase in exclusions:
            for win, hits, *_ in self._views(self._normalizer.window(phrase)):
                for hit in hits:
                    need[hit.rule] = max(need[hit.rule], len(win.folds) - 1 - hit.last)
        for index, phrases in unless_phrases.items():
            for phrase in phrases:
                for win, hits, *_ in self._views(self._normalizer.window(phrase)):
                    inside = [h for h in hits if h.rule == index]
                    after = min((len(win.folds) - 1 - h.last for h in inside),
                                default=len(win.folds) - 1)
                    need[index] = max(need[index], after)
        return need

    # ------------------------------------------------------------------ scanning

    def _views(self, win: Window) -> list[_View]:
        """Hits in a window and in its joined reading ("sui.cide"), each with its own
        cancellers: a reading never cancels a match the other one makes."""
        return [(w, *self._hits(w)) for w in (win, win.alt) if w is not None]

    def _hits(self, win: Window) -> tuple[list[_Hit], list[tuple[int, int]],
                                           list[tuple[frozenset[int], int, int]], list[_Cue]]:
        """Rule hits, exclusion spans, ``unless`` spans and topic cues in a window, runs
        confirmed."""
        rules: list[_Hit] = []
        excluded: list[tuple[int, int]] = []
        unless: list[tuple[frozenset[int], int, int]] = []
        cues: list[_Cue] = []
        if self._empty or not win.folds:
            return rules, excluded, unless, cues
        folds = win.folds
        for end_idx, value in self._automaton.iter(win.string):
            entries = value if type(value) is tuple else (value,)
            a = end_idx - len(entries[0].runs) + 1
            for entry in entries:
                runs = entry.runs
                if entry.embedded:
                    lo, hi = a, end_idx + 1
                    first = 0
                    last = len(runs) - 1
                else:
                    lo, hi = a + 1, end_idx
                    first = 1
                    last = len(runs) - 2
                w, c = win.locate(lo)
                w0 = w
                ok = True
                for i in range(first, last + 1):
                    p = runs[i]
                    if p == 0:
                        w += 1
                        c = 0
                        continue
                    if not _run_ok(folds[w].runs[c], p, entry.embedded and (i == first
                                                                            or i == last)):
                        ok = False
                        break
                    c += 1
                if not ok:
                    continue
                start, end = win.span(lo, hi)
                if entry.kind == _RULE:
                    rules.append(_Hit(entry.rule, start, end, w0, w))
                elif entry.kind == _EXCLUDE:
                    excluded.append((start, end))
                elif entry.kind == _CUE:
                    cues.append((w0, w))
                else:
                    unless.append((entry.owners, start, end))
        return rules, excluded, unless, cues

    def _cancelled(self, hit: _Hit, excluded: list[tuple[int, int]],
                   unless: list[tuple[frozenset[int], int, int]], cues: list[_Cue],
                   win: Window) -> bool:
        for xs, xe in excluded:
            if xs <= hit.start and hit.end <= xe:
                return True
        for owners, xs, xe in unless:
            if hit.rule in owners and xs < hit.end and hit.start < xe:
                return True
        if cues and self._topic[hit.rule]:
            return any(_cue_near(win, hit, cue) for cue in cues)
        return False

    def _make(self, text: str, hit: _Hit, shift: int = 0) -> Match:
        return Match(self.rules[hit.rule], hit.start - shift, hit.end - shift,
                     text[hit.start:hit.end])

    # ------------------------------------------------------------------ public API

    def match(self, text: str) -> list[Match]:
        """Every match in ``text`` (a window title, pasted text), in order of position."""
        found = {
            (h.start, h.end, self.rules[h.rule].id): h
            for win, hits, excluded, unless, cues in self._views(self._normalizer.window(text))
            for h in hits
            if not self._cancelled(h, excluded, unless, cues, win)
        }
        return [self._make(text, found[k]) for k in sorted(found)]

    def stream(self, capacity: int = 512) -> Stream:
        """A typing buffer of at most ``capacity`` characters, fed one keystroke at a time."""
        return Stream(self, capacity)


class Stream:
    """The typing buffer: a text field with a cursor, matched as words end.

    ``feed`` a printable character (space and punctuation included), ``key`` an editing key
    (one of :data:`KEYS`), ``end_utterance`` on Enter, Tab, a click or a change of focus. Each
    call returns the matches it completed; offsets index :attr:`text` as it is at that moment.
    A match is reported once while it stays in the buffer.
    """

    def __init__(self, matcher: Matcher, capacity: int = 512) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._m = matcher
        self.capacity = capacity
        self._reset()

    def _reset(self) -> None:
        self._text = ""
        self._cursor = 0
        self._base = 0            # characters forgotten from the front since the last reset
        self._settled = 0         # every match ending at or before this is decided
        self._dirty = False       # an edit before the end: rescan everything at the next stop
        self._wordish = False     # the character before the cursor belongs to a word
        self._reported: set[tuple[int, int, int]] = set()   # (rule, absolute start, end)

    @property
    def text(self) -> str:
        return self._text

    @property
    def cursor(self) -> int:
        return self._cursor

    # ------------------------------------------------------------------ input

    def feed(self, ch: str) -> list[Match]:
        if len(ch) != 1:
            out: list[Match] = []
            for c in ch:
                out.extend(self.feed(c))
            return out
        cls = char_class(ch)
        text = self._text
        if self._cursor == len(text):
            self._text = text + ch
            self._cursor += 1
            if len(self._text) > self.capacity:
                self._forget(len(self._text) - self.capacity)
            ended = cls == BOUNDARY and self._wordish
            self._wordish = cls != BOUNDARY
            return self._evaluate(final=False) if ended else []
        c = self._cursor
        self._text = text[:c] + ch + text[c:]
        self._cursor += 1
        self._shift_reported(c, +1, touching=cls != BOUNDARY)
        self._dirty = True
        self._wordish = cls != BOUNDARY
        if len(self._text) > self.capacity:
            self._forget(len(self._text) - self.capacity)
        return self._evaluate(final=False) if cls == BOUNDARY else []

    def key(self, name: str) -> list[Match]:
        """Apply an editing key. Other keys (arrows up/down, page keys) move the caret in ways a
        buffer cannot follow: call :meth:`end_utterance` for them instead."""
        text, c = self._text, self._cursor
        if name == "backspace":
            if c == 0:
                return []
            p = c - 1
            self._text = text[:p] + text[c:]
            self._cursor = p
            self._shift_reported(p, -1, touching=False)
            if c != len(text):
                self._dirty = True
            self._settled = min(self._settled, p)
            self._wordish = p > 0 and char_class(self._text[p - 1]) != BOUNDARY
            return []
        if name == "delete":
            if c >= len(text):
                return []
            self._text = text[:c] + text[c + 1:]
            self._shift_reported(c, -1, touching=False)
            self._dirty = True
            return []
        if name == "left":
            target = max(0, c - 1)
        elif name == "right":
            target = min(len(text), c + 1)
        elif name == "home":
            target = 0
        elif name == "end":
            target = len(text)
        else:
            raise ValueError(f"unknown key {name!r}; expected one of {', '.join(KEYS)}")
        if target == c:
            return []
        self._cursor = target
        self._wordish = target > 0 and char_class(text[target - 1]) != BOUNDARY
        return self._evaluate(final=False)

    def end_utterance(self) -> list[Match]:
        """Decide everything still pending, report it, and clear the buffer."""
        out = self._evaluate(final=True) if self._text else []
        self._reset()
        return out

    # ------------------------------------------------------------------ bookkeeping

    def _forget(self, n: int) -> None:
        self._text = self._text[n:]
        self._cursor = max(0, self._cursor - n)
        self._base += n
        self._settled = max(0, self._settled - n)
        if len(self._reported) > 4 * self.capacity:
            self._reported = {r for r in self._reported if r[1] >= self._base}

    def _shift_reported(self, pos: int, delta: int, touching: bool) -> None:
        """Keep reported matches in step with an insertion (+1) or deletion (-1) at ``pos``.

        A match the edit lands inside no longer exists; with ``touching`` (a letter typed right
        against it) neither does one it borders.
        """
        if not self._reported:
            return
        at = self._base + pos
        kept: set[tuple[int, int, int]] = set()
        for rule, s, e in self._reported:
            if (s <= at <= e) if touching else (s <= at < e if delta < 0 else s < at < e):
                continue
            if s >= at:
                s, e = s + delta, e + delta
            kept.add((rule, s, e))
        self._reported = kept

    def _active(self, win: Window) -> tuple[int, int] | None:
        """Word indices still being typed: the word at the cursor, or lone letters at the end
        that may go on ("k i l" before the last "l")."""
        text, cursor, bounds = self._text, self._cursor, win.bounds
        if not bounds:
            return None
        hit = None
        for i in range(len(bounds) - 1, -1, -1):
            s, e = bounds[i]
            if s >= cursor:
                continue  # a caret before a word does not make it "being typed"
            # the cursor is in or at the end of this word, or after "!" / "|" or a joiner
            # ("sui.") that may go on
            if (cursor <= e or not text[e:cursor].strip(INNER_CHARS)
                    or (cursor - e == 1 and text[e] in JOINERS)):
                hit = i
            break
        if hit is None and cursor == len(text):
            last = len(bounds) - 1
            if win.joined[last] and short_gap(text, bounds[last][1], cursor):
                hit = last
        if hit is None:
            return None
        first = last = hit
        if win.joined[hit]:
            while first > 0 and win.joined[first - 1] and short_gap(
                    text, bounds[first - 1][1], bounds[first][0]):
                first -= 1
            while last + 1 < len(bounds) and win.joined[last + 1] and short_gap(
                    text, bounds[last][1], bounds[last + 1][0]):
                last += 1
        return first, last

    def _evaluate(self, final: bool) -> list[Match]:
        m, text = self._m, self._text
        base = self._base
        if self._dirty:
            since = -1
            views = m._views(m._normalizer.window(text))
        else:
            since = self._settled
            # Most word ends complete nothing: look at the last few words first, and refold the
            # wider context that cancellers need only when a rule fires there.
            views = m._views(m._normalizer.window(
                text, word_start_before(text, since, m.rule_words)))
            if final or any(h.end > since and (h.rule, base + h.start, base + h.end)
                            not in self._reported for view in views for h in view[1]):
                views = m._views(m._normalizer.window(
                    text, word_start_before(text, since, m.context_words)))
        settled = len(text)
        out: list[Match] = []
        for win, hits, excluded, unless, cues in views:
            active = None if final else self._active(win)
            stop = len(text)
            if active is not None:
                stop = win.bounds[active[0]][0]  # words from here on are still being typed
                settled = min(settled, stop)
            for hit in hits:
                if hit.end <= since:
                    continue
                key = (hit.rule, base + hit.start, base + hit.end)
                if key in self._reported:
                    continue
                if not final:
                    touches = active is not None and not (
                        hit.last < active[0] or hit.first > active[1])
                    need = m._need[hit.rule]
                    if touches or (need and _words_between(win, hit.last, stop) < need):
                        settled = min(settled, hit.start)
                        continue
                if m._cancelled(hit, excluded, unless, cues, win):
                    continue
                self._reported.add(key)
                out.append(m._make(text, hit))
        self._settled = settled
        self._dirty = False
        out.sort(key=lambda x: (x.start, x.end, x.rule.id))
        return out


def _words_between(win: Window, last: int, stop: int) -> int:
    """Words after word ``last`` that end before ``stop`` (the still-active part)."""
    count = 0
    for s, e in win.bounds[last + 1:]:
        if e > stop:
            break
        count += 1
    return count



def _cue_near(win: Window, hit: _Hit, cue: _Cue) -> bool:
    """A topic cue within NEAR words of the hit, in the same sentence, not inside the hit."""
    first, last = cue
    if last < hit.first:
        gap, a, b = hit.first - last, last, hit.first
    elif first > hit.last:
        gap, a, b = first - hit.last, hit.last, first
    else:
        return False
    if gap > NEAR:
        return False
    return not _SENTENCE_END.search(win.original, win.bounds[a][1], win.bounds[b][0])

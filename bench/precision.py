"""Precision and recall of the default wordlists over the hand-written corpus.

Runs every line of tests/data/corpus/ through three matchers in the same process:

- ``one-shot``: core.matcher.Matcher.match(line), as for window titles and pasted text;
- ``stream``: the same automaton fed one character at a time, then end_utterance(), as typed;
- ``naive``: case-insensitive substring search of each phrase, without normalisation, unless
  phrases or exclusions: the baseline that shows why the engine exists.

A positive line counts as recalled when a rule of its own category fires. A benign line is a
false positive when any rule fires. Prints a table per category and the overall lines
``recall=<n> false_positive_rate=<n>`` (one-shot, whole corpus), ``stream_recall=...`` and
``naive_recall=...``. Targets: recall >= 0.95 and false_positive_rate <= 0.02.

The development corpus (tests/data/corpus/) is what the lists were tuned on; the held-out part
(tests/data/corpus/heldout/) was written after the last tuning and gets its own table and
``heldout_recall=...`` lines.

    .venv/bin/python bench/precision.py [--wordlists DIR ...] [--corpus DIR ...] [--show]

This corpus flatters the lists (it was written with them). The honest measure, on held-out lines
in fifteen languages, per category and per language, for the lists, the sentence model and both,
with a peer word filter in the same run, is bench/detection.py;
``bench/precision.py --held-out [--split test|dev]`` runs it.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.errors import VigilError
from core.matcher import Matcher
from core.rules import CATEGORIES, RuleSet, default_dir, load_dirs
from tests.data.corpus import CORPUS_DIR, HELDOUT_DIR, Sample, benign, positives

__all__ = ["Detector", "Tally", "detectors", "evaluate", "main"]

RECALL_TARGET = 0.95
FALSE_POSITIVE_TARGET = 0.02

# A detector maps a line to the (rule id, category, severity) of every rule that fires on it.
Fired = tuple[str, str, int]
Detector = Callable[[str], set[Fired]]
SERIOUS = 4  # severity from which a DSL is expected to look the same day


def one_shot(matcher: Matcher) -> Detector:
    def detect(text: str) -> set[Fired]:
        return {(m.rule.id, m.rule.category, m.rule.severity) for m in matcher.match(text)}

    return detect


def streaming(matcher: Matcher) -> Detector:
    def detect(text: str) -> set[Fired]:
        stream = matcher.stream(capacity=max(512, 2 * len(text)))
        found = []
        for ch in text:
            found += stream.feed(ch)
        found += stream.end_utterance()
        return {(m.rule.id, m.rule.category, m.rule.severity) for m in found}

    return detect


def naive(ruleset: RuleSet) -> Detector:
    phrases = [(r.phrase.lower(), (r.id, r.category, r.severity)) for r in ruleset.rules]

    def detect(text: str) -> set[Fired]:
        low = text.lower()
        return {fired for phrase, fired in phrases if phrase in low}

    return detect


def detectors(ruleset: RuleSet) -> dict[str, Detector]:
    matcher = Matcher(ruleset)
    return {"one-shot": one_shot(matcher), "stream": streaming(matcher), "naive": naive(ruleset)}


@dataclass
class Tally:
    """Counts for one detector, keyed by (category, obfuscated?) for positives."""

    positives: Counter[tuple[str, bool]] = field(default_factory=Counter)
    recalled: Counter[tuple[str, bool]] = field(default_factory=Counter)
    benign_fired: Counter[str] = field(default_factory=Counter)
    benign_total: int = 0
    benign_any: int = 0
    benign_serious: int = 0  # benign lines firing a rule of severity >= SERIOUS
    misses: list[Sample] = field(default_factory=list)
    false_positives: list[tuple[Sample, list[str]]] = field(default_factory=list)

    def count(self, category: str | None = None, obfuscated_only: bool = False) -> int:
        return _sum(self.positives, category, obfuscated_only)

    def recall(self, category: str | None = None, obfuscated_only: bool = False) -> float:
        return _ratio(_sum(self.recalled, category, obfuscated_only),
                      _sum(self.positives, category, obfuscated_only))

    def false_positive_rate(self, category: str | None = None) -> float:
        fired = self.benign_any if category is None else self.benign_fired[category]
        return _ratio(fired, self.benign_total)

    def serious_false_positive_rate(self) -> float:
        return _ratio(self.benign_serious, self.benign_total)


def _sum(counts: Counter[tuple[str, bool]], category: str | None, obfuscated_only: bool) -> int:
    return sum(n for (cat, obf), n in counts.items()
               if (category is None or cat == category) and (obf or not obfuscated_only))


def _ratio(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def evaluate(detect: Detector, pos: Iterable[Sample], neg: Iterable[Sample]) -> Tally:
    tally = Tally()
    for sample in pos:
        assert sample.category is not None
        key = (sample.category, sample.obfuscated)
        tally.positives[key] += 1
        if any(cat == sample.category for _, cat, _ in detect(sample.text)):
            tally.recalled[key] += 1
        else:
            tally.misses.append(sample)
    for sample in neg:
        tally.benign_total += 1
        fired = detect(sample.text)
        if fired:
            tally.benign_any += 1
            tally.benign_serious += any(sev >= SERIOUS for _, _, sev in fired)
            tally.false_positives.append((sample, sorted(f"{rid}({sev})" for rid, _, sev in fired)))
        tally.benign_fired.update({cat for _, cat, _ in fired})
    return tally


def _pct(x: float) -> str:
    return f"{100 * x:6.1f}%"


def print_table(tallies: dict[str, Tally]) -> None:
    """Recall on all positives and on the obfuscated ones, and the false-positive rate."""
    names = list(tallies)
    head = (f"{'category':<15} {'pos':>5} {'obf':>4} "
            + " ".join(f"{'recall ' + n:>15}" for n in names)
            + " | " + " ".join(f"{'obf ' + n:>12}" for n in names)
            + " | " + " ".join(f"{'FP ' + n:>12}" for n in names))
    print(head)
    print("-" * len(head))
    first = tallies[names[0]]
    for cat in [*sorted(CATEGORIES), None]:
        row = f"{cat or 'all':<15} {first.count(cat):>5} {first.count(cat, True):>4} "
        row += " ".join(f"{_pct(t.recall(cat)):>15}" for t in tallies.values())
        row += " | " + " ".join(f"{_pct(t.recall(cat, True)):>12}" for t in tallies.values())
        row += " | " + " ".join(f"{_pct(t.false_positive_rate(cat)):>12}" for t in tallies.values())
        print(row)
    row = f"{'FP severity>=' + str(SERIOUS):<15} {'':>5} {'':>4} " + " ".join(f"{'':>15}" for _ in names)
    row += " | " + " ".join(f"{'':>12}" for _ in names)
    row += " | " + " ".join(f"{_pct(t.serious_false_positive_rate()):>12}" for t in tallies.values())
    print(row)


def _report(title: str, tallies: dict[str, Tally], show: bool) -> None:
    first = tallies["one-shot"]
    print(f"\n## {title}: {first.count()} positive lines ({first.count(None, True)} obfuscated), "
          f"{first.benign_total} benign lines")
    print_table(tallies)
    if show:
        for name, tally in tallies.items():
            print(f"\n== {title} / {name}: {len(tally.misses)} missed positives")
            for s in tally.misses:
                print(f"  {s.source}: {s.text}")
            print(f"== {title} / {name}: {len(tally.false_positives)} false positives")
            for s, rules in tally.false_positives:
                print(f"  {s.source}: {s.text}  <- {', '.join(rules)}")


def _summary(prefix: str, tallies: dict[str, Tally]) -> None:
    for name, key in (("one-shot", ""), ("stream", "stream_"), ("naive", "naive_")):
        t = tallies[name]
        print(f"{prefix}{key}recall={t.recall():.4f} "
              f"{prefix}{key}false_positive_rate={t.false_positive_rate():.4f} "
              f"{prefix}{key}obfuscated_recall={t.recall(obfuscated_only=True):.4f} "
              f"{prefix}{key}serious_false_positive_rate={t.serious_false_positive_rate():.4f}")


def _title(corpus: Path) -> str:
    return {CORPUS_DIR: "development", HELDOUT_DIR: "held-out"}.get(corpus, str(corpus))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--held-out" in argv:  # the held-out detection bench (issue 13), same arguments
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import detection

        return detection.main([a for a in argv if a != "--held-out"])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordlists", action="append", default=[], metavar="DIR",
                        help="extra wordlist directory loaded after the defaults (repeatable)")
    parser.add_argument("--corpus", type=Path, action="append", default=[], metavar="DIR",
                        help="corpus directory (repeatable; default: the development corpus and "
                             "its held-out part, reported separately)")
    parser.add_argument("--show", action="store_true",
                        help="list the missed positives and the false positives of each matcher")
    args = parser.parse_args(argv)

    try:
        ruleset = load_dirs(default_dir(), *args.wordlists)
    except VigilError as err:  # a bad school file: one line naming file and line, as `vigil match`
        print(f"precision: {err}", file=sys.stderr)
        return 2
    found = detectors(ruleset)
    corpora = args.corpus or [CORPUS_DIR, HELDOUT_DIR]
    sets = [(c, positives(c), benign(c)) for c in corpora]
    sets = [s for s in sets if s[1] or s[2]]
    if not sets:
        print(f"precision: no corpus lines under {', '.join(map(str, corpora))}", file=sys.stderr)
        return 2
    print(f"rules: {len(ruleset.rules)}")
    held: dict[str, Tally] | None = None
    for corpus, pos, neg in sets:
        tallies = {name: evaluate(d, pos, neg) for name, d in found.items()}
        _report(_title(corpus), tallies, args.show)
        if corpus == HELDOUT_DIR:
            held = tallies
    all_pos = [s for _, pos, _ in sets for s in pos]
    all_neg = [s for _, _, neg in sets for s in neg]
    overall = {name: evaluate(d, all_pos, all_neg) for name, d in found.items()}
    print(f"\n## overall: {len(all_pos)} positive lines, {len(all_neg)} benign lines")
    _summary("", overall)
    if held is not None and len(sets) > 1:
        _summary("heldout_", held)
    one = overall["one-shot"]
    met = one.recall() >= RECALL_TARGET and one.false_positive_rate() <= FALSE_POSITIVE_TARGET
    print(f"target recall>={RECALL_TARGET} false_positive_rate<={FALSE_POSITIVE_TARGET}: "
          f"{'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

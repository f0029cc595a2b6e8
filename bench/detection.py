"""Detection on held-out text: recall and false positives per category and per language (issue 13).

Why this exists: bench/precision.py scores the lists on tests/data/corpus/, which was written
together with the lists, so it says 99% recall. This bench scores every detector on
tests/data/detection/<split>/, lines written the way pupils type, in fifteen languages, before
any tuning and without sight of the lists (see that directory's README for the rule that a test
split whose errors drove a change is spent).

Detectors, all in the same process and on the same lines:

- ``lists``: the product's real matcher, core.matcher.Matcher(default rules).match(text);
- ``model``: the sentence model and its calibrated head alone (core.detect.model, issue 13);
- ``lists+model``: what the product runs, core.detect.combine.build(default rules), text typed;
- ``naive``: case-insensitive substring search of every list phrase, as bench/precision.py does;
- ``better-profanity``: a **peer baseline** from PyPI (in the ``dev`` extra), the kind of free
  word filter a school might otherwise use. It has no categories, so any hit is credited to the
  line's own category (generous to it) and it has no severity (its severity>=3 row reads n/a).
  Skipped with a note when it is not installed.

A detector is one function, text -> list of (category, severity, start, end); ``category`` may be
``*`` for a detector without categories and ``severity`` may be None. A model detector is added by
writing one such function and one entry in ``detectors()``.

A risk line counts as recalled when a hit of its own category fires (or ``*``). A benign line is
a false positive when anything fires; the ``FP sev>=3`` figure counts benign lines where a hit of
severity 3 or more fires. Prints tables per category, per language and per kind, then one overall
line per detector: ``<name>: recall=<n> false_positive_rate=<n> serious_false_positive_rate=<n>``.

    .venv/bin/python bench/detection.py [--split test|dev|train] [--show]

``--show`` lists misses and false positives. Reading them for the test split spends it: use dev.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.detect.combine import CombinedDetector, build
from core.detect.model import ModelDetector
from core.errors import ModelUnavailable, VigilError
from core.matcher import Matcher
from core.rules import CATEGORIES, RuleSet, load_defaults

__all__ = ["DATA_DIR", "Detector", "Hit", "Line", "Tally", "detectors", "evaluate", "load_split",
           "main"]

DATA_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "detection"
LABELS: tuple[str, ...] = tuple(dict.fromkeys((*CATEGORIES, "eating_disorder")))  # once, in order
SERIOUS = 3  # issue 13: false positives at severity >= 3 must stay <= 1%
ANY = "*"  # the category of a hit from a detector that has no categories

Hit = tuple[str, int | None, int, int]  # (category, severity, start, end)
Detector = Callable[[str], list[Hit]]


@dataclass(frozen=True)
class Line:
    text: str
    label: str
    lang: str
    kind: str
    source: str  # file:line, for --show

    @property
    def risk(self) -> bool:
        return self.label != "benign"


def load_split(split: str, root: Path = DATA_DIR) -> list[Line]:
    """Every line of tests/data/detection/<split>/*.tsv; raises ValueError on a malformed row."""
    lines: list[Line] = []
    for path in sorted((root / split).glob("*.tsv")):
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader)
            if header != ["text", "label", "lang", "kind"]:
                raise ValueError(f"{path}: header {header!r}")
            for n, row in enumerate(reader, start=2):
                if len(row) != 4 or not row[0].strip():
                    raise ValueError(f"{path}:{n}: expected 4 columns, got {row!r}")
                text, label, lang, kind = row
                if label != "benign" and label not in LABELS:
                    raise ValueError(f"{path}:{n}: unknown label {label!r}")
                lines.append(Line(text, label, lang, kind, f"{path.name}:{n}"))
    return lines


# --- detectors ---------------------------------------------------------------------------------

def lists_detector(matcher: Matcher) -> Detector:
    def detect(text: str) -> list[Hit]:
        return [(m.rule.category, m.rule.severity, m.start, m.end) for m in matcher.match(text)]

    return detect


def naive_detector(ruleset: RuleSet) -> Detector:
    phrases = [(r.phrase.lower(), r.category, r.severity) for r in ruleset.rules]

    def detect(text: str) -> list[Hit]:
        low = text.lower()
        hits: list[Hit] = []
        for phrase, cat, sev in phrases:
            at = low.find(phrase)
            if at >= 0:
                hits.append((cat, sev, at, at + len(phrase)))
        return hits

    return detect


def better_profanity_detector() -> Detector | None:
    """The peer baseline, or None when the package is not installed."""
    try:
        from better_profanity import profanity  # type: ignore[import-not-found]
    except ImportError:
        return None
    profanity.load_censor_words()

    def detect(text: str) -> list[Hit]:
        return [(ANY, None, 0, len(text))] if profanity.contains_profanity(text) else []

    return detect


def product_detector(detector: CombinedDetector | ModelDetector) -> Detector:
    """Any core.detect detector (the model alone, or lists + model as the product runs them)."""
    def detect(text: str) -> list[Hit]:
        return [(d.category, d.severity, d.start, d.end) for d in detector.detect(text, "typed")]

    return detect


def detectors(ruleset: RuleSet) -> dict[str, Detector]:
    found: dict[str, Detector] = {"lists": lists_detector(Matcher(ruleset))}
    try:
        combined = build(ruleset, require_model=True)
    except ModelUnavailable as err:
        print(f"detection: {err}; model rows skipped", file=sys.stderr)
    else:
        assert combined.model is not None
        found["model"] = product_detector(combined.model)
        found["lists+model"] = product_detector(combined)
    found["naive"] = naive_detector(ruleset)
    peer = better_profanity_detector()
    if peer is not None:
        found["better-profanity"] = peer
    return found


# --- scoring -----------------------------------------------------------------------------------

@dataclass
class Tally:
    """Per-detector counts, keyed by category, language and kind."""

    risk: Counter[tuple[str, str]] = field(default_factory=Counter)       # (axis, key) -> lines
    recalled: Counter[tuple[str, str]] = field(default_factory=Counter)
    benign: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired: Counter[tuple[str, str]] = field(default_factory=Counter)
    serious: Counter[tuple[str, str]] = field(default_factory=Counter)
    fired_cat: Counter[str] = field(default_factory=Counter)   # benign lines, by hit category
    serious_cat: Counter[str] = field(default_factory=Counter)
    benign_cat: int = 0
    has_severity: bool = True
    has_category: bool = True
    seconds: float = 0.0
    misses: list[Line] = field(default_factory=list)
    false_positives: list[tuple[Line, list[Hit]]] = field(default_factory=list)

    def recall(self, axis: str = "all", key: str = "all") -> float | None:
        return _ratio(self.recalled[axis, key], self.risk[axis, key])

    def fp_rate(self, axis: str = "all", key: str = "all") -> float | None:
        if axis == "cat":  # share of all benign lines on which this category fired
            return None if not self.has_category else _ratio(self.fired_cat[key], self.benign_cat)
        return _ratio(self.fired[axis, key], self.benign[axis, key])

    def serious_rate(self, axis: str = "all", key: str = "all") -> float | None:
        if not self.has_severity:
            return None
        if axis == "cat" and key != "all":
            return None if not self.has_category else _ratio(self.serious_cat[key], self.benign_cat)
        return _ratio(self.serious[axis, key], self.benign[axis, key])

    def benign_lines(self, axis: str, key: str) -> int:
        return self.benign_cat if axis == "cat" else self.benign[axis, key]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _keys(line: Line) -> list[tuple[str, str]]:
    return [("all", "all"), ("cat", line.label), ("lang", line.lang), ("kind", line.kind)]


def evaluate(detect: Detector, lines: Iterable[Line]) -> Tally:
    tally = Tally()
    start = time.perf_counter()
    for line in lines:
        hits = detect(line.text)
        if any(sev is None for _, sev, _, _ in hits):
            tally.has_severity = False
        if any(cat == ANY for cat, _, _, _ in hits):
            tally.has_category = False
        keys = _keys(line)
        if line.risk:
            ok = any(cat in (line.label, ANY) for cat, _, _, _ in hits)
            for k in keys:
                tally.risk[k] += 1
                tally.recalled[k] += ok
            if not ok:
                tally.misses.append(line)
        else:
            serious = any(sev is not None and sev >= SERIOUS for _, sev, _, _ in hits)
            for k in keys:
                tally.benign[k] += 1
                tally.fired[k] += bool(hits)
                tally.serious[k] += serious
            # per category, a benign line counts against each category that fired on it
            tally.benign_cat += 1
            tally.fired_cat.update({cat for cat, _, _, _ in hits})
            tally.serious_cat.update({cat for cat, sev, _, _ in hits
                                      if sev is not None and sev >= SERIOUS})
            if hits:
                tally.false_positives.append((line, hits))
    tally.seconds = time.perf_counter() - start
    return tally


# --- report ------------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "     -" if x is None else f"{100 * x:5.1f}%"


def print_table(axis: str, title: str, keys: list[str], tallies: dict[str, Tally]) -> None:
    names = list(tallies)
    first = tallies[names[0]]
    head = (f"{title:<16} {'risk':>5} " + " ".join(f"{'R ' + n[:10]:>12}" for n in names)
            + f" | {'benign':>6} " + " ".join(f"{'FP ' + n[:9]:>12}" for n in names)
            + " | " + " ".join(f"{'FP>=3 ' + n[:6]:>12}" for n in names))
    print(head)
    print("-" * len(head))
    for key in [*keys, "all"]:
        k = ("all", "all") if key == "all" else (axis, key)
        row = f"{key:<16} {first.risk[k]:>5} "
        row += " ".join(f"{_pct(t.recall(*k)):>12}" for t in tallies.values())
        row += f" | {first.benign_lines(*k):>6} " + " ".join(f"{_pct(t.fp_rate(*k)):>12}"
                                                     for t in tallies.values())
        row += " | " + " ".join(f"{_pct(t.serious_rate(*k)):>12}" for t in tallies.values())
        print(row)
    print()


def _present(axis: str, tally: Tally) -> list[str]:
    return sorted({k for (a, k) in (*tally.risk, *tally.benign) if a == axis})


def report(split: str, lines: list[Line], tallies: dict[str, Tally], show: bool) -> None:
    first = next(iter(tallies.values()))
    print(f"split={split}: {first.risk['all', 'all']} risk lines, "
          f"{first.benign['all', 'all']} benign lines, "
          f"{len({ln.lang for ln in lines})} languages; R = recall on risk lines, FP = share of "
          f"benign lines where anything fires (in the category table: where that category fires), "
          f"FP>=3 = where a hit of severity >= {SERIOUS} fires\n")
    cats = [c for c in LABELS if first.risk["cat", c]]
    print_table("cat", "category", cats, tallies)
    langs = _present("lang", first)
    langs = ["en", *[x for x in langs if x != "en"]] if "en" in langs else langs
    print_table("lang", "language", langs, tallies)
    print_table("kind", "kind", _present("kind", first), tallies)
    if show:
        for name, t in tallies.items():
            print(f"== {name}: {len(t.misses)} missed risk lines")
            for ln in t.misses:
                print(f"  {ln.source} [{ln.label}] {ln.text}")
            print(f"== {name}: {len(t.false_positives)} false positives")
            for ln, hits in t.false_positives:
                what = ", ".join(f"{c}({s}) {ln.text[a:b]!r}" for c, s, a, b in hits[:4])
                print(f"  {ln.source} [{ln.kind}] {ln.text}  <- {what}")
        print()
    for name, t in tallies.items():
        serious = t.serious_rate()
        print(f"{name}: recall={t.recall() or 0:.4f} false_positive_rate={t.fp_rate() or 0:.4f} "
              f"serious_false_positive_rate={'n/a' if serious is None else f'{serious:.4f}'} "
              f"ms_per_line={1000 * t.seconds / max(1, len(lines)):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="test", choices=("test", "test-v2", "test-v3", "test-v4", "test-v5", "test-v6", "dev", "train"))
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="data set root")
    parser.add_argument("--show", action="store_true",
                        help="list misses and false positives (reading them spends a test split)")
    args = parser.parse_args(argv)
    try:
        ruleset = load_defaults()  # the lists and language packs vigil match and a policy run
    except VigilError as err:
        print(f"detection: {err}", file=sys.stderr)
        return 2
    try:
        lines = load_split(args.split, args.data)
    except ValueError as err:
        print(f"detection: {err}", file=sys.stderr)
        return 2
    if not lines:
        print(f"detection: no lines under {args.data / args.split}", file=sys.stderr)
        return 2
    found = detectors(ruleset)
    if "better-profanity" not in found:
        print("detection: better-profanity not installed (it is in the dev extra); peer skipped",
              file=sys.stderr)
    print(f"rules: {len(ruleset.rules)}")
    tallies = {name: evaluate(detect, lines) for name, detect in found.items()}
    report(args.split, lines, tallies, args.show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The default wordlists: shape, severities, unless-contexts, and precision over the corpus.

The per-category cases (real obfuscations and false-positive traps) are in
test_category_cases.py; the figures for BENCHMARKS.md come from bench/precision.py. This file
checks that the lists stay loadable and well-formed, and that an edit cannot silently drop
recall below 95% or push false positives above 2% on the hand-written corpus.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from core.matcher import Matcher
from core.normalize import fold_phrase, normalize
from core.rules import CATEGORIES, Mode, Rule, RuleSet, default_dir, load_dirs, load_file
from tests.data.corpus import CORPUS_DIR, HELDOUT_DIR, Sample, benign, positives

WORDLISTS = default_dir()
README = WORDLISTS / "README.md"
MIN_RULES = 40


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_dirs(WORDLISTS)


@pytest.fixture(scope="module")
def matcher(ruleset: RuleSet) -> Matcher:
    return Matcher(ruleset)


def test_one_file_per_category_and_nothing_else() -> None:
    assert {p.stem for p in WORDLISTS.glob("*.toml")} == set(CATEGORIES)


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_file_loads_with_enough_rules_of_its_category(category: str) -> None:
    path = WORDLISTS / f"{category}.toml"
    rules = load_file(path).rules
    assert len(rules) >= MIN_RULES, f"{path.name} has {len(rules)} rules"
    assert {r.category for r in rules} == {category}
    id_shape = re.compile(rf"{category}\.[a-z0-9_]+")
    for rule in rules:
        assert id_shape.fullmatch(rule.id), rule.id
        assert 1 <= rule.severity <= 5, rule.id


def test_ids_and_phrases_are_unique_across_all_files(ruleset: RuleSet) -> None:
    ids = [r.id for r in ruleset.rules]
    assert len(ids) == len(set(ids))
    # Two rules on one folded phrase would report the same text twice. Letter runs are part of
    # the key: the matcher tells "gypo" from "gyppo" as it tells "as" from "ass".
    folded: dict[object, str] = {}
    for rule in ruleset.rules:
        key = (rule.mode, tuple((w.key, w.runs) for w in normalize(rule.phrase).folds))
        assert key not in folded, f"{rule.id} folds like {folded[key]}"
        folded[key] = rule.id


def test_every_category_has_a_serious_rule(ruleset: RuleSet) -> None:
    """Each category can raise something a DSL must look at the same day (3 for the AUP ones)."""
    floor = {"gambling": 3, "filter_bypass": 3}
    for category in CATEGORIES:
        top = max(r.severity for r in ruleset.rules if r.category == category)
        assert top >= floor.get(category, 4), category


def test_illegal_content_is_severity_5(ruleset: RuleSet) -> None:
    by_id = {r.id: r for r in ruleset.rules}
    for rule_id in ("pornography.child_porn", "pornography.pthc", "pornography.lolicon",
                    "extremism.make_a_bomb", "extremism.christchurch_manifesto",
                    "grooming.leak_your_nudes", "suicide.kill_myself"):
        assert by_id[rule_id].severity == 5, rule_id


def test_embedded_mode_only_for_single_word_stems(ruleset: RuleSet) -> None:
    stems = [r for r in ruleset.rules if r.mode is Mode.EMBEDDED]
    assert stems, "expected a few stems such as suicid"
    for rule in stems:
        assert " " not in rule.phrase and len(rule.phrase) >= 5, rule.id


def _unless_cases(ruleset: RuleSet) -> list[tuple[Rule, str]]:
    return [(r, u) for r in ruleset.rules for u in r.unless]


def test_every_unless_contains_its_phrase(ruleset: RuleSet) -> None:
    """An unless-context that does not contain the phrase can never overlap a match: dead text.

    The matcher also reads a multi-word phrase joined ("self harm" matches "self-harm" and
    "selfharm"), so a context holding the joined form ("signs of selfharm") is live too: it is
    what cancels the joined reading of "signs of self-harm".
    """
    for rule, unless in _unless_cases(ruleset):
        phrase, context = fold_phrase(rule.phrase), fold_phrase(unless)
        if rule.mode is Mode.WORD:
            joined = phrase.replace(" ", "")
            assert f" {phrase} " in f" {context} " or f" {joined} " in f" {context} ", \
                f"{rule.id}: {unless!r}"
        else:
            assert phrase in context, f"{rule.id}: {unless!r}"


def test_every_unless_cancels_its_rule(ruleset: RuleSet, matcher: Matcher) -> None:
    for rule, unless in _unless_cases(ruleset):
        fired = {m.rule.id for m in matcher.match(f"Well, {unless}.")}
        assert rule.id not in fired, f"{rule.id} fired inside its own unless {unless!r}"


def test_toml_keys_are_the_documented_ones() -> None:
    allowed_top = {"category", "language", "rule", "exclude", "disable"}
    allowed_rule = {"id", "phrase", "severity", "mode", "unless", "languages", "category",
                    "topic"}
    for path in WORDLISTS.glob("*.toml"):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        assert set(data) <= allowed_top, path.name
        assert "disable" not in data, f"{path.name}: defaults never disable rules"
        for rule in data["rule"]:
            assert set(rule) <= allowed_rule, (path.name, rule.get("id"))


def test_readme_documents_scale_categories_and_sources() -> None:
    text = README.read_text(encoding="utf-8")
    for category in CATEGORIES:
        assert f"`{category}.toml`" in text, category
    for needle in ("| 5 |", "| 1 |", "immediate risk to life", "acceptable use policy",
                   "UK Safer Internet Centre", "Keeping Children Safe in Education",
                   "[[exclude]]", "disable = ["):
        assert needle in text, needle


# --------------------------------------------------------------------------- corpus precision

Detect = Callable[[str], set[str]]


def _one_shot(matcher: Matcher) -> Detect:
    return lambda text: {m.rule.category for m in matcher.match(text)}


def _streamed(matcher: Matcher) -> Detect:
    def detect(text: str) -> set[str]:
        stream = matcher.stream(capacity=max(512, 2 * len(text)))
        found = [m for ch in text for m in stream.feed(ch)] + stream.end_utterance()
        return {m.rule.category for m in found}

    return detect


def _corpus() -> tuple[list[Sample], list[Sample]]:
    dirs: list[Path] = [CORPUS_DIR, HELDOUT_DIR]
    return ([s for d in dirs for s in positives(d)], [s for d in dirs for s in benign(d)])


@pytest.mark.parametrize("interface", ["one-shot", "stream"])
def test_corpus_recall_and_false_positive_targets(matcher: Matcher, interface: str) -> None:
    detect = _one_shot(matcher) if interface == "one-shot" else _streamed(matcher)
    pos, neg = _corpus()
    assert len(pos) >= 300 and len(neg) >= 300
    obfuscated = [s for s in pos if s.obfuscated]
    assert len(obfuscated) >= 300
    for subset in (pos, obfuscated):
        missed = [s for s in subset if s.category not in detect(s.text)]
        recall = 1 - len(missed) / len(subset)
        assert recall >= 0.95, f"recall {recall:.3f}; missed e.g. {[s.source for s in missed[:5]]}"
    fired = [s for s in neg if detect(s.text)]
    fp_rate = len(fired) / len(neg)
    assert fp_rate <= 0.02, f"false positives {fp_rate:.3f}; e.g. {[s.source for s in fired[:5]]}"


def test_every_category_has_corpus_lines() -> None:
    pos, _ = _corpus()
    counts = {c: sum(1 for s in pos if s.category == c) for c in CATEGORIES}
    assert min(counts.values()) >= 40, counts


def test_generated_unless_contexts_are_what_the_script_writes() -> None:
    """The "said of someone else, or taught" contexts come from one table
    (scripts/wordlist_contexts.py): a hand edit inside a generated block would be lost on the
    next run, so the lists must be exactly what the script writes."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "scripts" / "wordlist_contexts.py"),
                           "--check"], check=False, capture_output=True, text=True, cwd=root,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""Integrity of the held-out detection data set (tests/data/detection/, issue 13).

Why: the figures in BENCHMARKS.md are only honest while the splits stay disjoint, every line
carries a known label and language, and the test split keeps the coverage it was written with
(every category, every language, enough benign trigger-rich text). A careless edit (a line pasted
into two splits, a typo in a label, a language file dropped) fails here rather than quietly
inflating a figure.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from core.rules import CATEGORIES

ROOT = Path(__file__).resolve().parents[1] / "data" / "detection"
SPLITS = ("train", "dev", "test", "test-v2", "test-v3", "test-v4", "test-v5", "test-v6")
LABELS = frozenset({*CATEGORIES, "eating_disorder", "benign"})
LANGS = frozenset({"en", "cy", "pl", "ro", "ur", "ur-Latn", "pa", "bn", "ar", "so", "pt", "es",
                   "fr", "lt", "tr"})
Row = tuple[str, str, str, str, str]  # text, label, lang, kind, where


def read(split: str) -> list[Row]:
    rows: list[Row] = []
    files = sorted((ROOT / split).glob("*.tsv"))
    assert files, f"no TSV files in {split}/"
    for path in files:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            assert next(reader) == ["text", "label", "lang", "kind"], f"{path}: header"
            for n, row in enumerate(reader, start=2):
                assert len(row) == 4, f"{path}:{n}: {row!r}"
                text, label, lang, kind = row
                where = f"{split}/{path.name}:{n}"
                assert text.strip() == text and text, f"{where}: empty or padded text"
                assert label in LABELS, f"{where}: unknown label {label!r}"
                assert lang in LANGS, f"{where}: unknown language {lang!r}"
                assert kind.isidentifier(), f"{where}: bad kind {kind!r}"
                expected = "en-policy" if kind == "policy" else lang
                assert path.stem == expected, f"{where}: line for {expected!r} in {path.name}"
                assert kind != "policy" or label == "benign", f"{where}: policy lines are benign"
                rows.append((text, label, lang, kind, where))
    return rows


@pytest.fixture(scope="module")
def data() -> dict[str, list[Row]]:
    return {split: read(split) for split in SPLITS}


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def test_no_line_is_in_two_splits_or_twice_in_one(data: dict[str, list[Row]]) -> None:
    seen: dict[str, str] = {}
    clashes = []
    for split in SPLITS:
        for text, *_, where in data[split]:
            if (k := _key(text)) in seen:
                clashes.append(f"{where} repeats {seen[k]}")
            else:
                seen[k] = where
    assert not clashes, "\n".join(clashes[:20])


def test_test_split_covers_every_language(data: dict[str, list[Row]]) -> None:
    risk = Counter(lang for _, label, lang, _, _ in data["test"] if label != "benign")
    benign = Counter(lang for _, label, lang, _, _ in data["test"] if label == "benign")
    for lang in sorted(LANGS - {"en"}):
        assert risk[lang] >= 15, f"test: {lang} has {risk[lang]} risk lines, want >= 15"
        assert benign[lang] >= 10, f"test: {lang} has {benign[lang]} benign lines, want >= 10"


def test_test_split_meets_the_english_minimums(data: dict[str, list[Row]]) -> None:
    en = [r for r in data["test"] if r[2] == "en"]
    risk = [r for r in en if r[1] != "benign"]
    per_cat = Counter(r[1] for r in risk)
    assert len(risk) >= 250, len(risk)
    for cat in LABELS - {"benign"}:
        assert per_cat[cat] >= 15, f"test: {cat} has {per_cat[cat]} English risk lines"
    assert sum(r[3] in ("paraphrase", "slang") for r in risk) > len(risk) / 2
    benign = [r for r in en if r[1] == "benign"]
    assert sum(r[3] != "policy" for r in benign) >= 350
    assert sum(r[3] == "policy" for r in benign) >= 100


def test_train_and_dev_have_the_same_shape(data: dict[str, list[Row]]) -> None:
    for split in ("train", "dev"):
        labels = {r[1] for r in data[split]}
        langs = {r[2] for r in data[split]}
        assert labels == LABELS, f"{split}: missing {sorted(LABELS - labels)}"
        assert langs == LANGS, f"{split}: missing {sorted(LANGS - langs)}"
    assert len(data["dev"]) >= len(data["test"]) // 3

"""False positives on ordinary school text: sentences of the seed policies in no train/dev line.

Why: the held-out set was written for this project, so it shares its writers' habits. The five
UK school e-safety and acceptable-use policies in ``../shared/seeds/`` are real text nobody here
wrote, and all of it is benign: a monitor that fires on its own acceptable-use policy is noise
(issue 13). This cuts them into sentences (lines, then sentence stops), keeps those with at least
five words, drops any that is a line of ``tests/data/detection/train/`` or ``dev/`` (compared
after case-folding and white-space folding), and reports, for the model alone and for lists plus
model, the share of sentences where anything fires and where a hit of severity >= 3 fires.

It never reads ``tests/data/detection/test/``. The test split holds 110 policy sentences drawn
from the same seeds, so some of the sentences scored here may be test lines: **report the
aggregate only** (``--show`` lists nothing), and change nothing because of it.

    PYTHONPATH=. .venv/bin/python bench/seed_fp.py [--seeds DIR] [--head FILE]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.detect.combine import build
from core.detect.model import HEAD_PATH
from core.errors import ModelUnavailable
from core.rules import default_dir, load_dirs

__all__ = ["main", "seed_sentences"]

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT.parent / "shared" / "seeds"
DATA = ROOT / "tests" / "data" / "detection"
SERIOUS = 3
_STOP = re.compile(r"(?<=[.!?;])\s+(?=[A-Z(\"'])")


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def known_lines() -> set[str]:
    """Every line of the train and dev splits (never test), folded."""
    seen: set[str] = set()
    for split in ("train", "dev"):
        for path in (DATA / split).glob("*.tsv"):
            with path.open(encoding="utf-8", newline="") as f:
                reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
                next(reader)
                seen.update(_key(r[0]) for r in reader)
    return seen


def seed_sentences(seeds: Path, exclude: set[str]) -> list[str]:
    """Distinct sentences of at least five words from the seed texts, less ``exclude``."""
    out: dict[str, str] = {}
    for path in sorted(seeds.glob("*.txt")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = re.sub(r"<[^>]*>|\s+", " ", line).strip(" -*#•\t")
            for sent in _STOP.split(line):
                sent = sent.strip()
                if len(re.findall(r"[A-Za-z]{2,}", sent)) >= 5 and (k := _key(sent)) not in exclude:
                    out.setdefault(k, sent)
    return list(out.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=Path, default=SEEDS)
    parser.add_argument("--head", type=Path, default=HEAD_PATH, help="a head under trial")
    args = parser.parse_args(argv)
    sentences = seed_sentences(args.seeds, known_lines())
    if not sentences:
        print(f"seed_fp: no sentences under {args.seeds}", file=sys.stderr)
        return 2
    try:
        combined = build(load_dirs(default_dir()), require_model=True, head_path=args.head)
    except ModelUnavailable as err:
        print(f"seed_fp: {err}", file=sys.stderr)
        return 2
    assert combined.model is not None
    for name, detector in (("model", combined.model), ("lists+model", combined),
                           ("lists", combined.lists)):
        fired = serious = 0
        for sent in sentences:
            hits = detector.detect(sent, "typed")
            fired += bool(hits)
            serious += any(h.severity >= SERIOUS for h in hits)
        print(f"{name}: sentences={len(sentences)} false_positive_rate={fired / len(sentences):.4f} "
              f"serious_false_positive_rate={serious / len(sentences):.4f} "
              f"(fired {fired}, at severity >= {SERIOUS} {serious})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

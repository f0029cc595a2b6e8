"""The precision corpus: obfuscated positives per category and benign school text.

``positive/<category>[.<part>].txt`` holds lines that must fire at least one rule of that
category; ``benign/*.txt`` holds lines that must fire nothing. ``heldout/`` has the same layout:
text written after the lists were last tuned, so that its figures are not fitted to it. One item per line; blank lines and lines
starting with ``#`` are comments. Everything here was written by hand for Vigil.
Used by bench/precision.py and the wordlist tests, so both measure the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CORPUS_DIR", "HELDOUT_DIR", "Sample", "benign", "positives", "read_samples"]

CORPUS_DIR = Path(__file__).resolve().parent
HELDOUT_DIR = CORPUS_DIR / "heldout"


@dataclass(frozen=True, slots=True)
class Sample:
    """One corpus line; ``category`` is None for benign text."""

    text: str
    source: str  # "<file>:<line>", for reports that point at the line to fix
    category: str | None

    @property
    def obfuscated(self) -> bool:
        """True when the line hides its words: leetspeak, look-alikes, spacing or stretching."""
        return _OBFUSCATED.search(self.text) is not None or not self.text.isascii()


# A digit or leet symbol inside a word, three single letters joined by separators ("k.i.l.l"),
# or a letter repeated three times ("killlll").
_OBFUSCATED = re.compile(
    r"[a-z][0-9@$!|+]|[0-9@$!|+][a-z]|\b[a-z][ .\-_*][a-z][ .\-_*][a-z]\b|([a-z])\1\1",
    re.IGNORECASE,
)


def read_samples(path: Path, category: str | None) -> list[Sample]:
    samples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            samples.append(Sample(line, f"{path.parent.name}/{path.name}:{number}", category))
    return samples


def positives(corpus: Path = CORPUS_DIR) -> list[Sample]:
    """Every positive line, its category taken from the file name up to the first dot."""
    out: list[Sample] = []
    for path in sorted((corpus / "positive").glob("*.txt")):
        out += read_samples(path, path.name.split(".")[0])
    return out


def benign(corpus: Path = CORPUS_DIR) -> list[Sample]:
    """Every benign line, from all files under benign/."""
    out: list[Sample] = []
    for path in sorted((corpus / "benign").glob("*.txt")):
        out += read_samples(path, None)
    return out

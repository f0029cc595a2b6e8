"""Hashed word and character n-grams of a sentence: the sentence model's lexical part.

Why a lexical part beside the e5 embedding: the 4-bit multilingual-e5-small embedding separates
topic better than it keeps rare decisive words ("blades", "molotov", "martyr", "zooted"), and
short slang lines land near ordinary chat. A linear risk-vs-benign term over the words and
character n-grams of the sentence, trained on the same train lines (scripts/train_detection_head.py,
weight chosen by cross-validation on train), adds that signal back. On train's cross-validation
it raised mean recall over 0.5-3% false positives from 0.721 to 0.744, and on dev (never used to
choose it) model recall at 2% false positives from 0.805 to 0.831 (issue 13).

Why hashing: no vocabulary to ship or keep in step, any language and script, and a fixed-size
weight vector (``dim`` float32 in head.json). Signed hashing (the sign from a bit of the hash)
keeps collisions from adding up in one direction. crc32 is the same on every platform and Python
(``hash()`` is salted per process). Cost: under a millisecond per sentence in pure Python.
"""

from __future__ import annotations

import itertools
import re
import zlib
from typing import Any

__all__ = ["DEFAULT_DIM", "lexical_features"]

DEFAULT_DIM = 1 << 14
_WORD = re.compile(r"\w+")
_CHAR_NS = (3, 4, 5)


def _keys(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    keys = [f"w:{w}" for w in words]
    keys += [f"b:{a} {b}" for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f" {word} "  # the padding marks a word's start and end
        for n in _CHAR_NS:
            keys += [f"c{n}:{padded[i:i + n]}" for i in range(len(padded) - n + 1)]
    return keys


def lexical_features(texts: list[str], dim: int = DEFAULT_DIM) -> Any:
    """An L2-normalised (len(texts), dim) float32 array of signed hashed n-gram counts."""
    import numpy as np

    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for key in _keys(text):
            h = zlib.crc32(key.encode("utf-8"))
            out[row, h % dim] += 1.0 if h >> 31 else -1.0
        norm = float(np.linalg.norm(out[row]))
        if norm:
            out[row] /= norm
    return out

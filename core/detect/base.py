"""The one protocol every detector speaks: text and its kind in, :class:`Detection` out.

Why one protocol: ``vigil match``, the agent and the benches must run the same detection, so that
what is measured is what runs (DESIGN.md, "Detectors, one interface"). A detection carries which
detector fired (``source``) and, for a model, its calibrated ``score``, so a technician sees why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, get_args

__all__ = ["KINDS", "Detection", "Detector", "Kind", "Source"]

Kind = Literal["typed", "title", "paste", "screen"]
Source = Literal["list", "model", "screen"]
KINDS: tuple[str, ...] = get_args(Kind)


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector firing on ``text[start:end]``; ``matched`` is exactly that substring."""

    rule: str
    category: str
    severity: int
    start: int
    end: int
    matched: str
    source: Source
    score: float | None = None

    def as_dict(self) -> dict[str, object]:
        """The ``vigil match`` contract: the list fields first, then source and (model) score."""
        out: dict[str, object] = {
            "rule": self.rule,
            "category": self.category,
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "matched": self.matched,
            "source": self.source,
        }
        if self.score is not None:
            out["score"] = round(self.score, 4)
        return out


class Detector(Protocol):
    """Anything that turns one piece of text into detections."""

    def detect(self, text: str, kind: Kind = "typed") -> list[Detection]:
        """Every detection in ``text``, sorted by (start, end, rule)."""
        ...

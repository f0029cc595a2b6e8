"""Lists and model together: a list hit stays a hit; the model adds what the lists miss.

Why this order: a list hit is exact and explainable, so it is never replaced. The model judges
whole sentences; its detection is dropped when a list detection of the same category already lies
in that sentence (one event, the explainable one), and kept otherwise. ``vigil match``, the
benches and (later) the agent all call :func:`build` so that what is measured is what runs.
"""

from __future__ import annotations

from pathlib import Path

from core.detect.base import Detection, Kind
from core.detect.lists import ListDetector, severity_caps
from core.detect.model import HEAD_PATH, ModelDetector, load_head
from core.errors import ModelUnavailable
from core.rules import RuleSet

__all__ = ["CombinedDetector", "build", "combine"]


def combine(listed: list[Detection], modelled: list[Detection]) -> list[Detection]:
    """List detections as given, then each model detection no same-category list hit overlaps."""
    added = [m for m in modelled
             if not any(h.category == m.category and h.start < m.end and m.start < h.end
                        for h in listed)]
    return [*listed, *added]


class CombinedDetector:
    """The detection the product runs; ``model`` is None when it is off or could not load."""

    def __init__(self, lists: ListDetector, model: ModelDetector | None = None,
                 unavailable: str | None = None) -> None:
        self.lists = lists
        self.model = model
        self.unavailable = unavailable  # why the model is off, one line, for the caller to say

    def detect(self, text: str, kind: Kind = "typed") -> list[Detection]:
        listed = self.lists.detect(text, kind)
        if self.model is None:
            return listed
        return combine(listed, self.model.detect(text, kind))


def build(ruleset: RuleSet, model: bool = True, require_model: bool = False,
          head_path: Path = HEAD_PATH) -> CombinedDetector:
    """Lists plus, if asked and loadable, the model; raises ModelUnavailable only if required.

    ``head_path`` is the committed head by default; another (a retrained head under trial)
    goes through the same checks, and an unusable one means the lists alone.
    """
    lists = ListDetector(ruleset)
    if not model:
        return CombinedDetector(lists)
    try:
        return CombinedDetector(lists, ModelDetector(head=load_head(head_path),
                                                     caps=severity_caps(ruleset)))
    except ModelUnavailable as err:
        if require_model:
            raise
        return CombinedDetector(lists, unavailable=str(err))

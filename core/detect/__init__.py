"""Every detector behind one protocol (DESIGN.md, "Detectors, one interface").

``lists`` wraps the trigger matcher, ``model`` is the sentence model and its calibrated head,
``combine`` puts them together the one way the product runs them. Importing this package loads
no model: :func:`core.detect.combine.build` does, once.
"""

from __future__ import annotations

from core.detect.base import KINDS, Detection, Detector, Kind
from core.detect.combine import CombinedDetector, build, combine
from core.detect.lists import ListDetector
from core.detect.sentences import split_sentences

__all__ = ["KINDS", "CombinedDetector", "Detection", "Detector", "Kind", "ListDetector", "build",
           "combine", "split_sentences"]

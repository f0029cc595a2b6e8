"""The trigger lists as a detector: today's :class:`core.matcher.Matcher`, unchanged, wrapped.

Why a wrapper and not a change: the matcher's behaviour (normalisation, ``unless``, exclusions,
the keystroke stream) is tested on its own and must not move; this only translates its matches
into :class:`~core.detect.base.Detection` with ``source="list"``.
"""

from __future__ import annotations

from core.detect.base import Detection, Kind
from core.matcher import Match, Matcher
from core.rules import RuleSet

__all__ = ["ListDetector", "severity_caps"]


def severity_caps(ruleset: RuleSet) -> dict[str, int]:
    """The highest list severity of each category: a model match never goes above it."""
    caps: dict[str, int] = {}
    for rule in ruleset.rules:
        caps[rule.category] = max(caps.get(rule.category, 0), rule.severity)
    return caps


class ListDetector:
    """Detections from the wordlists; ``typed`` text goes through the keystroke stream."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self.matcher = Matcher(ruleset)

    def _matches(self, text: str, kind: Kind) -> list[Match]:
        if kind != "typed":
            return self.matcher.match(text)
        # Room for the whole text, so that offsets from the stream index the text itself.
        stream = self.matcher.stream(capacity=max(512, len(text) + 1))
        found: list[Match] = []
        for ch in text:
            found.extend(stream.feed(ch))
        found.extend(stream.end_utterance())
        found.sort(key=lambda m: (m.start, m.end, m.rule.id))
        return found

    def detect(self, text: str, kind: Kind = "typed") -> list[Detection]:
        """The matcher's matches, in the matcher's order, as list detections."""
        return [Detection(m.rule.id, m.rule.category, m.rule.severity, m.start, m.end, m.matched,
                          "list") for m in self._matches(text, kind)]

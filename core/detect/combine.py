"""Lists and model together: a list hit stays a hit; the model adds what the lists miss.

Why this order: a list hit is exact and explainable, so it is never replaced. The model judges
whole sentences; its detection is dropped when a list detection in that sentence already says as
much: a list detection of any category at the same or a higher severity (one event, the
explainable one; the technician reads the whole sentence with it, and the model's category guess
is its least reliable part). It is kept when it says more: a higher severity than every list
detection it overlaps, in another category ("smoked weed and now i want to end it all") or in the
same one (issue 13: a topic word such as "anorexia" is severity 2 on the lists, so "i think i have
anorexia and havent eaten in days" must not lose the model's severity 4 to it). ``vigil match``, the benches and
the agent all call :func:`build` so that what is measured is what runs.

The school's ``unless`` phrases and exclusions bind the model too (:class:`ContextVeto`): the
sentence is the model's unit of meaning, so a sentence holding an exclusion ("romeo and juliet"),
or an ``unless`` phrase of a rule in the model's category ("killing myself laughing" for suicide),
does not fire the model. A school silences a false alarm the same way whichever detector raised it.
"""

from __future__ import annotations

from pathlib import Path

from core.detect.base import Detection, Kind
from core.detect.lists import ListDetector, severity_caps
from core.detect.model import HEAD_PATH, ModelDetector, load_head
from core.errors import ModelUnavailable
from core.matcher import Matcher
from core.rules import Mode, Rule, RuleSet

__all__ = ["CombinedDetector", "ContextVeto", "build", "combine"]

_ANY = "*"  # the category of an exclusion's veto: it silences every category


class ContextVeto:
    """The ``unless`` phrases and exclusions of a rule set, as one matcher over sentences."""

    def __init__(self, ruleset: RuleSet) -> None:
        phrases: dict[tuple[str, str, Mode], None] = {}
        for rule in ruleset.rules:
            for phrase in rule.unless:
                phrases[(rule.category, phrase, rule.mode)] = None
        for exclusion in ruleset.exclusions:
            phrases[(_ANY, exclusion.phrase, Mode.WORD)] = None
        rules = tuple(Rule(f"veto.{i}", phrase, category, 1, mode)
                      for i, (category, phrase, mode) in enumerate(phrases))
        self._matcher = Matcher(RuleSet(rules)) if rules else None

    def vetoes(self, sentence: str, category: str) -> bool:
        """True if ``sentence`` holds an exclusion or an ``unless`` phrase of ``category``."""
        if self._matcher is None:
            return False
        return any(m.rule.category in (category, _ANY) for m in self._matcher.match(sentence))


def combine(listed: list[Detection], modelled: list[Detection]) -> list[Detection]:
    """List detections as given, then each model detection that says more than the list
    detections inside its sentence (see the module's docstring)."""
    added = [m for m in modelled
             if not any(h.start < m.end and m.start < h.end and h.severity >= m.severity
                        for h in listed)]
    return [*listed, *added]


class CombinedDetector:
    """The detection the product runs; ``model`` is None when it is off or could not load."""

    def __init__(self, lists: ListDetector, model: ModelDetector | None = None,
                 unavailable: str | None = None) -> None:
        self.lists = lists
        self.model = model
        self.unavailable = unavailable  # why the model is off, one line, for the caller to say
        self.veto = ContextVeto(lists.ruleset)

    def with_rules(self, ruleset: RuleSet) -> CombinedDetector:
        """The same model (loaded once) with another policy's lists."""
        return CombinedDetector(ListDetector(ruleset), self.model, self.unavailable)

    def model_additions(self, text: str, kind: Kind = "typed") -> list[Detection]:
        """What the model adds to the lists on ``text``: its detections that no list hit of the
        same category overlaps and no ``unless`` phrase or exclusion vetoes.

        The agent calls this off the keystroke path on each finished utterance (its lists ran
        on the keys already); :meth:`detect` is the lists plus this, for ``vigil match``.
        """
        if self.model is None:
            return []
        found = self.model.detect(text, kind)
        if not found:
            return []
        found = [d for d in found if not self.veto.vetoes(d.matched, d.category)]
        if not found:
            return []
        listed = self.lists.detect(text, kind)
        return combine(listed, found)[len(listed):]

    def detect(self, text: str, kind: Kind = "typed") -> list[Detection]:
        return [*self.lists.detect(text, kind), *self.model_additions(text, kind)]


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

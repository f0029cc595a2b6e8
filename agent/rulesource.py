"""The rules an agent matches: the policy's wordlist files, merged into one core.rules.RuleSet."""

from __future__ import annotations

from collections.abc import Mapping

from core.rules import Exclusion, Rule, RuleSet, loads

__all__ = ["ruleset_from_wordlists"]


def ruleset_from_wordlists(wordlists: Mapping[str, str]) -> RuleSet:
    """Merge the files by name order; a later file's rule id wins; ``disable`` applies to all."""
    rules: dict[str, Rule] = {}
    exclusions: list[Exclusion] = []
    disabled: set[str] = set()
    for name in sorted(wordlists):
        loaded = loads(wordlists[name], name)
        rules.update((r.id, r) for r in loaded.rules)
        exclusions.extend(loaded.exclusions)
        disabled.update(loaded.disabled)
    for rule_id in disabled:
        rules.pop(rule_id, None)
    return RuleSet(tuple(rules.values()), tuple(exclusions), frozenset(disabled))

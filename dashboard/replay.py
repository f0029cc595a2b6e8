"""What a wordlist change would have done to the last 90 days (issue 18).

Given a draft school file (before it is saved or published), compare the rules the agents would
run with it against the rules they would run without it, and go through the events of the last
``DAYS`` days (the account's school's):

- an event whose rule the draft removes or disables **would no longer fire**: certain, from the
  clear metadata (rule id, category, severity, grade);
- an event whose rule the draft gives another severity **moves** from its severity to the new
  one: certain, from the metadata too;
- an event whose rule gains ``unless`` contexts, or any event when the draft adds an exclusion,
  may or may not have fired: that depends on the words around the match, which are sealed in
  the event's header. Those events are **tested** only when a keyholder with an unlocked key
  asks: each header is opened in the request (``open_header``), the stored context is matched
  with the current rules and with the draft's, and only the outcome is kept (still fires, would
  no longer fire, or cannot tell: the current rules do not fire on the stored context either,
  e.g. it was cut short). The text is never stored, logged or shown. Without a key they are
  counted as **not tested**.

Beside each event that would no longer fire, its grade says what the change would have cost
(concerns) and saved (false positives). Rules the draft adds cannot be judged: only the text
around past matches is kept, so what a new rule would have caught is not knowable. Events fired
by the sentence model or the image check, or by rules that are no longer in the lists, are
counted and left as they are.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from collector.store.models import Event, Grade
from dashboard.captures import highlight
from dashboard.precision import CONCERN

__all__ = ["DAYS", "MAX_OPENED", "CategoryMove", "Replay", "RuleOutcome", "replay"]

DAYS = 90
MAX_OPENED = 1000  # headers one replay opens at most (newest first); the rest are not tested

@dataclass
class CategoryMove:
    category: str
    events: int = 0
    no_longer: int = 0  # removed or disabled, and (tested) cancelled by a new context
    no_longer_concerns: int = 0
    no_longer_false_positives: int = 0
    up: int = 0
    down: int = 0
    untested: int = 0  # their outcome needs the text, and it was not opened
    cannot_tell: int = 0  # opened, but the stored context does not fire the rule today either


@dataclass
class RuleOutcome:
    rule: str
    category: str
    change: str  # what the draft does to the rule, in words
    events: int = 0
    no_longer: int = 0
    concerns: int = 0  # graded a concern among those that would no longer fire
    false_positives: int = 0


@dataclass
class Replay:
    since: datetime
    events: int = 0
    categories: dict[str, CategoryMove] = field(default_factory=dict)
    moves: Counter[tuple[int, int]] = field(default_factory=Counter)  # (from, to) -> events
    rules: dict[str, RuleOutcome] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)  # rule ids the draft adds: not judged
    opened: list[str] = field(default_factory=list)  # event ids whose header was opened
    tested: bool = False  # a key was used

    @property
    def no_longer(self) -> int:
        return sum(c.no_longer for c in self.categories.values())

    @property
    def untested(self) -> int:
        return sum(c.untested for c in self.categories.values())


@dataclass(frozen=True, slots=True)
class _Change:
    """What the draft does to one current rule: removes it, or gives it another severity
    and/or new contexts (its own ``unless``, or the draft's new exclusions)."""

    removed: bool = False
    severity: int | None = None
    text: bool = False
    words: str = ""


def _changes(current: Any, draft: Any) -> dict[str, _Change]:
    """rule id -> its _Change, for each current rule the draft changes in a way that matters to
    past events (removed or disabled, another severity, new contexts or exclusions)."""
    new_rules = {r.id: r for r in draft.rules}
    new_exclusions = {e.phrase for e in draft.exclusions} - {e.phrase for e in current.exclusions}
    out: dict[str, _Change] = {}
    for rule in current.rules:
        after = new_rules.get(rule.id)
        if after is None:
            out[rule.id] = _Change(removed=True, words="removed or disabled")
            continue
        words = []
        severity = after.severity if after.severity != rule.severity else None
        if severity is not None:
            words.append(f"severity {rule.severity} -> {severity}")
        added = len(set(after.unless) - set(rule.unless))
        if added:
            words.append(f"{added} new unless context{'s' if added != 1 else ''}")
        if new_exclusions:
            words.append("new exclusions")
        if words:
            out[rule.id] = _Change(severity=severity, text=bool(added or new_exclusions),
                                   words=", ".join(words))
    return out


def _fires(matcher: Any, context: str, rule_id: str, span: tuple[int, int]) -> bool:
    """Whether ``rule_id`` fires on ``context`` over (part of) the original match's span."""
    start, end = span
    return any(m.rule.id == rule_id and m.start < max(end, start + 1) and m.end > start
               for m in matcher.match(context))


def replay(db: Session, now: datetime, current: Any, draft: Any, where: tuple[Any, ...] = (),
           open_header: Callable[[Event], Mapping[str, Any] | None] | None = None) -> Replay:
    """The draft ruleset ``draft`` against ``current`` over the events of the last DAYS days;
    ``where``: the account's scope; ``open_header`` (an unlocked keyholder's, or None) opens an
    event's sealed header for the events whose outcome needs their words (None from it: could not
    be opened, so not tested)."""
    out = Replay(since=now - timedelta(days=DAYS), tested=open_header is not None)
    changes = _changes(current, draft)
    current_ids = {r.id for r in current.rules}
    out.added = sorted(r.id for r in draft.rules if r.id not in current_ids)
    recent = (col(Event.received_at) >= out.since, *where)
    # Totals per category by counting; whole rows only of the events of changed rules.
    for category, count in db.exec(select(Event.category, func.count()).where(*recent)
                                   .group_by(Event.category)).all():
        out.categories[category] = CategoryMove(category, events=int(count))
        out.events += int(count)
    if not changes:
        return out
    test = _Tester(current, draft, open_header, out.opened)
    for event in db.exec(select(Event).where(*recent, col(Event.rule).in_(list(changes)))
                         .order_by(col(Event.received_at).desc(), col(Event.id))).all():
        change = changes[event.rule]
        cat = out.categories.setdefault(event.category, CategoryMove(event.category))
        outcome = out.rules.setdefault(event.rule,
                                       RuleOutcome(event.rule, event.category, change.words))
        outcome.events += 1
        fate = "gone" if change.removed else test(event) if change.text else "stays"
        if fate == "untested":
            cat.untested += 1
        elif fate == "cannot_tell":
            cat.cannot_tell += 1
        elif fate == "gone":
            cat.no_longer += 1
            outcome.no_longer += 1
            if event.status in CONCERN:
                cat.no_longer_concerns += 1
                outcome.concerns += 1
            elif event.status == Grade.FALSE_POSITIVE.value:
                cat.no_longer_false_positives += 1
                outcome.false_positives += 1
        if fate != "gone" and change.severity is not None and change.severity != event.severity:
            out.moves[(event.severity, change.severity)] += 1
            cat.up += change.severity > event.severity
            cat.down += change.severity < event.severity
    return out


class _Tester:
    """Whether an event's rule still fires on the words around its match under the draft:
    "stays", "gone", "cannot_tell" (the current rules do not fire on the stored words either,
    e.g. they were cut short) or "untested" (no key, the header would not open, or the cap).
    Each header opened is noted in ``opened``; its words go no further than this call."""

    def __init__(self, current: Any, draft: Any,
                 open_header: Callable[[Event], Mapping[str, Any] | None] | None,
                 opened: list[str]) -> None:
        self.rulesets = (current, draft)
        self.matchers: tuple[Any, Any] | None = None
        self.open_header = open_header
        self.opened = opened

    def __call__(self, event: Event) -> str:
        if self.open_header is None or len(self.opened) >= MAX_OPENED:
            return "untested"
        self.opened.append(event.id)
        header = self.open_header(event)
        if header is None:
            return "untested"
        if self.matchers is None:
            from core.matcher import Matcher

            self.matchers = (Matcher(self.rulesets[0]), Matcher(self.rulesets[1]))
        before, matched, _ = highlight(dict(header))
        context = str(header.get("context") or "")
        span = (len(before), len(before) + len(matched))
        if not matched or not _fires(self.matchers[0], context, event.rule, span):
            return "cannot_tell"
        return "stays" if _fires(self.matchers[1], context, event.rule, span) else "gone"

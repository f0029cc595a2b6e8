"""The public page for pupils and parents: what Vigil monitors, when, what is kept, for how long
and who can see it.

It is generated on every request from the latest signed policy (the one agents are running
under) and the collector's live retention setting, so it cannot drift from what the software
does. It needs no sign-in and shows no event, device or pupil: only the rules of the game.
The phrases in the wordlists are deliberately not listed; categories are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from collector.deps import SessionDep, SettingsDep
from collector.policy_store import latest
from collector.settings import Settings
from dashboard.rendering import render

__all__ = ["CATEGORY_TEXT", "PrivacyFacts", "facts_from_policy", "router"]

router = APIRouter(tags=["privacy"])

# What each category means, in words a Year 7 pupil and their parents understand.
CATEGORY_TEXT: dict[str, str] = {
    "bullying": "bullying, threats and name-calling",
    "discrimination": "racist, sexist, homophobic and other hateful language",
    "drugs": "buying, selling or using illegal drugs",
    "eating_disorder": "eating disorders: starving, making yourself sick, pro-anorexia content",
    "extremism": "terrorism and violent extremism",
    "filter_bypass": "ways of getting round the school's web filter",
    "gambling": "gambling and betting",
    "grooming": "signs that an adult may be grooming a child",
    "pornography": "pornography and sexual content",
    "self_harm": "self-harm",
    "suicide": "suicide and thoughts of ending one's life",
    "violence": "violence and weapons",
}

DAY_NAMES = {
    "mon": "Monday", "tue": "Tuesday", "wed": "Wednesday", "thu": "Thursday",
    "fri": "Friday", "sat": "Saturday", "sun": "Sunday",
}
ROLE_NAMES = {
    "head": "the headteacher",
    "technician": "the ICT technician",
    "recovery": "a recovery key kept offline, used only if a keyholder's password is lost",
}


@dataclass(frozen=True)
class PrivacyFacts:
    """Everything the page says, as plain values (also what the tests check)."""

    published: bool
    serial: int
    categories: list[tuple[str, str]]  # (category, plain description)
    days: str
    hours: str
    timezone: str
    onsite_only: bool
    screenshot_format: str
    screen_reading: bool  # on-screen text (OCR) read too
    screen_images: bool  # and the image check on the same frames
    repeat_window_minutes: int
    retention_days: int
    keyholders: list[tuple[str, str]]  # (name, or "" when it only repeats the role; role in words)
    notice: str


def _days(days: tuple[str, ...]) -> str:
    order = list(DAY_NAMES)
    chosen = sorted(days, key=order.index)
    if len(chosen) == 7:
        return "every day"
    idx = [order.index(d) for d in chosen]
    if len(idx) > 2 and idx == list(range(idx[0], idx[-1] + 1)):
        return f"{DAY_NAMES[chosen[0]]} to {DAY_NAMES[chosen[-1]]}"
    names = [DAY_NAMES[d] for d in chosen]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _hours(start: str, end: str) -> str:
    if start == "00:00" and end == "24:00":
        return "all day"
    return f"from {start} to {end}"


def _categories(wordlists: dict[str, str]) -> list[tuple[str, str]]:
    """The categories the agents watch for under this policy (school-disabled rules left out)."""
    from core.errors import RuleFileError
    from core.rules import load_policy_files

    try:
        ruleset = load_policy_files(wordlists)
    except RuleFileError:
        return []  # the agents refuse such a policy too, and keep the one they had
    found = {rule.category for rule in ruleset.rules}
    return [(c, CATEGORY_TEXT.get(c, c.replace("_", " "))) for c in sorted(found)]


def facts_from_policy(policy: Any | None, settings: Settings) -> PrivacyFacts:
    """The page's content from a core.policy.Policy (None: nothing published yet)."""
    if policy is None:
        return PrivacyFacts(
            published=False, serial=0, categories=[], days="", hours="", timezone="",
            onsite_only=False, screenshot_format="", screen_reading=False, screen_images=False,
            repeat_window_minutes=0,
            retention_days=settings.retention_days, keyholders=[], notice="",
        )
    schedule = policy.schedule
    return PrivacyFacts(
        published=True,
        serial=policy.serial,
        categories=_categories(dict(policy.wordlists)),
        days=_days(tuple(schedule.days)),
        hours=_hours(schedule.start, schedule.end),
        timezone=schedule.timezone,
        onsite_only=bool(policy.onsite_networks),
        screenshot_format=policy.capture.format.upper(),
        screen_reading=policy.screen.enabled,
        screen_images=policy.screen.enabled and policy.screen.images,
        repeat_window_minutes=max(1, round(policy.flood_window_s / 60)),
        # The collector deletes by its own setting; the page states what actually happens.
        retention_days=settings.retention_days,
        # A keyholder named after their role ("head") needs no name in brackets.
        keyholders=[("" if k.name.lower() == k.role else k.name, ROLE_NAMES.get(k.role, k.role))
                    for k in policy.keyholders],
        notice=policy.notice,
    )


def _live_policy(db: Any) -> Any | None:
    from core.policy import Policy, SignedPolicy

    record = latest(db)
    if record is None:
        return None
    return Policy.from_body(SignedPolicy.from_bytes(record.signed).body)


@router.get("/privacy", include_in_schema=False)
def privacy(request: Request, db: SessionDep, settings: SettingsDep) -> Response:
    facts = facts_from_policy(_live_policy(db), settings)
    # Cohort tags (collector.cohorts): the server learns each event's year group and form.
    response = render(request, "privacy.html", None, facts=facts,
                      cohort_tags=settings.cohort_tags)
    # Public and the same for everyone: it may be cached briefly, unlike the staff pages.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response

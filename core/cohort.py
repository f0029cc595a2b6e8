"""Cohort tags (issue 18): an event's year group and form, never the pupil's name.

The collector cannot read an event's sealed header, so it cannot look the login name up in the
roster when it routes. Instead each school's collector publishes a *cohort map*: for each pupil
on the roster, :func:`tag_key` (an HMAC of the folded login name under a per-school salt) to
``{"year": ..., "form": ...}``. The agent folds the signed-in user's login the same way, looks
the key up and puts the year and form in the event's clear metadata, which is what routing
rules match (``RouteRule.year``).

What this reveals, on purpose: the server learns each event's year and form (not who); the map
on every desktop reveals the year and form of hashed logins, and login names are guessable
(``jsmith``), so the map holds nothing else: no names, UPNs or flags (SEN, looked-after, CP).

:func:`login_key` is the one fold of a login name, shared by the roster (dashboard.roster), the
map and the agent, so ``SCHOOL\\JSmith``, ``jsmith@school.org`` and ``jsmith`` are one pupil.
"""

from __future__ import annotations

import hashlib
import hmac
import re

__all__ = [
    "FORM_MAX",
    "KEY_BYTES",
    "YEAR_MAX",
    "check_tag",
    "join_years",
    "login_key",
    "normal_year",
    "split_years",
    "tag_key",
]

YEAR_MAX = 16  # "7", or as the MIS says it ("Reception"): the roster's limit
FORM_MAX = 32
KEY_BYTES = 16  # of the HMAC, as 32 hex characters
# Printable text without control characters, angle brackets or backslashes: it is shown on pages
# (escaped, like all desktop-derived text) and a year group or form never needs them; quotes and
# "&" stay allowed for forms named after a tutor ("7 O'Neill").
_TAG = re.compile(r"[^\x00-\x1f\x7f-\x9f<>\\]*")


_NUMBERED_YEAR = re.compile(r"(?:year|yr|y|nc year)?\s*(\d{1,2})", re.IGNORECASE)


def normal_year(value: str) -> str:
    """A year group as the roster keeps it, and so as the cohort map and events carry it:
    "Year 7", "Y07" and "7" are "7"; a named one ("Reception") is kept as written."""
    found = _NUMBERED_YEAR.fullmatch(value.strip())
    return found.group(1).lstrip("0") or "0" if found else value.strip()[:YEAR_MAX]


def split_years(text: str) -> frozenset[str]:
    """The year groups of a list such as "7, 8" or "Year 7,Reception" (empty: none), each as
    :func:`normal_year` makes it so that it matches events' tags; ValueError, in one line, for
    one that cannot be a year group."""
    years = set()
    for part in text.split(","):
        if not part.strip():
            continue
        if len(part.strip()) > YEAR_MAX:
            raise ValueError(f"{part.strip()!r} is not a year group: at most {YEAR_MAX} characters")
        year = normal_year(part)
        why = check_tag(year, "")
        if why is not None:
            raise ValueError(f"{part.strip()!r} is not a year group: {why}")
        years.add(year)
    return frozenset(years)


def join_years(years: frozenset[str]) -> str:
    """``years`` as stored and shown: numbered ones in order, then named ones ("7,8,Reception")."""
    return ",".join(sorted(years, key=lambda y: (not y.isdigit(), int(y) if y.isdigit() else 0, y)))


def login_key(user: str) -> str:
    """The login name as the roster keys it: lower case, no ``DOMAIN\\`` prefix, no ``@domain``."""
    text = str(user).strip().rsplit("\\", 1)[-1].split("@", 1)[0]
    return text.strip().casefold()


def tag_key(salt: bytes, user: str) -> str:
    """The cohort map's key for a login: HMAC-SHA256(salt, login_key(user)), 16 bytes as hex.
    The salt is per school, so one school's map says nothing usable about another's."""
    mac = hmac.new(salt, login_key(user).encode("utf-8"), hashlib.sha256).digest()
    return mac[:KEY_BYTES].hex()


def check_tag(year: object, form: object) -> str | None:
    """Why ``year``/``form`` cannot be a cohort tag, in one line; None when they can."""
    for name, value, limit in (("year", year, YEAR_MAX), ("form", form, FORM_MAX)):
        if not isinstance(value, str):
            return f"{name} must be text"
        if len(value) > limit:
            return f"{name} must be at most {limit} characters"
        if not _TAG.fullmatch(value):
            return f"{name} holds characters a year group or form never has"
    return None

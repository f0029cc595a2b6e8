"""Wordlists: the default rules, the school's own rule files, a rule tester, and publishing.

School files are validated with core.rules before they are stored, so a typo can never reach
the agents; publishing signs a new policy with the technician's unlocked key. A draft file can
be tried against the last 90 days of events before it is saved (dashboard.replay).

The lists and the policy are the trust's: every school's agents run them. So saving, deleting
and publishing are for a trust-wide technician only; a school's technician can read the lists,
try a sentence and replay a draft over their own school's events, and asks the trust to change
them (issue 18).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import Session, col, select

from collector.errors import CollectorError
from collector.policy_builder import default_wordlists, policy_wordlists, publish
from collector.policy_store import latest
from collector.store.models import WordlistFile, utcnow
from core.errors import RuleFileError
from dashboard.auditing import audit
from dashboard.captures import opener
from dashboard.deps import (
    BlobsDep,
    DashSettingsDep,
    KeyholderDep,
    KeyRingDep,
    SessionDep,
    TechnicianDep,
    UnlockedDep,
)
from dashboard.errors import BadRequest, Forbidden, NotFound
from dashboard.keyplace import key_here
from dashboard.rendering import render
from dashboard.scope import ScopeDep, trust_wide_only
from dashboard.sessions import SignedIn

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

FILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,58}\.toml$")
MAX_FILE_CHARS = 200_000
TRUST_LISTS = trust_wide_only("The wordlists every school's agents run")
SCHOOL_TEMPLATE = """# The school's own rules and exclusions (same format as the default lists).
category = "bullying"

# [[rule]]
# id = "school.bullying.example"
# phrase = "example phrase"
# severity = 3

# [[exclude]]
# phrase = "a harmless phrase that contains a rule"

# disable = ["drugs.weed"]
"""


def _ruleset(request: Request, db: Session, extra: dict[str, str] | None = None) -> Any:
    """What the agents would run if the policy were published now (with ``extra`` school files
    tried on top): the same layering and language packs ([policy] language_packs) the agents
    get, from the same function."""
    from core import rules

    packs = request.app.state.settings.policy.language_packs
    return rules.load_policy_files(policy_wordlists(db, extra, packs=packs))


def _draft(request: Request, db: Session, name: str, text: str) -> Any:
    """The rules with the school file ``name`` replaced by (or added as) ``text``; RuleFileError
    in one line for a name that cannot be a school file's or a file that does not load."""
    if not FILE_NAME.match(name):
        raise RuleFileError(name, None, "a file name is lower-case letters, digits, - or _, "
                            "ending in .toml.")
    if name in default_wordlists():
        raise RuleFileError(name, None, f"this is a default list's name: choose another, e.g. "
                            f"school-{name}.")
    return _ruleset(request, db, {name: text})


def _page(request: Request, db: Session, who: SignedIn, **extra: Any) -> Response:
    defaults = default_wordlists()
    school = db.exec(select(WordlistFile).order_by(col(WordlistFile.name))).all()
    default_rules: list[Any] = []
    problem = ""
    try:
        from core import rules

        for name, text in defaults.items():
            default_rules.extend(rules.loads(text, name).rules)
    except (ImportError, RuleFileError) as exc:
        problem = f"The default rules cannot be shown: {exc}"
    record = latest(db)
    context: dict[str, Any] = {
        "defaults": defaults,
        "default_rules": default_rules,
        "school": school,
        "problem": problem,
        "policy": record,
        "template": SCHOOL_TEMPLATE,
        "tested": None,
        "sentence": "",
        "edit_error": "",
        "edit_name": "",
        "edit_text": "",
        "replay": None,
        "replay_name": "",
        "asked_open": False,
        "trust_wide": who.account.school_id is None,
    }
    context.update(extra)
    return render(request, "wordlists.html", who, **context)


@router.get("/wordlists", include_in_schema=False)
def wordlists(request: Request, db: SessionDep, who: KeyholderDep) -> Response:
    return _page(request, db, who)


@router.post("/wordlists/files", include_in_schema=False, dependencies=[TRUST_LISTS])
def save_file(
    request: Request,
    db: SessionDep,
    who: TechnicianDep,
    name: Annotated[str, Form(max_length=64)],
    text: Annotated[str, Form(max_length=MAX_FILE_CHARS)],
) -> Response:
    name = name.strip().lower()
    try:
        _draft(request, db, name, text)  # refuses a bad name, a malformed file, a duplicate id
    except RuleFileError as exc:
        return _page(request, db, who, edit_error=str(exc), edit_name=name, edit_text=text)
    row = db.get(WordlistFile, name) or WordlistFile(name=name, text=text)
    row.text, row.updated_at, row.updated_by = text, utcnow(), who.username
    db.add(row)
    audit(db, who.username, "wordlist.save", name, chars=len(text))
    return RedirectResponse("/wordlists#school", status_code=303)


@router.post("/wordlists/files/{name}/delete", include_in_schema=False,
             dependencies=[TRUST_LISTS])
def delete_file(name: str, db: SessionDep, who: TechnicianDep) -> Response:
    row = db.get(WordlistFile, name)
    if row is None:
        raise NotFound("There is no such school file.")
    db.delete(row)
    audit(db, who.username, "wordlist.delete", name)
    return RedirectResponse("/wordlists#school", status_code=303)


@router.post("/wordlists/test", include_in_schema=False)
def test_rules(
    request: Request,
    db: SessionDep,
    who: KeyholderDep,
    sentence: Annotated[str, Form(max_length=2000)],
) -> Response:
    from core.matcher import Matcher

    try:
        matcher = Matcher(_ruleset(request, db))
    except RuleFileError as exc:
        return _page(request, db, who, problem=f"The rules do not load: {exc}", sentence=sentence)
    found = [
        {
            "rule": m.rule,
            "matched": m.matched,
            "start": m.start,
            "end": m.end,
            "before": sentence[max(0, m.start - 30) : m.start],
            "after": sentence[m.end : m.end + 30],
        }
        for m in matcher.match(sentence)
    ]
    return _page(request, db, who, tested=found, sentence=sentence)


@router.post("/wordlists/replay", include_in_schema=False)
def replay_draft(
    request: Request,
    db: SessionDep,
    blobs: BlobsDep,
    settings: DashSettingsDep,
    ring: KeyRingDep,
    who: KeyholderDep,
    scope: ScopeDep,
    name: Annotated[str, Form(max_length=64)],
    text: Annotated[str, Form(max_length=MAX_FILE_CHARS)],
    open_text: Annotated[bool, Form(alias="open")] = False,
) -> Response:
    """What the draft file would have done to the last 90 days of the account's school's events
    (dashboard.replay). Nothing is saved. With ``open`` and a key unlocked here, the events whose
    outcome depends on their words are tested against their sealed context, opened in this
    request only; the opening is audited, the text never kept."""
    from dashboard.replay import replay

    name = name.strip().lower()
    try:
        current, draft = _ruleset(request, db), _draft(request, db, name, text)
    except RuleFileError as exc:
        return _page(request, db, who, edit_error=str(exc), edit_name=name, edit_text=text)
    key = key_here(request, settings, ring, who) if open_text else None
    open_one = opener(blobs, key.key, db, who.username, "wordlists.replay") if key else None
    result = replay(db, utcnow(), current, draft, where=scope.events(), open_header=open_one)
    if result.opened:
        audit(db, who.username, "event.headers_decrypted", "wordlists.replay",
              events=result.opened)
    audit(db, who.username, "wordlist.replay", name, events=result.events,
          no_longer=result.no_longer, untested=result.untested, opened=len(result.opened))
    return _page(request, db, who, replay=result, replay_name=name, edit_name=name,
                 edit_text=text, asked_open=open_text)


@router.post("/wordlists/publish", include_in_schema=False,
             dependencies=[trust_wide_only("The policy every school's agents run")])
def publish_policy(request: Request, db: SessionDep, unlocked: UnlockedDep) -> Response:
    if unlocked.who.role != "technician":
        raise Forbidden("Only the technician publishes wordlist changes.")
    try:
        record = publish(db, request.app.state.settings, unlocked.private_key, unlocked.username)
    except CollectorError as exc:
        raise BadRequest(f"The policy was not published: {exc.detail}") from exc
    db.commit()
    return RedirectResponse(f"/wordlists?published={record.serial}#publish", status_code=303)

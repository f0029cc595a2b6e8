"""Wordlists: the default rules, the school's own rule files, a rule tester, and publishing.

School files are validated with core.rules before they are stored, so a typo can never reach
the agents; publishing signs a new policy with the technician's unlocked key.
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
from dashboard.deps import KeyholderDep, SessionDep, TechnicianDep, UnlockedDep
from dashboard.errors import BadRequest, Forbidden, NotFound
from dashboard.rendering import render
from dashboard.sessions import SignedIn

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])

FILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,58}\.toml$")
MAX_FILE_CHARS = 200_000
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
    }
    context.update(extra)
    return render(request, "wordlists.html", who, **context)


@router.get("/wordlists", include_in_schema=False)
def wordlists(request: Request, db: SessionDep, who: KeyholderDep) -> Response:
    return _page(request, db, who)


@router.post("/wordlists/files", include_in_schema=False)
def save_file(
    request: Request,
    db: SessionDep,
    who: TechnicianDep,
    name: Annotated[str, Form(max_length=64)],
    text: Annotated[str, Form(max_length=MAX_FILE_CHARS)],
) -> Response:
    name = name.strip().lower()
    if not FILE_NAME.match(name):
        return _page(request, db, who, edit_error="A file name is lower-case letters, digits, - or _, ending in .toml.",
                     edit_name=name, edit_text=text)
    if name in default_wordlists():
        return _page(request, db, who, edit_error=f"{name} is a default list's name: choose another, e.g. school-{name}.",
                     edit_name=name, edit_text=text)
    try:
        _ruleset(request, db, {name: text})  # refuses a malformed file or a duplicate id
    except RuleFileError as exc:
        return _page(request, db, who, edit_error=str(exc), edit_name=name, edit_text=text)
    row = db.get(WordlistFile, name) or WordlistFile(name=name, text=text)
    row.text, row.updated_at, row.updated_by = text, utcnow(), who.username
    db.add(row)
    audit(db, who.username, "wordlist.save", name, chars=len(text))
    return RedirectResponse("/wordlists#school", status_code=303)


@router.post("/wordlists/files/{name}/delete", include_in_schema=False)
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


@router.post("/wordlists/publish", include_in_schema=False)
def publish_policy(request: Request, db: SessionDep, unlocked: UnlockedDep) -> Response:
    if unlocked.who.role != "technician":
        raise Forbidden("Only the technician publishes wordlist changes.")
    try:
        record = publish(db, request.app.state.settings, unlocked.private_key, unlocked.username)
    except CollectorError as exc:
        raise BadRequest(f"The policy was not published: {exc.detail}") from exc
    db.commit()
    return RedirectResponse(f"/wordlists?published={record.serial}#publish", status_code=303)

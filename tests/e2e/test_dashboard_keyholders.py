"""Browser tests: only the keyholders decide who can read (issue 14).

The head adds a new technician from the key file they made on their own machine, sees it
waiting and flagged, signs the change with her own password, and the technician becomes a
reader (and signs in for the first time with their key's password); then she proposes their
removal and signs it. A change code that no longer matches the list is refused, a name from an
uploaded file is shown as text, and a governor cannot reach the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from collector.store.models import Account, AuditEntry
from core.keys import create, save_key_files
from tests.e2e.dashboard_helpers import make_accounts, shoot, sign_in
from tests.fixtures.keys import FAST_TEST_KDF

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEW_NAME = "Tess Newtech"
NEW_PASSWORD = "tess's own key password"
WARNING = "No keyholder has approved this key. It cannot read anything until a keyholder signs it."


def _new_key(directory: Path, name: str, role: str, password: str) -> tuple[Path, Any]:
    """What `vigil keys create` writes on the new keyholder's own machine."""
    key_file, _ = create(name, role, password, kdf=FAST_TEST_KDF)
    path, _ = save_key_files(directory / f"{role}-{abs(hash(name))}.key", key_file)
    return path, key_file


def _propose_behind_the_page(server: Any, directory: Path, name: str) -> None:
    """Someone else adds a key (here: the collector's admin call) while the head is looking."""
    from collector.admin import add_keyholder_key

    _, key_file = _new_key(directory, name, "technician", "another key password")
    db = server.database()
    try:
        add_keyholder_key(db, key_file.public, actor="someone-else")
    finally:
        db.close()


def _actions(server: Any) -> list[str]:
    db = server.database()
    try:
        with db.session() as s:
            return [e.action for e in s.exec(select(AuditEntry).order_by(AuditEntry.seq)).all()]
    finally:
        db.close()


def _sign(page: Any, password: str) -> None:
    page.fill("#sign-form input[name=password]", password)
    page.click("#sign")


def test_keyholders_add_sign_remove_in_the_browser(collector_server: Any, new_context: Any,
                                                   tmp_path: Path) -> None:
    server = collector_server
    who = make_accounts(server)
    head_password = who["head"][1]
    page = new_context().new_page()
    sign_in(page, server, who["head"])

    # Nothing waits yet: the readers are the three keys the fixture's first policy signed.
    page.click("nav >> text=Keyholders")
    page.wait_for_url(re.compile(r"/keyholders$"))
    assert page.locator("#no-changes").is_visible()
    assert page.locator("#reader-list tbody tr").count() == 3
    assert page.locator("#unapproved-banner").count() == 0

    # A file that is not a key: one clear line, nothing added.
    junk = tmp_path / "notes.key"
    junk.write_text("hello")
    page.set_input_files("#add-form input[name=key]", str(junk))
    page.click("#add-key")
    assert "That is not a Vigil key" in page.locator("#add-error").inner_text()

    # The new technician's key file, made on their machine, uploaded by the head.
    key_path, key_file = _new_key(tmp_path, NEW_NAME, "technician", NEW_PASSWORD)
    page.set_input_files("#add-form input[name=key]", str(key_path))
    page.click("#add-key")
    page.wait_for_url(re.compile(r"done=added"))
    added = page.locator(f"#change-list tr.added[data-fingerprint='{key_file.fingerprint}']")
    assert NEW_NAME in added.inner_text() and "technician" in added.inner_text()
    assert WARNING in page.locator("#change-list .unapproved-warning").first.inner_text()
    assert "1 key no keyholder has approved" in page.locator("#unapproved-banner").inner_text()
    assert NEW_NAME not in page.locator("#reader-list").inner_text()
    shoot(page, "keyholders")

    # While she looks, someone adds another key, named to try the page's escaping: her change
    # code no longer names the list, so signing is refused and she is shown it again.
    sly = '<img src=x onerror="document.title=1">Sly'
    _propose_behind_the_page(server, tmp_path, sly)
    _sign(page, head_password)
    assert "look at them again" in page.locator("#sign-error").inner_text()
    assert page.locator("#change-list tr.added").count() == 2
    assert sly in page.locator("#change-list").inner_text()  # shown as text, not as markup
    assert page.locator("#change-list img").count() == 0
    # She rejects the key she did not expect.
    page.locator("#change-list tr.added", has_text="Sly").locator("button.reject").click()
    page.wait_for_url(re.compile(r"done=rejected"))
    assert page.locator("#change-list tr.added").count() == 1

    # Signing with a wrong password signs nothing.
    _sign(page, "not the head's password")
    assert "does not unlock your key" in page.locator("#sign-error").inner_text()

    # She signs the change: the new technician is a reader.
    _sign(page, head_password)
    page.wait_for_url(re.compile(r"done=signed-\d+"))
    assert page.locator("#no-changes").is_visible()
    reader = page.locator(f"#reader-list tr[data-fingerprint='{key_file.fingerprint}']")
    assert NEW_NAME in reader.inner_text()
    assert page.locator("#unapproved-banner").count() == 0

    # The new technician signs in for the first time with their key's password, and can unlock.
    newcomer = new_context().new_page()
    sign_in(newcomer, server, (NEW_NAME, NEW_PASSWORD))
    assert newcomer.url.endswith("/triage")
    newcomer.goto(f"{server.url}/unlock?next=/triage")
    newcomer.fill("input[name=password]", NEW_PASSWORD)
    newcomer.click("form[action='/unlock'] button[type=submit]")
    newcomer.wait_for_selector(".key.unlocked")
    db = server.database()
    try:
        with db.session() as s:
            account = s.exec(select(Account).where(Account.username == NEW_NAME)).one()
            assert account.password_hash.startswith("$argon2id$")  # stored at first sign-in
    finally:
        db.close()

    # She proposes removing them: waiting until signed, then gone from the readers.
    page.goto(f"{server.url}/keyholders")
    reader.locator("button.remove").click()
    page.wait_for_url(re.compile(r"done=removal"))
    removed = page.locator(f"#change-list tr.removed[data-fingerprint='{key_file.fingerprint}']")
    assert NEW_NAME in removed.inner_text()
    assert NEW_NAME in page.locator("#reader-list").inner_text()  # reads until it is signed
    _sign(page, head_password)
    page.wait_for_url(re.compile(r"done=signed-\d+"))
    assert NEW_NAME not in page.locator("#reader-list").inner_text()
    assert page.locator("#reader-list tbody tr").count() == 3

    actions = _actions(server)
    for action in ("keyholder.propose", "keyholder.reject", "keyholder.approve",
                   "keyholder.retire", "signin.first", "keyholder.approve_failed"):
        assert action in actions, action
    assert actions.count("keyholder.approve") == 2


def test_governor_cannot_reach_keyholders(collector_server: Any, new_context: Any) -> None:
    server = collector_server
    who = make_accounts(server)
    page = new_context().new_page()
    sign_in(page, server, who["governor"])
    assert page.locator("nav >> text=Keyholders").count() == 0
    answer = page.goto(f"{server.url}/keyholders")
    assert answer is not None and answer.status == 403
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    posted = page.request.post(f"{server.url}/keyholders/approve",
                               form={"csrf": token, "change": "vkc1:x", "password": "x" * 12})
    assert posted.status == 403

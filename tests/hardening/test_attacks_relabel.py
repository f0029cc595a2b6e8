"""Issue 14: whoever can write the database relabels a capture; nothing opens it any more.

Run as the attacker would: a plain SQL UPDATE on the collector's real database (SQLite and the
real PostgreSQL) turns a severity-5 suicide capture into a severity-1 gambling one, or moves it to
another device. Then a keyholder opens it as they would: the dashboard over HTTPS with a signed-in,
unlocked session (the event page, the screenshot, the queue, the incident's evidence export) and
the command line (`vigil collector event open`, and `vigil open --expect` on their own machine).
Every path refuses with one line naming the field, shows nothing sealed, and the refusal is in the
audit log. Before issue 14 each of these opened the capture under its new label.
"""

from __future__ import annotations

import html
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.dashboard_helpers import SeedEvent, make_accounts, seed_events
from tests.hardening.clients import DashClient, sign_in

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
JSON = {"Accept": "application/json"}
SEVERITY = "severity is 1 in the database but 5 in the sealed capture"
REFUSED = "this capture's record was changed after it arrived"


def _sql(server: Any, statement: str, **params: Any) -> int:
    """One SQL statement on the collector's database, outside any Vigil code (the attacker's
    psql or sqlite3 shell); returns the number of rows it changed."""
    from sqlalchemy import create_engine, text

    engine = create_engine(server.database_url)
    try:
        with engine.begin() as conn:
            return conn.execute(text(statement), params).rowcount
    finally:
        engine.dispose()


def _refusals(server: Any, event_id: str) -> list[Any]:
    from sqlmodel import col, select

    from collector.store.models import AuditEntry

    db = server.database()
    try:
        with db.session() as session:
            return list(session.exec(
                select(AuditEntry).where(AuditEntry.action == "capture.relabel_refused",
                                         AuditEntry.target == event_id)
                .order_by(col(AuditEntry.seq))).all())
    finally:
        db.close()


def _vigil(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "vigil", *args], input=stdin,
                          capture_output=True, cwd=REPO, timeout=300, check=False)


@pytest.fixture
def school(collector_server_db: Any) -> tuple[Any, DashClient, str, str]:
    """A collector on each database with a severity-5 capture, an open incident holding it, and
    the head signed in and unlocked: (server, head's client, event id, incident path)."""
    server = collector_server_db
    accounts = make_accounts(server)
    event = SeedEvent("suicide", 5, "suicide.kill_myself", "Chat - Browser",
                      "i want to kill myself tonight", "kill myself", user="pupil.y9")
    seed_events(server, [event], hostname="IT-SUITE-07")
    head = sign_in(server, "head", *accounts["head"])
    head.unlock()
    made = head.post_form("/incidents", {"title": "Year 9 chat", "event": event.id})
    assert made.status_code == 303, made.text[:300]
    # Before the attack everything opens: the checks below refuse only what was relabelled.
    shot = head.http.get(f"/events/{event.id}/screenshot")
    assert shot.status_code == 200 and shot.content.startswith(b"\x89PNG")
    assert "kill myself" in head.http.get(f"/events/{event.id}").text
    return server, head, event.id, made.headers["location"]


def test_a_relabelled_capture_is_refused_by_the_dashboard(school: Any) -> None:
    server, head, event_id, incident = school
    assert _sql(server, "UPDATE event SET severity = 1, category = 'gambling', "
                        "rule = 'gambling.gambling_debt' WHERE id = :id", id=event_id) == 1

    shot = head.http.get(f"/events/{event_id}/screenshot", headers=JSON)
    assert shot.status_code == 409, shot.text[:300]
    detail = shot.json()["detail"]
    assert detail.startswith(f"Event {event_id}: {REFUSED}: ")
    assert "category is gambling in the database but suicide in the sealed capture" in detail
    assert SEVERITY in detail and "rule is gambling.gambling_debt in the database" in detail
    assert detail.endswith("it was not opened.") and "\n" not in detail
    assert b"\x89PNG" not in shot.content

    page = head.http.get(f"/events/{event_id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert SEVERITY in text and REFUSED in text
    for sealed in ("kill myself", "pupil.y9", "Chat - Browser", "/screenshot"):
        assert sealed not in text, sealed
    queue = html.unescape(head.http.get("/triage").text)
    assert SEVERITY in queue and "kill myself" not in queue and "pupil.y9" not in queue

    export = head.post_form(f"{incident}/export", headers=JSON)
    assert export.status_code == 400, export.text[:300]
    assert export.headers["content-type"].startswith("application/json")
    assert export.json()["detail"].startswith("Export stopped, nothing was exported: ")
    assert SEVERITY in export.json()["detail"]

    refusals = _refusals(server, event_id)
    assert [r.details["via"] for r in refusals] == ["screenshot", "event page", "queue", "export"]
    assert {r.actor for r in refusals} == {server.keys.head.name}
    assert refusals[0].details["fields"] == {
        "category": {"database": "gambling", "sealed": "suicide"},
        "severity": {"database": 1, "sealed": 5},
        "rule": {"database": "gambling.gambling_debt", "sealed": "suicide.kill_myself"}}

    # Put the row back as it was sealed: it opens again (the seal was never touched).
    _sql(server, "UPDATE event SET severity = 5, category = 'suicide', "
                 "rule = 'suicide.kill_myself' WHERE id = :id", id=event_id)
    assert head.http.get(f"/events/{event_id}/screenshot").status_code == 200
    head.close()


def test_a_capture_moved_to_another_pupils_device_is_refused(school: Any) -> None:
    server, head, event_id, _ = school
    other = server.enrol("IT-SUITE-12")  # another pupil's desktop
    assert _sql(server, "UPDATE event SET device_id = :other WHERE id = :id",
                other=other.id, id=event_id) == 1
    shot = head.http.get(f"/events/{event_id}/screenshot", headers=JSON)
    assert shot.status_code == 409
    assert f"device_id is {other.id} in the database but " in shot.json()["detail"]

    _sql(server, "UPDATE event SET source = 'title' WHERE id = :id", id=event_id)
    detail = head.http.get(f"/events/{event_id}/screenshot", headers=JSON).json()["detail"]
    assert "device_id is" in detail
    assert "source is title in the database but typed in the sealed capture" in detail
    assert [r.details["via"] for r in _refusals(server, event_id)] == ["screenshot", "screenshot"]
    head.close()


def test_a_relabelled_capture_is_refused_by_the_command_line(school: Any) -> None:
    server, head, event_id, _ = school
    head.close()
    holder = server.keys.head
    args = ("collector", "event", "open", event_id, "--data", str(server.data_dir),
            "--keyholder", holder.name, "--password-stdin")
    before = _vigil(*args, stdin=f"{holder.password}\n".encode())
    assert before.returncode == 0, before.stderr
    assert before.stdout.startswith(b"\x89PNG")

    _sql(server, "UPDATE event SET severity = 1, category = 'gambling' WHERE id = :id",
         id=event_id)
    done = _vigil(*args, stdin=f"{holder.password}\n".encode())
    assert done.returncode == 1 and done.stdout == b""
    line = done.stderr.decode()
    assert line.count("\n") == 1 and line.startswith(f"vigil: {REFUSED}: ")
    assert SEVERITY in line and line.rstrip().endswith("it was not opened")
    (refusal,) = _refusals(server, event_id)
    assert (refusal.actor, refusal.details["via"]) == (holder.name, "cli")

    # On the keyholder's own machine: the envelope and what the dashboard lists it as.
    from collector.store.blobs import BlobStore
    from collector.store.models import Event

    db = server.database()
    try:
        with db.session() as session:
            row = session.get(Event, event_id)
            assert row is not None
            sealed = BlobStore(server.settings().blob_dir).get(row.blob_key)
    finally:
        db.close()
    opened = _vigil("open", "--key", str(holder.path), "--password-stdin", "--expect",
                    '{"severity": 1, "category": "gambling"}',
                    stdin=f"{holder.password}\n".encode() + sealed)
    assert opened.returncode == 1 and opened.stdout == b""
    assert "severity is 1 in --expect but 5 in the sealed capture" in opened.stderr.decode()
    honest = _vigil("open", "--key", str(holder.path), "--password-stdin", "--expect",
                    '{"severity": 5, "category": "suicide"}',
                    stdin=f"{holder.password}\n".encode() + sealed)
    assert honest.returncode == 0 and honest.stdout.startswith(b"\x89PNG")


def _expect_on_page(page: str) -> str:
    """The --expect JSON the event page tells the keyholder to use, as they would copy it."""
    import re

    found = re.search(r"vigil open --key YOUR\.key --expect '([^']*)'", html.unescape(page))
    assert found, "the event page shows no `vigil open --expect` line"
    return found.group(1)


def test_a_keyholder_who_distrusts_the_server_opens_the_download_on_their_machine(
        school: Any) -> None:
    """The page offers the sealed capture (ciphertext: no unlock, no password on the server)
    and the exact `vigil open --expect` line; with a relabelled row that line refuses."""
    server, head, event_id, _ = school
    head.close()
    holder = server.keys.head
    fresh = sign_in(server, "head", holder.name, holder.password)  # signed in, never unlocked
    page = fresh.http.get(f"/events/{event_id}")
    assert f'href="/events/{event_id}/sealed"' in page.text
    download = fresh.http.get(f"/events/{event_id}/sealed")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/vnd.vigil.envelope"
    assert f'filename="vigil-{event_id}.vgl"' in download.headers["content-disposition"]
    sealed = download.content
    assert b"kill myself" not in sealed and b"\x89PNG" not in sealed  # ciphertext only

    expect = _expect_on_page(page.text)
    opened = _vigil("open", "--key", str(holder.path), "--password-stdin", "--expect", expect,
                    stdin=f"{holder.password}\n".encode() + sealed)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout.startswith(b"\x89PNG")

    _sql(server, "UPDATE event SET severity = 1, category = 'gambling' WHERE id = :id",
         id=event_id)
    relabelled = _expect_on_page(fresh.http.get(f"/events/{event_id}").text)
    refused = _vigil("open", "--key", str(holder.path), "--password-stdin", "--expect",
                     relabelled, stdin=f"{holder.password}\n".encode() + sealed)
    assert refused.returncode == 1 and refused.stdout == b""
    assert "severity is 1 in --expect but 5 in the sealed capture" in refused.stderr.decode()
    fresh.close()


def test_a_capture_relabelled_to_another_year_group_is_refused(school: Any) -> None:
    """Issue 18: routing acted on the cohort tag, so a row moved to another year group (to
    route it to another DSL, or away from one) is refused like any other relabelling."""
    server, head, event_id, _ = school
    assert _sql(server, "UPDATE event SET year = '7', form = '7B' WHERE id = :id",
                id=event_id) == 1
    shot = head.http.get(f"/events/{event_id}/screenshot", headers=JSON)
    assert shot.status_code == 409, shot.text[:300]
    detail = shot.json()["detail"]
    assert "year is 7 in the database" in detail and "form is 7B in the database" in detail
    (refusal,) = _refusals(server, event_id)
    assert refusal.details["fields"] == {"year": {"database": "7", "sealed": ""},
                                         "form": {"database": "7B", "sealed": ""}}
    _sql(server, "UPDATE event SET year = '', form = '' WHERE id = :id", id=event_id)
    assert head.http.get(f"/events/{event_id}/screenshot").status_code == 200
    head.close()

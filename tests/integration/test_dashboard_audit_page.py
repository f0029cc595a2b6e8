"""The audit page over real TLS: incremental views, the full re-verification, a server restart."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from sqlalchemy import text

from tests.e2e.dashboard_helpers import make_accounts
from tests.hardening.clients import DashClient, sign_in


def _status(client: DashClient) -> str:
    page = client.http.get("/audit")
    assert page.status_code == 200, page.text[:300]
    start = page.text.index('id="chain-status">') + len('id="chain-status">')
    return page.text[start:page.text.index("</p>", start)]


def _tamper(server: Any, seq: int) -> None:
    db = server.database()
    try:
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE auditentry SET actor = 'forger' WHERE seq = :s"), {"s": seq})
    finally:
        db.close()


def test_audit_page_verifies_incrementally_and_fully(collector_server: Any) -> None:
    server = collector_server
    name, password = make_accounts(server)["technician"]
    tech = sign_in(server, "technician", name, password)
    try:
        assert "from the first" in _status(tech)  # first view in this process: whole chain
        assert _status(tech).startswith("Chain verified up to entry")
        _tamper(server, 2)
        # An incremental view does not revisit entry 2, and says which entries it did check.
        assert _status(tech).startswith("Chain verified up to entry")

        # A new server process trusts nothing from the old one: its first view walks it all.
        server.restart()
        assert _status(tech).startswith("Chain broken at entry 2")

        answer = tech.post_form("/audit/verify")
        assert answer.status_code == 303 and answer.headers["location"] == "/audit"
        assert _status(tech).startswith("Chain broken at entry 2")
        page = tech.http.get("/audit").text
        assert "broken at entry 2" in page[page.index('id="chain-full"'):]

        # The button is a CSRF-protected POST like every other form.
        assert tech.http.post("/audit/verify", data={}).status_code == 403
    finally:
        tech.close()
    cli = subprocess.run([sys.executable, "-m", "vigil", "collector", "audit", "verify",
                          "--data", str(server.data_dir)],
                         check=False, capture_output=True, text=True, timeout=120)
    # One line naming the entry the forger changed and that the one before it is intact.
    assert cli.returncode == 1 and cli.stdout == ""
    (line,) = cli.stderr.strip().splitlines()
    assert line.startswith("vigil: rewritten: audit log broken at entry 2: "), line
    assert line.endswith("(1 entry before it is intact)"), line


def test_governor_cannot_verify(collector_server: Any) -> None:
    server = collector_server
    name, password = make_accounts(server)["governor"]
    governor = sign_in(server, "governor", name, password)
    try:
        assert governor.post_form("/audit/verify").status_code == 403
        assert governor.http.get("/audit").status_code == 403
    finally:
        governor.close()

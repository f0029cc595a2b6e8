"""Attacks on the audit trail, made as an attacker with the database (and, for the log file, the
server's disk) would make them, reported by `vigil collector audit verify` (a real subprocess)
and on the dashboard's audit page of a real collector over TLS.

The SQL attacks run on SQLite and PostgreSQL. Each rewrites the chain *and* its stored head, so
the chain in the database checks out on its own (``collector.audit.verify``, the check
`vigil collector audit verify` made before the anchors, passes: each test asserts that); only
the append-only log and the keyholders' signed checkpoints outside the database show it.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from collector import audit
from tests.hardening.clients import DashClient, sign_in


def _cli(server: Any, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", "collector", "audit", *args,
                           "--data", str(server.data_dir)], input=stdin, check=False,
                          capture_output=True, text=True, timeout=120)


def _verify(server: Any) -> subprocess.CompletedProcess[str]:
    return _cli(server, "verify")


def _page(client: DashClient) -> tuple[str, list[str]]:
    """The audit page's chain status line and its findings, as a keyholder reads them."""
    page = client.http.get("/audit")
    assert page.status_code == 200, page.text[:300]
    start = page.text.index('id="chain-status">') + len('id="chain-status">')
    status = page.text[start:page.text.index("</p>", start)]
    found = re.search(r'<ul class="error" id="audit-findings">(.*?)</ul>', page.text, re.DOTALL)
    items = re.findall(r"<li>(.*?)</li>", found.group(1), re.DOTALL) if found else []
    return html.unescape(status), [html.unescape(i) for i in items]


def _history(server: Any) -> DashClient:
    """The technician signs in, unlocks (a signed checkpoint), locks, unlocks again (another),
    and locks: the last entries of the chain."""
    tech = sign_in(server, "technician", server.keys.technician.name,
                   server.keys.technician.password)
    for _ in range(2):
        tech.unlock()
        assert tech.post_form("/lock").status_code == 303
    return tech


# --- the attacker's tools: plain SQL, and the public hash function ---------------------------


def _engine(server: Any) -> Any:
    return create_engine(server.database_url)


def _rows(conn: Any) -> list[dict[str, Any]]:
    rows = [dict(r) for r in conn.execute(text(
        "SELECT seq, at, actor, action, target, details, prev_hash, hash FROM auditentry "
        "ORDER BY seq")).mappings()]
    for r in rows:  # SQLite hands back text, PostgreSQL Python values
        if isinstance(r["at"], str):
            r["at"] = datetime.fromisoformat(r["at"])
        if isinstance(r["details"], str):
            r["details"] = json.loads(r["details"])
    return rows


def _rechain(conn: Any, rows: list[dict[str, Any]], start: int) -> None:
    """Recompute the hash of every row from index ``start`` on, and the stored head."""
    prev = rows[start - 1]["hash"] if start else audit.GENESIS
    for r in rows[start:]:
        r["prev_hash"] = prev
        r["hash"] = prev = audit.entry_hash(prev, r["seq"], r["at"], r["actor"], r["action"],
                                            r["target"], r["details"])
        conn.execute(text("UPDATE auditentry SET actor = :a, prev_hash = :p, hash = :h "
                          "WHERE seq = :s"),
                     {"a": r["actor"], "p": r["prev_hash"], "h": r["hash"], "s": r["seq"]})
    conn.execute(text("UPDATE audithead SET seq = :s, hash = :h WHERE id = 1"),
                 {"s": rows[-1]["seq"], "h": rows[-1]["hash"]})


def _chain_alone_passes(server: Any) -> None:
    """The check made before the anchors: the chain and its stored head agree."""
    db = server.database()
    try:
        with db.session() as session:
            result = audit.verify(session)
    finally:
        db.close()
    assert result.ok, result


def _unlocks(rows: list[dict[str, Any]], server: Any) -> list[int]:
    """Indexes of the technician's key.unlock entries."""
    return [i for i, r in enumerate(rows)
            if r["action"] == "key.unlock" and r["actor"] == server.keys.technician.name]


def _intact(server: Any, tech: DashClient) -> None:
    before = _verify(server)
    assert before.returncode == 0, before.stderr
    assert _page(tech)[0].startswith("Chain verified")


def _reported(server: Any, tech: DashClient, *expected: str) -> list[str]:
    """Each expected text is in a `vigil:` line of the CLI and in a finding on the page."""
    cli = _verify(server)
    assert cli.returncode == 1, (cli.stdout, cli.stderr)
    lines = cli.stderr.strip().splitlines()
    assert all(line.startswith("vigil: ") for line in lines), lines
    status, findings = _page(tech)
    assert not status.startswith("Chain verified"), status
    for want in expected:
        assert any(want in line for line in lines), (want, lines)
        assert any(want in f for f in findings), (want, findings)
    return lines


# --- the database attacks, on SQLite and PostgreSQL --------------------------------------------


def test_a_row_rewritten_with_the_chain_and_head_recomputed_is_reported(
        collector_server_db: Any) -> None:
    server = collector_server_db
    tech = _history(server)
    try:
        _intact(server, tech)
        with _engine(server).begin() as conn:
            rows = _rows(conn)
            first = _unlocks(rows, server)[0]
            rows[first]["actor"] = "nobody"  # hide who unlocked
            _rechain(conn, rows, first)
        _chain_alone_passes(server)
        seq, last = rows[first]["seq"], rows[-1]["seq"]
        lines = _reported(
            server, tech,
            f"rewritten: entries {seq}-{last} in the database differ from the append-only log: "
            f"a signed checkpoint agrees with the log, so the database was rewritten from "
            f"entry {seq}",
            f"rewritten: entry {seq} is not the one {server.keys.technician.name} signed")
        assert not any("truncated" in line for line in lines), lines
    finally:
        tech.close()


def test_the_last_rows_deleted_with_the_head_moved_back_are_reported(
        collector_server_db: Any) -> None:
    server = collector_server_db
    tech = _history(server)
    try:
        _intact(server, tech)
        with _engine(server).begin() as conn:
            rows = _rows(conn)
            keep = rows[:-2]  # the last checkpoint and the lock after it go
            conn.execute(text("DELETE FROM auditentry WHERE seq > :s"), {"s": keep[-1]["seq"]})
            conn.execute(text("UPDATE audithead SET seq = :s, hash = :h WHERE id = 1"),
                         {"s": keep[-1]["seq"], "h": keep[-1]["hash"]})
        _chain_alone_passes(server)
        end, last = keep[-1]["seq"], rows[-1]["seq"]
        _reported(server, tech,
                  f"truncated: the database ends at entry {end}, but the append-only log "
                  f"reaches entry {last} and entry {last - 1} is a checkpoint "
                  f"{server.keys.technician.name} signed at ",
                  f": the entries after {end} were removed")
    finally:
        tech.close()


def test_a_middle_row_deleted_and_the_gap_closed_is_reported(collector_server_db: Any) -> None:
    server = collector_server_db
    tech = _history(server)
    try:
        _intact(server, tech)
        with _engine(server).begin() as conn:
            rows = _rows(conn)
            gone = _unlocks(rows, server)[0]
            conn.execute(text("DELETE FROM auditentry WHERE seq = :s"), {"s": rows[gone]["seq"]})
            del rows[gone]
            for r in rows[gone:]:  # renumber one by one, lowest first: seq is the primary key
                conn.execute(text("UPDATE auditentry SET seq = :n WHERE seq = :s"),
                             {"n": r["seq"] - 1, "s": r["seq"]})
                r["seq"] -= 1
            _rechain(conn, rows, gone)
        _chain_alone_passes(server)
        seq, end = rows[gone]["seq"], rows[-1]["seq"]
        _reported(server, tech,
                  f"rewritten: entries {seq}-{end} in the database differ from the append-only "
                  "log: a signed checkpoint agrees with the log",
                  f"truncated: the database ends at entry {end}, but the append-only log "
                  f"reaches entry {end + 1}",
                  f"rewritten: entry {seq} is not the one {server.keys.technician.name} signed")
    finally:
        tech.close()


def test_a_middle_row_deleted_leaves_a_gap_the_log_still_holds(collector_server_db: Any) -> None:
    server = collector_server_db
    tech = _history(server)
    try:
        with _engine(server).begin() as conn:
            seq = _rows(conn)[_unlocks(_rows(conn), server)[0]]["seq"]
            conn.execute(text("DELETE FROM auditentry WHERE seq = :s"), {"s": seq})
        _reported(server, tech, f"missing: entry {seq} is missing from the database (a gap in "
                                "the chain); the append-only log has it")
    finally:
        tech.close()


# --- the log file alone ------------------------------------------------------------------------


def _log(server: Any) -> Path:
    return Path(server.settings().audit_log)


def _lines(server: Any) -> list[bytes]:
    return _log(server).read_bytes().splitlines(keepends=True)


def _full(tech: DashClient) -> tuple[str, list[str]]:
    """Press "Verify the whole chain now" (an edit inside the log is found by a full check)."""
    assert tech.post_form("/audit/verify").status_code == 303
    return _page(tech)


def test_a_line_edited_in_the_log_alone_is_reported(collector_server: Any) -> None:
    server = collector_server
    tech = _history(server)
    try:
        _intact(server, tech)
        lines = _lines(server)
        name = server.keys.technician.name.encode()
        at = next(i for i, line in enumerate(lines) if b'"key.unlock"' in line and name in line)
        seq = json.loads(lines[at])["seq"]
        lines[at] = lines[at].replace(b'"actor":"' + name, b'"actor":"nobody')
        _log(server).write_bytes(b"".join(lines))
        cli = _verify(server)
        assert cli.returncode == 1
        assert (f"vigil: log edited: the append-only log's entry {seq} (line {at + 1}) does "
                "not match its own hash: edited") in cli.stderr, cli.stderr
        assert any(f"log's entry {seq} (line {at + 1})" in f for f in _full(tech)[1])
    finally:
        tech.close()


def test_the_log_rewritten_consistently_is_caught_by_the_checkpoints(
        collector_server: Any) -> None:
    server = collector_server
    tech = _history(server)
    try:
        lines = _lines(server)
        name = server.keys.technician.name
        at = next(i for i, line in enumerate(lines)
                  if b'"key.unlock"' in line and name.encode() in line)
        prev = json.loads(lines[at])["prev_hash"]
        for i in range(at, len(lines)):  # rewrite and rehash every line from there
            value = json.loads(lines[i])
            rec = value["record"]
            if i == at:
                rec["actor"] = "nobody"
            value["prev_hash"] = prev
            value["hash"] = prev = audit.entry_hash(prev, rec["seq"], rec["at"], rec["actor"],
                                                    rec["action"], rec["target"], rec["details"])
            lines[i] = json.dumps(value, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False).encode() + b"\n"
        _log(server).write_bytes(b"".join(lines))
        seq = json.loads(lines[at])["seq"]
        cli = _verify(server)
        assert cli.returncode == 1
        assert ("in the database differ from the append-only log: a signed checkpoint agrees "
                "with the database, so the log was rewritten") in cli.stderr, cli.stderr
        assert (f"log edited: the append-only log's entry {seq} is not the one {name} "
                "signed") in cli.stderr, cli.stderr
        assert any("so the log was rewritten" in f for f in _full(tech)[1])
    finally:
        tech.close()


def test_lines_cut_from_the_log_are_reported(collector_server: Any) -> None:
    server = collector_server
    tech = _history(server)
    try:
        lines = _lines(server)
        middle = len(lines) // 2
        seq = json.loads(lines[middle])["seq"]
        last = [json.loads(line)["seq"] for line in lines[-2:]]
        _log(server).write_bytes(b"".join(lines[:middle] + lines[middle + 1:-2]))
        cli = _verify(server)
        assert cli.returncode == 1
        want = (f"not in log: entries {seq}, {last[0]}-{last[1]} are in the database but not "
                "in the append-only log")
        assert want in cli.stderr, cli.stderr
        assert any(want[len("not in log: "):] in f for f in _full(tech)[1])
    finally:
        tech.close()


def test_a_deleted_log_is_loud_and_only_a_keyholder_can_start_a_new_one(
        collector_server: Any) -> None:
    server = collector_server
    tech = _history(server)
    try:
        _log(server).unlink()
        cli = _verify(server)
        assert cli.returncode == 1
        assert "vigil: log: the append-only log cannot be read: " in cli.stderr, cli.stderr
        # The running collector cannot write its next entry: it says so on the audit page.
        tech.unlock()
        page = tech.http.get("/audit").text
        assert 'id="audit-log-problem"' in page and "cannot be written" in page
        assert "cannot write the append-only audit log" in server.log()

        # Restarted, it begins a new log, and says what was lost until a keyholder signs off.
        server.restart()
        cli = _verify(server)
        assert cli.returncode == 1
        assert "log: the append-only log was missing or empty when the collector started" \
            in cli.stderr, cli.stderr
        signed = _cli(server, "new-log", "--keyholder", server.keys.technician.name,
                      "--password-stdin", "--reason", "log deleted on the server",
                      stdin=server.keys.technician.password + "\n")
        assert signed.returncode == 0, signed.stderr
        assert "the previous append-only log is kept as" in signed.stdout
        cli = _verify(server)
        assert cli.returncode == 0, cli.stderr
        assert "started again by a keyholder" in cli.stdout

        # Starting a new log by hand (the file emptied) is not a keyholder's decision: reported.
        _log(server).write_bytes(b"")
        server.restart()
        assert "was missing or empty" in _verify(server).stderr
    finally:
        tech.close()


@pytest.mark.parametrize("forged", ["stranger", "altered"])
def test_a_checkpoint_forged_in_the_database_is_reported(collector_server: Any,
                                                         forged: str) -> None:
    """A database writer appends a checkpoint (with a correct chain link) claiming a head of
    their choosing: signed by their own key, or a real one with its head changed."""
    from core.keys import PrivateKey

    server = collector_server
    tech = _history(server)
    try:
        db = server.database()
        try:
            if forged == "stranger":
                key = PrivateKey.generate("Mr Rogue", "head")
                db.write(lambda s: audit.checkpoint(s, key, "Mr Rogue", "unlock"))
            else:
                with db.session() as s:
                    real = s.execute(text("SELECT details FROM auditentry WHERE action = "
                                       "'audit.checkpoint' ORDER BY seq DESC LIMIT 1")).first()
                details = json.loads(real[0]) if isinstance(real[0], str) else real[0]
                details["head"] = "f" * 64
                db.write(lambda s: audit.record(s, "Mr Tech", "audit.checkpoint",
                                                details["signer"], details))
        finally:
            db.close()
        want = ("claims a signer" if forged == "stranger"
                else f"does not verify against {server.keys.technician.name}'s key")
        cli = _verify(server)
        assert cli.returncode == 1 and "vigil: checkpoint: the checkpoint in entry" in cli.stderr
        assert want in cli.stderr, cli.stderr
        assert any(want in f for f in _full(tech)[1])
    finally:
        tech.close()

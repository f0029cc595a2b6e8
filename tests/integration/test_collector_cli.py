"""`vigil collector ...` as an administrator runs it: real subprocesses on a real data directory."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collector.tls import cert_fingerprint
from tests.fixtures.keys import Keyholders

REPO = Path(__file__).resolve().parents[2]


def vigil(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", "collector", *args], input=stdin, check=False,
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def ok(*args: str, stdin: str = "") -> str:
    done = vigil(*args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(*args: str, stdin: str = "", code: int = 1) -> str:
    done = vigil(*args, stdin=stdin)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert done.stdout == ""
    assert done.stderr.startswith("vigil: ") and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr


def refused(*args: str, stdin: str = "") -> str:
    """Like ``fails`` for a command that first shows something (approve shows the change)."""
    done = vigil(*args, stdin=stdin)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stderr.startswith("vigil: ") and done.stderr.count("\n") == 1, done.stderr
    return done.stderr


@pytest.fixture
def data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    out = ok("init", "--data", str(data), "--public-url", "https://vigil.school.example:8443")
    fingerprint = re.search(r"fingerprint: ([0-9a-f]{64})$", out, re.MULTILINE)
    assert fingerprint and fingerprint.group(1) == cert_fingerprint(data / "tls/cert.pem")
    assert (data / "settings.toml").stat().st_mode & 0o777 == 0o600
    assert (data / "tls/key.pem").stat().st_mode & 0o777 == 0o600
    assert (data / "blobs").is_dir() and (data / "vigil.db").is_file()
    return data


def test_init_refuses_to_overwrite(data: Path) -> None:
    assert "already initialised" in fails("init", "--data", str(data))


def test_keyholders_policy_and_enrolment_line(data: Path, keyholders: Keyholders) -> None:
    d = str(data)
    head = keyholders.head
    assert "publishes the first one" in fails("enrol-token", "--data", d)
    out = ok("keyholder", "add", "--data", d, "--key", str(head.path))
    assert f"{head.name} (head) added, waiting for a keyholder's signature: vk1:" in out
    assert "enrol-token" not in out and "first policy" in out
    ok("keyholder", "import", "--data", d, "--pub", str(keyholders.recovery.pub_path))
    ok("account", "add", "--data", d, "--username", "governor1", "--role", "governor",
       "--password-stdin", stdin="governors-password-1\n")
    assert "publishes the first one" in fails("enrol-token", "--data", d)  # nothing signed yet
    assert "WrongPassword" not in fails("policy", "publish", "--data", d, "--keyholder",
                                        head.name, "--password-stdin", stdin="wrong password!\n")
    out = ok("policy", "publish", "--data", d, "--keyholder", head.name, "--password-stdin",
             stdin=head.password + "\n")
    assert "policy 1 published" in out and "the genesis" in out
    assert f"  {head.name} (head) {head.fingerprint}" in out
    assert f"{keyholders.recovery.fingerprint}" in out and "wait for approval" not in out
    out = ok("enrol-token", "--data", d, "--uses", "5", "--expires", "2d", "--group", "ict")
    lines = out.strip().splitlines()
    token = re.search(r"^token: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    keyset = re.search(r"^keyholder-set fingerprint: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    assert keyset == _keyset([head.pub_path, keyholders.recovery.pub_path])
    cert = cert_fingerprint(data / "tls/cert.pem")
    assert lines[-1] == (f"vigil agent enrol --collector https://vigil.school.example:8443 "
                         f"--token {token} --trust {keyset} --ca-fingerprint {cert}")
    assert "collector URL: https://vigil.school.example:8443" in out
    # Only the encrypted key is stored; the dashboard password is set by the keyholder at their
    # first sign-in (it is never typed on the server), so no hash yet.
    with sqlite3.connect(data / "vigil.db") as conn:
        key_file, = conn.execute("SELECT key_file FROM keyholder WHERE role='head'").fetchone()
        pw_hash, = conn.execute("SELECT password_hash FROM account WHERE username=?",
                                (head.name,)).fetchone()
        recovery_file, = conn.execute("SELECT key_file FROM keyholder WHERE role='recovery'"
                                      ).fetchone()
    assert head.password.encode() not in key_file and pw_hash == ""
    assert recovery_file is None
    assert "revoked" in ok("enrol-token", "revoke", "--data", d, token)
    assert "revoked" in ok("enrol-token", "revoke", "--data", d, "1")
    out = ok("audit", "verify", "--data", d)
    assert re.match(r"audit log intact: \d+ entries checked", out)


def _genesis(d: str, head: Any) -> None:
    """The head proposes their own key and signs the first policy: the only reader."""
    ok("keyholder", "add", "--data", d, "--key", str(head.path))
    ok("policy", "publish", "--data", d, "--keyholder", head.name, "--password-stdin",
       stdin=head.password + "\n")


def _keyset(pubs: list[Path]) -> str:
    from core.keys import keyset_fingerprint, load_public_key

    return keyset_fingerprint(load_public_key(p) for p in pubs)


def test_a_new_keyholder_waits_until_a_reader_approves_the_change_shown(
        data: Path, keyholders: Keyholders, stranger_key: object) -> None:
    d = str(data)
    head, tech = keyholders.head, keyholders.technician
    _genesis(d, head)
    pin = _keyset([head.pub_path])
    ok("keyholder", "add", "--data", d, "--key", str(tech.path))
    listing = ok("keyholder", "list", "--data", d)
    assert f"{head.name} (head) {head.fingerprint}: reader (signed, since serial 1)" in listing
    assert f"{tech.name} (technician) {tech.fingerprint}: waiting for approval" in listing
    assert "NOT ADDED THROUGH VIGIL" not in listing
    # A routine publish keeps the signed set and says a change waits.
    out = ok("policy", "publish", "--data", d, "--keyholder", head.name, "--password-stdin",
             stdin=head.password + "\n")
    assert "1 keyholder change waits for approval: vigil collector keyholder approve" in out
    assert pin in ok("enrol-token", "--data", d)
    # Without --change, and no terminal: refused, nothing signed.
    assert "--change CODE" in refused("keyholder", "approve", "--data", d, "--keyholder",
                                    head.name, "--password-stdin", stdin=head.password + "\n")
    assert "not the ones you were shown" in refused(
        "keyholder", "approve", "--data", d, "--keyholder", head.name, "--change", "vkc1:0",
        "--password-stdin", stdin=head.password + "\n")
    shown = vigil("keyholder", "approve", "--data", d, "--keyholder", head.name,
                  "--password-stdin", stdin=head.password + "\n").stdout
    assert f"add    {tech.name} (technician) {tech.fingerprint}" in shown
    code = re.search(r"^change code: (vkc1:\S+)$", shown, re.MULTILINE).group(1)  # type: ignore[union-attr]
    # The waiting key cannot sign its own approval.
    assert "cannot approve itself" in refused("keyholder", "approve", "--data", d, "--keyholder",
                                            tech.name, "--change", code, "--password-stdin",
                                            stdin=tech.password + "\n")
    out = ok("keyholder", "approve", "--data", d, "--keyholder", head.name, "--change", code,
             "--password-stdin", stdin=head.password + "\n")
    assert "policy 3 signed by" in out and f"--to {tech.name}" in out
    assert f"{tech.fingerprint}: reader (signed, since serial 3)" in ok("keyholder", "list",
                                                                        "--data", d)
    assert _keyset([head.pub_path, tech.pub_path]) in ok("enrol-token", "--data", d)
    # Retiring proposes a removal: the keyholder reads until it is signed.
    out = ok("keyholder", "retire", "--data", d, "--name", tech.name)
    assert "still reads new captures until a current keyholder signs" in out
    assert "leaving (retired, removal not yet signed)" in ok("keyholder", "list", "--data", d)


def test_a_proposal_can_be_rejected_and_the_old_add_form_is_refused(
        data: Path, keyholders: Keyholders) -> None:
    d = str(data)
    head, tech = keyholders.head, keyholders.technician
    _genesis(d, head)
    assert "vigil keys create" in fails("keyholder", "add", "--data", d, "--name", "x",
                                        "--role", "head", "--password-stdin", stdin="pw\n")
    assert "--key FILE" in fails("keyholder", "add", "--data", d)
    ok("keyholder", "add", "--data", d, "--pub", str(tech.pub_path))
    assert "retire them instead" in fails("keyholder", "reject", "--data", d, head.name)
    assert "rejected" in ok("keyholder", "reject", "--data", d, tech.name)
    assert tech.name not in ok("keyholder", "list", "--data", d)
    assert "nothing to approve" in fails("keyholder", "approve", "--data", d, "--keyholder",
                                         head.name, "--change", "vkc1:x")
    # A key someone put in the table with SQL is flagged loudly.
    with sqlite3.connect(data / "vigil.db") as conn:
        conn.execute("INSERT INTO keyholder (name, role, fingerprint, public_key, created_at) "
                     "VALUES ('Rogue', 'head', ?, ?, CURRENT_TIMESTAMP)",
                     (tech.fingerprint, tech.public.to_bytes()))
    listing = vigil("keyholder", "list", "--data", d)
    assert "Rogue (head)" in listing.stdout and "NOT ADDED THROUGH VIGIL" in listing.stdout
    assert "in no signed policy" in listing.stderr


def test_bad_usage_is_one_clear_line(data: Path) -> None:
    d = str(data)
    assert "vigil keys create" in fails("keyholder", "add", "--data", d, "--name", "x", "--role",
                                        "head", "--password-stdin", stdin="short\n")
    assert "cannot read key" in fails("keyholder", "add", "--data", d, "--key",
                                      str(data / "nope.key"))
    assert "cannot read duration" in fails("enrol-token", "--data", d, "--expires", "soon")
    assert "no device" in fails("device", "revoke", "--data", d, "nope")
    assert "vigil collector init" in fails("audit", "verify", "--data", str(data / "missing"))
    assert "no such enrolment token" in fails("enrol-token", "revoke", "--data", d, "999")


def test_audit_verify_reports_the_first_broken_link(data: Path, keyholders: Keyholders) -> None:
    d = str(data)
    ok("keyholder", "import", "--data", d, "--pub", str(keyholders.recovery.pub_path))
    for _ in range(3):
        ok("account", "add", "--data", d, "--username", f"gov{_}", "--role", "governor",
           "--password-stdin", stdin="governors-password-1\n")
    with sqlite3.connect(data / "vigil.db") as conn:
        conn.execute("UPDATE auditentry SET target = 'gov9' WHERE seq = 3")
    err = fails("audit", "verify", "--data", d)
    assert "broken at entry 3" in err and "2 entries before it are intact" in err


def test_retention_run_and_device_revoke(data: Path) -> None:
    import hashlib
    from datetime import timedelta

    from collector.admin import open_database
    from collector.settings import Settings
    from collector.store.blobs import BlobStore
    from collector.store.models import Device, Event, utcnow

    settings = Settings.load(data)
    blobs = BlobStore(settings.blob_dir)
    db = open_database(settings)
    try:
        def setup(s: object) -> None:
            s.add(Device(id="pc-1", hostname="pc-1", secret_hash="0" * 64))  # type: ignore[attr-defined]
            for name, age in (("old", 400), ("new", 1)):
                blobs.put(f"ev/x/{name}", b"sealed")
                s.add(Event(id=name, device_id="pc-1", time=utcnow() - timedelta(days=age),  # type: ignore[attr-defined]
                            category="drugs", severity=2, rule="r", blob_key=f"ev/x/{name}",
                            size=6, sha256=hashlib.sha256(b"sealed").hexdigest()))

        db.write(setup)
    finally:
        db.close()
    out = ok("retention", "run", "--data", str(data))
    assert out.startswith("retention: 1 events deleted, 0 kept for incidents")
    assert not blobs.exists("ev/x/old") and blobs.exists("ev/x/new")
    assert "pc-1 (pc-1) revoked" in ok("device", "revoke", "--data", str(data), "pc-1",
                                       "--reason", "lost")
    assert "intact" in ok("audit", "verify", "--data", str(data))


def test_on_a_terminal_the_change_code_is_typed_back_before_the_password(
        data: Path, keyholders: Keyholders) -> None:
    from tests.unit.test_crypto_cli import _run_on_terminal

    d = str(data)
    head, tech = keyholders.head, keyholders.technician
    _genesis(d, head)
    ok("keyholder", "add", "--data", d, "--pub", str(tech.pub_path))
    approve = ["collector", "keyholder", "approve", "--data", d, "--keyholder", head.name]
    code, screen = _run_on_terminal(approve, ["vkc1:not-the-one"])
    assert code == 1 and "not the change code shown; nothing was signed" in screen
    shown = re.search(r"change code: (vkc1:\w+)", screen).group(1)  # type: ignore[union-attr]
    code, screen = _run_on_terminal(approve, [shown, head.password])
    assert code == 0, screen
    assert f"{head.name}'s password: " in screen and head.password not in screen
    assert "policy 2 signed by" in screen
    assert f"{tech.fingerprint}: reader (signed, since serial 2)" in ok("keyholder", "list",
                                                                        "--data", d)


def test_roster_import_previews_then_applies_once(data: Path, tmp_path: Path) -> None:
    """Issue 18: `vigil collector roster import` uses the Roster page's parser: a preview writes
    nothing, --apply writes and audits (counts only), the same file again writes nothing."""
    sims = REPO / "tests/data/roster/sims.csv"
    preview = ok("roster", "import", "--data", str(data), str(sims))
    assert preview.splitlines()[0] == ("SIMS roster, preview, nothing written: 3 new, "
                                       "0 changed, 0 unchanged, 0 removed from file, "
                                       "0 moved, 1 unreadable")
    assert "  aexample: Ann Example (year 7, 7B)" in preview
    assert "  line 4: no username: Vigil matches pupils by their login name" in preview
    assert preview.rstrip().endswith("run again with --apply to import")
    db = sqlite3.connect(data / "vigil.db")
    try:
        assert db.execute("SELECT count(*) FROM roster_pupil").fetchone() == (0,)
    finally:
        db.close()

    applied = ok("roster", "import", "--data", str(data), str(sims), "--apply")
    assert applied.splitlines()[0].startswith("SIMS roster, imported as #1: 3 new")
    again = ok("roster", "import", "--data", str(data), str(sims), "--apply")
    assert again.splitlines()[0].startswith("SIMS roster, imported as #2: 0 new, 0 changed, "
                                            "3 unchanged")
    db = sqlite3.connect(data / "vigil.db")
    try:
        rows = db.execute("SELECT username, given_name, year, form FROM roster_pupil "
                          "ORDER BY username").fetchall()
        audits = db.execute("SELECT actor, details FROM auditentry WHERE action = "
                            "'roster.import' ORDER BY seq").fetchall()
        imports = db.execute("SELECT created_by, applied_at IS NOT NULL, data IS NULL FROM "
                             "roster_import").fetchall()
    finally:
        db.close()
    assert rows == [("aexample", "Ann", "7", "7B"), ("bsample", "Ben", "8", "8R"),
                    ("ddummy", "Dev", "10", "10W")]
    assert [a[0] for a in audits] == ["cli", "cli"] and "Ann" not in str(audits)
    assert imports == [("cli", 1, 1), ("cli", 1, 1)]

    bad = tmp_path / "pupils.xlsx"
    bad.write_bytes(b"PK\x03\x04 not a csv")
    assert fails("roster", "import", "--data", str(data), str(bad)) == (
        f"vigil: {bad}: This is a spreadsheet (.xlsx), not a CSV file: save it as CSV first.\n")
    missing = tmp_path / "nope.csv"
    assert fails("roster", "import", "--data", str(data), str(missing)) == (
        f"vigil: cannot read {missing}: No such file or directory\n")


def test_roster_import_is_one_schools_file_when_there_are_schools(data: Path,
                                                                  tmp_path: Path) -> None:
    """With schools, --school is required (one line, exit 1); each school's file leaves the
    other's pupils alone, and a login on the other school's roster is shown as a move."""
    d = str(data)
    head = "Adno,Legal Surname,Forename,Year,Reg Group,Username\n"
    north, south = tmp_path / "nha.csv", tmp_path / "shb.csv"
    north.write_text(head + "1,Example,Ann,7,7B,aexample\n2,Sample,Ben,8,8R,bsample\n")
    south.write_text(head + "1,Testcase,Cara,9,9G,ctestcase\n2,Sample,Ben,8,8S,bsample\n")
    assert fails("roster", "import", "--data", d, str(north), "--school", "NHA") == (
        "vigil: This collector has no schools, so no school 'NHA': import the roster without "
        "one.\n")
    ok("school", "add", "--data", d, "NHA", "North Hill Academy")
    ok("school", "add", "--data", d, "SHB", "South Bank School")
    assert fails("roster", "import", "--data", d, str(north), "--apply") == (
        "vigil: Say which school this file is for (NHA, SHB): each school imports its own "
        "roster.\n")
    assert "no school with code 'XYZ'" in fails("roster", "import", "--data", d, str(north),
                                                 "--school", "xyz")
    ok("roster", "import", "--data", d, str(north), "--school", "nha", "--apply")
    preview = ok("roster", "import", "--data", d, str(south), "--school", "SHB")
    assert preview.splitlines()[0] == ("SIMS roster for SHB, preview, nothing written: 1 new, "
                                       "0 changed, 0 unchanged, 0 removed from file, 1 moved, "
                                       "0 unreadable")
    assert "  bsample: Ben Sample (year 8, 8S) moves from NHA to SHB" in preview
    ok("roster", "import", "--data", d, str(south), "--school", "SHB", "--apply")
    db = sqlite3.connect(data / "vigil.db")
    try:
        rows = db.execute("SELECT p.username, s.code, p.form, p.missing_since IS NULL FROM "
                          "roster_pupil p JOIN school s ON s.id = p.school_id "
                          "ORDER BY p.username").fetchall()
        audits = db.execute("SELECT details FROM auditentry WHERE action = 'roster.import' "
                            "ORDER BY seq").fetchall()
    finally:
        db.close()
    assert rows == [("aexample", "NHA", "7B", 1), ("bsample", "SHB", "8S", 1),
                    ("ctestcase", "SHB", "9G", 1)]
    assert ['"school": "NHA"' in a[0] for a in audits] == [True, False]


def test_schools_accounts_scoped_and_tokens_for_a_school(data: Path, keyholders: Keyholders
                                                         ) -> None:
    d = str(data)
    head = keyholders.head
    assert "no schools" in ok("school", "list", "--data", d)
    assert ok("school", "add", "--data", d, "nha", "North Hill Academy").strip() == (
        "school NHA (North Hill Academy) added")
    ok("school", "add", "--data", d, "SHB", "South Bank School")
    assert "school 'NHA' already exists" in fails("school", "add", "--data", d, "nha", "Again")
    assert "school code" in fails("school", "add", "--data", d, "no spaces", "X")
    out = ok("account", "add", "--data", d, "--username", "gov-nha", "--role", "governor",
             "--school", "nha", "--password-stdin", stdin="governors-password-1\n")
    assert "school NHA" in out
    assert "no school with code 'XYZ'" in fails(
        "account", "add", "--data", d, "--username", "gov-x", "--role", "governor",
        "--school", "XYZ", "--password-stdin", stdin="governors-password-1\n")
    ok("keyholder", "add", "--data", d, "--key", str(head.path))
    assert "school NHA only" in ok("account", "scope", "--data", d, head.name, "--school", "NHA")
    assert "whole trust" in ok("account", "scope", "--data", d, "gov-nha", "--trust")
    ok("policy", "publish", "--data", d, "--keyholder", head.name, "--password-stdin",
       stdin=head.password + "\n")
    assert "school: SHB" in ok("enrol-token", "--data", d, "--school", "shb")
    assert "no school with code" in fails("enrol-token", "--data", d, "--school", "NOPE")
    listing = ok("school", "list", "--data", d)
    assert re.search(r"^NHA\s+0\s+1\s+North Hill Academy$", listing, re.MULTILINE), listing
    assert re.search(r"^SHB\s+0\s+0\s+South Bank School$", listing, re.MULTILINE), listing
    with sqlite3.connect(data / "vigil.db") as conn:
        scoped = dict(conn.execute("SELECT a.username, s.code FROM account a "
                                   "LEFT JOIN school s ON s.id = a.school_id").fetchall())
        token_school, = conn.execute("SELECT s.code FROM enroltoken t JOIN school s "
                                     "ON s.id = t.school_id").fetchone()
    assert scoped == {head.name: "NHA", "gov-nha": None} and token_school == "SHB"
    assert re.match(r"audit log intact", ok("audit", "verify", "--data", d))


def test_an_account_scoped_to_year_groups_of_a_school(data: Path) -> None:
    d = str(data)
    ok("school", "add", "--data", d, "NHA", "North Hill Academy")
    for name in ("deputy", "lead"):
        ok("account", "add", "--data", d, "--username", name, "--role", "governor",
           "--password-stdin", stdin="governors-password-1\n")
    assert ok("account", "scope", "--data", d, "deputy", "--school", "nha", "--years",
              "Year 8, 7,Y07").strip() == "account deputy now sees school NHA, years 7, 8"
    listing = ok("school", "list", "--data", d)
    assert re.search(r"^NHA\s+0\s+1\s+North Hill Academy\n\s+deputy: years 7, 8$", listing,
                     re.MULTILINE), listing
    # Years without a school would be those years of every school: refused, in one line.
    assert fails("account", "scope", "--data", d, "lead", "--trust", "--years", "7") == (
        "vigil: a year scope is within a school: give lead --school CODE with --years\n")
    assert "a year scope is within a school" in fails("account", "scope", "--data", d,
                                                      "deputy", "--trust")
    assert "is not a year group" in fails("account", "scope", "--data", d, "deputy",
                                          "--school", "NHA", "--years", "<7>")
    # Without --years the account keeps its years; --all-years lifts them.
    assert "years 7, 8" in ok("account", "scope", "--data", d, "deputy", "--school", "NHA")
    assert ok("account", "scope", "--data", d, "deputy", "--school", "NHA", "--all-years"
              ).strip() == "account deputy now sees school NHA only"
    assert "deputy:" not in ok("school", "list", "--data", d)
    with sqlite3.connect(data / "vigil.db") as conn:
        assert conn.execute("SELECT years FROM account WHERE username = 'deputy'").fetchone() == (
            "",)
        scopes = [row[0] for row in conn.execute("SELECT details FROM auditentry WHERE action = "
                                                 "'account.scope' ORDER BY seq")]
    assert '"years": "7,8"' in scopes[0] and "years" not in scopes[-1]

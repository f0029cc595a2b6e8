"""`vigil collector ...` as an administrator runs it: real subprocesses on a real data directory."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from collector.tls import cert_fingerprint
from tests.fixtures.keys import Keyholders

REPO = Path(__file__).resolve().parents[2]


def vigil(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", "collector", *args], input=stdin,
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
    assert "no keyholders" in fails("enrol-token", "--data", d)
    out = ok("keyholder", "add", "--data", d, "--name", "Mrs Head", "--role", "head",
             "--password-stdin", stdin="correct horse battery\n")
    assert "Mrs Head (head) added: vk1:" in out
    ok("keyholder", "import", "--data", d, "--pub", str(keyholders.recovery.pub_path))
    ok("account", "add", "--data", d, "--username", "governor1", "--role", "governor",
       "--password-stdin", stdin="governors-password-1\n")
    assert "WrongPassword" not in fails("policy", "publish", "--data", d, "--keyholder",
                                        "Mrs Head", "--password-stdin", stdin="wrong password!\n")
    assert "policy 1 published" in ok("policy", "publish", "--data", d, "--keyholder",
                                      "Mrs Head", "--password-stdin",
                                      stdin="correct horse battery\n")
    out = ok("enrol-token", "--data", d, "--uses", "5", "--expires", "2d", "--group", "ict")
    lines = out.strip().splitlines()
    token = re.search(r"^token: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    keyset = re.search(r"^keyholder-set fingerprint: (\S+)$", out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    cert = cert_fingerprint(data / "tls/cert.pem")
    assert lines[-1] == (f"vigil agent enrol --collector https://vigil.school.example:8443 "
                         f"--token {token} --trust {keyset} --ca-fingerprint {cert}")
    assert "collector URL: https://vigil.school.example:8443" in out
    # Only the encrypted key is stored, and the dashboard password is an Argon2id hash.
    with sqlite3.connect(data / "vigil.db") as conn:
        key_file, = conn.execute("SELECT key_file FROM keyholder WHERE name='Mrs Head'").fetchone()
        pw_hash, = conn.execute("SELECT password_hash FROM account WHERE username='Mrs Head'"
                                ).fetchone()
        recovery_file, = conn.execute("SELECT key_file FROM keyholder WHERE role='recovery'"
                                      ).fetchone()
    assert b"correct horse" not in key_file and pw_hash.startswith("$argon2id$")
    assert recovery_file is None
    assert "revoked" in ok("enrol-token", "revoke", "--data", d, token)
    assert "revoked" in ok("enrol-token", "revoke", "--data", d, "1")
    out = ok("audit", "verify", "--data", d)
    assert re.match(r"audit log intact: \d+ entries checked", out)


def test_bad_usage_is_one_clear_line(data: Path) -> None:
    d = str(data)
    assert "12 characters" in fails("keyholder", "add", "--data", d, "--name", "x", "--role",
                                    "head", "--password-stdin", stdin="short\n")
    assert "no password" in fails("keyholder", "add", "--data", d, "--name", "x", "--role",
                                  "head", "--password-stdin", stdin="")
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

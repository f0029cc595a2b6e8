"""The command-line contract: ``vigil keys ...``, ``vigil seal|open|grant|revoke``, run for real."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from core import envelope, keys
from tests.fixtures.keys import Keyholder, Keyholders


def vigil(*args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "vigil", *map(str, args)], input=stdin,
                          capture_output=True, timeout=120, check=False)


def assert_clean_failure(result: subprocess.CompletedProcess[bytes], message: str) -> None:
    """Non-zero exit, nothing on stdout, exactly one line on stderr, no traceback."""
    assert result.returncode != 0
    assert result.stdout == b""
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, result.stderr.decode()
    assert lines[0].startswith("vigil: ") and message in lines[0], lines[0]


def password_then(holder: Keyholder, data: bytes) -> bytes:
    return holder.password.encode() + b"\n" + data


def test_keys_create_with_default_parameters(tmp_path: Path) -> None:
    out = tmp_path / "head.key"
    result = vigil("keys", "create", "--name", "Mrs A Head", "--role", "head", "--out", out,
                   "--password-stdin", stdin=b"a proper long password\n")
    assert result.returncode == 0, result.stderr
    fingerprint = result.stdout.decode().strip()
    assert fingerprint.startswith("vk1:")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert keys.load_public_key(Path(f"{out}.pub")).fingerprint == fingerprint
    key_file = keys.load_key_file(out)
    assert key_file.kdf.name == "argon2id" and key_file.public.kem is keys.Kem.HYBRID
    assert key_file.unlock("a proper long password").fingerprint == fingerprint
    shown = json.loads(vigil("keys", "show", out, "--json").stdout)
    assert shown["fingerprint"] == fingerprint and shown["role"] == "head"
    assert shown["kdf"]["memory_kib"] == 128 * 1024
    # never overwrite a key
    again = vigil("keys", "create", "--name", "X", "--role", "head", "--out", out,
                  "--password-stdin", stdin=b"a proper long password\n")
    assert_clean_failure(again, "already exists")
    assert keys.load_key_file(out) == key_file


def test_keys_create_x25519_scrypt(tmp_path: Path) -> None:
    out = tmp_path / "tech.key"
    result = vigil("keys", "create", "--name", "Tech", "--role", "technician", "--out", out,
                   "--kem", "x25519", "--kdf", "scrypt", "--password-stdin",
                   stdin=b"another long password\n")
    assert result.returncode == 0, result.stderr
    key_file = keys.load_key_file(out)
    assert key_file.public.kem is keys.Kem.X25519 and key_file.kdf.name == "scrypt"


@pytest.mark.parametrize(("stdin", "message"), [
    (b"short\n", "at least 12 characters"), (b"", "ended before the password")])
def test_keys_create_failures(tmp_path: Path, stdin: bytes, message: str) -> None:
    out = tmp_path / "weak.key"
    result = vigil("keys", "create", "--name", "W", "--role", "head", "--out", out,
                   "--password-stdin", stdin=stdin)
    assert_clean_failure(result, message)
    assert not out.exists() and not Path(f"{out}.pub").exists()


def test_keys_create_without_a_terminal_asks_for_password_stdin(tmp_path: Path) -> None:
    result = vigil("keys", "create", "--name", "W", "--role", "head", "--out", tmp_path / "k")
    assert_clean_failure(result, "--password-stdin")


def test_keys_passwd(tmp_path: Path, head_key: Keyholder) -> None:
    path = tmp_path / "head.key"
    shutil.copy(head_key.path, path)
    os.chmod(path, 0o600)
    result = vigil("keys", "passwd", path, "--password-stdin",
                   stdin=f"{head_key.password}\nthe brand new password\n".encode())
    assert result.returncode == 0, result.stderr
    changed = keys.load_key_file(path)
    assert changed.fingerprint == head_key.fingerprint
    assert changed.unlock("the brand new password").fingerprint == head_key.fingerprint
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    wrong = vigil("keys", "passwd", path, "--password-stdin",
                  stdin=b"not the password at all\nanother new password\n")
    assert_clean_failure(wrong, "wrong password")
    weak = vigil("keys", "passwd", path, "--password-stdin",
                 stdin=b"the brand new password\nshort\n")
    assert_clean_failure(weak, "at least 12")
    assert keys.load_key_file(path) == changed


def test_keys_show_and_keyset(keyholders: Keyholders) -> None:
    shown = vigil("keys", "show", keyholders.head.pub_path)
    assert shown.returncode == 0
    assert f"fingerprint: {keyholders.head.fingerprint}" in shown.stdout.decode()
    keyset = vigil("keys", "keyset", *(k.pub_path for k in reversed(keyholders.all)))
    assert keyset.stdout.decode().strip() == keyholders.keyset_fingerprint


def test_seal_open_grant_revoke_round_trip(tmp_path: Path, keyholders: Keyholders,
                                           stranger_key: Keyholder) -> None:
    head, tech = keyholders.head, keyholders.technician
    body = os.urandom(200_000)
    meta = {"event_id": "ev-1", "device_id": "lab-07", "category": "bullying", "severity": 3}
    sealed = vigil("seal", "--to", head.pub_path, "--meta", json.dumps(meta),
                   "--header", json.dumps({"title": "Chat"}), stdin=body)
    assert sealed.returncode == 0, sealed.stderr
    read, fingerprints = envelope.read_meta(sealed.stdout)
    assert (read.event_id, read.device_id, read.category, read.severity) == \
        ("ev-1", "lab-07", "bullying", 3)
    assert fingerprints == [head.fingerprint]

    header_out = tmp_path / "header.json"
    opened = vigil("open", "--key", head.path, "--password-stdin", "--header-out", header_out,
                   stdin=password_then(head, sealed.stdout))
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == body
    assert json.loads(header_out.read_text())["header"] == {"title": "Chat"}

    not_yet = vigil("open", "--key", tech.path, "--password-stdin",
                    stdin=password_then(tech, sealed.stdout))
    assert_clean_failure(not_yet, "not a recipient")

    granted = vigil("grant", "--key", head.path, "--to", tech.pub_path, "--password-stdin",
                    stdin=password_then(head, sealed.stdout))
    assert granted.returncode == 0, granted.stderr
    assert vigil("open", "--key", tech.path, "--password-stdin",
                 stdin=password_then(tech, granted.stdout)).stdout == body

    revoked = vigil("revoke", "--fingerprint", head.fingerprint, stdin=granted.stdout)
    assert revoked.returncode == 0, revoked.stderr
    assert envelope.read_meta(revoked.stdout)[1] == [tech.fingerprint]
    assert_clean_failure(vigil("open", "--key", head.path, "--password-stdin",
                               stdin=password_then(head, revoked.stdout)), "not a recipient")
    assert_clean_failure(vigil("grant", "--key", stranger_key.path, "--to",
                               stranger_key.pub_path, "--password-stdin",
                               stdin=password_then(stranger_key, sealed.stdout)),
                         "not a recipient")


def test_open_failures_write_nothing_to_stdout(head_key: Keyholder) -> None:
    sealed = envelope.seal(envelope.Metadata("e", "d", "2026-11-23T09:00:00+00:00", "c", 2, "r",
                                             "s"), {}, b"pixels" * 1000, [head_key.public])
    tampered = bytearray(sealed)
    tampered[-5] ^= 0x10
    cases = {
        "wrong password": b"definitely the wrong one\n" + sealed,
        "altered": password_then(head_key, bytes(tampered)),
        "truncated": password_then(head_key, sealed[:-20]),
        "not a Vigil sealed event": password_then(head_key, b"hello, world"),
        "no sealed event": password_then(head_key, b""),
    }
    for message, stdin in cases.items():
        result = vigil("open", "--key", head_key.path, "--password-stdin", stdin=stdin)
        assert_clean_failure(result, message)


def test_seal_failures(tmp_path: Path, head_key: Keyholder) -> None:
    assert_clean_failure(vigil("seal", "--to", tmp_path / "absent.pub", stdin=b"x"),
                         "cannot read")
    assert_clean_failure(vigil("seal", "--to", head_key.pub_path, "--meta", "{", stdin=b"x"),
                         "not valid JSON")
    assert_clean_failure(vigil("seal", "--to", head_key.pub_path, "--meta", '{"severity": 9}',
                               stdin=b"x"), "severity")
    assert_clean_failure(vigil("seal", "--to", head_key.pub_path, "--meta", '{"who": 1}',
                               stdin=b"x"), "unknown fields")
    not_a_key = tmp_path / "bad.pub"
    not_a_key.write_text('{"format": "vigil-public-key"}')
    assert_clean_failure(vigil("seal", "--to", not_a_key, stdin=b"x"), "public key")


def test_open_with_a_public_key_file_says_so(head_key: Keyholder) -> None:
    result = vigil("open", "--key", head_key.pub_path, "--password-stdin", stdin=b"x\n")
    assert_clean_failure(result, "private key file is needed")


def _run_on_terminal(args: list[str], answers: list[str], timeout: float = 60.0) -> tuple[int, str]:
    """Run ``vigil`` on a real pseudo-terminal, typing each answer after each password prompt."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: its controlling terminal is the pty, as for a person at a console
        os.execv(sys.executable, [sys.executable, "-m", "vigil", *args])
    output, pending = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            output += data
            if pending and output.endswith(b": "):  # a fresh prompt, waiting for input
                os.write(fd, pending.pop(0).encode() + b"\n")
        else:
            os.kill(pid, 9)
            pytest.fail(f"vigil did not finish on the terminal: {output!r}")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_passwords_are_asked_on_the_terminal_twice_and_not_echoed(tmp_path: Path) -> None:
    out = tmp_path / "tty.key"
    code, screen = _run_on_terminal(
        ["keys", "create", "--name", "Tty", "--role", "head", "--out", str(out),
         "--kdf", "scrypt"], ["typed at the terminal", "typed at the terminal"])
    assert code == 0, screen
    assert "New password:" in screen and "New password (again):" in screen
    assert "typed at the terminal" not in screen  # getpass turned echo off
    assert keys.load_key_file(out).unlock("typed at the terminal").name == "Tty"
    code, screen = _run_on_terminal(
        ["keys", "create", "--name", "Tty2", "--role", "head", "--out", str(tmp_path / "b.key")],
        ["first long password", "second long password"])
    assert code == 2 and "the two passwords differ" in screen
    assert not (tmp_path / "b.key").exists()

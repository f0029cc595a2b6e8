"""Authenticode signing of the MSI on Linux, with osslsigncode (Debian package osslsigncode).

Why sign: Windows shows an unsigned MSI as from an "Unknown publisher", SmartScreen warns on it,
and many schools' AppLocker or WDAC rules allow software by publisher certificate only. Intune
and Group Policy install it either way, but a school should sign with its own (or its trust's)
code-signing certificate, so that what runs on pupils' desktops is what the school approved.

Why osslsigncode and not signtool: the build runs on Linux (wixl), and osslsigncode signs and
verifies MSI files there without Windows. The private key stays in a file the build reads; its
passphrase is read from a file, never from the command line (where ``ps`` would show it).

    windows_build.py msi --sign-cert school.crt --sign-key school.key [--sign-pass-file F]
                         [--timestamp-url http://timestamp.example]
    make windows SIGN_CERT=school.crt SIGN_KEY=school.key
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Signer", "SigningError", "verify"]

DESCRIPTION = "Vigil safeguarding agent"
URL = "https://github.com/vigil-safeguarding/vigil"


class SigningError(Exception):
    """Signing or verifying failed; the message is one line saying what to do."""


def _tool() -> str:
    found = shutil.which("osslsigncode")
    if found is None:
        raise SigningError("osslsigncode is not installed: `apt-get install osslsigncode` "
                           "(scripts/wine/system-deps.sh --msi-only installs it)")
    return found


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    failed = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    return (failed or lines or [f"exit code {proc.returncode}"])[-1][:300]


@dataclass(frozen=True)
class Signer:
    """A code-signing certificate (PEM, with its chain if any) and its private key (PEM)."""

    cert: Path
    key: Path
    pass_file: Path | None = None
    timestamp_url: str | None = None

    def sign(self, msi: Path) -> Path:
        """Sign ``msi`` in place (written beside it, then renamed over it)."""
        for what, path in (("certificate", self.cert), ("private key", self.key)):
            if not path.is_file():
                raise SigningError(f"the signing {what} {path} does not exist")
        signed = msi.with_name(msi.name + ".signing")
        argv = [_tool(), "sign", "-certs", str(self.cert), "-key", str(self.key),
                "-n", DESCRIPTION, "-i", URL, "-h", "sha256"]
        if self.pass_file is not None:
            argv += ["-readpass", str(self.pass_file)]
        if self.timestamp_url:
            argv += ["-ts", self.timestamp_url]
        argv += ["-in", str(msi), "-out", str(signed)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0 or not signed.exists():
            signed.unlink(missing_ok=True)
            raise SigningError(f"signing {msi.name} failed: {_one_line(proc)}")
        os.replace(signed, msi)
        return msi


def verify(msi: Path, ca: Path) -> str:
    """Check ``msi``'s Authenticode signature against the CA certificate(s) in ``ca`` (PEM);
    the signer's subject. Raises SigningError if it is unsigned, altered or signed by another."""
    proc = subprocess.run([_tool(), "verify", "-in", str(msi), "-CAfile", str(ca)],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0 or "Signature verification: ok" not in proc.stdout:
        raise SigningError(f"{msi.name}: signature not valid: {_one_line(proc)}")
    for line in proc.stdout.splitlines():
        if line.strip().startswith("Subject:"):
            return line.split(":", 1)[1].strip()
    return ""

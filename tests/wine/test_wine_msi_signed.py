"""The MSI, Authenticode-signed on Linux (installer/windows/codesign.py, osslsigncode), verifies
against the school's CA, fails when altered or checked against another CA, and still installs and
uninstalls silently under Wine's msiexec.

The certificates are made here: a throwaway "school" CA and a code-signing certificate it issued,
whose key is protected by a passphrase read from a file (as ``make windows SIGN_PASS_FILE=``
does). Wine does not check Authenticode signatures, so the install shows only that signing leaves
the package intact; the verification is osslsigncode's, as a school's check before roll-out.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.wine.conftest import REPO, Wine, wine_env
from tests.wine.test_wine_msi import (  # noqa: F401 - clean_prefix is a fixture
    clean_prefix,
    installed_versions,
    msiexec,
)

sys.path.insert(0, str(REPO / "installer" / "windows"))
from codesign import Signer, SigningError, verify  # installer/windows/codesign.py
from msi import build_msi  # installer/windows/msi.py


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Academy"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(directory: Path, common: str) -> tuple[Path, Any, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    path = directory / f"{common.replace(' ', '-')}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_signer(directory: Path, ca_key: Any, ca_cert: x509.Certificate) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name("Test Academy code signing"))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False,
                                         False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    passphrase = b"correct horse battery staple"
    (directory / "pass").write_bytes(passphrase)
    (directory / "signer.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM)
                                           + ca_cert.public_bytes(serialization.Encoding.PEM))
    (directory / "signer.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase)))
    return Signer(directory / "signer.pem", directory / "signer.key", directory / "pass")


def test_signed_msi_verifies_fails_when_altered_and_installs_under_wine(
        tmp_path: Path, wine: Wine, clean_prefix: None) -> None:  # noqa: F811 - the fixture
    from windows_build import RUNTIME

    assert (RUNTIME / "python.exe").exists(), "run `make wine-env` (it builds the runtime)"
    msi = build_msi(RUNTIME, tmp_path / "bundle", tmp_path / "dist", "0.1.0")
    ca, ca_key, ca_cert = make_ca(tmp_path, "Test Academy CA")
    other_ca, _, _ = make_ca(tmp_path, "Another CA")

    with pytest.raises(SigningError, match="signature not valid"):
        verify(msi, ca)  # unsigned
    signer = make_signer(tmp_path, ca_key, ca_cert)
    assert signer.sign(msi) == msi
    assert "Test Academy code signing" in verify(msi, ca)
    with pytest.raises(SigningError, match="signature not valid"):
        verify(msi, other_ca)  # signed, but not by the school's CA

    altered = tmp_path / "altered.msi"
    data = bytearray(msi.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the package's streams
    altered.write_bytes(bytes(data))
    with pytest.raises(SigningError, match="signature not valid"):
        verify(altered, ca)

    wrong = Signer(signer.cert, signer.key, tmp_path / "no-such-pass-file")
    with pytest.raises(SigningError, match="signing .* failed"):
        wrong.sign(tmp_path / "dist" / msi.name)

    # Signing leaves the package whole: Wine's msiexec installs and removes it silently (waited
    # on by its exit: the service it starts keeps its output pipe open).
    done = msiexec(wine, "/i", wine_env.winpath(msi), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed_versions(wine) == ["0.1.0"]
    done = msiexec(wine, "/x", wine_env.winpath(msi), "/qn", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert installed_versions(wine) == []

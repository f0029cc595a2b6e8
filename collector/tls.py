"""The collector's TLS key and self-signed certificate, and the fingerprint agents pin."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from collector.errors import CollectorError

__all__ = ["cert_fingerprint", "create_self_signed", "normalise_fingerprint"]


def create_self_signed(cert_path: Path, key_path: Path, hostnames: list[str] | None = None,
                       days: int = 3650) -> str:
    """Write a P-256 key (mode 0600) and a self-signed certificate; return its fingerprint.

    The certificate names localhost, 127.0.0.1, ::1 and this machine's hostname; agents pin its
    fingerprint, so no CA is involved.
    """
    names = list(dict.fromkeys(["localhost", socket.gethostname(), *(hostnames or [])]))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vigil collector")])
    now = dt.datetime.now(dt.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_fingerprint(cert_path)


def cert_fingerprint(cert_path: Path) -> str:
    """SHA-256 of the certificate's DER encoding: 64 lower-case hex digits."""
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CollectorError(f"cannot read the TLS certificate {cert_path}: {exc}") from None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def normalise_fingerprint(text: str) -> str:
    """Accept 'AB:CD:..', 'sha256:abcd..' or plain hex; return 64 lower-case hex digits."""
    value = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise CollectorError("a certificate fingerprint is 64 hex digits (SHA-256)")
    return value

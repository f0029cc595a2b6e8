"""Secrets the collector must use on its own, kept out of the database in the clear.

A Teams or Slack incoming-webhook URL is a credential: whoever holds it can post into the
safeguarding channel (a fake "events need review" message with a link of their choosing). The
collector has to post to it unattended, so it cannot be sealed to the keyholders like a capture.
What can be done is to keep the database from holding it readably: the URL is sealed with
AES-256-GCM under ``secrets.key``, a random key in the data directory, **not** in the database.
A copy of the database alone (a ``pg_dump`` on another host, a managed PostgreSQL's snapshots or
staff, a replica, a query that reads rows it should not) then yields no usable webhook. The key
is in the data directory beside the TLS key, and in backups beside it: a thief of the whole
server or of a backup file gets both, as docs/crypto.md says of the TLS key.

A sealed value keeps its masked form in front (``https://host/…abcd``), so pages can show which
webhook a target is without the key. Values written before this existed are still read as they
are, and :func:`seal_clear_targets` seals them at start-up.

The key is made once, atomically (written to a temporary file, then hard-linked into place, which
fails if another instance sharing the data directory made it first), mode 0600.
"""

from __future__ import annotations

import base64
import functools
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from collector.errors import CollectorError

__all__ = ["PREFIX", "SecretUnreadable", "SecretsKey", "masked_part", "secrets_key"]

PREFIX = "sealed1|"
_KEY_BYTES = 32
_NONCE_BYTES = 12
# Binds a sealed value to its column: one cannot be moved into another field and opened there.
_AAD = b"vigil collector secret at rest v1: route_target.address"


class SecretUnreadable(CollectorError):
    """A sealed value that this collector's secrets.key does not open."""

    code = "secret-unreadable"


class SecretsKey:
    """The data directory's key for secrets at rest."""

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise SecretUnreadable(f"secrets.key must hold {_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def load(cls, path: Path) -> SecretsKey:
        """The key at ``path``, made first if there is none yet."""
        path = Path(path)
        if not path.exists():
            _create(path)
        try:
            return cls(path.read_bytes())
        except OSError as exc:
            raise SecretUnreadable(f"cannot read {path}: {exc.strerror or exc}") from None

    def seal(self, value: str, shown: str) -> str:
        """``value`` sealed, behind its masked form ``shown`` (which must hold no ``|``)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), _AAD)
        blob = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{PREFIX}{shown.replace('|', '/')}|{blob}"

    def open(self, stored: str) -> str:
        """The clear value of ``stored`` (a value from before sealing is returned as it is)."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            raw = base64.urlsafe_b64decode(stored.rsplit("|", 1)[1].encode())
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _AAD).decode()
        except (IndexError, ValueError, InvalidTag):
            raise SecretUnreadable(
                "this webhook URL was sealed with another secrets.key (a data directory restored "
                "without it?): remove the target and add the webhook again") from None


def masked_part(stored: str) -> str | None:
    """The masked form kept in front of a sealed value, or None for a clear one."""
    if not stored.startswith(PREFIX):
        return None
    return stored[len(PREFIX):].rsplit("|", 1)[0]


@functools.lru_cache(maxsize=8)
def secrets_key(path: Path) -> SecretsKey:
    """The key at ``path``, loaded once per process (made first if missing)."""
    return SecretsKey.load(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(_KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)  # fails if another instance made it first: use theirs
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)

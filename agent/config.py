"""The agent's config directory: the device credential, the pins and the last verified policy.

Everything here is readable by the agent's user only: the directory is 0700 and each file 0600,
written atomically (tmp + fsync + rename) so a crash never leaves half a credential.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.errors import ConfigError, NotEnrolled

__all__ = ["ConfigDir", "Enrolment", "write_private"]

ENROLMENT_FILE = "enrolment.json"
POLICY_FILE = "policy.json"
TRUST_FILE = "trust.json"
COHORT_FILE = "cohorts.json"  # the school's cohort map (agent.cohorts), beside the policy
CA_FILE = "collector-ca.pem"


@dataclass(frozen=True)
class Enrolment:
    """What `vigil agent enrol` learnt: who we are, where the collector is, whom we trust."""

    collector: str
    device_id: str
    secret: str
    keyset_fingerprint: str  # the keyholder set pinned at enrolment
    ca_file: str | None = None  # pin the collector by a CA certificate ...
    cert_fingerprints: tuple[str, ...] = ()  # ... or by SHA-256 fingerprints (second for rotation)

    @property
    def bearer(self) -> str:
        return f"{self.device_id}.{self.secret}"

    def to_json(self) -> bytes:
        data = asdict(self)
        data["cert_fingerprints"] = list(self.cert_fingerprints)
        return json.dumps(data, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Enrolment:
        data = json.loads(raw)
        data["cert_fingerprints"] = tuple(data.get("cert_fingerprints") or ())
        return cls(**data)


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` with ``mode`` (0600), atomically and durably."""
    tmp = path.with_name(f".{path.name}.tmp")
    # O_BINARY: on Windows os.open is text mode and turns each \n byte into \r\n
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    if os.name == "nt":
        return  # Windows cannot os.open a directory (EACCES, found under Wine); NTFS journals it
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class ConfigDir:
    """The files under the agent's config directory."""

    dir_mode = 0o700

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def file(self, name: str) -> Path:
        """Where the file ``name`` lives (agent.supervisor.store keeps the policy elsewhere)."""
        return self.path / name

    def mode_of(self, name: str) -> int:
        return 0o600

    def ensure(self) -> None:
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=self.dir_mode)
            os.chmod(self.path, self.dir_mode)
        except OSError as exc:
            raise ConfigError(f"cannot create config directory {self.path}: {exc.strerror}") from exc

    def _read(self, name: str) -> bytes | None:
        try:
            return self.file(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {self.file(name)}: {exc.strerror}") from exc

    def _write(self, name: str, data: bytes) -> None:
        self.ensure()
        try:
            write_private(self.file(name), data, self.mode_of(name))
        except OSError as exc:
            raise ConfigError(f"cannot write {self.file(name)}: {exc.strerror}") from exc

    @property
    def ca_path(self) -> Path:
        return self.file(CA_FILE)

    def save_ca(self, pem: bytes) -> Path:
        self._write(CA_FILE, pem)
        return self.ca_path

    def load_enrolment(self) -> Enrolment:
        raw = self._read(ENROLMENT_FILE)
        if raw is None:
            raise NotEnrolled(
                f"this device is not enrolled (no {self.file(ENROLMENT_FILE)}); "
                "run `vigil agent enrol --collector URL --token TOKEN --trust FINGERPRINT`"
            )
        try:
            return Enrolment.from_json(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{self.file(ENROLMENT_FILE)} is damaged; enrol again") from exc

    def save_enrolment(self, enrolment: Enrolment) -> None:
        self._write(ENROLMENT_FILE, enrolment.to_json())

    def forget_enrolment(self) -> None:
        self.file(ENROLMENT_FILE).unlink(missing_ok=True)

    def load_policy(self) -> tuple[bytes, str] | None:
        """The last verified signed policy and its ETag, if any."""
        raw = self._read(POLICY_FILE)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return data["signed"].encode(), data["etag"]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{self.file(POLICY_FILE)} is damaged; delete it to refetch") from exc

    def save_policy(self, signed: bytes, etag: str) -> None:
        self._write(POLICY_FILE, json.dumps({"signed": signed.decode(), "etag": etag}).encode())

    def load_cohorts(self) -> bytes | None:
        """The last cohort map fetched (agent.cohorts), as the file holds it, if any."""
        return self._read(COHORT_FILE)

    def save_cohorts(self, data: bytes) -> None:
        self._write(COHORT_FILE, data)

    def load_trust(self) -> bytes | None:
        """The core.policy.Trust record as JSON (the pin, then the keys of the last policy)."""
        return self._read(TRUST_FILE)

    def save_trust(self, trust_json: str) -> None:
        self._write(TRUST_FILE, trust_json.encode())

"""The supervisor's files: the enrolment and trust anchor in /etc/vigil/agent, the signed policy
in /var/lib/vigil-agent, all owned by root.

The session agent's user may read the trust anchor, the CA pin and the policy (0644, in 0755
directories) but write none of them; the enrolment, which holds the device secret, is 0600.
On Windows (%ProgramData%\\Vigil) the same is said with access lists (agent/supervisor/windows.py):
SYSTEM and Administrators full control, Users read-only, the enrolment not readable by Users.
Every write records the SHA-256 of what was written, so the supervisor can tell when a file was
changed behind its back (``changed``) and put its own verified copy back.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path

from agent.config import (
    CA_FILE,
    COHORT_FILE,
    ENROLMENT_FILE,
    POLICY_FILE,
    TRUST_FILE,
    ConfigDir,
)
from agent.errors import ConfigError

__all__ = ["SystemConfig"]


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


class SystemConfig(ConfigDir):
    """ConfigDir in system paths: public files 0644 in 0755 directories, the secret 0600."""

    dir_mode = 0o755

    def __init__(self, config_dir: Path, state_dir: Path) -> None:
        super().__init__(config_dir)
        self.state_dir = Path(state_dir)
        self._lock = threading.Lock()
        self.written: dict[str, str] = {}  # file name -> sha256 of what we last wrote or read

    def file(self, name: str) -> Path:
        # What the collector sends at run time lives in the state directory: the policy, and
        # the cohort map beside it (agent.cohorts).
        return self.state_dir / name if name in (POLICY_FILE, COHORT_FILE) else self.path / name

    def mode_of(self, name: str) -> int:
        # The cohort map goes to session agents over the socket; no user needs to read the file.
        return 0o600 if name in (ENROLMENT_FILE, COHORT_FILE) else 0o644

    def ensure(self) -> None:
        super().ensure()
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
            self.state_dir.chmod(0o755)
        except OSError as exc:
            raise ConfigError(f"cannot create {self.state_dir}: {exc.strerror}") from exc
        if sys.platform == "win32":
            self._acl_dirs()

    def _acl_dirs(self) -> None:
        """Windows: modes mean nothing there; the directories get access lists instead
        (SYSTEM and Administrators full control, Users read-only)."""
        from agent.supervisor.windows import DIR_SDDL, apply_acl

        for path in (self.path, self.state_dir):
            apply_acl(path, DIR_SDDL)

    def _acl_file(self, name: str) -> None:
        """Windows: the enrolment (the device credential) SYSTEM's and Administrators' alone,
        the rest readable by Users. Set after every write: the file is a renamed temporary
        one, whose access list is not the directory's."""
        from agent.supervisor.windows import PRIVATE_SDDL, PUBLIC_SDDL, apply_acl

        apply_acl(self.file(name), PRIVATE_SDDL if name == ENROLMENT_FILE else PUBLIC_SDDL)

    def _write(self, name: str, data: bytes) -> None:
        with self._lock:
            super()._write(name, data)
            if sys.platform == "win32":
                self._acl_file(name)
            self.written[name] = hashlib.sha256(data).hexdigest()

    def remember(self, name: str) -> None:
        """Take the file as it is now as ours (what we verified at start)."""
        with self._lock:
            digest = _digest(self.file(name))
            if digest is not None:
                self.written[name] = digest

    def changed(self, name: str) -> bool:
        """Whether ``name`` differs from what we last wrote or took as ours (missing counts)."""
        with self._lock:
            want = self.written.get(name)
            return want is not None and _digest(self.file(name)) != want

    @property
    def watched(self) -> tuple[str, ...]:
        return (POLICY_FILE, TRUST_FILE, CA_FILE, ENROLMENT_FILE)

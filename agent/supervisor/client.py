"""The session agent's side of the supervisor's socket.

``SupervisorLink`` has the calls agent.sync.Sync makes on agent.uplink.Uplink (upload, repeats,
heartbeat, policy), made over the supervisor's socket instead of HTTPS: the session agent never
holds the device credential. ``SupervisedConfig`` stands where agent.config.ConfigDir stands:
the enrolment (without the secret), the trust and the signed policy, as the supervisor gave
them, in memory only; nothing in the user's own files decides what the agent trusts or runs.

Before it says anything the link checks that the socket is root's: its directory is owned by
root and writable by no one else, and the process serving it (SO_PEERCRED) runs as root. On
Windows the link is the service's named pipe instead, and the process serving it must run as
SYSTEM (agent/supervisor/windows.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import stat
import sys
import threading
from pathlib import Path
from typing import Any

from agent.config import Enrolment
from agent.errors import ConfigError
from agent.spool import Spool
from agent.supervisor.protocol import ProtocolError, read_message, write_message
from agent.supervisor.server import peer_credentials
from agent.uplink import RetryLater, UploadReport

__all__ = ["SupervisedConfig", "SupervisorLink"]


class SupervisorLink:
    def __init__(self, path: Path, timeout: float = 30.0, batch: int = 20) -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.batch = max(1, batch)
        self._sock: socket.socket | None = None
        self._stream: Any = None
        self._lock = threading.Lock()

    def _check_owner(self) -> None:
        parent = self.path.parent.stat()
        if parent.st_uid != 0 or parent.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ConfigError(f"{self.path.parent} is not root's alone: not the supervisor's socket")

    def _connect(self) -> None:
        if sys.platform == "win32":
            # The service's named pipe (agent/supervisor/windows.py checks that SYSTEM serves it)
            from agent.supervisor.windows import connect_pipe

            stream = connect_pipe(str(self.path), self.timeout)
            self._sock, self._stream = stream, stream
            return
        self._check_owner()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
            _, uid, _ = peer_credentials(sock)
        except OSError:
            sock.close()
            raise
        if uid != 0:
            sock.close()
            raise ConfigError(f"{self.path} is served by uid {uid}, not root: not the supervisor")
        self._sock, self._stream = sock, sock.makefile("rwb")

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        for part in (self._stream, self._sock):
            if part is not None:
                with contextlib.suppress(OSError):
                    part.close()
        self._sock = self._stream = None

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            try:
                if self._sock is None:
                    self._connect()
                write_message(self._stream, {"op": op, **fields})
                answer = read_message(self._stream)
            except (OSError, ProtocolError) as exc:
                self._drop()
                raise RetryLater(f"the supervisor is not answering on {self.path}: {exc}") from exc
            if answer is None:
                self._drop()
                raise RetryLater(f"the supervisor closed {self.path}")
        if not answer.get("ok"):
            error = str(answer.get("error", "refused"))
            if answer.get("retry", True):
                raise RetryLater(f"the supervisor: {error}")
            raise ConfigError(f"the supervisor refused {op}: {error}")
        return answer

    # --- what agent.sync.Sync calls -----------------------------------------------------------
    def upload(self, spool: Spool) -> UploadReport:
        report = UploadReport()
        while True:
            items = spool.batch(self.batch)
            if not items:
                return report
            answer = self.call("events", events=[
                {"id": i.event_id, "envelope": base64.b64encode(i.read()).decode()}
                for i in items])
            stored = [str(e) for e in answer.get("stored", [])]
            acked = spool.ack(stored)
            report.stored += len(stored)
            for event_id, reason in dict(answer.get("refused", {})).items():
                spool.quarantine(str(event_id), f"supervisor: {reason}")
                report.quarantined += 1
            if not acked and not answer.get("refused"):
                return report

    def send_repeats(self, repeats: list[dict]) -> list[str]:
        if not repeats:
            return []
        return [str(i) for i in self.call("repeats", repeats=repeats).get("updated", [])]

    def heartbeat(self, status: dict[str, Any]) -> dict[str, Any]:
        return self.call("status", status={**status, "pid": os.getpid()})

    def fetch_policy(self, etag: str | None) -> tuple[bytes, str] | None:
        answer = self.call("policy", etag=etag)
        signed = answer.get("signed")
        if not signed:
            return None
        return str(signed).encode(), str(answer.get("etag", ""))

    def fetch_cohorts(self, etag: str | None) -> tuple[bytes, str] | None:
        """The cohort map the supervisor fetched (agent.cohorts), if newer than ``etag``. A
        supervisor older than cohort maps refuses the op: no map, events go untagged."""
        try:
            answer = self.call("cohorts", etag=etag)
        except ConfigError:
            return None
        body = answer.get("map")
        if not body:
            return None
        return str(body).encode(), str(answer.get("etag", ""))


class SupervisedConfig:
    """What the supervisor said at ``hello``, in the shape agent.policy_state reads."""

    def __init__(self, hello: dict[str, Any], socket_path: Path) -> None:
        self._hello = hello
        self.path = socket_path

    def load_enrolment(self) -> Enrolment:
        h = self._hello
        return Enrolment(collector=str(h["collector"]), device_id=str(h["device_id"]),
                         secret="", keyset_fingerprint=str(h["keyset_fingerprint"]))

    def load_trust(self) -> bytes | None:
        trust = self._hello.get("trust")
        return str(trust).encode() if trust else None

    def load_policy(self) -> tuple[bytes, str] | None:
        signed = self._hello.get("signed")
        return (str(signed).encode(), str(self._hello.get("etag", ""))) if signed else None

    # The supervisor owns the files: a session agent keeps what it accepted in memory only.
    def save_policy(self, signed: bytes, etag: str) -> None:
        pass

    def save_trust(self, trust_json: str) -> None:
        pass


def connect(socket_path: Path, timeout: float = 30.0, batch: int = 20
            ) -> tuple[SupervisedConfig, SupervisorLink]:
    link = SupervisorLink(socket_path, timeout, batch)
    try:
        hello = link.call("hello")
    except RetryLater as exc:
        raise ConfigError(f"supervised, but {exc}") from exc
    return SupervisedConfig(hello, Path(socket_path)), link


__all__.append("connect")

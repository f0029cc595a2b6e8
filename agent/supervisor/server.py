"""The supervisor's Unix socket: only root can serve it, only session users may talk to it.

The socket lives in a directory owned by root and not writable by anyone else (0755), so no
user can put a socket of their own in its place; the socket itself is 0666 and every
connection's peer is checked with SO_PEERCRED: root, or the user of a session the supervisor
runs an agent for. One thread per connection (a handful of sessions), one request per line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.supervisor.protocol import ProtocolError, read_message, write_message

__all__ = ["SocketServer", "peer_credentials", "serve_connection"]

log = logging.getLogger(__name__)

Handler = Callable[[Any, dict[str, Any]], dict[str, Any]]


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


class SocketServer:
    def __init__(self, path: Path, handler: Handler, allowed: Callable[[int], bool]) -> None:
        self.path = Path(path)
        self._handler = handler
        self._allowed = allowed
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._accept, name="vigil-socket", daemon=True)
        self._stopping = threading.Event()

    def start(self) -> None:
        parent = self.path.parent
        parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if os.geteuid() == 0:
            os.chown(parent, 0, 0)
        parent.chmod(0o755)  # nobody else may create, replace or remove entries here
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # the socket of a previous run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        self.path.chmod(0o666)  # who may talk is decided per connection (SO_PEERCRED)
        sock.listen(16)
        self._sock = sock
        self._thread.start()
        log.info("serving session agents on %s", self.path)

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), name="vigil-socket-conn",
                             daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                pid, uid, _ = peer_credentials(conn)
            except OSError:
                return
            serve_connection(conn.makefile("rwb"), uid, pid, uid == 0 or self._allowed(uid),
                             self._handler, self._stopping)


def serve_connection(stream: Any, peer: Any, pid: int, allowed: bool, handler: Handler,
                     stopping: threading.Event) -> None:
    """Answer one session agent's requests until it hangs up: the loop of both the Unix socket
    and the Windows named pipe (agent/supervisor/windows.py). ``peer`` is who the operating
    system says is at the other end (a uid, or a SID on Windows); ``allowed`` whether it may
    talk to us at all."""
    try:
        if not allowed:
            log.warning("refused a connection from %s (pid %d): not a session user", peer, pid)
            # its first request is read (a line, at most 4 KiB, unanswered) before the refusal:
            # a Windows pipe client writing to a pipe already closed fails before it can read
            stream.readline(4096)
            write_message(stream, {"ok": False, "error": "not a session user", "retry": False})
            return
        while not stopping.is_set():
            request = read_message(stream)
            if request is None:
                return
            try:
                answer = handler(peer, request)
            except Exception as exc:  # one bad request never stops us
                log.exception("error answering %r from %s", request.get("op"), peer)
                answer = {"ok": False, "error": f"internal error: {type(exc).__name__}",
                          "retry": True}
            write_message(stream, answer)
    except ProtocolError as exc:
        log.warning("%s broke the protocol: %s", peer, exc)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            stream.close()

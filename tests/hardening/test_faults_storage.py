"""Storage faults on a real collector: a full disk, a locked SQLite, a restarted PostgreSQL.

Each must give a clean answer (507 or 503 with ``{"detail", "code"}``; never a 500 or a
traceback in the log), lose nothing the agent holds, and recover by itself once the fault ends.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.faults import (
    AgentRun,
    PrivatePostgres,
    fill_disk,
    sqlite_exclusive_lock,
    stored_event_ids,
)
from tests.fixtures.x11 import wait_until

CLEAN_STORAGE_CODES = {"storage-full", "storage-unavailable"}


def _assert_clean_refusal(answer: Any, statuses: tuple[int, ...] = (503, 507)) -> None:
    assert answer.status_code in statuses, (answer.status_code, answer.text)
    body = answer.json()
    assert body["code"] in CLEAN_STORAGE_CODES
    assert "\n" not in body["detail"] and body["detail"]


def _no_traceback(server: Any, since: int) -> None:
    tail = server.log()[since:]
    assert "Traceback" not in tail, tail[-3000:]


def _heartbeat(server: Any, device: Any, timeout: float = 30) -> Any:
    return server.client.post("/api/v1/heartbeat", json={"agent_version": "t", "spool_depth": 0},
                              headers=device.auth, timeout=timeout)


# --- a full disk ------------------------------------------------------------------------------

@pytest.mark.x11
@pytest.mark.slow
def test_full_blob_disk_answers_507_and_the_agent_keeps_its_events(
        collector_factory: Callable[..., Any], tmpfs_dir: Callable[[str], Any],
        agent_factory: Callable[..., AgentRun]) -> None:
    blob_disk = tmpfs_dir("2m")
    server = collector_factory(blob_dir=blob_disk)
    since = len(server.log())
    filler = fill_disk(blob_disk)

    device = server.enrol()
    answer = server.post_events(device, 3, body_size=50_000)
    _assert_clean_refusal(answer, (507,))
    assert answer.json()["code"] == "storage-full"
    assert stored_event_ids(server) == []

    agent = agent_factory()
    agent.enrol(server)
    ids = agent.prefill(server.keys.publics, 5, body_size=50_000)
    agent.start()
    wait_until(lambda: "507 storage-full" in agent.log(), 60, interval=0.1,
               what="the agent to be told the collector's disk is full")
    assert agent.spooled_ids() == set(ids)  # kept, not quarantined
    assert not list((agent.spool_dir / "quarantine").glob("*.evt"))
    assert stored_event_ids(server) == []

    filler.unlink()  # an administrator frees space: the agent's retries now succeed
    wait_until(lambda: not agent.spooled_ids(), 60, interval=0.2,
               what="the spool to drain once the disk has room")
    assert sorted(stored_event_ids(server)) == sorted(ids)
    _no_traceback(server, since)


# --- SQLite held by another writer ----------------------------------------------------------------

@pytest.mark.slow
def test_locked_sqlite_fails_cleanly_with_503_and_recovers(collector_server: Any) -> None:
    server = collector_server
    device = server.enrol()
    since = len(server.log())
    db_file = server.settings().database_url.removeprefix("sqlite:///")
    with sqlite_exclusive_lock(db_file):
        _assert_clean_refusal(_heartbeat(server, device))
        _assert_clean_refusal(server.post_events(device, 2))
        # The sign-in page writes (a failed attempt, a session): it must not turn into a 500.
        login = server.client.post("/login", data={"username": "nobody", "password": "x"},
                                   timeout=30)
        assert login.status_code in (403, 503), login.status_code  # 403: no CSRF token
        # Reads go on in WAL mode: the agent can still fetch its policy.
        assert server.client.get("/api/v1/policy", headers=device.auth).status_code == 200
    assert _heartbeat(server, device).status_code == 200
    assert server.post_events(device, 2).status_code == 200
    assert len(stored_event_ids(server)) == 2
    _no_traceback(server, since)


# --- PostgreSQL restarted -------------------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_restart_gives_503_not_500_and_the_collector_recovers(
        collector_factory: Callable[..., Any], private_postgres: PrivatePostgres) -> None:
    pg = private_postgres
    server = collector_factory(database_url=pg.url)
    device = server.enrol()
    assert server.post_events(device, 3).status_code == 200
    since = len(server.log())

    statuses: Counter[int] = Counter()
    stop = threading.Event()

    def hammer() -> None:  # an agent's heartbeats all through the outage
        while not stop.is_set():
            try:
                statuses[_heartbeat(server, device, timeout=10).status_code] += 1
            except httpx.TransportError:  # counted as 0: the assertion below refuses it too
                statuses[0] += 1
            stop.wait(0.05)

    worker = threading.Thread(target=hammer, daemon=True)
    worker.start()
    try:
        pg.stop()
        for answer in (_heartbeat(server, device), server.post_events(device, 2),
                       server.client.get("/api/v1/policy", headers=device.auth),
                       server.client.get("/healthz")):
            _assert_clean_refusal(answer, (503,))
        pg.start()
        wait_until(lambda: _heartbeat(server, device).status_code == 200, 60, interval=0.2,
                   what="the collector to reconnect to PostgreSQL")
    finally:
        stop.set()
        worker.join(30)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0 and statuses[200] > 0
    answer = server.post_events(device, 2)
    assert answer.status_code == 200, answer.text
    assert len(stored_event_ids(server)) == 5
    _no_traceback(server, since)

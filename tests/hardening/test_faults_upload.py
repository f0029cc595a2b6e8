"""Faults during upload, with real processes: the collector or the agent SIGKILLed mid-upload.

The agent is the real ``vigil agent run`` on Xvfb, its spool filled with sealed events before it
starts (so the test knows every id it must see); the collector is the real uvicorn process over
TLS. After the fault and a restart every event must be stored exactly once, its blob intact, and
nothing left behind in the spool or as an orphan blob.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.faults import AgentRun, stored_event_ids
from tests.fixtures.x11 import wait_until

pytestmark = [pytest.mark.x11, pytest.mark.slow]

N_EVENTS = 600
BODY = 20_000  # bytes per event: enough that 30 batches of 20 take a while on loopback


def _stored(server: Any) -> list[str]:
    return stored_event_ids(server)


def _assert_exactly_once_and_intact(server: Any, ids: list[str]) -> None:
    from sqlmodel import select

    from collector.ingest import sweep_orphans
    from collector.store.blobs import BlobStore
    from collector.store.models import Event
    from core import envelope

    stored = _stored(server)
    counts = Counter(stored)
    assert [i for i, c in counts.items() if c > 1] == []
    assert sorted(stored) == sorted(ids)
    blobs = BlobStore(server.settings().blob_dir)
    db = server.database()
    try:
        with db.session() as session:
            rows = session.exec(select(Event)).all()
        for row in rows:
            data = blobs.get(row.blob_key)
            assert hashlib.sha256(data).hexdigest() == row.sha256
        # Every envelope still opens: spot-check a spread of them with the head's key.
        for row in rows[:: max(1, len(rows) // 20)]:
            opened = envelope.open(blobs.get(row.blob_key), server.keys.head.key)
            assert str(opened.meta.event_id) == row.id
        # What a crash left half-done (blobs without a row) is swept; then blobs == rows.
        sweep_orphans(db, blobs, grace_s=0)
        assert sorted(k for k in blobs.keys() if k.startswith("ev/")) == sorted(  # noqa: SIM118 (BlobStore, not a dict)
            r.blob_key for r in rows)
    finally:
        db.close()


def _uploading(server: Any, agent_factory: Callable[..., AgentRun]) -> tuple[AgentRun, list[str]]:
    """An enrolled agent with N_EVENTS in its spool, started, once its first batches arrived."""
    agent = agent_factory()
    agent.enrol(server)
    ids = agent.prefill(server.keys.publics, N_EVENTS, body_size=BODY)
    agent.start()
    wait_until(lambda: len(_stored(server)) >= 40, 120, interval=0.05,
               what="the first batches to arrive")
    return agent, ids


def test_collector_sigkilled_mid_upload_every_event_arrives_exactly_once(
        collector_server: Any, agent_factory: Callable[..., AgentRun]) -> None:
    server = collector_server
    agent, ids = _uploading(server, agent_factory)
    server.kill()  # SIGKILL: no shutdown handler, a request may be half done
    before = len(_stored(server))
    assert 0 < before < N_EVENTS, "the collector must die in the middle of the upload"
    wait_until(lambda: "collector unreachable" in agent.log(), 30, interval=0.1,
               what="the agent to notice the collector is down")
    assert agent.spooled_ids() | set(_stored(server)) == set(ids)

    server.start()
    wait_until(lambda: not agent.spooled_ids(), 180, interval=0.2,
               what="the agent's spool to empty after the restart")
    _assert_exactly_once_and_intact(server, ids)


def test_agent_sigkilled_mid_upload_loses_nothing(
        collector_server: Any, agent_factory: Callable[..., AgentRun]) -> None:
    server = collector_server
    agent, ids = _uploading(server, agent_factory)
    agent.kill()
    stored = set(_stored(server))
    assert 0 < len(stored) < N_EVENTS, "the agent must die in the middle of the upload"
    # Nothing is lost: what the collector does not have is still in the spool. (An event may be
    # in both: stored, but the ack never reached the spool; the next upload is a duplicate.)
    assert agent.spooled_ids() | stored == set(ids)

    agent.start()
    wait_until(lambda: not agent.spooled_ids(), 180, interval=0.2,
               what="the restarted agent to empty its spool")
    _assert_exactly_once_and_intact(server, ids)

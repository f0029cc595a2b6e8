"""Two collector instances on one PostgreSQL schema behind a real HAProxy (issue 19).

The instances share one data directory (settings, certificate, blob directory, audit log) and
one database, as the admin guide's "several instances" says. HAProxy passes TLS through
(``mode tcp``) and health-checks ``/healthz`` over HTTPS. Agents enrol and send through it with
the agent's own uplink and spool; one instance is killed (SIGKILL) under load, and the agents
must carry on through the other with nothing lost and nothing duplicated.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.collector import CollectorServer, seal_event
from tests.fixtures.db import drop_pg_schema, pg_schema_url
from tests.fixtures.haproxy import Haproxy
from tests.fixtures.x11 import wait_until

pytestmark = pytest.mark.postgres

SENDERS = 8
EVENTS_EACH = 24
BODY_BYTES = 16_000  # a small WebP capture
RUN_DEADLINE_S = 45.0
OPENED = 'id="window-title">Notepad<'  # the event page shows the sealed header: opened


@dataclass
class Trust:
    a: CollectorServer
    b: CollectorServer
    proxy: Haproxy
    blob_store: str


@pytest.fixture(params=["files", "postgresql"])
def trust(request: pytest.FixtureRequest, collector_factory: Callable[..., CollectorServer],
          haproxy_factory: Callable[..., Haproxy], tmp_path: Path) -> Iterator[Trust]:
    """Two instances and haproxy; the blobs in a directory both share, or in PostgreSQL."""
    url, schema = pg_schema_url()
    b: CollectorServer | None = None
    try:
        a = collector_factory(database_url=url, blob_store=request.param)
        b = a.sibling(tmp_path / "collector-b.log")
        b.start()
        proxy = haproxy_factory([("127.0.0.1", a.port), ("127.0.0.1", b.port)])
        wait_until(lambda: all(s["status"] == "UP" for s in proxy.servers().values()),
                   timeout=15, interval=0.1, what="haproxy seeing both instances UP")
        yield Trust(a, b, proxy, request.param)
    finally:
        if b is not None:
            b.close()
        drop_pg_schema(schema)


@dataclass
class Sender:
    """One desktop: the agent's spool and uplink, events arriving while it sends."""

    uplink: Any
    spool: Any
    device_id: str
    events: list[tuple[str, bytes]]
    produced: int = 0
    stored: int = 0
    duplicate: int = 0
    quarantined: int = 0
    retries: int = 0
    heartbeats: int = 0
    heartbeats_after_kill: int = 0
    error: str = ""
    done: bool = False

    @property
    def acknowledged(self) -> int:
        return self.produced - self.spool.depth

    def run(self, killed: threading.Event, stop: threading.Event) -> None:
        from agent.uplink import RetryLater

        try:
            while not stop.is_set():
                for event_id, data in self.events[self.produced:self.produced + 2]:
                    assert self.spool.put(event_id, 5, data)  # severity 5: never rate-limited
                    self.produced += 1
                try:
                    report = self.uplink.upload(self.spool)
                    self.stored += report.stored
                    self.duplicate += report.duplicate
                    self.quarantined += report.quarantined
                    self.uplink.heartbeat({"spool_depth": self.spool.depth,
                                           "user_signed_in": True})
                except RetryLater:
                    self.retries += 1
                    stop.wait(0.05)  # the agent backs off longer; a test need not
                    continue
                self.heartbeats += 1
                if killed.is_set():
                    self.heartbeats_after_kill += 1
                if (self.produced == len(self.events) and self.spool.depth == 0
                        and self.heartbeats_after_kill > 0):
                    self.done = True
                    return
        except Exception as exc:  # noqa: BLE001 - reported by the test, with the sender
            self.error = f"{type(exc).__name__}: {exc}"


def _senders(trust: Trust, tmp_path: Path) -> list[Sender]:
    import os

    from agent.spool import Spool
    from agent.uplink import Uplink, enrol

    server = trust.a
    senders = []
    token = server.make_token(uses=SENDERS)
    for n in range(SENDERS):
        enrolment = enrol(trust.proxy.url, token, server.keyset_fingerprint, None,
                          (server.cert_fingerprint,), timeout=10)
        events = [seal_event(enrolment.device_id, server.keys.publics,
                             body=os.urandom(BODY_BYTES)) for _ in range(EVENTS_EACH)]
        senders.append(Sender(Uplink(enrolment, timeout=5, batch=4),
                              Spool(tmp_path / f"spool-{n}"), enrolment.device_id, events))
    return senders


def test_agents_carry_on_through_the_other_instance_when_one_is_killed(
        trust: Trust, tmp_path: Path) -> None:
    from sqlalchemy import text

    from agent.uplink import Uplink
    from collector.store.blobs import open_blobs

    started = time.monotonic()
    senders = _senders(trust, tmp_path)
    total = SENDERS * EVENTS_EACH
    killed, stop = threading.Event(), threading.Event()
    threads = [threading.Thread(target=s.run, args=(killed, stop), name=f"sender-{n}")
               for n, s in enumerate(senders)]
    for thread in threads:
        thread.start()
    try:
        # Both instances carry the load, then one dies with requests in flight.
        wait_until(lambda: sum(s.acknowledged for s in senders) >= total * 0.4, timeout=30,
                   interval=0.02, what="40% of the events acknowledged before the kill")
        before = trust.proxy.servers()
        assert all(int(row["stot"]) > 0 for row in before.values()), before
        acknowledged_at_kill = sum(s.acknowledged for s in senders)
        trust.a.kill()
        killed.set()
        killed_at = time.monotonic()
        wait_until(lambda: trust.proxy.servers()["c1"]["status"].startswith("DOWN"),
                   timeout=10, interval=0.05, what="haproxy marking the killed instance DOWN")
        for thread in threads:
            thread.join(timeout=max(0.1, started + RUN_DEADLINE_S - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        assert not stuck, (f"senders still running after {RUN_DEADLINE_S}s: {stuck}; "
                           f"spools: {[s.spool.depth for s in senders]}")
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        for sender in senders:
            sender.uplink.close()
    recovered_s = time.monotonic() - killed_at
    assert acknowledged_at_kill < total * 0.8, "the kill came too late to test anything"

    assert [s.error for s in senders if s.error] == []
    assert all(s.done for s in senders)
    assert sum(s.quarantined for s in senders) == 0
    # Each event was acknowledged exactly once as stored or, after a lost answer, as duplicate.
    assert sum(s.stored + s.duplicate for s in senders) == total
    retries = sum(s.retries for s in senders)

    # In the database: every event once, with the bytes the agent sealed, its blob readable.
    sent = {event_id: data for s in senders for event_id, data in s.events}
    db = trust.b.database()
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, sha256, blob_key FROM event")).all()
            count = conn.execute(text("SELECT count(*) FROM event")).scalar_one()
            devices = conn.execute(text("SELECT id, spool_depth FROM device")).all()
        assert count == total and len({r.id for r in rows}) == total
        assert {r.id for r in rows} == set(sent)
        blobs = open_blobs(trust.b.settings(), db.engine)
        for row in rows:
            assert row.sha256 == hashlib.sha256(sent[row.id]).hexdigest()
            assert blobs.get(row.blob_key) == sent[row.id]
    finally:
        db.close()
    # An answer lost in the kill means the agent sends those events again: they come back as
    # duplicates (ingest is idempotent on the event id) and nothing is stored twice.
    again = senders[0]
    for event_id, data in again.events[:6]:
        assert again.spool.put(event_id, 5, data)
    retry = Uplink(again.uplink.enrolment, timeout=5, batch=4)
    try:
        report = retry.upload(again.spool)
    finally:
        retry.close()
    assert (report.stored, report.duplicate, again.spool.depth) == (0, 6, 0)
    db = trust.b.database()
    try:
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM event")).scalar_one() == total
    finally:
        db.close()
    stored_as_files = list((trust.b.settings().blob_dir / "ev").rglob("*"))
    assert bool(stored_as_files) == (trust.blob_store == "files"), trust.blob_store
    # The last heartbeat of every desktop went through the survivor and was stored.
    assert {d.id: d.spool_depth for d in devices} == {s.device_id: 0 for s in senders}
    after = trust.proxy.servers()
    assert after["c2"]["status"] == "UP" and int(after["c2"]["stot"]) > int(before["c2"]["stot"])
    elapsed = time.monotonic() - started
    print(f"\ntwo instances: {total} events from {SENDERS} senders, "
          f"{sum(s.heartbeats for s in senders)} heartbeats, {retries} retries, "
          f"{total - acknowledged_at_kill} events after the kill; "
          f"all through the survivor {recovered_s:.1f}s after the kill; {elapsed:.1f}s in all")


def test_a_keyholder_on_the_other_instance_is_asked_to_unlock_again(trust: Trust) -> None:
    """An unlocked key lives only in the instance that unlocked it: on the other one, a page
    that opens captures sends the keyholder to the unlock page, with one line saying why."""
    import html

    import httpx

    from dashboard.keyplace import ELSEWHERE
    from tests.hardening.clients import csrf_of

    a, b = trust.a, trust.b
    device = a.enrol("pc-1")
    stored = a.post_events(device, 1)
    assert stored.status_code == 200, stored.text
    event_id = stored.json()["stored"][0]
    head = a.keys.head
    with httpx.Client(verify=a.ssl_context(), timeout=30, follow_redirects=False,
                      headers={"Accept": "text/html"}) as browser:
        form = browser.get(f"{a.url}/login")
        signed_in = browser.post(f"{a.url}/login", data={
            "username": head.name, "password": a.passwords[head.name], "csrf": csrf_of(form.text)})
        assert signed_in.status_code == 303, signed_in.text[:300]
        csrf = csrf_of(browser.get(f"{a.url}/account").text)
        unlocked = browser.post(f"{a.url}/unlock", data={
            "password": head.password, "csrf": csrf, "next": f"/events/{event_id}"})
        assert unlocked.status_code == 303, unlocked.text[:300]
        page = browser.get(f"{a.url}/events/{event_id}")
        assert page.status_code == 200 and OPENED in page.text

        # The same session on the other instance (the sign-in is in the database; the key not).
        for path, next_ in ((f"/events/{event_id}", f"/events/{event_id}"),
                            (f"/events/{event_id}/screenshot", f"/events/{event_id}/screenshot"),
                            ("/triage?severity=5&category=suicide",
                             "/triage%3Fseverity%3D5%26category%3Dsuicide")):
            moved = browser.get(f"{b.url}{path}")
            assert moved.status_code == 303, (path, moved.status_code, moved.text[:300])
            assert moved.headers["location"] == f"/unlock?next={next_}", path
        ask = browser.get(f"{b.url}/unlock?next=/events/{event_id}")
        assert ask.status_code == 200 and 'id="elsewhere"' in ask.text, ask.text[:500]
        assert ELSEWHERE in html.unescape(ask.text) and "Unlock your key" in ask.text
        back = browser.get(f"{b.url}/unlock?next=/triage%3Fseverity%3D5%26category%3Dsuicide")
        assert 'value="/triage?severity=5&amp;category=suicide"' in back.text  # the page's filters
        # A form posted there is sent to unlock too, back to the page it came from.
        record = browser.post(f"{b.url}/incidents/1/record", headers={
            "Referer": f"{b.url}/incidents/1"}, data={"csrf": csrf, "outcome": "seen"})
        assert record.status_code == 303, (record.status_code, record.text[:300])
        assert record.headers["location"] == "/unlock?next=/incidents/1"

        again = browser.post(f"{b.url}/unlock", data={
            "password": head.password, "csrf": csrf, "next": f"/events/{event_id}"})
        assert again.status_code == 303 and again.headers["location"] == f"/events/{event_id}"
        page = browser.get(f"{b.url}/events/{event_id}")
        assert page.status_code == 200 and OPENED in page.text
        shot = browser.get(f"{b.url}/events/{event_id}/screenshot")
        assert shot.status_code == 200 and shot.content
        # The first instance still holds its copy until it idles out or the keyholder signs out.
        assert OPENED in browser.get(f"{a.url}/events/{event_id}").text

        # Locked on purpose: the page shows the capture locked, as on a single instance.
        assert browser.post(f"{b.url}/lock", data={"csrf": csrf}).status_code == 303
        locked = browser.get(f"{b.url}/events/{event_id}")
        assert locked.status_code == 200 and OPENED not in locked.text

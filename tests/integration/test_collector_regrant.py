"""`vigil collector keyholder grant` and `retire`: a new head teacher gets access to captures taken
before they joined, a leaving one can be cut off, and an interrupted run loses nothing.

Runs against a real collector (uvicorn over TLS) on SQLite and on the real PostgreSQL; the
commands run as real subprocesses on the collector's data directory while it serves.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlmodel import Session, col, select

from collector.store.blobs import BlobStore
from collector.store.models import Account, AuditEntry, Event, Incident, Keyholder
from core import envelope
from core.errors import EnvelopeError
from tests.fixtures.collector import CollectorServer, EnrolledDevice, seal_event
from tests.fixtures.keys import Keyholder as HolderKey
from tests.fixtures.keys import make_keyholder
from tests.fixtures.x11 import wait_until

REPO = Path(__file__).resolve().parents[2]
NEW_HEAD = "Nia Newhead"
T = TypeVar("T")


@dataclass
class School:
    server: CollectorServer
    device: EnrolledDevice
    new_head: HolderKey
    incident_id: int

    @property
    def old_keys(self) -> list[Any]:
        k = self.server.keys
        return [k.head.key, k.technician.key, k.recovery.key]

    def vigil(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """`vigil collector keyholder ARGS --data DIR` as a real process."""
        return run_vigil("keyholder", *args, "--data", str(self.server.data_dir), stdin=stdin)

    def query(self, read: Callable[[Session], T]) -> T:
        db = self.server.database()
        try:
            with db.session() as s:
                return read(s)
        finally:
            db.close()

    def grant(self, *extra: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        head = self.server.keys.head
        return self.vigil("grant", "--from", head.name, "--to", NEW_HEAD, "--password-stdin",
                          *extra, stdin=(password or head.password) + "\n")

    def rows(self) -> list[Event]:
        return self.query(lambda s: list(s.exec(select(Event).order_by(col(Event.id))).all()))

    def envelopes(self) -> dict[str, bytes]:
        blobs = BlobStore(self.server.settings().blob_dir)
        return {row.id: blobs.get(row.blob_key) for row in self.rows()}

    def record(self) -> bytes:
        incident = self.query(lambda s: s.get(Incident, self.incident_id))
        assert incident is not None and incident.sealed_record
        return bytes(incident.sealed_record)

    def audit(self) -> list[AuditEntry]:
        return self.query(lambda s: list(s.exec(select(AuditEntry)
                                                .order_by(col(AuditEntry.seq))).all()))

    def snapshot(self) -> tuple[Any, ...]:
        rows = [(r.id, r.blob_key, r.sha256, r.size, tuple(r.recipients)) for r in self.rows()]
        return rows, self.record(), len(self.audit()), sorted(BlobStore(
            self.server.settings().blob_dir).keys())


def run_vigil(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", "collector", *args], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=300, check=False)


def opens(data: bytes, key: Any) -> bool:
    try:
        envelope.open(data, key)
    except EnvelopeError:
        return False
    return True


def check_consistent(school: School) -> None:
    """Every row names a blob that exists, matches its checksum, size and recipients."""
    blobs = BlobStore(school.server.settings().blob_dir)
    for row in school.rows():
        data = blobs.get(row.blob_key)
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert len(data) == row.size
        meta, recipients = envelope.read_meta(data)
        assert str(meta.event_id) == row.id
        assert sorted(recipients) == sorted(row.recipients)


def post(server: CollectorServer, device: EnrolledDevice, n: int, body_size: int = 2000) -> None:
    for start in range(0, n, 100):
        answer = server.post_events(device, min(100, n - start), body_size=body_size)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def school(collector_factory: Any, db_url: str, tmp_path: Path) -> Iterator[School]:
    """A running collector with events and an incident, then a new head added and approved by
    the head (a reader from now on), not yet granted access to what was stored before."""
    from collector.admin import register_keyholder
    from collector.publishing import approve_as
    from collector.trust_root import proposed_change
    from dashboard.incident_record import IncidentRecord, seal_record

    server = collector_factory(database_url=db_url)
    device = server.enrol()
    post(server, device, 12)

    db = server.database()
    try:
        def make_incident(session: Any) -> int:
            incident = Incident(title="Concern raised", created_by=server.keys.head.name)
            session.add(incident)
            session.flush()
            incident.sealed_record = seal_record(session, incident, IncidentRecord(
                reported_by="Form tutor", description="Pupil typed a worrying phrase"))
            session.add(incident)
            return int(incident.id or 0)

        incident_id = db.write(make_incident)
        new_head = make_keyholder(tmp_path, NEW_HEAD, "head")
        register_keyholder(db, new_head.key_file, new_head.password, actor="test")
        with db.session() as session:
            change = proposed_change(session)
        head = server.keys.head
        approve_as(db, server.settings(), head.name, head.password, change.digest, head.name)
    finally:
        db.close()
    yield School(server, device, new_head, incident_id)


def test_new_head_opens_old_captures_only_after_grant_and_rerun_is_a_noop(school: School) -> None:
    new = school.new_head.key
    before = school.envelopes()
    assert len(before) == 12
    assert not any(opens(data, new) for data in before.values())
    assert not opens(school.record(), new)

    done = school.grant()
    assert done.returncode == 0, done.stderr
    assert f"grant to {NEW_HEAD}: 13 granted, 0 skipped, 0 failed" in done.stdout
    assert "13/13 checked" in done.stderr  # the progress line

    after = school.envelopes()
    assert after.keys() == before.keys()
    for event_id, data in after.items():
        assert opens(data, new), event_id
        for key in school.old_keys:
            assert envelope.open(data, key).body == envelope.open(before[event_id], key).body
    assert opens(school.record(), new)
    assert all(opens(school.record(), key) for key in school.old_keys)
    check_consistent(school)
    # Old blobs are gone: the store holds exactly the blobs the rows name.
    assert sorted(BlobStore(school.server.settings().blob_dir).keys()) == sorted(
        r.blob_key for r in school.rows())

    entries = [e for e in school.audit() if e.action.startswith("keyholder.grant")]
    assert [e.action for e in entries] == ["keyholder.grant.start", "keyholder.grant"]
    assert entries[-1].details["changed"] == 13 and entries[-1].details["failed"] == 0
    assert entries[-1].target == NEW_HEAD

    state = school.snapshot()
    again = school.grant()
    assert again.returncode == 0, again.stderr
    assert "0 granted, 13 skipped, 0 failed" in again.stdout
    assert school.snapshot()[:2] == state[:2]  # rows and incident untouched
    assert school.snapshot()[3] == state[3]  # no blob written or removed

    verify = run_vigil("audit", "verify", "--data", str(school.server.data_dir))
    assert verify.returncode == 0, verify.stderr
    # The collector still serves the events after their blobs moved.
    assert school.server.client.get("/healthz").status_code == 200


def test_wrong_password_changes_nothing_and_says_so_in_one_line(school: School) -> None:
    state = school.snapshot()
    done = school.grant(password="not the head's password at all")
    assert done.returncode == 1
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("vigil: ") and "Traceback" not in done.stderr
    assert school.snapshot() == state


def test_unknown_names_are_one_line_errors(school: School) -> None:
    state = school.snapshot()
    head = school.server.keys.head
    for args in (["--from", "Nobody", "--to", NEW_HEAD], ["--from", head.name, "--to", "Nobody"]):
        done = school.vigil("grant", *args, "--password-stdin", stdin=head.password + "\n")
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "Nobody" in done.stderr
    assert school.snapshot() == state


def _store_as_before_issue_14(school: School, event_id: str, sealed: bytes) -> None:
    """Store an event as a collector did before ingest checked recipients (it now refuses an
    envelope that leaves out a keyholder, collector.recipients): blob and row directly."""
    from collector.ingest import blob_key_for
    from collector.store.models import utcnow

    meta, recipients = envelope.read_meta(sealed)
    key = blob_key_for(event_id)
    BlobStore(school.server.settings().blob_dir).put(key, sealed)
    digest = hashlib.sha256(sealed).hexdigest()
    db = school.server.database()
    try:
        db.write(lambda s: s.add(Event(
            id=event_id, device_id=meta.device_id, time=meta.time, received_at=utcnow(),
            category=meta.category, severity=meta.severity, rule=meta.rule, source=meta.source,
            blob_key=key, size=len(sealed), sha256=digest, received_sha256=digest,
            recipients=recipients)))
    finally:
        db.close()


def test_events_the_key_cannot_open_are_reported_and_left_alone(school: School) -> None:
    """An event sealed without the head (stored by an older collector) fails alone."""
    keys = school.server.keys
    event_id, sealed = seal_event(school.device.id, [keys.technician.public, keys.recovery.public])
    _store_as_before_issue_14(school, event_id, sealed)

    done = school.grant()
    assert done.returncode == 1
    assert "13 granted, 0 skipped, 1 failed" in done.stdout
    assert f"failed: event {event_id}: the unlocked key is not one of its recipients" in done.stdout
    assert school.envelopes()[event_id] == sealed  # untouched, still openable by its recipients
    summary = [e for e in school.audit() if e.action == "keyholder.grant"][-1]
    assert summary.details["failures"] == [
        {"target": f"event {event_id}", "reason": "the unlocked key is not one of its recipients"}]

    # The technician can grant the rest.
    tech = school.vigil("grant", "--from", keys.technician.name, "--to", NEW_HEAD,
                        "--password-stdin", stdin=keys.technician.password + "\n")
    assert tech.returncode == 0, tech.stdout + tech.stderr
    assert "1 granted, 13 skipped, 0 failed" in tech.stdout
    assert all(opens(d, school.new_head.key) for d in school.envelopes().values())


def test_retire_keeps_slots_unless_revoked_and_leaves_the_policy(school: School) -> None:
    from collector.policy_builder import current_policy
    from collector.publishing import approve_as, publish_as
    from collector.trust_root import proposed_change
    from core.policy import Policy, SignedPolicy
    from tests.hardening.clients import anonymous, csrf_of, sign_in

    assert school.grant().returncode == 0
    new = school.new_head.key
    session = sign_in(school.server, "head", NEW_HEAD, school.new_head.password)

    done = school.vigil("retire", "--name", NEW_HEAD)
    assert done.returncode == 0, done.stderr
    assert "retired; 1 dashboard account(s) disabled" in done.stdout
    # Their dashboard session ends and they cannot sign in again.
    assert session.http.get("/account").status_code != 200
    session.close()
    again = anonymous(school.server)
    try:
        form = again.http.get("/login")
        refused = again.http.post("/login", data={"username": NEW_HEAD, "csrf": csrf_of(form.text),
                                                  "password": school.new_head.password})
        assert refused.status_code == 401, refused.status_code
    finally:
        again.close()
    holder = school.query(lambda s: s.exec(select(Keyholder)
                                           .where(Keyholder.name == NEW_HEAD)).one())
    account = school.query(lambda s: s.exec(select(Account)
                                            .where(Account.username == NEW_HEAD)).one())
    assert holder.retired_at is not None and account.disabled_at is not None
    # Retiring only proposes the removal: the routine policy still lists them until a reader
    # signs it.
    policy = school.query(lambda s: current_policy(s, school.server.settings()))
    assert new.fingerprint in {k.fingerprint for k in policy.keyholders}
    head = school.server.keys.head
    db = school.server.database()
    try:
        record = publish_as(db, school.server.settings(), head.name, head.password, actor="test")
        published = Policy.from_body(SignedPolicy.from_bytes(record.signed).body)
        assert new.fingerprint in {k.fingerprint for k in published.keyholders}
        change = school.query(proposed_change)
        assert [m.fingerprint for m in change.removed] == [new.fingerprint] and not change.added
        record = approve_as(db, school.server.settings(), head.name, head.password,
                            change.digest, actor="test")
    finally:
        db.close()
    published = Policy.from_body(SignedPolicy.from_bytes(record.signed).body)
    assert new.fingerprint not in {k.fingerprint for k in published.keyholders}
    assert head.fingerprint in {k.fingerprint for k in published.keyholders}
    # Default: old slots stay.
    assert all(opens(d, new) for d in school.envelopes().values())
    assert opens(school.record(), new)

    # A retired keyholder can neither be granted to nor grant.
    refused = school.grant()
    assert refused.returncode == 1 and "retired" in refused.stderr

    revoked = school.vigil("retire", "--name", NEW_HEAD, "--revoke-slots")
    assert revoked.returncode == 0, revoked.stderr
    assert "was already retired" in revoked.stdout
    assert f"revoke {NEW_HEAD}: 13 slots removed, 0 skipped, 0 failed" in revoked.stdout
    for data in school.envelopes().values():
        assert not opens(data, new)
        assert all(opens(data, key) for key in school.old_keys)
    assert not opens(school.record(), new)
    assert all(opens(school.record(), key) for key in school.old_keys)
    check_consistent(school)
    actions = [e.action for e in school.audit()]
    assert actions.count("keyholder.retire") == 1
    assert actions[-2:] == ["keyholder.revoke-slots.start", "keyholder.revoke-slots"]


def test_the_last_keyholder_with_a_key_cannot_retire(school: School) -> None:
    assert school.vigil("retire", "--name", school.server.keys.technician.name).returncode == 0
    assert school.vigil("retire", "--name", NEW_HEAD).returncode == 0
    last = school.vigil("retire", "--name", school.server.keys.head.name)
    assert last.returncode == 1 and last.stdout == ""
    assert "last keyholder" in last.stderr and last.stderr.count("\n") == 1


BATCH = 4
PIPE_PAGE = 4096  # the smallest pipe Linux makes (F_SETPIPE_SZ rounds up to a page)
WRITE_SYSCALL = {"x86_64": "1", "aarch64": "64"}[os.uname().machine]


@dataclass
class HeldGrant:
    """A grant run held at its first progress line, mid-run by construction (no race).

    Its stderr is a one-page pipe that the test filled before starting it: the first progress
    line it writes (after its first batch has committed) blocks it in write() until the test
    reads the pipe. Once /proc shows it blocked there, a signal lands exactly between batch 1
    and batch 2 (waiting only for the commit was not enough: a Ctrl+C that arrived before the
    run reached its between-batches checkpoint stopped it one batch earlier, seen in a
    fresh-clone run with a core kept busy).
    """

    proc: subprocess.Popen[str]
    stderr: int  # the read end of the held pipe

    def release(self) -> str:
        """Read the pipe until the process closes it (it ends): what it wrote after the filler."""
        chunks = []
        while chunk := os.read(self.stderr, 65536):
            chunks.append(chunk)
        os.close(self.stderr)
        return b"".join(chunks)[PIPE_PAGE:].decode()

    def interrupt(self, sig: signal.Signals) -> str:
        """Send ``sig`` while it is held; release it; the rest of its stderr once it has ended."""
        try:
            self.proc.send_signal(sig)
            err = self.release()
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return err


def granted_rows(school: School) -> int:
    """Events whose clear recipient list already names the new head."""
    fingerprint = school.new_head.fingerprint
    return sum(fingerprint in r.recipients for r in school.rows())


def start_grant(school: School) -> HeldGrant:
    """The grant command (batches of BATCH), held once its first batch has committed."""
    import fcntl

    head = school.server.keys.head
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_PAGE)
    assert os.write(write_end, b"\0" * PIPE_PAGE) == PIPE_PAGE  # full: the next write blocks
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "collector", "keyholder", "grant", "--data",
         str(school.server.data_dir), "--from", head.name, "--to", NEW_HEAD,
         "--password-stdin", "--batch", str(BATCH)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=write_end, text=True,
        cwd=REPO)
    os.close(write_end)
    assert proc.stdin is not None
    proc.stdin.write(head.password + "\n")
    proc.stdin.close()
    before = granted_rows(school)

    def held_in_write() -> bool:
        # /proc/PID/syscall: the syscall it is blocked in and its arguments; write (1 on
        # x86_64) to fd 2 is the first progress line, which comes after the first commit.
        assert proc.poll() is None, "the grant ended before its first progress line"
        try:
            call = Path(f"/proc/{proc.pid}/syscall").read_text().split()
        except OSError:
            return False
        return call[:2] == [WRITE_SYSCALL, "0x2"]

    wait_until(held_in_write, 60, interval=0.05, what="the grant to block on its first line")
    assert granted_rows(school) == before + BATCH  # exactly one batch committed before the line
    return HeldGrant(proc, read_end)


def test_killed_grant_loses_nothing_and_a_rerun_completes(school: School) -> None:
    from collector.ingest import sweep_orphans

    post(school.server, school.device, 288, body_size=20_000)
    total = 300

    # Ctrl+C while the run is held after its first batch: it finishes the batch it is in (the
    # second) and stops at the boundary, with one line that says how to finish, no traceback.
    held = start_grant(school)
    err = held.interrupt(signal.SIGINT)
    assert held.proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == ("vigil: interrupted; nothing is lost: run the same "
                                            "command again to finish")
    assert "Traceback" not in err
    assert granted_rows(school) == 2 * BATCH
    check_consistent(school)

    # A crash between two batches: no handler runs at all.
    held = start_grant(school)
    held.interrupt(signal.SIGKILL)
    assert held.proc.returncode == -signal.SIGKILL

    new = school.new_head.key
    envelopes = school.envelopes()  # raises if a row names a missing blob
    assert len(envelopes) == total
    granted = [i for i, d in envelopes.items() if opens(d, new)]
    assert len(granted) == 3 * BATCH  # two batches before Ctrl+C, one before the kill
    for data in envelopes.values():
        assert all(opens(data, key) for key in school.old_keys)
    check_consistent(school)

    # Orphans a kill can leave (new blobs before their commit, old ones after) are swept
    # without touching a blob a row names.
    db = school.server.database()
    try:
        sweep_orphans(db, BlobStore(school.server.settings().blob_dir), grace_s=0)
    finally:
        db.close()
    check_consistent(school)
    assert sorted(BlobStore(school.server.settings().blob_dir).keys()) == sorted(
        r.blob_key for r in school.rows())

    again = school.grant()
    assert again.returncode == 0, again.stderr
    assert f"{total + 1 - len(granted)} granted, {len(granted)} skipped, 0 failed" in again.stdout
    envelopes = school.envelopes()
    assert all(opens(d, new) for d in envelopes.values())
    assert opens(school.record(), new)
    wait_until(lambda: school.server.client.get("/healthz").status_code == 200, timeout=10,
               what="collector still healthy")


def test_the_recovery_key_from_the_safe_can_grant(school: School) -> None:
    """A forgotten password: the recovery key's file (never stored on the collector) grants."""
    recovery = school.server.keys.recovery
    done = school.vigil("grant", "--from-key", str(recovery.path), "--to", NEW_HEAD,
                        "--password-stdin", stdin=recovery.password + "\n")
    assert done.returncode == 0, done.stderr
    assert "13 granted, 0 skipped, 0 failed" in done.stdout
    assert all(opens(d, school.new_head.key) for d in school.envelopes().values())
    assert opens(school.record(), school.new_head.key)
    assert school.audit()[-1].actor == recovery.name


def test_grant_while_agents_keep_sending(school: School) -> None:
    """Events ingested during a run are never damaged; the ones it missed, a re-run grants."""
    post(school.server, school.device, 188, body_size=20_000)
    held = start_grant(school)
    # Agents send while the run is held mid-way (so some events certainly arrive mid-run), and
    # go on sending while it runs on: however the two interleave, nothing may be damaged.
    post(school.server, school.device, 20)
    released: dict[str, str] = {}
    reader = threading.Thread(target=lambda: released.update(err=held.release()))
    reader.start()
    post(school.server, school.device, 20)
    reader.join(300)
    assert held.proc.wait(timeout=300) == 0, released.get("err")
    check_consistent(school)
    assert all(all(opens(d, key) for key in school.old_keys)
               for d in school.envelopes().values())

    again = school.grant()
    assert again.returncode == 0, again.stderr
    assert ", 0 failed" in again.stdout
    assert all(opens(d, school.new_head.key) for d in school.envelopes().values())
    check_consistent(school)


def test_an_event_sent_again_after_a_grant_is_a_retry_not_a_replay(school: School) -> None:
    """An agent whose upload was stored but whose acknowledgement was lost sends the same
    envelope again, after a grant has rewritten the stored blob: that is a duplicate (the agent
    deletes it from its spool), not a 422 "replayed" (which would quarantine it)."""
    server, device = school.server, school.device
    event_id, data = seal_event(device.id, server.keys.publics, body=b"capture")
    sent = {"events": [{"id": event_id, "envelope": base64.b64encode(data).decode()}]}
    first = server.client.post("/api/v1/events", json=sent, headers=device.auth)
    assert first.status_code == 200 and first.json()["stored"] == [event_id]

    assert school.grant().returncode == 0
    (row,) = [r for r in school.rows() if r.id == event_id]
    assert row.sha256 != hashlib.sha256(data).hexdigest()  # the blob was rewritten
    assert row.received_sha256 == hashlib.sha256(data).hexdigest()  # what arrived is kept

    again = server.client.post("/api/v1/events", json=sent, headers=device.auth)
    assert again.status_code == 200, again.text
    assert again.json() == {"stored": [], "duplicate": [event_id]}
    # Other bytes under the same id are still refused.
    _, forged = seal_event(device.id, server.keys.publics, event_id=event_id, body=b"other")
    other = {"events": [{"id": event_id, "envelope": base64.b64encode(forged).decode()}]}
    refused = server.client.post("/api/v1/events", json=other, headers=device.auth)
    assert refused.status_code == 422 and refused.json()["code"] == "replayed"
    check_consistent(school)

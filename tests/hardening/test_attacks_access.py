"""IDOR across roles and devices, path traversal, SQL injection in filters, brute force.

All against the real collector over TLS (the dashboard mounted), with real sealed events.
"""

from __future__ import annotations

import base64
import concurrent.futures
import uuid
from typing import Any

import pytest

from tests.fixtures.collector import seal_event
from tests.hardening.clients import anonymous, csrf_of, sign_in

pytestmark = [pytest.mark.slow]


def _rows(server: Any, model: Any, **where: Any) -> list[Any]:
    from sqlmodel import select

    db = server.database()
    try:
        with db.session() as session:
            query = select(model)
            for name, value in where.items():
                query = query.where(getattr(model, name) == value)
            return list(session.exec(query).all())
    finally:
        db.close()


def _batch(event_id: str, data: bytes) -> dict[str, Any]:
    return {"events": [{"id": event_id, "envelope": base64.b64encode(data).decode()}]}


# --- IDOR: devices ------------------------------------------------------------------------------

def test_device_a_cannot_touch_device_b_events(collector_server: Any) -> None:
    from collector.store.models import Device, Event

    server = collector_server
    a, b = server.enrol("pc-a"), server.enrol("pc-b")
    b_id, b_data = seal_event(b.id, server.keys.publics)
    assert server.client.post("/api/v1/events", json=_batch(b_id, b_data),
                              headers=b.auth).status_code == 200

    # A uploads an envelope that names B: refused, whatever A claims in the JSON.
    forged_id, forged = seal_event(b.id, server.keys.publics)
    answer = server.client.post("/api/v1/events", json=_batch(forged_id, forged), headers=a.auth)
    assert answer.status_code == 422 and answer.json()["code"] == "wrong-device"
    # A re-sends B's event bytes under its own credential: still B's device inside the seal.
    answer = server.client.post("/api/v1/events", json=_batch(b_id, b_data), headers=a.auth)
    assert answer.status_code == 422 and answer.json()["code"] == "wrong-device"
    # A reuses B's event id with an envelope of its own: a replay, refused, B's row untouched.
    _, own = seal_event(a.id, server.keys.publics, event_id=b_id)
    answer = server.client.post("/api/v1/events", json=_batch(b_id, own), headers=a.auth)
    assert answer.status_code == 422 and answer.json()["code"] == "replayed"
    # A reports repeats of B's event: nothing is updated.
    answer = server.client.post("/api/v1/events/repeats", headers=a.auth, json={
        "repeats": [{"id": b_id, "count": 99, "last_seen": "2030-01-01T00:00:00Z"}]})
    assert answer.status_code == 200 and answer.json()["updated"] == []
    (row,) = _rows(server, Event, id=b_id)
    assert (row.device_id, row.repeat_count) == (b.id, 1)
    assert _rows(server, Event, id=forged_id) == []
    # A's heartbeat changes A's row only.
    server.client.post("/api/v1/heartbeat", headers=a.auth, json={"dropped": 7})
    (b_row,) = _rows(server, Device, id=b.id)
    assert b_row.dropped == 0
    # A credential with B's id and A's secret is nobody.
    answer = server.client.get("/api/v1/policy",
                               headers={"Authorization": f"Bearer {b.id}.{a.secret}"})
    assert answer.status_code == 401 and answer.json()["code"] == "re-enrol"


def test_a_revoked_device_is_told_to_re_enrol(collector_server: Any) -> None:
    from collector.devices import revoke

    server = collector_server
    device = server.enrol()
    db = server.database()
    try:
        db.write(lambda session: revoke(session, device.id, "test", "lost laptop"))
    finally:
        db.close()
    answer = server.post_events(device, 1)
    assert answer.status_code == 401 and answer.json()["code"] == "re-enrol"


# --- IDOR: roles ----------------------------------------------------------------------------------

def test_governor_cannot_reach_any_capture(seeded: Any) -> None:
    server, accounts, event_id = seeded
    tech = sign_in(server, "technician", *accounts["technician"])
    made = tech.post_form("/incidents", {"title": "t", "event": event_id})
    incident = made.headers["location"].rstrip("/").split("/")[-1]
    governor = sign_in(server, "governor", *accounts["governor"])
    for path in (f"/events/{event_id}", f"/events/{event_id}/screenshot", "/triage", "/review",
                 f"/incidents/{incident}", "/audit", "/unlock"):
        for accept in ("text/html", "application/json"):
            answer = governor.http.get(path, headers={"Accept": accept})
            assert answer.status_code == 403, (path, accept)
            assert "kill myself" not in answer.text
    for path in (f"/incidents/{incident}/export", "/unlock", f"/events/{event_id}/grade"):
        answer = governor.post_form(path, {"password": accounts["governor"][1],
                                           "grade": "no_concern"})
        assert answer.status_code == 403, path
        assert answer.headers["content-type"].split(";")[0] != "application/zip"
    reports = governor.http.get("/reports")
    assert reports.status_code == 200 and "kill myself" not in reports.text
    tech.close()
    governor.close()


def test_head_can_view_but_not_edit_wordlists_or_devices(seeded: Any) -> None:
    from collector.store.models import EnrolToken, PolicyRecord, WordlistFile

    server, accounts, _ = seeded
    head = sign_in(server, "head", *accounts["head"])
    head.unlock()
    assert head.http.get("/wordlists").status_code == 200
    assert head.http.get("/devices").status_code == 200
    tokens, policies = len(_rows(server, EnrolToken)), len(_rows(server, PolicyRecord))
    text = 'category = "bullying"\n\n[[rule]]\nid = "bullying.head_edit"\nphrase = "x y z"\n'
    for path, form in (("/wordlists/files", {"name": "school-head.toml", "text": text}),
                       ("/wordlists/files/school-head.toml/delete", {}),
                       ("/wordlists/publish", {}),
                       ("/devices/tokens", {"group": "y9"}),
                       ("/devices/tokens/1/revoke", {})):
        answer = head.post_form(path, form)
        assert answer.status_code == 403, path
    assert _rows(server, WordlistFile) == []
    assert len(_rows(server, EnrolToken)) == tokens
    assert len(_rows(server, PolicyRecord)) == policies
    head.close()


def test_an_unlocked_key_belongs_to_its_session_only(seeded: Any) -> None:
    server, accounts, event_id = seeded
    unlocked = sign_in(server, "technician", *accounts["technician"])
    unlocked.unlock()
    assert unlocked.http.get(f"/events/{event_id}/screenshot").status_code == 200
    other = sign_in(server, "technician", *accounts["technician"])  # same person, new session
    answer = other.http.get(f"/events/{event_id}/screenshot")
    assert answer.status_code == 403 and answer.json()["code"] == "key-locked"
    head = sign_in(server, "head", *accounts["head"])
    assert head.http.get(f"/events/{event_id}/screenshot").status_code == 403
    for client in (unlocked, other, head):
        client.close()


# --- path traversal -------------------------------------------------------------------------------

TRAVERSALS = [
    "../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd",
    "....//....//etc/passwd", "..\\..\\settings.toml", "/etc/passwd", "%00", "ev/../../vigil.db",
    "..%252F..%252Fvigil.db", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
]


def test_path_traversal_in_event_ids_and_blob_keys_reads_nothing(seeded: Any) -> None:
    server, accounts, _ = seeded
    tech = sign_in(server, "technician", *accounts["technician"])
    tech.unlock()
    secrets_on_disk = [b"root:x:0:0", b"[dashboard]", b"SQLite format 3", b"BEGIN "]
    for bad in TRAVERSALS:
        for path in (f"/events/{bad}", f"/events/{bad}/screenshot", f"/static/{bad}",
                     f"/incidents/{bad}", f"/wordlists/files/{bad}/delete"):
            answer = (tech.post_form(path) if path.endswith("/delete")
                      else tech.http.get(path))
            assert answer.status_code in (400, 401, 403, 404, 405, 422), (path, answer.status_code)
            assert not any(marker in answer.content for marker in secrets_on_disk), path
    # The agent names blobs only through event ids, which must be canonical UUIDs.
    device = server.enrol()
    for bad in TRAVERSALS + [str(uuid.uuid4()).upper(), "a" * 36]:
        _, data = seal_event(device.id, server.keys.publics)
        answer = server.client.post("/api/v1/events", json=_batch(bad, data), headers=device.auth)
        assert answer.status_code == 422, bad
    tech.close()


# --- SQL injection --------------------------------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1", "1' OR 1=1 --", "1; DROP TABLE event; --", "\" OR \"\"=\"", "') OR ('x'='x",
    "1 UNION SELECT secret_hash FROM device --", "%' OR 1=1 --", "\\'; SELECT pg_sleep(5); --",
]


def test_sql_injection_in_every_filter_is_inert(seeded: Any) -> None:
    from collector.store.models import Device, Event

    server, accounts, event_id = seeded
    other_device = server.enrol("other-pc")
    assert server.post_events(other_device, 1, category="drugs", severity=2,
                              rule="drugs.weed").status_code == 200
    events_before = len(_rows(server, Event))
    secret_hashes = [d.secret_hash for d in _rows(server, Device)]
    tech = sign_in(server, "technician", *accounts["technician"])
    for payload in INJECTIONS:
        for path, param in (("/triage", "category"), ("/triage", "device"), ("/triage", "status"),
                            ("/triage", "severity"), ("/triage", "since"), ("/triage", "until"),
                            ("/triage", "after"), ("/audit", "action"), ("/audit", "target"),
                            ("/audit", "before"), ("/reports", "since"), ("/reports", "until"),
                            ("/reports", "weeks"), ("/incidents/new", "event")):
            answer = tech.http.get(path, params={param: payload})
            assert answer.status_code in (200, 400, 422), (path, param, payload,
                                                           answer.status_code)
            assert not any(h in answer.text for h in secret_hashes), (path, param)
            if path == "/triage" and param in ("category", "device", "status") \
                    and answer.status_code == 200:
                assert event_id not in answer.text, (param, payload)  # matched nothing
    assert len(_rows(server, Event)) == events_before
    tech.close()


# --- brute force ----------------------------------------------------------------------------------

def _login(server: Any, username: str, password: str) -> int:
    client = anonymous(server)
    try:
        form = client.http.get("/login")
        return client.http.post("/login", data={"username": username, "password": password,
                                                "csrf": csrf_of(form.text)}).status_code
    finally:
        client.close()


def test_sign_in_brute_force_hits_the_rate_limit(seeded: Any) -> None:
    server, accounts, _ = seeded
    username, password = accounts["technician"]
    statuses = [_login(server, username, f"guess-{i}") for i in range(3)]
    assert statuses == [401] * 3
    assert _login(server, username, f"guess-{4}") == 429
    # Backed off: even the right password is refused untried, so guessing cannot go on.
    assert _login(server, username, password) == 429
    # Spraying other usernames from the same address is limited by the address.
    assert _login(server, "somebody-else", "guess") == 429


def test_parallel_sign_in_guesses_cannot_exceed_the_limit(seeded: Any) -> None:
    server, accounts, _ = seeded
    username = accounts["head"][0]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(lambda i: _login(server, username, f"guess-{i}"), range(20)))
    tried = statuses.count(401)
    assert set(statuses) <= {401, 429}, statuses
    # Three free failures, then one guess per back-off (one more if the burst outlasts a second).
    assert tried <= 4, f"{tried} guesses were checked against the password, limit 3 + 1"


def test_unlock_brute_force_hits_the_rate_limit(seeded: Any) -> None:
    server, accounts, event_id = seeded
    tech = sign_in(server, "technician", *accounts["technician"])
    statuses = [tech.post_form("/unlock", {"password": f"guess-{i}"}).status_code
                for i in range(3)]
    assert statuses == [401] * 3
    assert tech.post_form("/unlock", {"password": "guess-6"}).status_code == 429
    assert tech.post_form("/unlock", {"password": tech.password}).status_code == 429
    assert tech.http.get(f"/events/{event_id}/screenshot").status_code == 403
    tech.close()


def test_wrong_usernames_and_wrong_passwords_answer_alike(seeded: Any) -> None:
    server, accounts, _ = seeded
    client = anonymous(server)
    form = client.http.get("/login")
    token = csrf_of(form.text)
    unknown = client.http.post("/login", data={"username": "no-such-user", "password": "x" * 12,
                                               "csrf": token})
    wrong = client.http.post("/login", data={"username": accounts["head"][0],
                                             "password": "x" * 12, "csrf": token})
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong username or password." in unknown.text and "Wrong username or password." in \
        wrong.text
    client.close()



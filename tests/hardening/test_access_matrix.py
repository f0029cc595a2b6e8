"""Every route of the composed app (collector + dashboard) x every role, each with its status.

The routes are enumerated from ``vigil.app.build_app(...).routes``: a route added without an
entry in ``MATRIX`` fails ``test_every_route_has_an_entry``, and an entry whose route is gone
fails it too. The calls run against the real server over TLS. Roles: ``none`` (no cookie, no
credential), ``governor``, ``head`` and ``technician`` (signed in through the real form; the
keyholders with their key unlocked, so a 403 means the role, not a locked key), and ``device``
(an enrolled agent's bearer credential, no cookie).

Unsafe requests carry the caller's own valid CSRF token, so what is tested is the role check;
``none`` and ``device`` have no session and so no token, and the CSRF check refuses them first
(403). CSRF itself is attacked in test_attacks_session.py. The second axis, school scope (a
school's account against another school's rows: 404), is test_access_scope.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.dashboard_helpers import SeedEvent, make_accounts, seed_events
from tests.hardening.clients import DashClient, anonymous, sign_in

pytestmark = [pytest.mark.slow]

ROLES = ("none", "governor", "head", "technician", "device")


def every(status: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status)


def agent_only(status: int = 200) -> dict[str, int]:
    return {**every(401), "device": status}


def signed_in(none: int, governor: int, head: int, technician: int) -> dict[str, int]:
    """Dashboard routes: a device's bearer credential is no session, so it is ``none``."""
    return {"none": none, "governor": governor, "head": head, "technician": technician,
            "device": none}


def keyholders(ok: int = 200) -> dict[str, int]:
    return signed_in(401, 403, ok, ok)


def keyholders_post(ok: int = 303) -> dict[str, int]:
    return signed_in(403, 403, ok, ok)  # none/device: refused by CSRF before anything else


def technician_post(ok: int = 303) -> dict[str, int]:
    return signed_in(403, 403, 403, ok)


def head_post(ok: int = 303) -> dict[str, int]:
    return signed_in(403, 403, ok, 403)


def any_role(ok: int = 200) -> dict[str, int]:
    return signed_in(401, ok, ok, ok)


def any_role_post(ok: int) -> dict[str, int]:
    return signed_in(403, ok, ok, ok)


@dataclass
class Ctx:
    """What the calls need: a seeded event, an incident, a device, a way to make fresh things."""

    server: Any
    event_id: str
    incident_id: int
    device: Any
    clients: dict[str, DashClient] = field(default_factory=dict)

    def token(self) -> str:
        return self.server.make_token()

    def token_id(self) -> int:
        from collector.admin import create_enrol_token

        db = self.server.database()
        try:
            return create_enrol_token(db, actor="test").id
        finally:
            db.close()

    def wordlist_file(self) -> str:
        """A school wordlist file that exists (created by the technician)."""
        name = f"school-{uuid.uuid4().hex[:8]}.toml"
        answer = self.clients["technician"].post_form(
            "/wordlists/files", {"name": name, "text": _SCHOOL_FILE.format(tag=name[7:15])})
        assert answer.status_code == 303, answer.text[:300]
        return name

    def roster_import(self) -> int:
        """A roster upload waiting for its confirmation, made afresh per call."""
        from collector.store.models import RosterImport
        from dashboard import roster

        db = self.server.database()
        try:
            with db.session() as session:
                row = RosterImport(shape="sims", filename="matrix.csv", data=_ROSTER,
                                   base_digest=roster.digest(session), created_by="test")
                session.add(row)
                session.commit()
                return row.id or 0
        finally:
            db.close()

    def route_target(self) -> int:
        """A routing target (an e-mail address), made afresh per call."""
        from collector.store.models import RouteTarget

        return self._add(RouteTarget(kind="email", label="Matrix", address="m@school.example",
                                     created_by="test"))

    def route_rule(self) -> int:
        """A routing rule to a fresh target, made afresh per call."""
        from collector.store.models import RouteRule

        return self._add(RouteRule(name="Matrix", min_severity=5, targets=[self.route_target()],
                                   created_by="test"))

    def oncall_shift(self) -> int:
        """A line of the out-of-hours rota, made afresh per call."""
        from collector.store.models import OnCallShift

        return self._add(OnCallShift(name="Matrix", days=[5, 6], start="00:00", end="00:00",
                                     email_target_id=self.route_target(), created_by="test"))

    def _add(self, row: Any) -> int:
        db = self.server.database()
        try:
            with db.session() as session:
                session.add(row)
                session.commit()
                return row.id or 0
        finally:
            db.close()

    def proposal(self) -> int:
        """A keyholder row waiting for approval (a public key only), made afresh per call."""
        from collector.admin import add_keyholder_key
        from core.keys import PrivateKey

        public = PrivateKey.generate(f"Matrix {uuid.uuid4().hex[:8]}", "technician").public
        db = self.server.database()
        try:
            return add_keyholder_key(db, public, actor="test").id or 0
        finally:
            db.close()


_ROSTER = b"Adno,Legal Surname,Forename,Year,Reg Group,Username\n1,Example,Ann,7,7B,aexample\n"

_SCHOOL_FILE = """category = "bullying"

[[rule]]
id = "bullying.school_{tag}"
phrase = "you smell of cabbage {tag}"
severity = 2
"""


@dataclass(frozen=True)
class Call:
    """How to call a route: its concrete path, and a form or JSON body, made per call."""

    path: Callable[[Ctx], str] | str
    form: Callable[[Ctx], dict[str, Any]] | None = None
    json: Callable[[Ctx], Any] | None = None
    fresh_session: bool = False  # the call ends or locks the session: use a new one

    def resolve(self, ctx: Ctx) -> str:
        return self.path(ctx) if callable(self.path) else self.path


def _event(ctx: Ctx) -> str:
    return f"/events/{ctx.event_id}"


def _incident(ctx: Ctx) -> str:
    return f"/incidents/{ctx.incident_id}"


def _sealed_batch(ctx: Ctx) -> dict[str, Any]:
    import base64

    from tests.fixtures.collector import seal_event

    event_id, data = seal_event(ctx.device.id, ctx.server.keys.publics)
    return {"events": [{"id": event_id, "envelope": base64.b64encode(data).decode()}]}


HEARTBEAT = {"agent_version": "t", "user_signed_in": True, "spool_depth": 0, "dropped": 0,
             "quarantined": 0, "listener_restarts": 0, "policy_serial": 1}

# (method, path template) -> (how to call it, expected status per role)
MATRIX: dict[tuple[str, str], tuple[Call, dict[str, int]]] = {
    # FastAPI's own pages: the schema of the agent API only (dashboard routes are hidden).
    ("GET", "/openapi.json"): (Call("/openapi.json"), every(200)),
    ("GET", "/docs"): (Call("/docs"), every(200)),
    ("GET", "/docs/oauth2-redirect"): (Call("/docs/oauth2-redirect"), every(200)),
    ("GET", "/redoc"): (Call("/redoc"), every(200)),
    # The agent API: the enrolment token is the credential of enrol; the rest need a device.
    ("POST", "/api/v1/enrol"): (
        Call("/api/v1/enrol", json=lambda c: {"token": c.token(), "hostname": "pc", "os": "linux",
                                              "agent_version": "t"}), every(201)),
    ("POST", "/api/v1/events"): (Call("/api/v1/events", json=_sealed_batch), agent_only()),
    ("POST", "/api/v1/events/repeats"): (
        Call("/api/v1/events/repeats", json=lambda c: {"repeats": [
            {"id": c.event_id, "count": 2, "last_seen": "2026-01-01T00:00:00Z"}]}),
        agent_only()),
    ("POST", "/api/v1/heartbeat"): (Call("/api/v1/heartbeat", json=lambda c: HEARTBEAT),
                                    agent_only()),
    ("GET", "/api/v1/policy"): (Call("/api/v1/policy"), agent_only()),
    ("GET", "/api/v1/cohorts"): (Call("/api/v1/cohorts"), agent_only()),
    ("GET", "/healthz"): (Call("/healthz"), every(200)),
    # Decided by network or bearer token, not by role: every call here comes from loopback, the
    # default admin network (tests/integration/test_collector_metrics.py: refused elsewhere).
    ("GET", "/metrics"): (Call("/metrics"), every(200)),
    ("*", "/static"): (Call("/static/vigil.css"), every(200)),
    ("GET", "/privacy"): (Call("/privacy"), every(200)),
    # Sign-in and session.
    ("GET", "/"): (Call("/"), every(303)),
    ("GET", "/login"): (Call("/login"), signed_in(200, 303, 303, 303)),
    ("POST", "/login"): (Call("/login", form=lambda c: {"username": "nobody",
                                                        "password": "wrong-password"}),
                         signed_in(403, 401, 401, 401)),
    ("GET", "/login/totp"): (Call("/login/totp"), signed_in(303, 200, 200, 200)),
    ("POST", "/login/totp"): (Call("/login/totp", form=lambda c: {"code": "000000"}),
                              signed_in(403, 401, 401, 401)),
    ("POST", "/logout"): (Call("/logout", fresh_session=True), any_role_post(303)),
    ("GET", "/account"): (Call("/account"), any_role()),
    ("POST", "/account/password"): (
        Call("/account/password", form=lambda c: {"current": "not-my-password",
                                                  "new": "a-new-password-123",
                                                  "confirm": "a-new-password-123"}),
        any_role_post(401)),
    ("POST", "/account/totp/start"): (Call("/account/totp/start"), any_role_post(200)),
    ("POST", "/account/totp/confirm"): (
        Call("/account/totp/confirm", form=lambda c: {"secret": "JBSWY3DPEHPK3PXP",
                                                      "code": "000000"}),
        any_role_post(400)),
    ("POST", "/account/totp/disable"): (
        Call("/account/totp/disable", form=lambda c: {"current": "not-my-password"}),
        any_role_post(401)),
    # Keys.
    ("GET", "/unlock"): (Call("/unlock"), keyholders()),
    ("POST", "/unlock"): (Call("/unlock", form=lambda c: {"password": "wrong-password"}),
                          keyholders_post(401)),
    ("POST", "/lock"): (Call("/lock", fresh_session=True), keyholders_post()),
    # Triage and review: keyholders only; captures only with an unlocked key.
    ("GET", "/triage"): (Call("/triage"), keyholders()),
    ("GET", "/review"): (Call("/review"), keyholders()),
    ("GET", "/events/{event_id}"): (Call(_event), keyholders()),
    ("GET", "/events/{event_id}/screenshot"): (Call(lambda c: _event(c) + "/screenshot"),
                                               keyholders()),
    ("GET", "/events/{event_id}/sealed"): (Call(lambda c: _event(c) + "/sealed"), keyholders()),
    ("POST", "/events/{event_id}/grade"): (
        Call(lambda c: _event(c) + "/grade", form=lambda c: {"grade": "concern"}),
        keyholders_post()),
    ("POST", "/events/{event_id}/notes"): (
        Call(lambda c: _event(c) + "/notes", form=lambda c: {"text": "seen"}), keyholders_post()),
    # Incidents.
    ("GET", "/incidents"): (Call("/incidents"), keyholders()),
    ("GET", "/incidents/new"): (Call("/incidents/new"), keyholders()),
    ("POST", "/incidents"): (Call("/incidents", form=lambda c: {"title": "matrix",
                                                                "event": c.event_id}),
                             keyholders_post()),
    ("GET", "/incidents/{incident_id}"): (Call(_incident), keyholders()),
    ("POST", "/incidents/{incident_id}/status"): (
        Call(lambda c: _incident(c) + "/status", form=lambda c: {"status": "open"}),
        keyholders_post()),
    ("POST", "/incidents/{incident_id}/record"): (
        Call(lambda c: _incident(c) + "/record", form=lambda c: {"description": "matrix"}),
        keyholders_post()),
    ("POST", "/incidents/{incident_id}/events"): (
        Call(lambda c: _incident(c) + "/events", form=lambda c: {"event": c.event_id}),
        keyholders_post()),
    ("POST", "/incidents/{incident_id}/export"): (Call(lambda c: _incident(c) + "/export"),
                                                  keyholders_post(200)),
    ("POST", "/incidents/{incident_id}/handoff"): (
        Call(lambda c: _incident(c) + "/handoff", form=lambda c: {"format": "myconcern"}),
        keyholders_post(200)),
    # Reports: governors see anonymised figures.
    ("GET", "/reports"): (Call("/reports"), any_role()),
    ("GET", "/reports/termly"): (Call("/reports/termly"), any_role()),
    ("GET", "/precision"): (Call("/precision?days=30"), keyholders()),
    # Devices and wordlists: the technician changes them; the head may look.
    ("GET", "/devices"): (Call("/devices"), keyholders()),
    ("POST", "/devices/tokens"): (Call("/devices/tokens", form=lambda c: {"group": "y9"}),
                                  technician_post(200)),
    ("POST", "/devices/tokens/{token_id}/revoke"): (
        Call(lambda c: f"/devices/tokens/{c.token_id()}/revoke"), technician_post()),
    # The roster (pupils' names from the MIS): the technician imports, the head looks.
    ("GET", "/roster"): (Call("/roster"), keyholders()),
    ("POST", "/roster/preview"): (Call("/roster/preview"), technician_post(400)),  # no file
    ("POST", "/roster/imports/{import_id}/apply"): (
        Call(lambda c: f"/roster/imports/{c.roster_import()}/apply"), technician_post()),
    # Routing (who is told about which events): the head sets it; the technician may look.
    ("GET", "/routing"): (Call("/routing"), keyholders()),
    ("POST", "/routing/targets"): (
        Call("/routing/targets", form=lambda c: {"kind": "email", "label": "Matrix",
                                                 "address": "dsl@school.example"}),
        head_post()),
    ("POST", "/routing/targets/{target_id}/remove"): (
        Call(lambda c: f"/routing/targets/{c.route_target()}/remove"), head_post()),
    # The matrix's collector has no SMTP server: the head's test is refused in one line.
    ("POST", "/routing/targets/{target_id}/test"): (
        Call(lambda c: f"/routing/targets/{c.route_target()}/test"), head_post(400)),
    ("POST", "/routing/rules"): (
        Call("/routing/rules", form=lambda c: {"name": "Matrix", "min_severity": "5",
                                               "targets": [str(c.route_target())]}),
        head_post()),
    ("POST", "/routing/rules/{rule_id}/remove"): (
        Call(lambda c: f"/routing/rules/{c.route_rule()}/remove"), head_post()),
    ("POST", "/routing/hours"): (
        Call("/routing/hours", form=lambda c: {"days": ["0", "1", "2", "3", "4"],
                                               "start": "08:00", "end": "18:00"}),
        head_post()),
    ("POST", "/routing/oncall"): (
        Call("/routing/oncall", form=lambda c: {"name": "Matrix", "email": "oc@school.example",
                                                "days": ["5", "6"], "start": "00:00",
                                                "end": "00:00"}),
        head_post()),
    ("POST", "/routing/oncall/{shift_id}/remove"): (
        Call(lambda c: f"/routing/oncall/{c.oncall_shift()}/remove"), head_post()),
    ("GET", "/wordlists"): (Call("/wordlists"), keyholders()),
    ("POST", "/wordlists/files"): (
        Call("/wordlists/files", form=lambda c: {
            "name": "school-matrix.toml", "text": _SCHOOL_FILE.format(tag="matrix")}),
        technician_post()),
    ("POST", "/wordlists/files/{name}/delete"): (
        Call(lambda c: f"/wordlists/files/{c.wordlist_file()}/delete"), technician_post()),
    ("POST", "/wordlists/test"): (Call("/wordlists/test", form=lambda c: {"sentence": "go die"}),
                                  keyholders_post(200)),
    ("POST", "/wordlists/replay"): (
        Call("/wordlists/replay", form=lambda c: {
            "name": "school-replay.toml", "text": _SCHOOL_FILE.format(tag="replay"),
            "open": "true"}),
        keyholders_post(200)),
    ("POST", "/wordlists/publish"): (Call("/wordlists/publish"), technician_post()),
    # Keyholders: who can read and changes to it; both keyholder roles, never a governor.
    ("GET", "/keyholders"): (Call("/keyholders"), keyholders()),
    ("POST", "/keyholders/add"): (Call("/keyholders/add"), keyholders_post(400)),  # no file
    ("POST", "/keyholders/{keyholder_id}/remove"): (
        Call(lambda c: f"/keyholders/{c.proposal()}/remove"), keyholders_post()),
    ("POST", "/keyholders/{keyholder_id}/reject"): (
        Call(lambda c: f"/keyholders/{c.proposal()}/reject"), keyholders_post()),
    ("POST", "/keyholders/approve"): (
        Call("/keyholders/approve", form=lambda c: {"change": "vkc1:stale",
                                                    "password": "wrong-password"}),
        keyholders_post(401)),
    ("GET", "/audit"): (Call("/audit"), keyholders()),
    ("POST", "/audit/verify"): (Call("/audit/verify"), keyholders_post()),
}


def app_routes() -> set[tuple[str, str]]:
    """(method, path) of every route of the composed app; HEAD folds into GET, mounts are '*'."""
    import tempfile
    from pathlib import Path

    from collector.admin import init_data_dir
    from vigil.app import build_app

    with tempfile.TemporaryDirectory() as tmp:
        settings, _ = init_data_dir(Path(tmp) / "data", public_url="https://127.0.0.1:1",
                                    port=1, database_url="")
        app = build_app(settings)
        return {(m, p) for m, p in _flatten(app.routes) if m != "HEAD"}


def _flatten(routes: Any) -> Iterator[tuple[str, str]]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)  # FastAPI's included routers
        if contexts is not None:
            for c in contexts() if callable(contexts) else contexts:
                for method in c.methods or ():
                    yield method, c.path
        elif getattr(route, "methods", None):
            for method in route.methods:
                yield method, route.path
        elif hasattr(route, "routes"):  # a plain Router or Mount with children
            if getattr(route, "app", None) is not None and not getattr(route, "routes", None):
                yield "*", route.path
            else:
                yield from ((m, route.path + p) for m, p in _flatten(route.routes))
        else:
            yield "*", route.path


def test_every_route_has_an_entry() -> None:
    routes = app_routes()
    missing = sorted(routes - set(MATRIX))
    stale = sorted(set(MATRIX) - routes)
    assert not missing, f"routes without an expected status per role: {missing}"
    assert not stale, f"entries for routes that no longer exist: {stale}"


@pytest.fixture
def ctx(collector_factory: Any) -> Iterator[Ctx]:
    # The matrix makes wrong-password calls for every role from one address; it tests who may
    # call what, not the sign-in back-off (tests/hardening/test_attacks_access.py), so the
    # back-off is set wide enough to stay out of the way.
    from collector.settings import DashboardSettings as CollectorDashboard

    server = collector_factory(dashboard=CollectorDashboard(
        login_max_failures=1000, extra={"account_free_failures": 1000}))
    accounts = make_accounts(server)
    seeded = [SeedEvent("suicide", 5, "suicide.kill_myself", "Chat", "i want to kill myself",
                        "kill myself")]
    seed_events(server, seeded)
    clients = {role: sign_in(server, role, *accounts[role])
               for role in ("governor", "head", "technician")}
    for role in ("head", "technician"):
        clients[role].unlock()
    answer = clients["technician"].post_form("/incidents", {"title": "matrix incident",
                                                            "event": seeded[0].id})
    assert answer.status_code == 303, answer.text[:300]
    incident_id = int(answer.headers["location"].rstrip("/").split("/")[-1])
    c = Ctx(server, seeded[0].id, incident_id, server.enrol(), clients)
    try:
        yield c
    finally:
        for client in clients.values():
            client.close()


def _client_for(ctx: Ctx, role: str, call: Call) -> tuple[DashClient, dict[str, str]]:
    """The HTTP client of ``role`` (a fresh session if the call ends it) and extra headers."""
    if role in ("none", "device"):
        headers = ctx.device.auth if role == "device" else {}
        return anonymous(ctx.server, role), headers
    if call.fresh_session:
        base = ctx.clients[role]
        return sign_in(ctx.server, role, base.username, base.password), {}
    return ctx.clients[role], {}


def _call(ctx: Ctx, role: str, method: str, call: Call) -> int:
    client, headers = _client_for(ctx, role, call)
    try:
        path = call.resolve(ctx)
        kwargs: dict[str, Any] = {"headers": headers}
        if call.json is not None:
            kwargs["json"] = call.json(ctx)
        if method == "GET" or method == "*":
            return client.http.get(path, **kwargs).status_code
        form = call.form(ctx) if call.form else {}
        if client.csrf:
            form["csrf"] = client.csrf
        if call.json is None:
            kwargs["data"] = form
        elif client.csrf:
            headers = {**headers, "X-CSRF-Token": client.csrf}
            kwargs["headers"] = headers
        return client.http.request(method, path, **kwargs).status_code
    finally:
        if role in ("none", "device") or call.fresh_session:
            client.close()


def test_every_route_answers_every_role_as_expected(ctx: Ctx) -> None:
    wrong = []
    for (method, template), (call, expected) in sorted(MATRIX.items()):
        assert set(expected) == set(ROLES), template
        for role in ROLES:
            got = _call(ctx, role, method, call)
            if got != expected[role]:
                wrong.append(f"{method} {template} as {role}: {got}, expected {expected[role]}")
    assert not wrong, "\n".join(wrong)

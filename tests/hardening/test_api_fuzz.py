"""Fuzzing every route of the real server: never a 500, always a clean error.

- The agent API, from the server's own OpenAPI document, with schemathesis: valid and invalid
  requests generated from the schema, sent over TLS with an enrolled device's credential.
  Checks: no server error, and every refusal is JSON ``{"detail", "code"}`` on one line.
- The dashboard's routes are not in the OpenAPI document (they are HTML forms), so hypothesis
  fills their path parameters, query strings and form fields with hostile text, sent by a
  signed-in technician with an unlocked key and a valid CSRF token (so the requests reach the
  handlers); the routes are those of the access matrix, which covers every route of the app.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hardening.clients import sign_in
from tests.hardening.test_access_matrix import MATRIX

pytestmark = [pytest.mark.slow]

# Examples per route: 25 in make test (the dashboard's hundred-odd routes at 60 each were its
# largest single item, 262 s); `make fuzz` runs 300 each, where the time pays for itself.
EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _assert_clean(status: int, content_type: str, body: bytes, what: str) -> None:
    assert status < 500, f"{what}: {status} {body[:300]!r}"
    if status >= 400 and content_type.startswith("application/json"):
        answer = json.loads(body)
        assert isinstance(answer.get("detail"), str) and isinstance(answer.get("code"), str), what
        assert "\n" not in answer["detail"] and "Traceback" not in answer["detail"], what


def test_agent_api_schemathesis_with_an_enrolled_device(collector_server: Any) -> None:
    import schemathesis
    from schemathesis.generation import GenerationMode

    server = collector_server
    device = server.enrol()
    document = server.client.get("/openapi.json").json()
    assert set(document["paths"]) >= {"/api/v1/enrol", "/api/v1/events", "/api/v1/heartbeat",
                                      "/api/v1/events/repeats", "/api/v1/policy", "/healthz"}
    schema = schemathesis.openapi.from_dict(document)
    session = httpx.Client(verify=server.ssl_context(), timeout=30)
    seen: dict[str, set[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
    for operation in operations:
        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | \
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
        _fuzz_operation(server, device, session, seen, operation, strategy)
    session.close()
    # The fuzzing reached past validation: some requests were accepted.
    assert 200 in seen["POST /api/v1/heartbeat"], seen
    assert any(s in seen["GET /api/v1/policy"] for s in (200, 304)), seen


def _fuzz_operation(server: Any, device: Any, session: httpx.Client, seen: dict[str, set[int]],
                    operation: Any, strategy: Any) -> None:
    from schemathesis.checks import not_a_server_error

    @FUZZ
    @given(case=strategy)
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=server.url, headers=device.auth)
        if isinstance(kwargs.get("data"), (bytes, str)):  # a raw (negative) body
            kwargs["content"] = kwargs.pop("data")
        response = session.request(**{k: v for k, v in kwargs.items()
                                      if k in ("method", "url", "headers", "params", "content",
                                               "json", "data")})
        seen.setdefault(operation.label, set()).add(response.status_code)
        _assert_clean(response.status_code, response.headers.get("content-type", ""),
                      response.content, operation.label)
        case.validate_response(response, checks=[not_a_server_error])

    run()


def _fill(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _m: quote(value, safe="") or "x", template)


hostile_text = st.one_of(
    st.text(max_size=300),
    st.sampled_from(["", " ", "\x00", "../../etc/passwd", "' OR 1=1 --", "<script>x</script>",
                     "9" * 40, "-1", "0", "1e309", "NaN", "\u202e\u0000\ufeff", "a" * 5000,
                     "2026-02-30", "%00", "{{7*7}}", "${jndi:ldap://x}"]),
)
SKIP = {"/logout", "/lock"}  # they end the fuzzing session itself; the matrix covers them


def test_every_dashboard_route_survives_hostile_input(seeded: Any) -> None:
    server, accounts, event_id = seeded
    tech = sign_in(server, "technician", *accounts["technician"])
    tech.unlock()
    routes = sorted((m, p) for m, p in MATRIX if not p.startswith(("/api/", "/openapi", "/docs",
                                                                   "/redoc"))
                    and p not in SKIP)

    for method, template in routes:
        _fuzz_route(server, tech, event_id, method, template)
    tech.close()


def _fuzz_route(server: Any, tech: Any, event_id: str, method: str, template: str) -> None:
    @FUZZ
    @given(path_value=hostile_text, fields=st.dictionaries(
        st.sampled_from(["grade", "text", "title", "event", "status", "name", "sentence",
                         "password", "current", "new", "confirm", "code", "secret", "group",
                         "max_uses", "days", "description", "types", "informed", "next",
                         "category", "severity", "since", "until", "after", "device",
                         "weeks", "action", "target", "before", "username", "back"]),
        hostile_text, max_size=6), use_real_id=st.booleans())
    def run(path_value: str, fields: dict[str, str], use_real_id: bool) -> None:
        path = template if "{" not in template else _fill(
            template, event_id if use_real_id and "event_id" in template else path_value)
        if template == "/static":
            path = "/static/" + quote(path_value, safe="/")
        fields = {k: v.replace("\x00", "") if method != "GET" else v for k, v in fields.items()}
        if method in ("GET", "*"):
            answer = tech.http.get(path, params=fields)
        else:
            answer = tech.post_form(path, fields)
        _assert_clean(answer.status_code, answer.headers.get("content-type", ""),
                      answer.content, f"{method} {path}")

    run()

"""Fuzz the agent API of a real collector over TLS from its own OpenAPI schema (schemathesis).

Every generated request, valid or not, must get an answer below 500, and a 4xx must carry the
one-line JSON error. The device credential is a real one, so bodies get past authentication
and are parsed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode

from collector.app import create_app
from collector.settings import Settings
from tests.fixtures.collector import CollectorServer, EnrolledDevice, prepare_collector

# The schema comes from the collector's own app (no database is touched to build it).
_schema_app = create_app(Settings(data_dir=Path("/nonexistent-vigil-schema-only")))
schema = schemathesis.openapi.from_dict(_schema_app.openapi()).include(
    path_regex=r"^/(api/v1/|healthz)")
# Both what fits the schema and what does not (wrong types, missing fields, bad formats).
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory,
                keyholders: Any) -> Iterator[tuple[CollectorServer, EnrolledDevice]]:
    server = prepare_collector(tmp_path_factory.mktemp("fuzz"), "", keyholders, {})
    server.start()
    try:
        yield server, server.enrol("fuzz-pc")
    finally:
        server.close()
        log = server.log()
        assert "Traceback" not in log, log[-3000:]


def _one_line_error(response: Any) -> None:
    if 400 <= response.status_code < 500 and response.status_code != 405:
        body = response.json()
        assert isinstance(body.get("detail"), str) and "\n" not in body["detail"], body
        assert isinstance(body.get("code"), str), body


@schema.parametrize()
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_request_gets_a_server_error(case: Any, fuzz_target: Any) -> None:
    server, device = fuzz_target
    response = case.call(base_url=server.url, headers=device.auth, verify=str(server.ca_cert),
                         timeout=30)
    case.validate_response(response, checks=[not_a_server_error])
    _one_line_error(response)

"""Hypothesis over the envelope parser, the collector's first contact with untrusted bytes.

tests/unit/test_envelope.py already flips bits, truncates and appends to one sealed envelope.
What these add: arbitrary bytes (and arbitrary bytes behind a valid-looking magic) into every
entry point the collector and dashboard call; splicing whole regions of two different valid
envelopes together; and the round trip for arbitrary metadata, headers and bodies, including
hostile text. In every case the only failure is EnvelopeError, and nothing opens that was not
sealed exactly so.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import envelope
from core.errors import EnvelopeError
from tests.fixtures.keys import Keyholder

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


def _only_envelope_errors(data: bytes, key: Keyholder) -> None:
    calls = {
        "read_meta": lambda: envelope.read_meta(data),
        "open": lambda: envelope.open(data, key.key),
        "grant": lambda: envelope.grant(data, key.key, key.public),
        "revoke": lambda: envelope.revoke(data, key.fingerprint),
    }
    for name, call in calls.items():
        try:
            call()
        except EnvelopeError as exc:
            assert "\n" not in str(exc), name
        except Exception as exc:  # noqa: BLE001 - the property: nothing but our own error
            pytest.fail(f"{name}: {type(exc).__name__} escaped: {exc}")


def _meta(**change: Any) -> envelope.Metadata:
    values = {"event_id": str(uuid.uuid4()), "device_id": str(uuid.uuid4()),
              "time": datetime(2026, 11, 23, 9, 0, tzinfo=UTC), "category": "suicide",
              "severity": 5, "rule": "suicide.kill_myself", "source": "typed", **change}
    return envelope.Metadata(**values)


_SEALED: dict[str, bytes] = {}


def _sealed(key: Keyholder, name: str) -> bytes:
    if name not in _SEALED:
        _SEALED[name] = envelope.seal(_meta(), {"user": name, "context": name * 20},
                                      name.encode() * 500, [key.public])
    return _SEALED[name]


@PROPERTY
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_fail_only_with_envelope_error(head_key: Keyholder, data: bytes) -> None:
    _only_envelope_errors(data, head_key)


@PROPERTY
@given(st.integers(min_value=0, max_value=64), st.binary(max_size=1024))
def test_a_valid_prefix_then_garbage_fails_only_with_envelope_error(
        head_key: Keyholder, keep: int, garbage: bytes) -> None:
    data = _sealed(head_key, "a")
    _only_envelope_errors(data[:keep] + garbage, head_key)


@PROPERTY
@given(st.integers(min_value=0), st.integers(min_value=0), st.integers(min_value=0),
       st.integers(min_value=0))
def test_splicing_two_envelopes_never_opens_as_either(
        head_key: Keyholder, a0: int, a1: int, b0: int, b1: int) -> None:
    a, b = _sealed(head_key, "a"), _sealed(head_key, "b")
    cut_a, cut_b = sorted((a0 % len(a), a1 % len(a))), sorted((b0 % len(b), b1 % len(b)))
    spliced = a[:cut_a[0]] + b[cut_b[0]:cut_b[1]] + a[cut_a[1]:]
    if spliced in (a, b):
        return
    try:
        opened = envelope.open(spliced, head_key.key)
    except EnvelopeError:
        return
    pytest.fail(f"a spliced envelope opened: header {opened.header!r}")


hostile = st.text(max_size=200)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**53, max_value=2**53), hostile),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile, inner, max_size=4),
    max_leaves=12)


@PROPERTY
@given(st.sampled_from(["suicide", "drugs", "bullying"]), st.integers(min_value=1, max_value=5),
       st.text(alphabet="abcdefghijklmnopqrstuvwxyz_.", min_size=1, max_size=60),
       st.sampled_from(["typed", "title", "paste"]),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(UTC)),
       st.dictionaries(hostile, json_values, max_size=8), st.binary(max_size=4096))
def test_any_metadata_header_and_body_round_trip_exactly(
        head_key: Keyholder, technician_key: Keyholder, category: str, severity: int, rule: str,
        source: str, when: datetime, header: dict[str, Any], body: bytes) -> None:
    meta = _meta(category=category, severity=severity, rule=rule, source=source, time=when)
    data = envelope.seal(meta, header, body, [head_key.public, technician_key.public])
    read, recipients = envelope.read_meta(data)
    assert read == meta
    assert set(recipients) == {head_key.fingerprint, technician_key.fingerprint}
    for key in (head_key, technician_key):
        opened = envelope.open(data, key.key)
        assert (opened.meta, opened.header, opened.body) == (meta, header, body)


@PROPERTY
@given(st.sampled_from(["event_id", "device_id", "category", "rule", "source"]), hostile,
       st.integers(min_value=-3, max_value=9), st.timedeltas(min_value=timedelta(hours=-30),
                                                               max_value=timedelta(hours=30)))
def test_metadata_is_checked_before_sealing(field_name: str, text: str, severity: int,
                                            offset: timedelta) -> None:
    try:
        meta = _meta(**{field_name: text}, severity=severity,
                     time=datetime(2026, 1, 1, tzinfo=UTC) + offset)
    except EnvelopeError:
        return
    assert 1 <= meta.severity <= 5
    assert getattr(meta, field_name) == text and meta.event_id and meta.device_id

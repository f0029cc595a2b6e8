"""Issue 14's ingest checks as units: the per-device token bucket and whom events must be sealed
to (the keysets of the verified policy chain, with the grace after a keyholder change)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from collector.ratelimit import IngestLimiter
from collector.recipients import keysets, wrong_recipients
from collector.trust_root import SignedKeyset

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_holds_back_severity_1_to_3_only_and_refills() -> None:
    clock = Clock()
    limiter = IngestLimiter(rate_per_minute=6, burst=3, clock=clock)  # one token per 10 s
    assert limiter.take("a", [2, 2]) == ([True, True], 0.0)
    allowed, wait = limiter.take("a", [1, 5, 4, 3])
    assert allowed == [True, True, True, False] and wait == 10
    assert limiter.take("b", [1, 1, 1]) == ([True, True, True], 0.0)  # per device
    clock.now += 25  # 2.5 tokens back
    allowed, wait = limiter.take("a", [3, 3, 3])
    assert allowed == [True, True, False] and wait == 5
    clock.now += 3600
    assert limiter.take("a", [1] * 4)[0] == [True, True, True, False]  # never beyond the burst
    assert limiter.take("a", [5] * 50)[0] == [True] * 50  # severe events are never refused


def test_a_rate_of_zero_switches_the_limit_off() -> None:
    limiter = IngestLimiter(rate_per_minute=0, burst=1)
    assert not limiter.enabled
    assert limiter.take("a", [1] * 500) == ([True] * 500, 0.0)


def _set(serial: int, signed_at: datetime, *names: str) -> SignedKeyset:
    keys = tuple(SimpleNamespace(name=n, role="head", fingerprint=f"vk1:{n}") for n in names)
    return SignedKeyset(serial, signed_at, "vk1:signer", keys)


def test_events_must_be_sealed_to_a_signed_keyset() -> None:
    grace = timedelta(days=7)
    history = [_set(1, T0, "a", "b"), _set(2, T0 + timedelta(days=30), "a", "b", "c")]
    assert wrong_recipients(["vk1:x"], T0, [], grace) is None  # no policy yet: nothing to check
    assert wrong_recipients(["vk1:c", "vk1:b", "vk1:a"], T0, history, grace) is None
    # The old set: accepted for events sealed up to a week after the new policy was signed.
    assert wrong_recipients(["vk1:a", "vk1:b"], T0 + timedelta(days=36), history, grace) is None
    late = wrong_recipients(["vk1:a", "vk1:b"], T0 + timedelta(days=38), history, grace)
    assert late == ("it is not sealed to the keyholders of the signed policy (serial 2): "
                    "it leaves out c (head) vk1:c")
    stranger = wrong_recipients(["vk1:a", "vk1:b", "vk1:c", "vk1:eve"], T0, history, grace)
    assert stranger is not None
    assert stranger.endswith("it is also sealed to a key that is in no signed policy: vk1:eve")
    retired = [_set(1, T0, "a", "b"), _set(2, T0 + timedelta(days=1), "a")]
    former = wrong_recipients(["vk1:a", "vk1:b"], T0 + timedelta(days=30), retired, grace)
    assert former is not None and former.endswith("sealed to a former keyholder: vk1:b")


def test_keysets_follow_the_signed_chain_and_skip_what_no_keyholder_signed(
        database: Any, head_key: Any, technician_key: Any, recovery_key: Any,
        stranger_key: Any) -> None:
    from collector.store.models import PolicyRecord
    from core import policy

    def store(serial: int, holders: list[Any], signer: Any) -> None:
        signed = policy.sign(policy.Policy(serial=serial, keyholders=tuple(
            h.public for h in holders), issued_at=T0 + timedelta(days=serial)), signer.key)
        database.write(lambda s: s.add(PolicyRecord(serial=serial, signed=signed.to_bytes(),
                                                    etag=signed.digest, signer=signer.fingerprint)))

    def serials() -> list[tuple[int, int]]:
        with database.engine.connect() as conn:
            return [(k.serial, len(k.fingerprints)) for k in keysets(database.engine, conn)]

    assert serials() == []
    store(1, [head_key, technician_key], head_key)
    store(2, [head_key, technician_key, recovery_key], technician_key)
    assert serials() == [(1, 2), (2, 3)]
    store(3, [stranger_key], stranger_key)  # a row the database writer signed themself
    store(4, [head_key, recovery_key], recovery_key)  # signed by a trusted keyholder: accepted
    assert serials() == [(1, 2), (2, 3), (4, 2)]
    with database.engine.connect() as conn:
        (last,) = keysets(database.engine, conn)[-1:]
    assert last.signed_at == T0 + timedelta(days=4)
    assert last.names[recovery_key.fingerprint] == f"{recovery_key.name} (recovery)"

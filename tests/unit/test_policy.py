"""The signed policy: what an agent accepts, what it refuses, and what it trusts afterwards."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import keys, policy
from core.errors import PolicyError, UntrustedPolicy
from core.policy import CaptureSettings, Policy, Schedule, ScreenSettings, SignedPolicy, Trust
from tests.fixtures.keys import FAST_TEST_KDF, Keyholder, Keyholders

WORDLISTS = {"default/suicide.toml": 'category = "suicide"\n',
             "school/school.toml": 'disable = ["drugs.weed"]\n'}


def _policy(keyholders: list[keys.PublicKey], serial: int = 1, **changes: Any) -> Policy:
    base = Policy(
        serial=serial, keyholders=tuple(keyholders),
        issued_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC), wordlists=WORDLISTS,
        capture=CaptureSettings(format="png", quality=80, scale=0.5, all_monitors=True),
        notice="This device is monitored under the school's Acceptable Use Policy.",
        schedule=Schedule(days=("mon", "tue", "wed", "thu", "fri"), start="07:30", end="18:00"),
        onsite_networks=("10.20.0.0/16", "2001:db8::/32"), flood_window_s=600,
        title_cooldown_s=30, retention_days=395,
    )
    return replace(base, **changes)


def _accepted(holders: Keyholders) -> tuple[Policy, Trust]:
    """The state after the first policy: the enrolment pin replaced by the full keyholder set."""
    signed = policy.sign(_policy(holders.publics), holders.head.key)
    return policy.verify(signed, Trust.pinned(holders.keyset_fingerprint))


def _resign_body(signed: SignedPolicy, edit: dict[str, Any], signer: Keyholder) -> SignedPolicy:
    body = json.loads(signed.body)
    body.update(edit)
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return SignedPolicy(raw, signer.fingerprint, signer.key.sign(b"vigil signed policy v1\0" + raw))


# --- the cases the issue lists --------------------------------------------------------------------


def test_a_valid_first_policy_is_accepted_and_the_set_is_trusted(keyholders: Keyholders) -> None:
    original = _policy(keyholders.publics)
    signed = policy.sign(original, keyholders.technician.key)
    wire = signed.to_bytes()
    accepted, trust = policy.verify(SignedPolicy.from_bytes(wire), Trust.pinned(
        keyholders.keyset_fingerprint))
    assert accepted == original
    assert trust.keyholders == tuple(keyholders.publics)
    assert trust.keyset_fingerprint == keyholders.keyset_fingerprint
    assert trust.serial == 1
    assert trust.policy_digest == signed.digest
    assert accepted.wordlists == dict(sorted(WORDLISTS.items()))
    assert accepted.wordlists_digest.startswith("sha256:")
    # the wire form (bytes) is accepted directly as well
    assert policy.verify(wire, Trust.pinned(keyholders.keyset_fingerprint))[0] == original


def test_a_valid_later_policy_is_accepted(keyholders: Keyholders) -> None:
    _, trust = _accepted(keyholders)
    newer = policy.sign(_policy(keyholders.publics, serial=2, notice="Updated notice."),
                        keyholders.recovery.key)
    accepted, trust2 = policy.verify(newer, trust)
    assert accepted.notice == "Updated notice."
    assert trust2.serial == 2 and trust2.keyholders == trust.keyholders


@pytest.mark.parametrize("edit", [
    {"serial": 7}, {"notice": "Nothing is monitored."}, {"issued_at": "2030-01-01T00:00:00Z"},
    {"wordlists": {}, "wordlists_digest": policy.wordlists_digest({})},
    {"capture": {"format": "jpeg", "quality": 10, "scale": 0.1, "all_monitors": False}},
    {"schedule": {"days": ["sat"], "start": "00:00", "end": "01:00", "timezone": "UTC"}},
    {"onsite_networks": ["192.0.2.0/24"]}, {"flood_window_s": 0}, {"title_cooldown_s": 0},
    {"retention_days": 1},
])
@pytest.mark.parametrize("state", ["pinned", "trusted"])
def test_tampering_with_any_field_is_rejected(keyholders: Keyholders, edit: dict[str, Any],
                                             state: str) -> None:
    signed = policy.sign(_policy(keyholders.publics, serial=2), keyholders.head.key)
    body = json.loads(signed.body)
    body.update(edit)
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    tampered = replace(signed, body=raw)
    trust = Trust.pinned(keyholders.keyset_fingerprint) if state == "pinned" else \
        _accepted(keyholders)[1]
    with pytest.raises(UntrustedPolicy, match="signature"):
        policy.verify(tampered, trust)


def test_tampering_with_the_keyholder_list_is_rejected(keyholders: Keyholders,
                                                       stranger_key: Keyholder) -> None:
    signed = policy.sign(_policy(keyholders.publics), keyholders.head.key)
    body = json.loads(signed.body)
    body["keyholders"].append(json.loads(stranger_key.public.to_bytes()))
    body["keyset_fingerprint"] = keys.keyset_fingerprint([*keyholders.publics,
                                                          stranger_key.public])
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    with pytest.raises(UntrustedPolicy, match="pinned"):
        policy.verify(replace(signed, body=raw), Trust.pinned(keyholders.keyset_fingerprint))
    with pytest.raises(UntrustedPolicy, match="signature"):
        policy.verify(replace(signed, body=raw), _accepted(keyholders)[1])


@pytest.mark.parametrize("part", ["body", "signature"])
def test_flipped_bits_are_rejected(keyholders: Keyholders, part: str) -> None:
    signed = policy.sign(_policy(keyholders.publics, serial=2), keyholders.head.key)
    _, trust = _accepted(keyholders)
    for at in range(0, len(getattr(signed, part)), max(1, len(getattr(signed, part)) // 40)):
        raw = bytearray(getattr(signed, part))
        raw[at] ^= 0x04
        with pytest.raises(PolicyError):
            policy.verify(replace(signed, **{part: bytes(raw)}), trust)


def test_a_policy_signed_by_a_stranger_is_rejected(keyholders: Keyholders,
                                                   stranger_key: Keyholder) -> None:
    # The stranger signs the school's real keyholder set...
    signed = policy.sign(_policy(keyholders.publics), stranger_key.key)
    with pytest.raises(UntrustedPolicy):
        policy.verify(signed, Trust.pinned(keyholders.keyset_fingerprint))
    with pytest.raises(UntrustedPolicy, match="does not trust"):
        policy.verify(replace(signed, body=policy.sign(_policy(keyholders.publics, serial=2),
                                                       stranger_key.key).body),
                      _accepted(keyholders)[1])
    # ...or a set with itself in it, which does not match the pin.
    own = policy.sign(_policy([*keyholders.publics, stranger_key.public]), stranger_key.key)
    with pytest.raises(UntrustedPolicy, match="pinned"):
        policy.verify(own, Trust.pinned(keyholders.keyset_fingerprint))
    with pytest.raises(UntrustedPolicy, match="does not trust"):
        policy.verify(policy.sign(_policy([*keyholders.publics, stranger_key.public], serial=2),
                                  stranger_key.key), _accepted(keyholders)[1])


def test_claiming_a_trusted_signer_with_a_strangers_signature(keyholders: Keyholders,
                                                              stranger_key: Keyholder) -> None:
    forged = policy.sign(_policy(keyholders.publics, serial=2), stranger_key.key)
    forged = replace(forged, signer=keyholders.head.fingerprint)
    with pytest.raises(UntrustedPolicy, match="signature"):
        policy.verify(forged, _accepted(keyholders)[1])
    with pytest.raises(UntrustedPolicy, match="signature"):
        policy.verify(forged, Trust.pinned(keyholders.keyset_fingerprint))


def test_set_changed_by_a_trusted_keyholder_is_accepted_and_pinned(
        keyholders: Keyholders, tmp_path: Any) -> None:
    from tests.fixtures.keys import make_keyholder

    new_head = make_keyholder(tmp_path, "Nina New Head", "head")
    _, trust = _accepted(keyholders)
    new_set = [new_head.public, keyholders.technician.public, keyholders.recovery.public]
    signed = policy.sign(_policy(new_set, serial=2), keyholders.head.key)  # the old head hands over
    accepted, trust2 = policy.verify(signed, trust)
    assert trust2.keyholders == tuple(new_set)
    assert trust2.keyset_fingerprint == keys.keyset_fingerprint(new_set)
    assert accepted.keyset_fingerprint == trust2.keyset_fingerprint
    # the new head is now trusted to sign...
    _, trust3 = policy.verify(policy.sign(_policy(new_set, serial=3), new_head.key), trust2)
    assert trust3.serial == 3
    # ...and the trust survives being saved to the agent's config
    assert Trust.from_json(trust3.to_json()) == trust3


def test_set_changed_by_a_removed_keyholder_is_rejected(keyholders: Keyholders,
                                                        tmp_path: Any) -> None:
    from tests.fixtures.keys import make_keyholder

    new_head = make_keyholder(tmp_path, "Nina New Head", "head")
    _, trust = _accepted(keyholders)
    without_head = [new_head.public, keyholders.technician.public, keyholders.recovery.public]
    _, trust2 = policy.verify(policy.sign(_policy(without_head, serial=2),
                                          keyholders.technician.key), trust)
    # The removed head tries to put themselves back (with a higher serial).
    comeback = policy.sign(_policy(keyholders.publics, serial=3), keyholders.head.key)
    with pytest.raises(UntrustedPolicy, match="does not trust"):
        policy.verify(comeback, trust2)


def test_rollback_is_rejected(keyholders: Keyholders) -> None:
    _, trust = _accepted(keyholders)
    v5 = policy.sign(_policy(keyholders.publics, serial=5), keyholders.head.key)
    _, trust5 = policy.verify(v5, trust)
    older = policy.sign(_policy(keyholders.publics, serial=4), keyholders.head.key)
    with pytest.raises(UntrustedPolicy, match="rollback"):
        policy.verify(older, trust5)
    other_5 = policy.sign(_policy(keyholders.publics, serial=5, notice="x"), keyholders.head.key)
    with pytest.raises(UntrustedPolicy, match="rollback"):
        policy.verify(other_5, trust5)
    # Fetching the same policy again changes nothing.
    again, trust_again = policy.verify(v5, trust5)
    assert trust_again == trust5 and again.serial == 5


def test_the_first_policy_must_be_signed_by_one_of_its_own_keyholders(
        keyholders: Keyholders) -> None:
    pin = keys.keyset_fingerprint([keyholders.technician.public])
    signed = policy.sign(_policy([keyholders.technician.public]), keyholders.head.key)
    with pytest.raises(UntrustedPolicy, match="pinned keyholders"):
        policy.verify(signed, Trust.pinned(pin))


# --- formats and validation -----------------------------------------------------------------------


def test_policy_body_round_trip_and_wire_format(keyholders: Keyholders) -> None:
    original = _policy(keyholders.publics)
    assert Policy.from_body(original.to_body()) == original
    signed = policy.sign(original, keyholders.head.key)
    wire = json.loads(signed.to_bytes())
    assert set(wire) == {"format", "version", "body", "signer", "signature"}
    assert base64.b64decode(wire["body"]) == original.to_body()
    assert SignedPolicy.from_bytes(signed.to_bytes()) == signed
    assert signed.digest.startswith("sha256:")


@pytest.mark.parametrize("garbage", [b"", b"[]", b"{}", b"\xff",
                                     b'{"format":"vigil-signed-policy"}',
                                     (b'{"format":"vigil-signed-policy","version":1,"body":"!",'
                                      b'"signer":"x","signature":""}')])
def test_garbage_signed_policies(keyholders: Keyholders, garbage: bytes) -> None:
    with pytest.raises(PolicyError):
        policy.verify(garbage, Trust.pinned(keyholders.keyset_fingerprint))


@pytest.mark.parametrize("edit", [
    {"format": "other"}, {"version": 2}, {"extra": 1}, {"serial": 0}, {"serial": "2"},
    {"keyholders": []}, {"keyholders": "x"}, {"wordlists_digest": "sha256:00"},
    {"keyset_fingerprint": "vks1:abc"}, {"issued_at": "not a time"},
    {"capture": {"format": "bmp", "quality": 70, "scale": 1.0, "all_monitors": False}},
    {"capture": {"format": "png"}}, {"schedule": {"days": ["someday"]}},
    {"screen": {"enabled": True}}, {"screen": "on"},
    {"screen": {"enabled": 1, "interval_s": 5, "images": True, "on_battery": False}},
])
def test_malformed_bodies_signed_by_a_trusted_key_are_policy_errors(
        keyholders: Keyholders, edit: dict[str, Any]) -> None:
    signed = policy.sign(_policy(keyholders.publics, serial=2), keyholders.head.key)
    with pytest.raises(PolicyError):
        policy.verify(_resign_body(signed, edit, keyholders.head), _accepted(keyholders)[1])


def test_non_canonical_body_is_refused(keyholders: Keyholders) -> None:
    signed = policy.sign(_policy(keyholders.publics), keyholders.head.key)
    spaced = json.dumps(json.loads(signed.body), indent=1).encode()
    with pytest.raises(PolicyError, match="canonical"):
        Policy.from_body(spaced)


@pytest.mark.parametrize("changes", [
    {"serial": 0}, {"issued_at": datetime(2026, 1, 1)},
    {"wordlists": {"../etc/passwd.toml": ""}}, {"wordlists": {"a.txt": ""}},
    {"wordlists": {"suicide.toml": ""}}, {"wordlists": {"other/suicide.toml": ""}},
    {"onsite_networks": ("10.0.0.0/33",)}, {"onsite_networks": ("school",)},
    {"flood_window_s": -1}, {"retention_days": 0}, {"notice": "x" * 20_001},
])
def test_invalid_policies_cannot_be_built(keyholders: Keyholders, changes: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        _policy(keyholders.publics, **changes)


def test_empty_or_duplicate_keyholders_are_refused(keyholders: Keyholders) -> None:
    with pytest.raises(PolicyError, match="1..32"):
        _policy([])
    with pytest.raises(PolicyError, match="twice"):
        _policy([keyholders.head.public, keyholders.head.public])


@pytest.mark.parametrize("kwargs", [
    {"format": "gif"}, {"quality": 0}, {"quality": 101}, {"scale": 0.05}, {"scale": 2},
    {"all_monitors": "yes"},
])
def test_capture_settings_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        CaptureSettings(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"days": ()}, {"days": ("mon", "mon")}, {"start": "7:30"}, {"end": "25:00"},
    {"start": "18:00", "end": "07:30"}, {"timezone": "Mars/Olympus"},
])
def test_schedule_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        Schedule(**kwargs)


def test_schedule_active_at_uses_the_school_time_zone() -> None:
    schedule = Schedule(days=("mon", "tue", "wed", "thu", "fri"), start="08:00", end="16:00")
    # Monday 23 Nov 2026, GMT (UTC+0) in winter; 1 June 2026 is a Monday in BST (UTC+1).
    assert schedule.active_at(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    assert not schedule.active_at(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))
    assert not schedule.active_at(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))  # Sunday
    assert schedule.active_at(datetime(2026, 6, 1, 7, 0, tzinfo=UTC))  # 08:00 BST
    assert not schedule.active_at(datetime(2026, 6, 1, 15, 0, tzinfo=UTC))  # 16:00 BST
    assert Schedule().active_at(datetime(2026, 11, 22, 23, 59, tzinfo=UTC))


def test_trust_records(keyholders: Keyholders) -> None:
    pinned = Trust.pinned(keyholders.keyset_fingerprint)
    assert Trust.from_json(pinned.to_json()) == pinned
    _, trust = _accepted(keyholders)
    document = json.loads(trust.to_json())
    document["keyholders"] = document["keyholders"][:1]  # a shrunk set no longer matches its pin
    with pytest.raises(PolicyError, match="fingerprint"):
        Trust.from_json(json.dumps(document))
    with pytest.raises(PolicyError):
        Trust.from_json("{}")
    with pytest.raises(PolicyError):
        Trust.pinned("vk1:not-a-keyset")


def test_policies_made_with_x25519_keys(tmp_path: Any) -> None:
    _, key = keys.create("X Head", "head", "password 1234", kem=keys.Kem.X25519, kdf=FAST_TEST_KDF)
    signed = policy.sign(_policy([key.public]), key)
    accepted, trust = policy.verify(signed, Trust.pinned(keys.keyset_fingerprint([key.public])))
    assert accepted.keyholders[0].kem is keys.Kem.X25519 and trust.serial == 1


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
                min_size=1, max_size=3), st.one_of(st.none(), st.integers(min_value=0)),
       st.booleans())
def test_random_corruption_of_a_signed_policy_is_never_accepted_as_something_else(
        keyholders: Keyholders, flips: list[tuple[int, int]], cut: int | None,
        pinned: bool) -> None:
    original = policy.sign(_policy(keyholders.publics, serial=2), keyholders.head.key)
    wire = bytearray(original.to_bytes())
    for at, mask in flips:
        wire[at % len(wire)] ^= mask
    corrupted = bytes(wire)[: cut % len(wire)] if cut is not None else bytes(wire)
    trust = Trust.pinned(keyholders.keyset_fingerprint) if pinned else _accepted(keyholders)[1]
    try:
        accepted, _ = policy.verify(corrupted, trust)
    except PolicyError:
        return
    except Exception as exc:  # noqa: BLE001 - the property: nothing but our own error
        pytest.fail(f"{type(exc).__name__}: {exc}")
    # Only a change that means nothing (unused low bits of a base64 character) may pass.
    assert accepted.to_body() == original.body


@pytest.mark.parametrize("kwargs", [
    {"enabled": "yes"}, {"interval_s": 0}, {"interval_s": 3601}, {"interval_s": 2.5},
    {"images": None}, {"on_battery": 1},
])
def test_screen_settings_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        ScreenSettings(**kwargs)


def test_screen_reading_is_signed_and_a_policy_from_before_it_still_verifies(
        keyholders: Keyholders) -> None:
    on = _policy(keyholders.publics, screen=ScreenSettings(enabled=True, interval_s=10))
    assert Policy.from_body(on.to_body()).screen == ScreenSettings(enabled=True, interval_s=10)
    # a pupil's edit of the switch breaks the signature like any other field
    signed = policy.sign(replace(on, serial=2), keyholders.head.key)
    flipped = json.loads(signed.body)
    flipped["screen"]["enabled"] = False
    forged = SignedPolicy(json.dumps(flipped, sort_keys=True, separators=(",", ":")).encode(),
                          signed.signer, signed.signature)
    with pytest.raises(PolicyError):
        policy.verify(forged, _accepted(keyholders)[1])
    # a policy signed before the field existed (no "screen"): screen reading off
    old = json.loads(_policy(keyholders.publics, serial=2).to_body())
    del old["screen"]
    body = json.dumps(old, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    legacy = SignedPolicy(body, keyholders.head.fingerprint,
                          keyholders.head.key.sign(b"vigil signed policy v1\0" + body))
    accepted, _ = policy.verify(legacy, _accepted(keyholders)[1])
    assert accepted.screen == ScreenSettings() and not accepted.screen.enabled

"""Keyholder key files: create, unlock, change password, file formats and every failure."""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import keys
from core.errors import KeyFileError, VigilError, WeakPassword, WrongPassword
from tests.fixtures.keys import FAST_TEST_KDF, Keyholder

PASSWORD = "a long enough password"


@pytest.mark.parametrize("kem", list(keys.Kem))
def test_create_unlock_round_trip_for_each_kem(kem: keys.Kem) -> None:
    key_file, key = keys.create("Ms Head", "head", PASSWORD, kem=kem, kdf=FAST_TEST_KDF)
    loaded = keys.KeyFile.from_bytes(key_file.to_bytes())
    unlocked = loaded.unlock(PASSWORD)
    assert unlocked.fingerprint == key.fingerprint == key_file.fingerprint
    assert unlocked.public == key.public
    assert (unlocked.name, unlocked.role, unlocked.kem) == ("Ms Head", "head", kem)
    message = b"policy body"
    assert key.public.verify(unlocked.sign(message), message)
    sealed = key.public.seal_secret(b"k" * 32, b"info")
    assert unlocked.open_secret(sealed, b"info") == b"k" * 32


def test_default_kdf_is_argon2id_with_recorded_parameters() -> None:
    key_file, _ = keys.create("Default", "technician", PASSWORD)
    document = json.loads(key_file.to_bytes())
    assert document["kdf"]["name"] == "argon2id"
    assert document["kdf"]["time_cost"] == 3
    assert document["kdf"]["memory_kib"] == 128 * 1024
    assert document["kdf"]["parallelism"] == 1
    assert len(keys.KeyFile.from_bytes(key_file.to_bytes()).kdf.params) == 3
    assert keys.KeyFile.from_bytes(key_file.to_bytes()).unlock(PASSWORD).role == "technician"


def test_scrypt_is_selectable_and_recorded() -> None:
    key_file, key = keys.create("Scrypt", "recovery", PASSWORD, kdf=keys.Kdf.scrypt(log2_n=10))
    document = json.loads(key_file.to_bytes())
    assert {k: document["kdf"][k] for k in ("name", "log2_n", "r", "p")} == {
        "name": "scrypt", "log2_n": 10, "r": 8, "p": 1}
    assert keys.KeyFile.from_bytes(key_file.to_bytes()).unlock(PASSWORD).fingerprint == \
        key.fingerprint


def test_fast_test_kdf_is_recorded_as_such(head_key: Keyholder) -> None:
    document = json.loads(head_key.path.read_bytes())
    assert document["kdf"] == {"name": "argon2id", "time_cost": 1, "memory_kib": 8,
                               "parallelism": 1, "salt": document["kdf"]["salt"]}


def test_wrong_password_is_refused(head_key: Keyholder) -> None:
    with pytest.raises(WrongPassword, match="wrong password"):
        head_key.key_file.unlock(head_key.password + "x")
    with pytest.raises(WrongPassword):
        head_key.key_file.unlock("")


@pytest.mark.parametrize("password", ["", "short", "elevenchars", " " * 3 + "abc"])
def test_short_passwords_are_weak(password: str) -> None:
    with pytest.raises(WeakPassword, match="at least 12 characters"):
        keys.create("Weak", "head", password, kdf=FAST_TEST_KDF)


def test_twelve_characters_are_enough_and_counted_as_characters() -> None:
    keys.check_password("twelve chars")
    keys.check_password("ééééééééééé1")  # 12 characters, 23 bytes
    with pytest.raises(WeakPassword):
        keys.check_password("é" * 11)


def test_password_is_unicode_normalised() -> None:
    composed = "mot de passe café ok"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    key_file, key = keys.create("Unicode", "head", composed, kdf=FAST_TEST_KDF)
    assert key_file.unlock(decomposed).fingerprint == key.fingerprint


def test_change_password_keeps_the_keys(head_key: Keyholder) -> None:
    new = "a completely new password"
    changed = head_key.key_file.change_password(head_key.password, new)
    assert changed.fingerprint == head_key.fingerprint
    assert changed.public == head_key.public
    assert changed.salt != head_key.key_file.salt
    assert changed.kdf == head_key.key_file.kdf
    reloaded = keys.KeyFile.from_bytes(changed.to_bytes())
    assert reloaded.unlock(new).fingerprint == head_key.fingerprint
    with pytest.raises(WrongPassword):
        reloaded.unlock(head_key.password)


def test_change_password_refuses_weak_new_and_wrong_old(head_key: Keyholder) -> None:
    with pytest.raises(WeakPassword):
        head_key.key_file.change_password(head_key.password, "too short")
    with pytest.raises(WrongPassword):
        head_key.key_file.change_password("not the password", "a good new password")


def test_change_password_can_raise_kdf_parameters(head_key: Keyholder) -> None:
    stronger = keys.Kdf.argon2id(time_cost=2, memory_kib=64)
    changed = head_key.key_file.change_password(head_key.password, PASSWORD, kdf=stronger)
    assert changed.kdf == stronger
    assert changed.unlock(PASSWORD).fingerprint == head_key.fingerprint


def test_files_on_disk_have_private_mode_and_refuse_overwrite(tmp_path: Path) -> None:
    key_file, _ = keys.create("Disk", "head", PASSWORD, kdf=FAST_TEST_KDF)
    private, public = keys.save_key_files(tmp_path / "disk.key", key_file)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(public).st_mode) == 0o644
    assert public == tmp_path / "disk.key.pub"
    assert keys.load_key_file(private) == key_file
    assert keys.load_public_key(public) == key_file.public
    assert keys.load_public_key(private) == key_file.public  # a key file also serves as public
    with pytest.raises(KeyFileError, match="already exists"):
        keys.save_key_files(private, key_file)
    assert keys.load_key_file(private) == key_file
    keys.save_key_files(private, key_file, overwrite=True)
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_missing_and_wrong_kind_of_files(tmp_path: Path, head_key: Keyholder) -> None:
    with pytest.raises(KeyFileError, match="cannot read"):
        keys.load_key_file(tmp_path / "absent.key")
    with pytest.raises(KeyFileError, match="public key"):
        keys.load_key_file(head_key.pub_path)
    big = tmp_path / "big.key"
    big.write_bytes(b" " * 100_000)
    with pytest.raises(KeyFileError, match="too large"):
        keys.load_key_file(big)


def test_secrets_never_appear_in_repr_or_file(head_key: Keyholder) -> None:
    text = repr(head_key.key) + repr(head_key.key_file)
    assert head_key.fingerprint in repr(head_key.key)
    assert "hpke_raw" not in text and "ciphertext=" not in text
    assert head_key.password.encode() not in head_key.path.read_bytes()


def test_fingerprints() -> None:
    _, a = keys.create("A", "head", PASSWORD, kdf=FAST_TEST_KDF)
    _, b = keys.create("B", "technician", PASSWORD, kdf=FAST_TEST_KDF, kem=keys.Kem.X25519)
    assert a.fingerprint.startswith("vk1:") and len(a.fingerprint) == 4 + 52
    assert keys.keyset_fingerprint([a.public, b.public]) == \
        keys.keyset_fingerprint([b.public, a.public])
    assert keys.keyset_fingerprint([a.public]) != keys.keyset_fingerprint([a.public, b.public])
    assert keys.keyset_fingerprint([a.public]).startswith("vks1:")
    renamed = keys.PublicKey("A2", "head", a.kem, a.public.hpke_public, a.public.sign_public)
    assert renamed.fingerprint != a.fingerprint  # name and role are part of the identity
    with pytest.raises(KeyFileError):
        keys.keyset_fingerprint([])


def test_public_key_round_trip_and_fingerprint_check(head_key: Keyholder) -> None:
    data = head_key.public.to_bytes()
    assert keys.PublicKey.from_bytes(data) == head_key.public
    document = json.loads(data)
    document["role"] = "recovery"
    with pytest.raises(KeyFileError, match="fingerprint does not match"):
        keys.PublicKey.from_dict(document)
    del document["fingerprint"]  # without a claimed fingerprint the material still has to parse
    assert keys.PublicKey.from_dict(document).role == "recovery"


@pytest.mark.parametrize("name", ["", " ", "x" * 101, "bad\nname", "tab\there"])
def test_bad_names_and_roles(name: str) -> None:
    with pytest.raises(KeyFileError):
        keys.create(name, "head", PASSWORD, kdf=FAST_TEST_KDF)
    with pytest.raises(KeyFileError, match="unknown role"):
        keys.create("Name", "governor", PASSWORD, kdf=FAST_TEST_KDF)


# --- tampering with every field of a key file ---------------------------------------------------


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        document = document[part]
    document[path[-1]] = value


def _flip_b64(value: str) -> str:
    import base64

    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


TAMPERS: list[tuple[tuple[str, ...], Any]] = [
    (("format",), "vigil-something"),
    (("version",), 2),
    (("public", "name"), "Mallory"),
    (("public", "role"), "recovery"),
    (("public", "kem"), "x25519"),
    (("public", "hpke_public"), _flip_b64),
    (("public", "sign_public"), _flip_b64),
    (("public", "fingerprint"), "vk1:" + "a" * 52),
    (("kdf", "name"), "scrypt"),
    (("kdf", "time_cost"), 2),
    (("kdf", "memory_kib"), 16),
    (("kdf", "parallelism"), 2),
    (("kdf", "memory_kib"), 1 << 40),
    (("kdf", "salt"), _flip_b64),
    (("kdf", "salt"), "not base64!"),
    (("cipher", "name"), "chacha20"),
    (("cipher", "nonce"), _flip_b64),
    (("private",), _flip_b64),
    (("private",), ""),
    (("public",), "nothing"),
    (("kdf",), None),
]


@pytest.mark.parametrize(("path", "value"), TAMPERS, ids=lambda v: str(v)[:30])
def test_tampering_with_any_field_fails_cleanly(head_key: Keyholder, path: tuple[str, ...],
                                                value: Any) -> None:
    document = json.loads(head_key.key_file.to_bytes())
    old = document
    for part in path[:-1]:
        old = old[part]
    _set(document, path, value(old[path[-1]]) if callable(value) else value)
    data = json.dumps(document).encode()
    with pytest.raises(KeyFileError):
        keys.KeyFile.from_bytes(data).unlock(head_key.password)


def test_swapped_public_half_is_detected(head_key: Keyholder, technician_key: Keyholder) -> None:
    # Re-sealing the head's private halves under the technician's public halves must not unlock.
    document = json.loads(head_key.key_file.to_bytes())
    document["public"] = json.loads(technician_key.public.to_bytes())
    with pytest.raises(KeyFileError):
        keys.KeyFile.from_bytes(json.dumps(document).encode()).unlock(head_key.password)


def test_every_truncation_of_a_key_file_fails_cleanly(technician_key: Keyholder) -> None:
    data = technician_key.key_file.to_bytes().rstrip(b"\n")
    for cut in range(0, len(data), 37):
        with pytest.raises(KeyFileError):
            keys.KeyFile.from_bytes(data[:cut]).unlock(technician_key.password)


@pytest.mark.parametrize("garbage", [b"", b"[]", b"\xff\xfe", b"{", b'{"format": "vigil-key"}',
                                     b"null", b"[" * 100_000])
def test_garbage_key_files(garbage: bytes) -> None:
    with pytest.raises(KeyFileError):
        keys.KeyFile.from_bytes(garbage)
    with pytest.raises(VigilError):
        keys.PublicKey.from_bytes(garbage)


def test_kdf_parameters_from_a_file_are_bounded() -> None:
    with pytest.raises(KeyFileError, match="1 GiB"):
        keys.Kdf("scrypt", {"log2_n": 22, "r": 32, "p": 1}).validated()
    with pytest.raises(KeyFileError, match="outside"):
        keys.Kdf("argon2id", {"time_cost": 3, "memory_kib": 2 * 1024 * 1024,
                              "parallelism": 1}).validated()
    with pytest.raises(KeyFileError, match="exactly"):
        keys.Kdf("argon2id", {"time_cost": 3}).validated()
    with pytest.raises(KeyFileError, match="outside"):
        keys.Kdf("argon2id", {"time_cost": True, "memory_kib": 64, "parallelism": 1}).validated()


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
                min_size=1, max_size=3), st.one_of(st.none(), st.integers(min_value=0)))
def test_random_corruption_of_a_key_file_never_yields_another_key(
        technician_key: Keyholder, flips: list[tuple[int, int]], cut: int | None) -> None:
    original = technician_key.key_file.to_bytes()
    data = bytearray(original)
    for at, mask in flips:
        data[at % len(data)] ^= mask
    corrupted = bytes(data)[: cut % len(data)] if cut is not None else bytes(data)
    try:
        unlocked = keys.KeyFile.from_bytes(corrupted).unlock(technician_key.password)
    except KeyFileError:
        return
    except Exception as exc:  # noqa: BLE001 - the property: nothing but our own error
        pytest.fail(f"{type(exc).__name__}: {exc}")
    # Only a change that means nothing (e.g. unused low bits of a base64 character) may unlock,
    # and then it must be exactly the same key.
    assert unlocked.fingerprint == technician_key.fingerprint
    assert unlocked._secret_json() == technician_key.key._secret_json()

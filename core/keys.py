"""Keyholder keys: an HPKE key pair for opening captures and an Ed25519 pair for signing policy.

A key file (``PATH``) holds both private halves encrypted under a key derived from the keyholder's
password; ``PATH.pub`` holds the public halves. The formats are described in docs/crypto.md.

The password KDF is slow on purpose (about half a second here) so that a stolen key file cannot be
guessed at speed. Tests use :meth:`Kdf.insecure_fast_for_tests`, which the file records like any
other parameters.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import os
import secrets
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core._canonical import b32_digest, b64d, b64e, canonical_json, parse_json_object
from core.errors import KeyFileError, WeakPassword, WrongPassword

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "ROLES",
    "Kdf",
    "Kem",
    "KeyFile",
    "PrivateKey",
    "PublicKey",
    "check_password",
    "create",
    "keyset_fingerprint",
    "load_key_file",
    "load_public_key",
    "save_key_files",
]

ROLES = ("head", "technician", "recovery")
MIN_PASSWORD_LENGTH = 12
KEY_FORMAT = "vigil-key"
PUBLIC_FORMAT = "vigil-public-key"
FORMAT_VERSION = 1
_MAX_NAME = 100
_MAX_FILE_BYTES = 64 * 1024

_X25519_LEN = 32
_MLKEM768_SEED_LEN = 64
_MLKEM768_PUBLIC_LEN = 1184


class Kem(str, enum.Enum):
    """The HPKE key-encapsulation mechanism of a keyholder's key."""

    HYBRID = "mlkem768-x25519"  # post-quantum hybrid: captures kept for years stay sealed
    X25519 = "x25519"

    @property
    def suite(self) -> hpke.Suite:
        kem = hpke.KEM.MLKEM768_X25519 if self is Kem.HYBRID else hpke.KEM.X25519
        return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

    @classmethod
    def parse(cls, value: object) -> Kem:
        try:
            return cls(value)
        except ValueError:
            raise KeyFileError(f"unsupported key type {value!r}") from None


# --- password KDF ---------------------------------------------------------------------------------

# Upper bounds on parameters read from a file: a crafted key file must not make an unlock
# allocate gigabytes or run for hours.
_ARGON2_LIMITS = {"time_cost": (1, 64), "memory_kib": (8, 1024 * 1024), "parallelism": (1, 16)}
_SCRYPT_LIMITS = {"log2_n": (4, 22), "r": (1, 32), "p": (1, 16)}
_MAX_KDF_MEMORY = 1 << 30


@dataclass(frozen=True)
class Kdf:
    """Password-based key derivation: a name and its cost parameters, stored in the key file."""

    name: str
    params: dict[str, int]

    @classmethod
    def argon2id(cls, time_cost: int = 3, memory_kib: int = 128 * 1024,
                 parallelism: int = 1) -> Kdf:
        """The default: Argon2id, 128 MiB, 3 passes; about 0.4 s per unlock on a quiet 2-core VM."""
        return cls("argon2id", {"time_cost": time_cost, "memory_kib": memory_kib,
                                "parallelism": parallelism}).validated()

    @classmethod
    def scrypt(cls, log2_n: int = 17, r: int = 8, p: int = 1) -> Kdf:
        """scrypt, N=2^17, r=8 (128 MiB); for sites that prefer it to Argon2id."""
        return cls("scrypt", {"log2_n": log2_n, "r": r, "p": p}).validated()

    @classmethod
    def insecure_fast_for_tests(cls) -> Kdf:
        """Argon2id with the smallest parameters: milliseconds per unlock. TESTS ONLY.

        A key file made with these is recorded as such (time_cost=1, memory_kib=8) and can be
        guessed quickly if stolen; never use it for a real keyholder.
        """
        return cls("argon2id", {"time_cost": 1, "memory_kib": 8, "parallelism": 1}).validated()

    @classmethod
    def by_name(cls, name: str) -> Kdf:
        if name == "argon2id":
            return cls.argon2id()
        if name == "scrypt":
            return cls.scrypt()
        raise KeyFileError(f"unknown KDF {name!r}; use argon2id or scrypt")

    def validated(self) -> Kdf:
        limits = {"argon2id": _ARGON2_LIMITS, "scrypt": _SCRYPT_LIMITS}.get(self.name)
        if limits is None:
            raise KeyFileError(f"unsupported KDF {self.name!r}")
        if set(self.params) != set(limits):
            raise KeyFileError(f"KDF {self.name} needs exactly {sorted(limits)}")
        for key, (low, high) in limits.items():
            value = self.params[key]
            if type(value) is not int or not low <= value <= high:
                raise KeyFileError(f"KDF parameter {key}={value!r} is outside {low}..{high}")
        if self.name == "argon2id" and self.params["memory_kib"] < 8 * self.params["parallelism"]:
            raise KeyFileError("KDF memory_kib must be at least 8 x parallelism")
        scrypt_memory = 128 * (1 << self.params.get("log2_n", 0)) * self.params.get("r", 0)
        if self.name == "scrypt" and scrypt_memory > _MAX_KDF_MEMORY:
            raise KeyFileError("scrypt parameters would need more than 1 GiB of memory")
        return self

    def derive(self, password: str, salt: bytes) -> bytes:
        secret = _password_bytes(password)
        if self.name == "argon2id":
            from argon2.low_level import Type, hash_secret_raw

            return hash_secret_raw(
                secret, salt, time_cost=self.params["time_cost"],
                memory_cost=self.params["memory_kib"], parallelism=self.params["parallelism"],
                hash_len=32, type=Type.ID,
            )
        n, r, p = 1 << self.params["log2_n"], self.params["r"], self.params["p"]
        return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=32,
                              maxmem=129 * n * r * p + (1 << 20))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}

    @classmethod
    def from_dict(cls, value: object) -> Kdf:
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise KeyFileError("key file has no valid 'kdf' section")
        params = {k: v for k, v in value.items() if k not in ("name", "salt")}
        return cls(value["name"], params).validated()


def _password_bytes(password: str) -> bytes:
    # NFC so that the same password typed on different systems (composed or decomposed accents)
    # derives the same key.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def check_password(password: str) -> None:
    """Raise WeakPassword unless ``password`` has at least MIN_PASSWORD_LENGTH characters."""
    if not isinstance(password, str):
        raise WeakPassword("the password must be text")
    if len(unicodedata.normalize("NFC", password)) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters; "
            "a short sentence is easy to remember"
        )


# --- public keys ----------------------------------------------------------------------------------


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise KeyFileError(f"a key name must be 1..{_MAX_NAME} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise KeyFileError("a key name must not contain control characters")
    return name


def _check_role(role: object) -> str:
    if role not in ROLES:
        raise KeyFileError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return str(role)


@dataclass(frozen=True)
class PublicKey:
    """A keyholder's public halves: what agents seal to, and what checks their policy signatures."""

    name: str
    role: str
    kem: Kem
    hpke_public: bytes = field(repr=False)
    sign_public: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_role(self.role)
        object.__setattr__(self, "kem", Kem.parse(self.kem))  # accept "x25519" as well as Kem
        expected = _X25519_LEN + (_MLKEM768_PUBLIC_LEN if self.kem is Kem.HYBRID else 0)
        if len(self.hpke_public) != expected or len(self.sign_public) != 32:
            raise KeyFileError("public key material has the wrong length")
        try:
            self._hpke_key()
            ed25519.Ed25519PublicKey.from_public_bytes(self.sign_public)
        except ValueError:
            raise KeyFileError("public key material is not a valid key") from None

    def _material(self) -> dict[str, Any]:
        return {
            "name": self.name, "role": self.role, "kem": self.kem.value,
            "hpke_public": b64e(self.hpke_public), "sign_public": b64e(self.sign_public),
        }

    @functools.cached_property
    def fingerprint(self) -> str:
        """"vk1:" + base32 SHA-256 of the canonical public material, name and role included."""
        return b32_digest("vk1:", canonical_json(self._material()))

    def _hpke_key(self) -> Any:
        if self.kem is Kem.X25519:
            return x25519.X25519PublicKey.from_public_bytes(self.hpke_public)
        ml = mlkem.MLKEM768PublicKey.from_public_bytes(self.hpke_public[:_MLKEM768_PUBLIC_LEN])
        xp = x25519.X25519PublicKey.from_public_bytes(self.hpke_public[_MLKEM768_PUBLIC_LEN:])
        return hpke.MLKEM768X25519PublicKey(ml, xp)

    def seal_secret(self, secret: bytes, info: bytes) -> bytes:
        """HPKE-seal ``secret`` (a data key) to this key; ``info`` binds it to its context."""
        return self.kem.suite.encrypt(secret, self._hpke_key(), info=info)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is this keyholder's Ed25519 signature over ``message``."""
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.sign_public).verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"format": PUBLIC_FORMAT, "version": FORMAT_VERSION, **self._material(),
                "fingerprint": self.fingerprint}

    @classmethod
    def from_dict(cls, value: object) -> PublicKey:
        if not isinstance(value, dict):
            raise KeyFileError("public key is not a JSON object")
        if (value.get("format") not in (PUBLIC_FORMAT, None)
                or value.get("version") != FORMAT_VERSION):
            raise KeyFileError("not a Vigil public key of a supported version")
        key = cls(
            name=_check_name(value.get("name")),
            role=_check_role(value.get("role")),
            kem=Kem.parse(value.get("kem")),
            hpke_public=b64d(value.get("hpke_public"), "hpke_public", KeyFileError),
            sign_public=b64d(value.get("sign_public"), "sign_public", KeyFileError),
        )
        claimed = value.get("fingerprint")
        if claimed is not None and (
            not isinstance(claimed, str) or not hmac.compare_digest(claimed, key.fingerprint)
        ):
            raise KeyFileError("public key fingerprint does not match its material")
        return key

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_dict()) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        return cls.from_dict(parse_json_object(data, "public key", KeyFileError))


def keyset_fingerprint(public_keys: Iterable[PublicKey]) -> str:
    """"vks1:" + base32 SHA-256 over the sorted, de-duplicated key fingerprints."""
    fingerprints = sorted({key.fingerprint for key in public_keys})
    if not fingerprints:
        raise KeyFileError("a keyholder set needs at least one key")
    return b32_digest("vks1:", "\n".join(fingerprints).encode("ascii"))


# --- private keys ---------------------------------------------------------------------------------


def _hpke_pair(kem: Kem, raw: bytes) -> tuple[Any, bytes]:
    """The HPKE private key object for ``raw`` private material, and its public bytes."""
    if kem is Kem.X25519:
        xk = x25519.X25519PrivateKey.from_private_bytes(raw)
        return xk, xk.public_key().public_bytes_raw()
    # Hybrid material is the 64-byte ML-KEM-768 seed followed by the X25519 scalar.
    ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:_MLKEM768_SEED_LEN])
    xk = x25519.X25519PrivateKey.from_private_bytes(raw[_MLKEM768_SEED_LEN:])
    public = ml.public_key().public_bytes_raw() + xk.public_key().public_bytes_raw()
    return hpke.MLKEM768X25519PrivateKey(ml, xk), public


class _PublicView:
    """Name, role and fingerprint, read from the ``public`` attribute."""

    public: PublicKey

    @property
    def fingerprint(self) -> str:
        return self.public.fingerprint

    @property
    def name(self) -> str:
        return self.public.name

    @property
    def role(self) -> str:
        return self.public.role


class PrivateKey(_PublicView):
    """An unlocked keyholder key. Held in memory only; never serialised except by KeyFile."""

    __slots__ = ("_hpke_derived_public", "_hpke_private", "_hpke_raw", "_sign_private", "public")

    def __init__(self, public: PublicKey, hpke_raw: bytes, sign_raw: bytes) -> None:
        expected = _X25519_LEN + (_MLKEM768_SEED_LEN if public.kem is Kem.HYBRID else 0)
        if len(hpke_raw) != expected or len(sign_raw) != 32:
            raise KeyFileError("private key material has the wrong length")
        self.public = public
        self._hpke_raw = hpke_raw
        self._hpke_private, self._hpke_derived_public = _hpke_pair(public.kem, hpke_raw)
        self._sign_private = ed25519.Ed25519PrivateKey.from_private_bytes(sign_raw)

    @classmethod
    def generate(cls, name: str, role: str, kem: Kem = Kem.HYBRID) -> PrivateKey:
        # Any 64 random bytes are a valid ML-KEM-768 seed, any 32 a valid X25519 scalar.
        seed_len = _MLKEM768_SEED_LEN if kem is Kem.HYBRID else 0
        hpke_raw = secrets.token_bytes(seed_len + _X25519_LEN)
        _, hpke_public = _hpke_pair(kem, hpke_raw)
        sign = ed25519.Ed25519PrivateKey.generate()
        public = PublicKey(_check_name(name), _check_role(role), kem, hpke_public,
                           sign.public_key().public_bytes_raw())
        return cls(public, hpke_raw, sign.private_bytes_raw())

    @property
    def kem(self) -> Kem:
        return self.public.kem

    def open_secret(self, sealed: bytes, info: bytes) -> bytes:
        """Open an HPKE-sealed secret; raises InvalidTag (or ValueError) if it is not ours."""
        return self.kem.suite.decrypt(sealed, self._hpke_private, info=info)

    def sign(self, message: bytes) -> bytes:
        return self._sign_private.sign(message)

    def _matches_public(self) -> bool:
        signer = self._sign_private.public_key().public_bytes_raw()
        return (hmac.compare_digest(self._hpke_derived_public, self.public.hpke_public)
                and hmac.compare_digest(signer, self.public.sign_public))

    def _secret_json(self) -> bytes:
        return canonical_json({"hpke": b64e(self._hpke_raw),
                               "sign": b64e(self._sign_private.private_bytes_raw())})

    def __repr__(self) -> str:  # never print the secret halves
        return f"PrivateKey({self.public.name!r}, {self.public.role!r}, {self.fingerprint})"


# --- key files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyFile(_PublicView):
    """A keyholder's key file: the public halves in the clear, the private halves encrypted."""

    public: PublicKey
    kdf: Kdf
    salt: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)

    def _header(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT, "version": FORMAT_VERSION,
            "public": self.public.to_dict(),
            "kdf": {**self.kdf.to_dict(), "salt": b64e(self.salt)},
            "cipher": {"name": "aes-256-gcm", "nonce": b64e(self.nonce)},
        }

    @classmethod
    def seal(cls, key: PrivateKey, password: str, kdf: Kdf | None = None) -> KeyFile:
        """Encrypt ``key``'s private halves under ``password``."""
        check_password(password)
        kdf = (kdf or Kdf.argon2id()).validated()
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        draft = cls(key.public, kdf, salt, nonce, b"")
        wrapping = kdf.derive(password, salt)
        ciphertext = AESGCM(wrapping).encrypt(nonce, key._secret_json(),
                                              canonical_json(draft._header()))
        return cls(key.public, kdf, salt, nonce, ciphertext)

    def unlock(self, password: str) -> PrivateKey:
        """Decrypt the private halves. Slow on purpose (the KDF). Raises WrongPassword."""
        if not isinstance(password, str):
            raise WrongPassword("the password must be text")
        wrapping = self.kdf.derive(password, self.salt)
        try:
            plain = AESGCM(wrapping).decrypt(self.nonce, self.ciphertext,
                                             canonical_json(self._header()))
        except InvalidTag:
            raise WrongPassword(
                f"wrong password for key {self.public.name!r} (or the key file was altered)"
            ) from None
        secret = parse_json_object(plain, "private key", KeyFileError)
        try:
            key = PrivateKey(self.public, b64d(secret.get("hpke"), "hpke", KeyFileError),
                             b64d(secret.get("sign"), "sign", KeyFileError))
        except ValueError:
            raise KeyFileError("private key material is not a valid key") from None
        if not key._matches_public():
            raise KeyFileError("the key file's private and public halves do not match")
        return key

    def change_password(self, old: str, new: str, kdf: Kdf | None = None) -> KeyFile:
        """Re-encrypt under ``new`` with a fresh salt; the keys (and fingerprint) stay the same."""
        check_password(new)
        return KeyFile.seal(self.unlock(old), new, kdf or self.kdf)

    def to_bytes(self) -> bytes:
        return canonical_json({**self._header(), "private": b64e(self.ciphertext)}) + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes) -> KeyFile:
        value = parse_json_object(data, "key file", KeyFileError)
        if value.get("format") != KEY_FORMAT:
            if value.get("format") == PUBLIC_FORMAT:
                raise KeyFileError("this is a public key (.pub); the private key file is needed")
            raise KeyFileError("not a Vigil key file")
        if value.get("version") != FORMAT_VERSION:
            raise KeyFileError(f"unsupported key file version {value.get('version')!r}")
        kdf_section, cipher = value.get("kdf"), value.get("cipher")
        if not isinstance(cipher, dict) or cipher.get("name") != "aes-256-gcm":
            raise KeyFileError("key file has an unsupported cipher")
        kdf = Kdf.from_dict(kdf_section)
        salt = b64d(kdf_section.get("salt"), "salt", KeyFileError)  # type: ignore[union-attr]
        nonce = b64d(cipher.get("nonce"), "nonce", KeyFileError)
        if len(salt) < 16 or len(nonce) != 12:
            raise KeyFileError("key file salt or nonce has the wrong length")
        return cls(PublicKey.from_dict(value.get("public")), kdf, salt, nonce,
                   b64d(value.get("private"), "private", KeyFileError))


def create(name: str, role: str, password: str, kem: Kem = Kem.HYBRID,
           kdf: Kdf | None = None) -> tuple[KeyFile, PrivateKey]:
    """Generate a keyholder's key pairs and protect them with ``password``."""
    check_password(password)
    key = PrivateKey.generate(name, role, Kem(kem))
    return KeyFile.seal(key, password, kdf), key


# --- files on disk --------------------------------------------------------------------------------


def _read_small(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"cannot read key {os.fspath(path)}: {exc.strerror}") from None
    if len(data) > _MAX_FILE_BYTES:
        raise KeyFileError(f"{os.fspath(path)} is too large to be a key")
    return data


def load_key_file(path: str | os.PathLike[str]) -> KeyFile:
    return KeyFile.from_bytes(_read_small(path))


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a ``.pub`` file, or the public half of a private key file."""
    value = parse_json_object(_read_small(path), f"key {os.fspath(path)}", KeyFileError)
    if value.get("format") == KEY_FORMAT:
        return PublicKey.from_dict(value.get("public"))
    return PublicKey.from_dict(value)


def _write_new(path: Path, data: bytes, mode: int, overwrite: bool) -> None:
    # O_BINARY: on Windows os.open is text mode, and a key file must be the bytes it was given
    flags = (os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
             | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise KeyFileError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)


def save_key_files(path: str | os.PathLike[str], key_file: KeyFile, *, overwrite: bool = False
                   ) -> tuple[Path, Path]:
    """Write ``path`` (private, mode 0600) and ``path.pub`` (public, 0644).

    With ``overwrite`` (a password change) the private file is replaced atomically, so a crash
    leaves either the old or the new file, never half of one.
    """
    private_path = Path(path)
    public_path = Path(f"{private_path}.pub")
    if overwrite:
        temp = private_path.with_name(f".{private_path.name}.{secrets.token_hex(4)}.tmp")
        _write_new(temp, key_file.to_bytes(), 0o600, overwrite=False)
        os.replace(temp, private_path)
    else:
        _write_new(private_path, key_file.to_bytes(), 0o600, overwrite=False)
    _write_new(public_path, key_file.public.to_bytes(), 0o644, overwrite=True)
    return private_path, public_path

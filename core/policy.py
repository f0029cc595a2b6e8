"""The signed policy an agent runs under: keyholders, wordlists, capture settings, notice, schedule.

A policy is signed with a keyholder's Ed25519 key. An agent accepts it only when the signer is in
the keyholder set it already trusts (at enrolment: the set whose fingerprint was pinned), and only
when its serial is newer than the last one accepted. So whoever runs the collector can neither add
a key of their own nor replay an older policy. See docs/crypto.md.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core._canonical import b64d, b64e, canonical_json, parse_json_object
from core.errors import KeyFileError, PolicyError, UntrustedPolicy
from core.keys import PrivateKey, PublicKey, keyset_fingerprint
from core.rules import POLICY_LAYERS

__all__ = [
    "CAPTURE_FORMATS",
    "DAYS",
    "CaptureSettings",
    "Policy",
    "Schedule",
    "ScreenSettings",
    "SignedPolicy",
    "Trust",
    "sign",
    "verify",
    "wordlists_digest",
]

POLICY_FORMAT = "vigil-policy"
SIGNED_FORMAT = "vigil-signed-policy"
TRUST_FORMAT = "vigil-trust"
FORMAT_VERSION = 1
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CAPTURE_FORMATS = ("webp", "png", "jpeg")
# Domain separation: a policy signature can never be mistaken for a signature over anything else.
_SIGNING_CONTEXT = b"vigil signed policy v1\x00"
_MAX_BODY = 16 * 1024 * 1024
_MAX_KEYHOLDERS = 32
# "<layer>/<file>.toml": the layer says how the files stack (core.rules.load_policy_files).
_WORDLIST_NAME = re.compile(
    r"(?:" + "|".join(POLICY_LAYERS) + r")/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.toml")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d|24:00")
_BODY_FIELDS = frozenset({
    "format", "version", "serial", "issued_at", "keyholders", "keyset_fingerprint", "wordlists",
    "wordlists_digest", "capture", "notice", "schedule", "onsite_networks", "flood_window_s",
    "title_cooldown_s", "retention_days",
})
# Fields a policy signed before they existed may lack; a missing one takes its default.
_OPTIONAL_FIELDS = frozenset({"screen"})
_CAPTURE_FIELDS = frozenset({"format", "quality", "scale", "all_monitors"})
_SCREEN_FIELDS = frozenset({"enabled", "interval_s", "images", "on_battery"})
_SCHEDULE_FIELDS = frozenset({"days", "start", "end", "timezone"})


def _int(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise PolicyError(f"policy {what} must be a whole number in {low}..{high}, not {value!r}")
    return value


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise PolicyError(f"policy {what} must be text of at most {limit} characters")
    return value


def wordlists_digest(wordlists: Mapping[str, str]) -> str:
    """"sha256:" + hex over the canonical JSON of {file name: TOML text}."""
    return "sha256:" + hashlib.sha256(canonical_json(dict(wordlists))).hexdigest()


@dataclass(frozen=True)
class CaptureSettings:
    """How the agent encodes a screenshot."""

    format: str = "webp"
    quality: int = 70
    scale: float = 1.0
    all_monitors: bool = False

    def __post_init__(self) -> None:
        if self.format not in CAPTURE_FORMATS:
            raise PolicyError(f"capture format must be one of {', '.join(CAPTURE_FORMATS)}")
        _int(self.quality, "capture quality", 1, 100)
        if type(self.scale) not in (int, float) or not 0.1 <= self.scale <= 1.0:
            raise PolicyError("capture scale must be between 0.1 and 1.0")
        object.__setattr__(self, "scale", float(self.scale))
        if type(self.all_monitors) is not bool:
            raise PolicyError("capture all_monitors must be true or false")


@dataclass(frozen=True)
class ScreenSettings:
    """Whether agents read the screen (on-screen text by OCR, and the image check), and how often.

    In the signed policy, not the desktop's settings, because it decides what the school
    monitors: a pupil must not be able to switch it on or off, and the privacy notice states it.
    """

    enabled: bool = False
    interval_s: int = 5  # while the window in front keeps changing, read it at most this often
    images: bool = True  # the nudity check on the same frames
    on_battery: bool = False  # read on battery too (a laptop on battery pauses by default)

    def __post_init__(self) -> None:
        for name in ("enabled", "images", "on_battery"):
            if type(getattr(self, name)) is not bool:
                raise PolicyError(f"screen {name} must be true or false")
        _int(self.interval_s, "screen interval_s", 1, 3600)


@dataclass(frozen=True)
class Schedule:
    """When monitoring is on: the days, a daily window [start, end) and its time zone."""

    days: tuple[str, ...] = DAYS
    start: str = "00:00"
    end: str = "24:00"
    timezone: str = "Europe/London"

    def __post_init__(self) -> None:
        days = tuple(self.days) if isinstance(self.days, list | tuple) else None
        if not days or any(d not in DAYS for d in days) or len(set(days)) != len(days):
            raise PolicyError(f"schedule days must be distinct values from {', '.join(DAYS)}")
        object.__setattr__(self, "days", days)
        for name in ("start", "end"):
            if not isinstance(getattr(self, name), str) or not _HHMM.fullmatch(getattr(self, name)):
                raise PolicyError(f"schedule {name} must be HH:MM (00:00..24:00)")
        if self.start >= self.end:
            raise PolicyError("schedule start must be before its end")
        try:
            ZoneInfo(_text(self.timezone, "schedule timezone", 64))
        except (ZoneInfoNotFoundError, ValueError):
            raise PolicyError(f"unknown time zone {self.timezone!r}") from None

    def active_at(self, when: datetime) -> bool:
        """True when monitoring is on at ``when`` (an aware datetime)."""
        local = when.astimezone(ZoneInfo(self.timezone))
        if DAYS[local.weekday()] not in self.days:
            return False
        start = time.fromisoformat(self.start)
        now = local.time().replace(tzinfo=None)
        return now >= start and (self.end == "24:00" or now < time.fromisoformat(self.end))


@dataclass(frozen=True)
class Policy:
    """Everything an agent runs under. Signed as a whole; see :func:`sign` and :func:`verify`."""

    serial: int
    keyholders: tuple[PublicKey, ...]
    issued_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    wordlists: Mapping[str, str] = field(default_factory=dict)
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    notice: str = ""
    schedule: Schedule = field(default_factory=Schedule)
    onsite_networks: tuple[str, ...] = ()  # CIDRs; empty means monitor everywhere
    flood_window_s: int = 600
    title_cooldown_s: int = 60
    retention_days: int = 395
    screen: ScreenSettings = field(default_factory=ScreenSettings)

    def __post_init__(self) -> None:
        _int(self.serial, "serial", 1, 2**53)
        holders = tuple(self.keyholders)
        if not 1 <= len(holders) <= _MAX_KEYHOLDERS or not all(
                isinstance(k, PublicKey) for k in holders):
            raise PolicyError(f"a policy needs 1..{_MAX_KEYHOLDERS} keyholder public keys")
        if len({k.fingerprint for k in holders}) != len(holders):
            raise PolicyError("a policy lists the same keyholder twice")
        object.__setattr__(self, "keyholders", holders)
        if not isinstance(self.issued_at, datetime) or self.issued_at.tzinfo is None:
            raise PolicyError("policy issued_at must be a timezone-aware datetime")
        object.__setattr__(self, "issued_at", self.issued_at.astimezone(UTC))
        if not isinstance(self.wordlists, Mapping):
            raise PolicyError("policy wordlists must map file names to TOML text")
        for name, text in self.wordlists.items():
            if not isinstance(name, str) or not _WORDLIST_NAME.fullmatch(name):
                raise PolicyError(f"wordlist file name {name!r} must be LAYER/NAME.toml, "
                                  f"LAYER one of {', '.join(POLICY_LAYERS)}")
            _text(text, f"wordlist {name}", 4 * 1024 * 1024)
        object.__setattr__(self, "wordlists", dict(sorted(self.wordlists.items())))
        if not isinstance(self.capture, CaptureSettings) or not isinstance(self.schedule, Schedule) \
                or not isinstance(self.screen, ScreenSettings):
            raise PolicyError("policy capture, schedule and screen must be CaptureSettings, "
                              "Schedule and ScreenSettings")
        _text(self.notice, "notice", 20_000)
        networks = tuple(self.onsite_networks)
        for cidr in networks:
            try:
                ipaddress.ip_network(_text(cidr, "onsite network", 64), strict=False)
            except ValueError:
                raise PolicyError(
                    f"onsite network {cidr!r} is not a CIDR like 10.0.0.0/8") from None
        object.__setattr__(self, "onsite_networks", networks)
        _int(self.flood_window_s, "flood_window_s", 0, 86_400)
        _int(self.title_cooldown_s, "title_cooldown_s", 0, 86_400)
        _int(self.retention_days, "retention_days", 1, 3650)

    @property
    def wordlists_digest(self) -> str:
        return wordlists_digest(self.wordlists)

    @property
    def keyset_fingerprint(self) -> str:
        return keyset_fingerprint(self.keyholders)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POLICY_FORMAT, "version": FORMAT_VERSION,
            "serial": self.serial,
            "issued_at": self.issued_at.isoformat().replace("+00:00", "Z"),
            "keyholders": [k.to_dict() for k in self.keyholders],
            "keyset_fingerprint": self.keyset_fingerprint,
            "wordlists": dict(self.wordlists),
            "wordlists_digest": self.wordlists_digest,
            "capture": {"format": self.capture.format, "quality": self.capture.quality,
                        "scale": self.capture.scale, "all_monitors": self.capture.all_monitors},
            "notice": self.notice,
            "schedule": {"days": list(self.schedule.days), "start": self.schedule.start,
                         "end": self.schedule.end, "timezone": self.schedule.timezone},
            "onsite_networks": list(self.onsite_networks),
            "flood_window_s": self.flood_window_s,
            "title_cooldown_s": self.title_cooldown_s,
            "retention_days": self.retention_days,
            "screen": {"enabled": self.screen.enabled, "interval_s": self.screen.interval_s,
                       "images": self.screen.images, "on_battery": self.screen.on_battery},
        }

    def to_body(self) -> bytes:
        """The canonical bytes that are signed."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Policy:
        if value.get("format") != POLICY_FORMAT or value.get("version") != FORMAT_VERSION:
            raise PolicyError("not a Vigil policy of a supported version")
        if not _BODY_FIELDS <= set(value) <= _BODY_FIELDS | _OPTIONAL_FIELDS:
            raise PolicyError("policy has missing or unexpected fields")
        try:
            issued = datetime.fromisoformat(_text(value["issued_at"], "issued_at", 40))
            keyholders = tuple(PublicKey.from_dict(k) for k in _list(value["keyholders"]))
            capture = CaptureSettings(**_mapping(value["capture"], "capture", _CAPTURE_FIELDS))
            schedule = Schedule(**_mapping(value["schedule"], "schedule", _SCHEDULE_FIELDS))
            screen = (ScreenSettings(**_mapping(value["screen"], "screen", _SCREEN_FIELDS))
                      if "screen" in value else ScreenSettings())
        except (TypeError, ValueError, KeyFileError) as exc:
            raise PolicyError(f"policy is malformed: {_one_line(exc)}") from None
        policy = cls(
            serial=value["serial"], keyholders=keyholders, issued_at=issued,
            wordlists=_mapping(value["wordlists"], "wordlists"), capture=capture,
            notice=value["notice"], schedule=schedule,
            onsite_networks=tuple(_list(value["onsite_networks"])),
            flood_window_s=value["flood_window_s"], title_cooldown_s=value["title_cooldown_s"],
            retention_days=value["retention_days"], screen=screen,
        )
        if value["wordlists_digest"] != policy.wordlists_digest:
            raise PolicyError("policy wordlists do not match their digest")
        if value["keyset_fingerprint"] != policy.keyset_fingerprint:
            raise PolicyError("policy keyholders do not match their fingerprint")
        return policy

    @classmethod
    def from_body(cls, body: bytes) -> Policy:
        value = parse_json_object(body, "policy", PolicyError)
        if canonical_json(value) != bytes(body):
            raise PolicyError("policy body is not in canonical form")
        return cls.from_dict(value)


def _one_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyError("policy field should be a list")
    return value


def _mapping(value: object, what: str, fields: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyError(f"policy {what} should be an object")
    if fields is not None and set(value) != fields:
        raise PolicyError(f"policy {what} must have exactly the fields {', '.join(sorted(fields))}")
    return value


@dataclass(frozen=True)
class SignedPolicy:
    """A policy body (canonical JSON bytes), the signer's fingerprint and an Ed25519 signature."""

    body: bytes
    signer: str
    signature: bytes

    @property
    def digest(self) -> str:
        """"sha256:" + hex of the body: identifies this policy (e.g. as an HTTP ETag)."""
        return "sha256:" + hashlib.sha256(self.body).hexdigest()

    def to_bytes(self) -> bytes:
        return canonical_json({"format": SIGNED_FORMAT, "version": FORMAT_VERSION,
                               "body": b64e(self.body), "signer": self.signer,
                               "signature": b64e(self.signature)})

    @classmethod
    def from_bytes(cls, data: bytes) -> SignedPolicy:
        if len(data) > _MAX_BODY * 2:
            raise PolicyError("signed policy is too large")
        value = parse_json_object(data, "signed policy", PolicyError)
        if value.get("format") != SIGNED_FORMAT or value.get("version") != FORMAT_VERSION:
            raise PolicyError("not a Vigil signed policy of a supported version")
        return cls(b64d(value.get("body"), "policy body", PolicyError),
                   _text(value.get("signer"), "signer", 100),
                   b64d(value.get("signature"), "policy signature", PolicyError))


def sign(policy: Policy, key: PrivateKey) -> SignedPolicy:
    """Sign ``policy`` with a keyholder's unlocked key."""
    body = policy.to_body()
    return SignedPolicy(body, key.fingerprint, key.sign(_SIGNING_CONTEXT + body))


@dataclass(frozen=True)
class Trust:
    """What an agent trusts: a pinned keyset fingerprint and, after the first policy, the keys."""

    keyset_fingerprint: str
    keyholders: tuple[PublicKey, ...] = ()
    serial: int = 0
    policy_digest: str = ""

    @classmethod
    def pinned(cls, keyset_fingerprint: str) -> Trust:
        """The state right after enrolment: only the fingerprint of the first keyholder set."""
        if not isinstance(keyset_fingerprint, str) or not keyset_fingerprint.startswith("vks1:"):
            raise PolicyError("a pinned keyset fingerprint looks like vks1:...")
        return cls(keyset_fingerprint)

    def to_dict(self) -> dict[str, Any]:
        return {"format": TRUST_FORMAT, "version": FORMAT_VERSION,
                "keyset_fingerprint": self.keyset_fingerprint,
                "keyholders": [k.to_dict() for k in self.keyholders],
                "serial": self.serial, "policy_digest": self.policy_digest}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Trust:
        if value.get("format") != TRUST_FORMAT or value.get("version") != FORMAT_VERSION:
            raise PolicyError("not a Vigil trust record of a supported version")
        try:
            keyholders = tuple(PublicKey.from_dict(k) for k in _list(value.get("keyholders")))
        except KeyFileError as exc:
            raise PolicyError(f"trust record is malformed: {exc}") from None
        pin = _text(value.get("keyset_fingerprint"), "keyset_fingerprint", 100)
        if keyholders and keyset_fingerprint(keyholders) != pin:
            raise PolicyError("trust record keyholders do not match its fingerprint")
        return cls(pin, keyholders, _int(value.get("serial"), "serial", 0, 2**53),
                   _text(value.get("policy_digest"), "policy_digest", 100))

    @classmethod
    def from_json(cls, text: str | bytes) -> Trust:
        data = text.encode("utf-8") if isinstance(text, str) else text
        return cls.from_dict(parse_json_object(data, "trust record", PolicyError))


def _find(keys: Iterable[PublicKey], fingerprint: str) -> PublicKey | None:
    return next((k for k in keys if hmac.compare_digest(k.fingerprint.encode(),
                                                        fingerprint.encode())), None)


def verify(signed: SignedPolicy | bytes, trust: Trust) -> tuple[Policy, Trust]:
    """Accept ``signed`` under ``trust`` and return the policy and the trust to keep from now on.

    Raises UntrustedPolicy when the signer is not trusted, the signature is bad, the first
    keyholder set does not match the pinned fingerprint, or the serial goes backwards; and
    PolicyError when the policy is malformed.
    """
    if not isinstance(signed, SignedPolicy):
        signed = SignedPolicy.from_bytes(signed)
    if len(signed.body) > _MAX_BODY:
        raise PolicyError("policy is too large")
    message = _SIGNING_CONTEXT + signed.body
    if trust.keyholders:
        # Check the signature with the key we already trust before reading anything else.
        signer = _find(trust.keyholders, signed.signer)
        if signer is None:
            raise UntrustedPolicy("policy is signed by a key this device does not trust")
        if not signer.verify(signed.signature, message):
            raise UntrustedPolicy("policy signature does not verify: it was altered")
        policy = Policy.from_body(signed.body)
        if policy.serial < trust.serial or (
                policy.serial == trust.serial and signed.digest != trust.policy_digest):
            raise UntrustedPolicy(
                f"policy serial {policy.serial} is not newer than {trust.serial}: a rollback")
        if policy.serial == trust.serial:
            return policy, trust  # the same policy again: nothing changes
    else:
        policy = Policy.from_body(signed.body)
        if not hmac.compare_digest(policy.keyset_fingerprint.encode(),
                                   trust.keyset_fingerprint.encode()):
            raise UntrustedPolicy(
                "policy keyholders do not match the keyset fingerprint pinned at enrolment")
        signer = _find(policy.keyholders, signed.signer)
        if signer is None:
            raise UntrustedPolicy("policy is not signed by one of its pinned keyholders")
        if not signer.verify(signed.signature, message):
            raise UntrustedPolicy("policy signature does not verify: it was altered")
    new_trust = Trust(policy.keyset_fingerprint, policy.keyholders, policy.serial, signed.digest)
    return policy, new_trust

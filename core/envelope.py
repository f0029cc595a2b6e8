"""Sealed events: the one binary format used by the agent, the collector and evidence exports.

Layout (all integers big-endian; see docs/crypto.md for the full description)::

    "VIGILENV" 0x01                         magic and format version
    u32 n, n bytes: clear section           canonical JSON: metadata, chunk size, key commitment
    u16 k, then k slots:                    one per recipient, in the clear so each finds theirs
        u8 n, n bytes: key fingerprint (ASCII)
        u8 kem id (1 = X25519, 2 = ML-KEM-768+X25519)
        u16 n, n bytes: HPKE-sealed data key
        32 bytes: HMAC-SHA-256 of the slot under a key derived from the data key
    u32 n, n bytes: sealed header           AES-256-GCM(JSON header)
    body chunks                             AES-256-GCM, each chunk_size bytes + 16-byte tag;
                                            the last one is shorter and flagged final

Every ciphertext has SHA-256(magic, version, clear section) as associated data, so changing the
clear metadata breaks opening. Nonces are (purpose, final flag, counter) under a key used for this
event only; the final flag makes a truncated body fail instead of opening short.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import IO, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core._canonical import b64d, b64e, canonical_json, parse_json_object
from core.errors import EnvelopeError, MetadataMismatch, NotARecipient
from core.keys import Kem, PrivateKey, PublicKey

__all__ = [
    "CHUNK_SIZE",
    "MAGIC",
    "MEDIA_TYPE",
    "VERSION",
    "Metadata",
    "Opened",
    "check_meta",
    "grant",
    "open",
    "open_from",
    "open_header",
    "read_meta",
    "read_meta_from",
    "revoke",
    "seal",
    "seal_to",
]

MAGIC = b"VIGILENV"
VERSION = 1
MEDIA_TYPE = "application/vnd.vigil.envelope"
CHUNK_SIZE = 1 << 20  # 1 MiB: a 20 MB screenshot is sealed with 1 MiB of working memory
TAG = 16
_KEM_IDS = {Kem.X25519: 1, Kem.HYBRID: 2}
_KEMS_BY_ID = {v: k for k, v in _KEM_IDS.items()}

# Limits on what a reader accepts, so that a hostile envelope cannot make it allocate much.
MAX_CLEAR = 64 * 1024
MAX_HEADER = 4 * 1024 * 1024
MAX_RECIPIENTS = 64
_MAX_SEALED_KEY = 4096
_MIN_CHUNK, _MAX_CHUNK = 4096, 16 << 20

_HPKE_INFO = b"vigil envelope v1 data key\x00"
_ENC_LABEL = b"vigil envelope v1 encryption key"
_COMMIT_LABEL = b"vigil envelope v1 key commitment"
_SLOT_LABEL = b"vigil envelope v1 slot authentication key"
_SLOT_TAG = 32
_PURPOSE_HEADER, _PURPOSE_BODY = 0, 1
_TEXT_LIMITS = {"event_id": 128, "device_id": 128, "category": 64, "rule": 200, "source": 64,
                "year": 64, "form": 64}


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise EnvelopeError(f"metadata time {value!r} is not ISO 8601") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise EnvelopeError("metadata time must be a timezone-aware datetime")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Metadata:
    """The clear part of an event: enough to list, count and route it, nothing about who or what."""

    event_id: str
    device_id: str
    time: datetime
    category: str
    severity: int
    rule: str
    source: str
    # The pupil's cohort tag (core.cohort), "" when unknown: what routing rules match on. In the
    # clear (so it is authenticated as associated data like the rest) and only when set, so an
    # envelope without a tag has exactly the bytes it had before tags existed.
    year: str = ""
    form: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", _utc(self.time))
        for name, limit in _TEXT_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > limit:
                raise EnvelopeError(f"metadata {name} must be text of at most {limit} characters")
        if not self.event_id or not self.device_id:
            raise EnvelopeError("metadata event_id and device_id must not be empty")
        if type(self.severity) is not int or not 1 <= self.severity <= 5:
            raise EnvelopeError(f"metadata severity must be 1..5, not {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "device_id": self.device_id,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "category": self.category, "severity": self.severity,
            "rule": self.rule, "source": self.source,
            **({"year": self.year} if self.year else {}),
            **({"form": self.form} if self.form else {}),
        }

    @classmethod
    def from_dict(cls, value: object) -> Metadata:
        if not isinstance(value, Mapping):
            raise EnvelopeError("metadata is not a JSON object")
        names = ("event_id", "device_id", "time", "category", "severity", "rule", "source")
        if not set(names) <= set(value) <= set(names) | set(_OPTIONAL):
            raise EnvelopeError(f"metadata must have exactly the fields {', '.join(names)} "
                                f"(and optionally {', '.join(_OPTIONAL)})")
        if any(value.get(name) == "" for name in _OPTIONAL):
            raise EnvelopeError("metadata year and form are left out when empty, never \"\"")
        time = value["time"]
        if isinstance(time, str) and time.endswith("Z"):
            time = time[:-1] + "+00:00"
        if not isinstance(time, str | datetime):
            raise EnvelopeError("metadata time must be an ISO 8601 string")
        optional = {n: value[n] for n in _OPTIONAL if n in value}
        return cls(**{**{n: value[n] for n in names}, **optional, "time": time})


_OPTIONAL = ("year", "form")
_META_FIELDS = ("event_id", "device_id", "time", "category", "severity", "rule", "source",
                *_OPTIONAL)


def _comparable(name: str, value: Any) -> Any:
    if name != "time":
        return value
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a database without time zones stores UTC
    if isinstance(value, str) and value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        return _utc(value).isoformat().replace("+00:00", "Z")
    except EnvelopeError:
        return value if isinstance(value, str) else repr(value)


def check_meta(meta: Metadata, expected: Mapping[str, Any],
               claimed_by: str = "the database") -> None:
    """Raise MetadataMismatch naming every field of ``expected`` that differs from ``meta``.

    ``expected`` holds any of the metadata fields (event_id, device_id, time, category,
    severity, rule, source, year, form), e.g. from the database row an event is listed by. Times compare
    as instants (a naive datetime is taken as UTC); everything else compares exactly, so a
    severity of ``"5"`` is not ``5``.
    """
    unknown = set(expected) - set(_META_FIELDS)
    if unknown:
        raise EnvelopeError(f"unknown metadata field(s) to check: {', '.join(sorted(unknown))}")
    sealed = {**dict.fromkeys(_OPTIONAL, ""), **meta.to_dict()}  # an untagged event: ""
    differences = []
    for name in _META_FIELDS:
        if name not in expected:
            continue
        claimed, bound = _comparable(name, expected[name]), _comparable(name, sealed[name])
        if type(claimed) is not type(bound) or claimed != bound:
            differences.append((name, claimed, bound))
    if differences:
        raise MetadataMismatch(differences, claimed_by)


@dataclass(frozen=True)
class Opened:
    """An opened event: the clear metadata, the sealed header (a dict) and the body bytes."""

    meta: Metadata
    header: dict[str, Any]
    body: bytes


@dataclass(frozen=True)
class _Slot:
    fingerprint: str
    kem: Kem
    sealed: bytes
    tag: bytes  # HMAC under the data key: lets any recipient detect a tampered slot of another

    def unauthenticated_bytes(self) -> bytes:
        fp = self.fingerprint.encode("ascii")
        return (struct.pack(">B", len(fp)) + fp + struct.pack(">BH", _KEM_IDS[self.kem],
                                                                len(self.sealed)) + self.sealed)

    def to_bytes(self) -> bytes:
        return self.unauthenticated_bytes() + self.tag

    def expected_tag(self, data_key: bytes, context: bytes) -> bytes:
        return hmac.new(_derive(data_key, _SLOT_LABEL), context + self.unauthenticated_bytes(),
                        hashlib.sha256).digest()


@dataclass(frozen=True)
class _Prefix:
    """Everything before the body: parsed from a stream without any key."""

    clear_bytes: bytes
    meta: Metadata
    chunk_size: int
    commitment: bytes
    slots: tuple[_Slot, ...]
    sealed_header: bytes

    @property
    def context(self) -> bytes:
        return _context(self.clear_bytes)

    def fixed_bytes(self) -> bytes:
        clear = self.clear_bytes
        return MAGIC + bytes([VERSION]) + struct.pack(">I", len(clear)) + clear

    def slots_bytes(self) -> bytes:
        return struct.pack(">H", len(self.slots)) + b"".join(s.to_bytes() for s in self.slots)

    def header_bytes(self) -> bytes:
        return struct.pack(">I", len(self.sealed_header)) + self.sealed_header


def _context(clear_bytes: bytes) -> bytes:
    return hashlib.sha256(MAGIC + bytes([VERSION]) + clear_bytes).digest()


def _nonce(purpose: int, final: bool, counter: int) -> bytes:
    return struct.pack(">BBHQ", purpose, int(final), 0, counter)


def _derive(data_key: bytes, label: bytes) -> bytes:
    return hmac.new(data_key, label, hashlib.sha256).digest()


# --- reading --------------------------------------------------------------------------------------


class _ViewReader:
    """A read-only file over bytes whose reads are zero-copy views: opening a 20 MB event in
    memory must not copy the ciphertext chunk by chunk on top of the plaintext."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def read(self, n: int = -1) -> memoryview:
        end = len(self._view) if n < 0 else min(self._pos + n, len(self._view))
        chunk = self._view[self._pos:end]
        self._pos = end
        return chunk

    def tell(self) -> int:
        return self._pos


def _read_full(src: IO[bytes] | _ViewReader, n: int) -> bytes | memoryview:
    """Up to ``n`` bytes, fewer only at the end: raw files and pipes may return short reads,
    which must not be mistaken for a short (final) chunk."""
    data = src.read(n) or b""
    if not 0 < len(data) < n:
        return data
    buffer = bytearray(data)
    while len(buffer) < n and (more := src.read(n - len(buffer))):
        buffer += more
    return bytes(buffer)


def _read_exact(src: IO[bytes] | _ViewReader, n: int, what: str) -> bytes:
    data = _read_full(src, n)
    if len(data) != n:
        raise EnvelopeError(f"envelope is truncated (in the {what})")
    return bytes(data)


def _unpack(fmt: str, src: IO[bytes] | _ViewReader, what: str) -> tuple[int, ...]:
    return struct.unpack(fmt, _read_exact(src, struct.calcsize(fmt), what))


def _read_prefix(src: IO[bytes] | _ViewReader) -> _Prefix:
    head = bytes(src.read(len(MAGIC) + 1) or b"")
    if not head or not MAGIC.startswith(head[: len(MAGIC)]):
        raise EnvelopeError("not a Vigil sealed event")
    if len(head) <= len(MAGIC):
        raise EnvelopeError("envelope is truncated (in the magic)")
    if head[-1] != VERSION:
        raise EnvelopeError(f"unsupported envelope version {head[-1]}")
    (clear_len,) = _unpack(">I", src, "clear section")
    if clear_len > MAX_CLEAR:
        raise EnvelopeError("envelope clear section is too large")
    clear_bytes = _read_exact(src, clear_len, "clear section")
    clear = parse_json_object(clear_bytes, "envelope clear section", EnvelopeError)
    if canonical_json(clear) != clear_bytes:
        raise EnvelopeError("envelope clear section is not in canonical form")
    if set(clear) != {"meta", "chunk_size", "commitment"}:
        raise EnvelopeError("envelope clear section has unexpected fields")
    chunk_size = clear["chunk_size"]
    if type(chunk_size) is not int or not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
        raise EnvelopeError("envelope chunk size is out of range")
    commitment = b64d(clear["commitment"], "key commitment", EnvelopeError)
    if len(commitment) != 32:
        raise EnvelopeError("envelope key commitment has the wrong length")
    meta = Metadata.from_dict(clear["meta"])

    (count,) = _unpack(">H", src, "recipients")
    if not 1 <= count <= MAX_RECIPIENTS:
        raise EnvelopeError(f"envelope has {count} recipients; 1..{MAX_RECIPIENTS} are allowed")
    slots = []
    for _ in range(count):
        (fp_len,) = _unpack(">B", src, "recipients")
        fp_raw = _read_exact(src, fp_len, "recipients")
        kem_id, sealed_len = _unpack(">BH", src, "recipients")
        if kem_id not in _KEMS_BY_ID or sealed_len > _MAX_SEALED_KEY:
            raise EnvelopeError("envelope has a malformed recipient slot")
        try:
            fingerprint = fp_raw.decode("ascii")
        except UnicodeDecodeError:
            raise EnvelopeError("envelope has a malformed recipient fingerprint") from None
        sealed = _read_exact(src, sealed_len, "recipients")
        slots.append(_Slot(fingerprint, _KEMS_BY_ID[kem_id], sealed,
                           _read_exact(src, _SLOT_TAG, "recipients")))
    if len({s.fingerprint for s in slots}) != len(slots):
        raise EnvelopeError("envelope lists a recipient twice")

    (header_len,) = _unpack(">I", src, "header")
    if not TAG <= header_len <= MAX_HEADER + TAG:
        raise EnvelopeError("envelope header has an impossible length")
    sealed_header = _read_exact(src, header_len, "header")
    return _Prefix(clear_bytes, meta, chunk_size, commitment, tuple(slots), sealed_header)


def read_meta_from(src: IO[bytes] | _ViewReader) -> tuple[Metadata, list[str]]:
    """The clear metadata and the recipients' fingerprints, read from a stream without a key."""
    prefix = _read_prefix(src)
    return prefix.meta, [s.fingerprint for s in prefix.slots]


def read_meta(data: bytes) -> tuple[Metadata, list[str]]:
    """The clear metadata and the recipients' fingerprints. Needs no key; checks no ciphertext."""
    return read_meta_from(_ViewReader(data))


def _data_key(prefix: _Prefix, key: PrivateKey) -> bytes:
    slot = next((s for s in prefix.slots if hmac.compare_digest(
        s.fingerprint.encode(), key.fingerprint.encode())), None)
    if slot is None:
        raise NotARecipient(
            f"key {key.name!r} ({key.fingerprint}) is not a recipient of this event")
    try:
        data_key = key.open_secret(slot.sealed, _HPKE_INFO + prefix.context)
    except (InvalidTag, ValueError):
        raise EnvelopeError("envelope recipient slot does not open: it was altered") from None
    if len(data_key) != 32 or not hmac.compare_digest(
            _derive(data_key, _COMMIT_LABEL), prefix.commitment):
        raise EnvelopeError("envelope data key does not match its commitment: it was altered")
    for other in prefix.slots:
        if not hmac.compare_digest(other.tag, other.expected_tag(data_key, prefix.context)):
            raise EnvelopeError(f"envelope recipient slot for {other.fingerprint!r} was altered")
    return data_key


def _open_header(prefix: _Prefix, aead: AESGCM) -> dict[str, Any]:
    try:
        plain = aead.decrypt(_nonce(_PURPOSE_HEADER, True, 0), prefix.sealed_header, prefix.context)
    except InvalidTag:
        raise EnvelopeError("envelope header or metadata was altered") from None
    return parse_json_object(plain, "envelope header", EnvelopeError)


def _open_body(prefix: _Prefix, aead: AESGCM, src: IO[bytes] | _ViewReader,
               dst: IO[bytes]) -> int:
    """Decrypt the body chunks from ``src`` to ``dst``; returns the body length."""
    step = prefix.chunk_size + TAG
    plain = bytearray(prefix.chunk_size)
    view = memoryview(plain)
    current = _read_full(src, step)
    counter = total = 0
    while True:
        if len(current) < TAG:
            raise EnvelopeError("envelope is truncated (in the body)")
        following = _read_full(src, step) if len(current) == step else b""
        final = not following
        n = len(current) - TAG
        try:
            aead.decrypt_into(_nonce(_PURPOSE_BODY, final, counter), current, prefix.context,
                              view[:n])
        except InvalidTag:
            raise EnvelopeError(
                "envelope body was altered or truncated" if final
                else "envelope body was altered") from None
        dst.write(view[:n])
        total += n
        if final:
            return total
        counter += 1
        current = following


def _open_checked(prefix: _Prefix, key: PrivateKey, expect: Mapping[str, Any] | None
                  ) -> tuple[AESGCM, dict[str, Any]]:
    aead = AESGCM(_derive(_data_key(prefix, key), _ENC_LABEL))
    header = _open_header(prefix, aead)  # from here on prefix.meta is what was sealed
    if expect is not None:
        check_meta(prefix.meta, expect)  # before a byte of the body is decrypted
    return aead, header


def open_from(src: IO[bytes] | _ViewReader, key: PrivateKey, dst: IO[bytes], *,
              expect: Mapping[str, Any] | None = None) -> tuple[Metadata, dict[str, Any]]:
    """Open a sealed event read from ``src``, writing the body to ``dst``.

    The body is verified chunk by chunk as it is written: if this raises, discard whatever was
    written to ``dst``. With ``expect`` (metadata fields, e.g. the database row the event is
    listed by), the authenticated metadata must match it, or MetadataMismatch is raised before
    the body is decrypted; the decrypted header is then discarded, never returned.
    """
    prefix = _read_prefix(src)
    aead, header = _open_checked(prefix, key, expect)
    _open_body(prefix, aead, src, dst)
    return prefix.meta, header


def open_header(data_or_file: bytes | bytearray | memoryview | IO[bytes],
                key: PrivateKey, *, expect: Mapping[str, Any] | None = None,
                ) -> tuple[Metadata, dict[str, Any]]:
    """The clear metadata and the sealed header, reading and decrypting only the prefix.

    What it returns is checked exactly as :func:`open` checks it (the caller's slot, the key
    commitment, every slot's tag, the header's tag with the clear section as associated data), so
    a relabelled or tampered prefix raises EnvelopeError. The body is neither read nor verified:
    an envelope whose body was altered or cut short still yields its header here, and only
    :func:`open` or :func:`open_from` tell. A file is left positioned at the start of the body.
    ``expect`` is checked as :func:`open_from` checks it.
    """
    src = data_or_file if hasattr(data_or_file, "read") else _ViewReader(data_or_file)  # type: ignore[arg-type]
    prefix = _read_prefix(src)  # type: ignore[arg-type]
    _, header = _open_checked(prefix, key, expect)
    return prefix.meta, header


def open(data: bytes, key: PrivateKey, *, expect: Mapping[str, Any] | None = None) -> Opened:
    """Open a sealed event. Raises NotARecipient or EnvelopeError (MetadataMismatch when
    ``expect`` differs from the sealed metadata); never returns partial data."""
    out = io.BytesIO()
    meta, header = open_from(_ViewReader(data), key, out, expect=expect)
    return Opened(meta, header, out.getvalue())  # getvalue() hands over the buffer, no copy


# --- writing --------------------------------------------------------------------------------------


def _recipient_list(recipients: Iterable[PublicKey]) -> list[PublicKey]:
    unique: dict[str, PublicKey] = {}
    for recipient in recipients:
        if not isinstance(recipient, PublicKey):
            raise EnvelopeError("recipients must be PublicKey objects")
        unique.setdefault(recipient.fingerprint, recipient)
    if not 1 <= len(unique) <= MAX_RECIPIENTS:
        raise EnvelopeError(f"an event needs 1..{MAX_RECIPIENTS} recipients")
    return list(unique.values())


def _seal_slot(recipient: PublicKey, data_key: bytes, context: bytes) -> _Slot:
    draft = _Slot(recipient.fingerprint, recipient.kem,
                  recipient.seal_secret(data_key, _HPKE_INFO + context), b"")
    return replace(draft, tag=draft.expected_tag(data_key, context))


def _chunks_of(data: bytes | bytearray | memoryview, size: int) -> Iterator[memoryview]:
    view = memoryview(data).cast("B")
    for start in range(0, max(len(view), 1), size):
        yield view[start:start + size]


def _chunks_from(src: IO[bytes], size: int) -> Iterator[bytes | memoryview]:
    while chunk := _read_full(src, size):
        yield chunk


def seal_to(dst: IO[bytes], meta: Metadata, header: Mapping[str, Any],
            body: bytes | bytearray | memoryview | IO[bytes], recipients: Iterable[PublicKey],
            *, chunk_size: int = CHUNK_SIZE) -> int:
    """Seal an event and write it to ``dst``; ``body`` is bytes or a readable binary file.

    Memory use is one chunk beyond what ``dst`` keeps, so the agent can spool straight to disk.
    Returns the number of bytes written.
    """
    if not isinstance(meta, Metadata):
        raise EnvelopeError("meta must be an envelope.Metadata")
    if not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
        raise EnvelopeError("chunk size is out of range")
    try:
        header_plain = canonical_json(dict(header))
    except (TypeError, ValueError):
        raise EnvelopeError("the event header must be a JSON-serialisable object") from None
    if len(header_plain) > MAX_HEADER:
        raise EnvelopeError("the event header is too large")
    keyholders = _recipient_list(recipients)

    data_key = secrets.token_bytes(32)
    # The commitment stops anyone building one envelope that opens differently for two keyholders
    # (AES-GCM alone does not commit to its key); see docs/crypto.md.
    commitment = _derive(data_key, _COMMIT_LABEL)
    clear = {"meta": meta.to_dict(), "chunk_size": chunk_size, "commitment": b64e(commitment)}
    clear_bytes = canonical_json(clear)
    if len(clear_bytes) > MAX_CLEAR:
        raise EnvelopeError("the event metadata is too large")
    context = _context(clear_bytes)
    aead = AESGCM(_derive(data_key, _ENC_LABEL))
    prefix = _Prefix(
        clear_bytes, meta, chunk_size, commitment,
        tuple(_seal_slot(r, data_key, context) for r in keyholders),
        aead.encrypt(_nonce(_PURPOSE_HEADER, True, 0), header_plain, context),
    )
    written = sum(dst.write(part) or 0 for part in
                  (prefix.fixed_bytes(), prefix.slots_bytes(), prefix.header_bytes()))

    chunks: Iterator[Any] = (_chunks_from(body, chunk_size) if hasattr(body, "read")
                             else _chunks_of(body, chunk_size))  # type: ignore[arg-type]
    out = bytearray(chunk_size + TAG)
    out_view = memoryview(out)
    current: Any = next(chunks, b"")
    counter = 0
    while True:
        following = next(chunks, None)
        final = following is None
        n = len(current) + TAG
        aead.encrypt_into(_nonce(_PURPOSE_BODY, final, counter), current, context, out_view[:n])
        written += dst.write(out_view[:n]) or 0
        if final:
            return written
        counter += 1
        current = following


def seal(meta: Metadata, header: Mapping[str, Any], body: bytes,
         recipients: Iterable[PublicKey]) -> bytes:
    """Seal an event to ``recipients``. Peak extra memory is the output plus one chunk."""
    out = io.BytesIO()
    seal_to(out, meta, header, body, recipients)
    return out.getvalue()  # no copy: BytesIO hands over its buffer


# --- changing recipients --------------------------------------------------------------------------


def _rewrite_slots(data: bytes, slots: Sequence[_Slot], prefix: _Prefix, body_start: int) -> bytes:
    out = io.BytesIO()
    rebuilt = _Prefix(prefix.clear_bytes, prefix.meta, prefix.chunk_size, prefix.commitment,
                      tuple(slots), prefix.sealed_header)
    out.write(rebuilt.fixed_bytes())
    out.write(rebuilt.slots_bytes())
    out.write(rebuilt.header_bytes())
    out.write(memoryview(data)[body_start:])
    return out.getvalue()


def _parse(data: bytes) -> tuple[_Prefix, int]:
    src = _ViewReader(data)
    prefix = _read_prefix(src)
    return prefix, src.tell()


def grant(data: bytes, key: PrivateKey, to: PublicKey) -> bytes:
    """Add ``to`` as a recipient, using ``key`` (an unlocked recipient) to recover the data key.

    The header and body are copied untouched (the header is checked, so a relabelled event is not
    passed on). Granting an existing recipient changes nothing.
    """
    prefix, body_start = _parse(data)
    data_key = _data_key(prefix, key)
    _open_header(prefix, AESGCM(_derive(data_key, _ENC_LABEL)))
    if any(s.fingerprint == to.fingerprint for s in prefix.slots):
        return data
    if len(prefix.slots) >= MAX_RECIPIENTS:
        raise EnvelopeError(f"an event can have at most {MAX_RECIPIENTS} recipients")
    slots = [*prefix.slots, _seal_slot(to, data_key, prefix.context)]
    return _rewrite_slots(data, slots, prefix, body_start)


def revoke(data: bytes, fingerprint: str) -> bytes:
    """Remove the recipient slot for ``fingerprint``. Refuses to remove the last one.

    This stops that key opening this copy; it cannot unsee a copy someone already kept.
    """
    prefix, body_start = _parse(data)
    slots = [s for s in prefix.slots if s.fingerprint != fingerprint]
    if len(slots) == len(prefix.slots):
        raise NotARecipient(f"{fingerprint} is not a recipient of this event")
    if not slots:
        raise EnvelopeError("refusing to remove the last recipient: nobody could open the event")
    return _rewrite_slots(data, slots, prefix, body_start)

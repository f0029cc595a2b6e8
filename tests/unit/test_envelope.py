"""Sealed events: round trips, every kind of tampering and truncation, grant, revoke, memory."""

from __future__ import annotations

import gc
import io
import json
import struct
import tracemalloc
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import envelope, keys
from core.envelope import Metadata
from core.errors import EnvelopeError, NotARecipient
from tests.fixtures.keys import FAST_TEST_KDF, Keyholder, Keyholders

META = Metadata(
    event_id="0b6f3c1e-5d0c-4c7e-9a53-3f1f4f6c2a10", device_id="dev-42",
    time=datetime(2026, 11, 23, 9, 15, 0, tzinfo=UTC), category="suicide",
    severity=5, rule="suicide.kill_myself", source="keyboard",
)
HEADER = {"user": "pupil7", "host": "LAB-PC-07", "title": "Notes — Word", "app": "winword.exe",
          "context": "i want to kill myself tonight", "match": {"start": 9, "end": 20,
          "text": "kill myself"}, "source": "keyboard", "count": 1, "media_type": "image/webp"}
SMALL = 4096  # the smallest chunk size, so short bodies still have several chunks


def _body(n: int) -> bytes:
    return bytes((i * 7 + 3) % 251 for i in range(n))


def _seal_chunked(body: bytes, recipients: list[keys.PublicKey], chunk_size: int = SMALL,
                  meta: Metadata = META) -> bytes:
    out = io.BytesIO()
    envelope.seal_to(out, meta, HEADER, body, recipients, chunk_size=chunk_size)
    return out.getvalue()


@dataclass
class Layout:
    """Where each part of an envelope lies, read independently of core.envelope."""

    clear: tuple[int, int]
    slot_count: int
    slots: list[dict[str, tuple[int, int]]]
    header: tuple[int, int]
    body: int


def _layout(data: bytes) -> Layout:
    pos = 9
    (clear_len,) = struct.unpack_from(">I", data, pos)
    clear = (pos + 4, pos + 4 + clear_len)
    pos = clear[1]
    slot_count = pos
    (count,) = struct.unpack_from(">H", data, pos)
    pos += 2
    slots = []
    for _ in range(count):
        fp_len = data[pos]
        fp = (pos + 1, pos + 1 + fp_len)
        kem = (fp[1], fp[1] + 1)
        (sealed_len,) = struct.unpack_from(">H", data, kem[1])
        sealed = (kem[1] + 2, kem[1] + 2 + sealed_len)
        mac = (sealed[1], sealed[1] + 32)
        slots.append({"fp": fp, "kem": kem, "sealed": sealed, "mac": mac})
        pos = mac[1]
    (header_len,) = struct.unpack_from(">I", data, pos)
    header = (pos + 4, pos + 4 + header_len)
    return Layout(clear, slot_count, slots, header, header[1])


def _flip(data: bytes, at: int, bit: int = 0x01) -> bytes:
    out = bytearray(data)
    out[at] ^= bit
    return bytes(out)


def _with_clear(data: bytes, edit: dict) -> bytes:
    """Rewrite the clear section with ``edit`` applied, canonically and with a correct length."""
    layout = _layout(data)
    clear = json.loads(data[layout.clear[0]:layout.clear[1]])
    for key, value in edit.items():
        if key in clear:
            clear[key] = value
        else:
            clear["meta"][key] = value
    new = json.dumps(clear, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return data[:9] + struct.pack(">I", len(new)) + new + data[layout.clear[1]:]


# --- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kem", list(keys.Kem))
def test_round_trip_for_each_kem(kem: keys.Kem) -> None:
    _, a = keys.create("A", "head", "password 1234", kem=kem, kdf=FAST_TEST_KDF)
    _, b = keys.create("B", "technician", "password 1234", kem=kem, kdf=FAST_TEST_KDF)
    body = _body(300_000)
    data = envelope.seal(META, HEADER, body, [a.public, b.public])
    for key in (a, b):
        opened = envelope.open(data, key)
        assert opened.meta == META
        assert opened.header == HEADER
        assert opened.body == body


def test_every_keyholder_opens_and_read_meta_needs_no_key(keyholders: Keyholders) -> None:
    data = envelope.seal(META, HEADER, b"screenshot", keyholders.publics)
    meta, fingerprints = envelope.read_meta(data)
    assert meta == META
    assert fingerprints == [k.fingerprint for k in keyholders.all]
    for holder in keyholders.all:
        assert envelope.open(data, holder.key).body == b"screenshot"


def test_each_event_gets_a_fresh_data_key(head_key: Keyholder) -> None:
    one = envelope.seal(META, HEADER, b"same", [head_key.public])
    two = envelope.seal(META, HEADER, b"same", [head_key.public])
    assert one != two
    assert json.loads(one[_layout(one).clear[0]:_layout(one).clear[1]])["commitment"] != \
        json.loads(two[_layout(two).clear[0]:_layout(two).clear[1]])["commitment"]


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL, 3 * SMALL + 5])
def test_body_sizes_around_chunk_boundaries(head_key: Keyholder, size: int) -> None:
    body = _body(size)
    data = _seal_chunked(body, [head_key.public])
    assert envelope.open(data, head_key.key).body == body


def test_clear_metadata_holds_nothing_sensitive(head_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"SCREENSHOT-PIXELS", [head_key.public])
    for secret in (b"pupil7", b"kill myself tonight", b"LAB-PC-07", b"winword", b"SCREENSHOT"):
        assert secret not in data


def test_streaming_forms_match_the_in_memory_ones(tmp_path: Path, head_key: Keyholder) -> None:
    body = _body(50_000)
    source = tmp_path / "shot.webp"
    source.write_bytes(body)
    sealed_path = tmp_path / "event.vge"
    with source.open("rb") as src, sealed_path.open("wb") as dst:
        written = envelope.seal_to(dst, META, HEADER, src, [head_key.public], chunk_size=SMALL)
    assert written == sealed_path.stat().st_size
    with sealed_path.open("rb") as src:
        assert envelope.read_meta_from(src) == (META, [head_key.fingerprint])
    out = io.BytesIO()
    with sealed_path.open("rb") as src:
        meta, header = envelope.open_from(src, head_key.key, out)
    assert (meta, header, out.getvalue()) == (META, HEADER, body)
    assert envelope.open(sealed_path.read_bytes(), head_key.key).body == body


def test_metadata_round_trips_through_json() -> None:
    assert Metadata.from_dict(json.loads(json.dumps(META.to_dict()))) == META
    assert META.to_dict()["time"] == "2026-11-23T09:15:00Z"
    local = META.time.astimezone(timezone(timedelta(hours=1)))
    assert replace(META, time=local) == META  # normalised to UTC
    assert Metadata(**{**META.to_dict(), "time": "2026-11-23T09:15:00Z"}) == META


@pytest.mark.parametrize("change", [
    {"severity": 0}, {"severity": 6}, {"severity": True}, {"severity": "5"},
    {"time": datetime(2026, 1, 1)}, {"time": "yesterday"}, {"event_id": ""},
    {"device_id": ""}, {"category": "x" * 65}, {"rule": None},
])
def test_bad_metadata_is_refused(change: dict) -> None:
    with pytest.raises(EnvelopeError):
        Metadata(**{**META.__dict__, **change})


def test_bad_seal_arguments(head_key: Keyholder) -> None:
    with pytest.raises(EnvelopeError, match="JSON"):
        envelope.seal(META, {"bad": object()}, b"", [head_key.public])
    with pytest.raises(EnvelopeError, match="recipients"):
        envelope.seal(META, HEADER, b"", [])
    with pytest.raises(EnvelopeError):
        envelope.seal(META.to_dict(), HEADER, b"", [head_key.public])  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="too large"):
        envelope.seal(META, {"x": "y" * (envelope.MAX_HEADER + 1)}, b"", [head_key.public])


# --- recipients -----------------------------------------------------------------------------------


def test_not_a_recipient(head_key: Keyholder, stranger_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"x", [head_key.public])
    with pytest.raises(NotARecipient, match="not a recipient"):
        envelope.open(data, stranger_key.key)


def test_grant_adds_a_recipient_without_touching_the_body(
        keyholders: Keyholders, stranger_key: Keyholder) -> None:
    body = _body(3 * SMALL + 10)
    data = _seal_chunked(body, [keyholders.head.public])
    granted = envelope.grant(data, keyholders.head.key, keyholders.technician.public)
    before, after = _layout(data), _layout(granted)
    assert granted[after.header[0]:] == data[before.header[0]:]  # header and body byte-identical
    assert envelope.read_meta(granted)[1] == [keyholders.head.fingerprint,
                                              keyholders.technician.fingerprint]
    assert envelope.open(granted, keyholders.technician.key).body == body
    assert envelope.open(granted, keyholders.head.key).body == body
    assert envelope.grant(granted, keyholders.head.key, keyholders.technician.public) == granted
    with pytest.raises(NotARecipient):
        envelope.grant(data, stranger_key.key, stranger_key.public)


def test_revoke_removes_a_slot_but_never_the_last(keyholders: Keyholders) -> None:
    data = envelope.seal(META, HEADER, b"x", keyholders.publics)
    revoked = envelope.revoke(data, keyholders.technician.fingerprint)
    assert envelope.read_meta(revoked)[1] == [keyholders.head.fingerprint,
                                              keyholders.recovery.fingerprint]
    with pytest.raises(NotARecipient):
        envelope.open(revoked, keyholders.technician.key)
    assert envelope.open(revoked, keyholders.recovery.key).body == b"x"
    with pytest.raises(NotARecipient):
        envelope.revoke(revoked, keyholders.technician.fingerprint)
    only_head = envelope.revoke(revoked, keyholders.recovery.fingerprint)
    with pytest.raises(EnvelopeError, match="last recipient"):
        envelope.revoke(only_head, keyholders.head.fingerprint)


def test_a_slot_moved_to_another_event_does_not_open(head_key: Keyholder) -> None:
    one = envelope.seal(META, HEADER, b"one", [head_key.public])
    two = envelope.seal(replace(META, event_id="other"), HEADER, b"two", [head_key.public])
    l1, l2 = _layout(one), _layout(two)
    moved = (two[:l2.slots[0]["sealed"][0]] + one[l1.slots[0]["sealed"][0]:l1.slots[0]["sealed"][1]]
             + two[l2.slots[0]["sealed"][1]:])
    with pytest.raises(EnvelopeError, match="slot"):
        envelope.open(moved, head_key.key)


def test_duplicate_recipients_are_sealed_once(head_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"x", [head_key.public, head_key.public])
    assert envelope.read_meta(data)[1] == [head_key.fingerprint]


# --- tampering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("edit", [
    {"event_id": "another-event"}, {"device_id": "dev-43"}, {"time": "2026-11-23T09:15:01Z"},
    {"category": "bullying"}, {"severity": 1}, {"rule": "suicide.other"}, {"source": "title"},
    {"chunk_size": SMALL * 2},
])
def test_relabelling_any_metadata_field_breaks_opening(head_key: Keyholder, edit: dict) -> None:
    data = _seal_chunked(_body(2 * SMALL + 1), [head_key.public])
    tampered = _with_clear(data, edit)
    assert envelope.read_meta(tampered)[0] != META or "chunk_size" in edit  # it does parse
    with pytest.raises(EnvelopeError):
        envelope.open(tampered, head_key.key)


def test_replaced_commitment_is_detected(head_key: Keyholder) -> None:
    import base64

    data = envelope.seal(META, HEADER, b"x", [head_key.public])
    tampered = _with_clear(data, {"commitment": base64.b64encode(b"\0" * 32).decode()})
    with pytest.raises(EnvelopeError):
        envelope.open(tampered, head_key.key)


def _regions(data: bytes) -> dict[str, int]:
    """One byte offset inside each part of the envelope."""
    layout = _layout(data)
    slot = layout.slots[0]
    return {
        "magic": 0, "version": 8, "clear length": 12, "clear section": layout.clear[0] + 5,
        "slot count": layout.slot_count + 1, "slot fingerprint": slot["fp"][0] + 6,
        "slot kem": slot["kem"][0], "slot sealed-key length": slot["kem"][1] + 1,
        "slot sealed key": slot["sealed"][0] + 3, "slot tag": slot["sealed"][1] - 1,
        "slot mac": slot["mac"][0] + 4, "other slot": layout.slots[-1]["sealed"][0] + 9,
        "other slot mac": layout.slots[-1]["mac"][1] - 1,
        "header length": layout.header[0] - 1, "header ciphertext": layout.header[0] + 2,
        "header tag": layout.header[1] - 1, "first body chunk": layout.body + 1,
        "first chunk tag": layout.body + SMALL + 15, "middle chunk": layout.body + SMALL + 16 + 9,
        "last chunk": len(data) - 20, "last tag": len(data) - 1,
    }


REGIONS = ["magic", "version", "clear length", "clear section", "slot count",
           "slot fingerprint", "slot kem", "slot sealed-key length", "slot sealed key", "slot tag",
           "slot mac", "other slot", "other slot mac", "header length", "header ciphertext",
           "header tag", "first body chunk",
           "first chunk tag", "middle chunk", "last chunk", "last tag"]


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("bit", [0x01, 0x80])
def test_flipping_a_bit_in_any_region_fails(head_key: Keyholder, technician_key: Keyholder,
                                            region: str, bit: int) -> None:
    data = _seal_chunked(_body(3 * SMALL + 100), [head_key.public, technician_key.public])
    regions = _regions(data)
    assert list(regions) == REGIONS
    at = regions[region]
    with pytest.raises(EnvelopeError):
        envelope.open(_flip(data, at, bit), head_key.key)


def test_truncation_anywhere_fails(head_key: Keyholder) -> None:
    data = _seal_chunked(_body(3 * SMALL + 100), [head_key.public])
    layout = _layout(data)
    cuts = set(range(0, layout.body + 40, 7)) | {
        layout.body, layout.body + SMALL + 16, layout.body + 2 * (SMALL + 16),
        layout.body + 3 * (SMALL + 16), len(data) - 16, len(data) - 1}
    for cut in sorted(cuts):
        with pytest.raises(EnvelopeError):
            envelope.open(data[:cut], head_key.key)


def test_dropping_reordering_or_appending_chunks_fails(head_key: Keyholder) -> None:
    body = _body(3 * SMALL)  # exactly three full chunks, so every chunk has the same length
    data = _seal_chunked(body, [head_key.public])
    start = _layout(data).body
    step = SMALL + 16
    chunks = [data[start + i * step:start + (i + 1) * step] for i in range(3)]
    assert b"".join(chunks) == data[start:]
    variants = {
        "drop last": chunks[:2], "drop first": chunks[1:],
        "swap": [chunks[1], chunks[0], chunks[2]],
        "repeat": [chunks[0], *chunks], "append chunk": [*chunks, chunks[2]],
    }
    for name, parts in variants.items():
        with pytest.raises(EnvelopeError):
            envelope.open(data[:start] + b"".join(parts), head_key.key)
            pytest.fail(name)
    with pytest.raises(EnvelopeError):
        envelope.open(data + b"\0", head_key.key)


@pytest.mark.parametrize("garbage", [b"", b"V", b"VIGILENV", b"VIGILENV\x02", b"PK\x03\x04",
                                     b"VIGILENV\x01\xff\xff\xff\xff", b"\0" * 100])
def test_garbage_is_refused_by_every_entry_point(head_key: Keyholder, garbage: bytes) -> None:
    for call in (lambda: envelope.read_meta(garbage), lambda: envelope.open(garbage, head_key.key),
                 lambda: envelope.grant(garbage, head_key.key, head_key.public),
                 lambda: envelope.revoke(garbage, head_key.fingerprint)):
        with pytest.raises(EnvelopeError):
            call()


def test_non_canonical_clear_section_is_refused(head_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"x", [head_key.public])
    layout = _layout(data)
    clear = data[layout.clear[0]:layout.clear[1]]
    spaced = clear.replace(b'":', b'": ', 1)
    tampered = data[:9] + struct.pack(">I", len(spaced)) + spaced + data[layout.clear[1]:]
    with pytest.raises(EnvelopeError, match="canonical"):
        envelope.read_meta(tampered)


_CORPUS: dict[str, bytes] = {}


def _corpus(head: Keyholder, technician: Keyholder) -> bytes:
    if "data" not in _CORPUS:
        _CORPUS["data"] = _seal_chunked(_body(2 * SMALL + 77), [head.public, technician.public])
    return _CORPUS["data"]


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
                min_size=1, max_size=4),
       st.one_of(st.none(), st.integers(min_value=0)), st.binary(max_size=8))
def test_random_corruption_never_opens_and_fails_only_with_our_error(
        head_key: Keyholder, technician_key: Keyholder, flips: list[tuple[int, int]],
        cut: int | None, tail: bytes) -> None:
    original = _corpus(head_key, technician_key)
    data = bytearray(original)
    for at, mask in flips:
        data[at % len(data)] ^= mask
    corrupted = bytes(data)
    if cut is not None:
        corrupted = corrupted[:cut % len(corrupted)]
    corrupted += tail
    if corrupted == original:
        return
    for key in (head_key.key, technician_key.key):
        try:
            envelope.open(corrupted, key)
        except EnvelopeError:
            continue
        except Exception as exc:  # noqa: BLE001 - the property: nothing but our own error
            pytest.fail(f"{type(exc).__name__}: {exc}")
        pytest.fail("a corrupted envelope opened")
    try:
        envelope.read_meta(corrupted)
    except EnvelopeError:
        pass


# --- memory ---------------------------------------------------------------------------------------


def _peak_during(call) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = call()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_20_mb_body_never_needs_three_copies(head_key: Keyholder,
                                               technician_key: Keyholder) -> None:
    body = bytes(20 * 1024 * 1024)
    recipients = [head_key.public, technician_key.public]
    sealed, seal_peak = _peak_during(lambda: envelope.seal(META, HEADER, body, recipients))
    assert isinstance(sealed, bytes)
    opened, open_peak = _peak_during(lambda: envelope.open(sealed, head_key.key))
    assert opened.body == body  # type: ignore[attr-defined]
    # The input and the output must exist; beyond the output (BytesIO grows it by up to 1/8)
    # only a chunk or two may be allocated: far from a third copy.
    assert seal_peak < 1.3 * len(body), seal_peak
    assert open_peak < 1.3 * len(body), open_peak


class _Trickle(io.RawIOBase):
    """A raw stream that returns at most 777 bytes per read, like a pipe under load."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buffer), 777, len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def test_short_reads_from_raw_streams_are_not_taken_for_the_end(head_key: Keyholder) -> None:
    body = _body(3 * SMALL + 123)
    out = io.BytesIO()
    envelope.seal_to(out, META, HEADER, _Trickle(body), [head_key.public], chunk_size=SMALL)
    assert envelope.open(out.getvalue(), head_key.key).body == body
    plain = io.BytesIO()
    meta, _ = envelope.open_from(_Trickle(out.getvalue()), head_key.key, plain)
    assert meta == META and plain.getvalue() == body


def test_grant_refuses_a_relabelled_event(head_key: Keyholder, technician_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"x", [head_key.public])
    with pytest.raises(EnvelopeError, match="altered"):
        envelope.grant(_with_clear(data, {"severity": 1}), head_key.key, technician_key.public)


def test_expect_refuses_a_relabelled_row_before_the_body_is_decrypted(head_key: Keyholder) -> None:
    """Issue 14: the metadata a reader was shown (a database row) must be what was sealed."""
    from core.errors import MetadataMismatch

    data = envelope.seal(META, HEADER, b"SCREENSHOT", [head_key.public])
    row = {**META.to_dict(), "time": META.time.replace(tzinfo=None)}  # naive from a database
    assert envelope.open(data, head_key.key, expect=row).body == b"SCREENSHOT"
    relabelled = {**row, "severity": 1, "category": "gambling"}
    with pytest.raises(MetadataMismatch) as caught:
        envelope.open(data, head_key.key, expect=relabelled)
    assert caught.value.differences == [("category", "gambling", "suicide"),
                                        ("severity", 1, 5)]
    assert str(caught.value) == (
        "this capture's record was changed after it arrived: category is gambling in the "
        "database but suicide in the sealed capture, severity is 1 in the database but 5 in "
        "the sealed capture; it was not opened")
    out = io.BytesIO()
    with pytest.raises(MetadataMismatch):
        envelope.open_from(io.BytesIO(data), head_key.key, out, expect={"severity": 1})
    assert out.getvalue() == b""  # not a byte of the body
    with pytest.raises(MetadataMismatch, match="time is 2026-11-23T09:15:01Z in the database"):
        envelope.open_header(data, head_key.key,
                             expect={"time": META.time + timedelta(seconds=1)})
    with pytest.raises(MetadataMismatch, match="severity is 5 in the database"):
        envelope.open_header(data, head_key.key, expect={"severity": "5"})  # text is not 5
    with pytest.raises(EnvelopeError, match="unknown metadata field"):
        envelope.open_header(data, head_key.key, expect={"user": "pupil7"})
    hostile = {"rule": "x\n" + "y" * 200}
    with pytest.raises(MetadataMismatch) as caught:
        envelope.open_header(data, head_key.key, expect=hostile)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300

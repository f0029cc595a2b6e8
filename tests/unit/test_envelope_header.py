"""open_header: the sealed header from the prefix alone, with open()'s checks on what it returns."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from core import envelope
from core.errors import EnvelopeError, NotARecipient
from tests.fixtures.keys import Keyholder
from tests.unit.test_envelope import (
    HEADER,
    META,
    REGIONS,
    SMALL,
    _body,
    _flip,
    _layout,
    _regions,
    _seal_chunked,
    _with_clear,
)

# Regions open_header reads; flipping a bit in any of them must fail as open() does.
PREFIX_REGIONS = REGIONS[: REGIONS.index("first body chunk")]
BODY_REGIONS = REGIONS[REGIONS.index("first body chunk"):]


def test_header_matches_open_for_bytes_and_files(tmp_path: Path, head_key: Keyholder,
                                                 technician_key: Keyholder) -> None:
    data = _seal_chunked(_body(3 * SMALL + 100), [head_key.public, technician_key.public])
    for holder in (head_key, technician_key):
        assert envelope.open_header(data, holder.key) == (META, HEADER)
    path = tmp_path / "event.vigil"
    path.write_bytes(data)
    with path.open("rb") as src:
        assert envelope.open_header(src, head_key.key) == (META, HEADER)
        # Only the prefix was read: the file stands at the first body chunk.
        assert src.tell() == _layout(data).body


def test_the_body_is_not_read_from_a_stream(head_key: Keyholder) -> None:
    data = _seal_chunked(_body(5 * SMALL), [head_key.public])
    stream = io.BytesIO(data)
    envelope.open_header(stream, head_key.key)
    assert stream.read() == data[_layout(data).body:]


@pytest.mark.parametrize("region", PREFIX_REGIONS)
@pytest.mark.parametrize("bit", [0x01, 0x80])
def test_flipping_a_bit_in_the_prefix_fails(head_key: Keyholder, technician_key: Keyholder,
                                           region: str, bit: int) -> None:
    data = _seal_chunked(_body(3 * SMALL + 100), [head_key.public, technician_key.public])
    with pytest.raises(EnvelopeError):
        envelope.open_header(_flip(data, _regions(data)[region], bit), head_key.key)


@pytest.mark.parametrize("region", BODY_REGIONS)
def test_a_tampered_body_is_left_to_open(head_key: Keyholder, region: str) -> None:
    """The documented limit: the header is whole and authentic; the body is not looked at."""
    sealed = _seal_chunked(_body(3 * SMALL + 100), [head_key.public])
    data = _flip(sealed, _regions(sealed)[region])
    assert envelope.open_header(data, head_key.key) == (META, HEADER)
    with pytest.raises(EnvelopeError):
        envelope.open(data, head_key.key)


@pytest.mark.parametrize("edit", [{"severity": 1}, {"device_id": "dev-43"}, {"category": "x"},
                                  {"time": "2026-11-23T09:15:01Z"}, {"rule": "other"}])
def test_relabelled_metadata_breaks_the_header(head_key: Keyholder, edit: dict) -> None:
    data = envelope.seal(META, HEADER, b"shot", [head_key.public])
    with pytest.raises(EnvelopeError, match="altered"):
        envelope.open_header(_with_clear(data, edit), head_key.key)


def test_replaced_commitment_is_detected(head_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"shot", [head_key.public])
    # The clear section is in the HPKE info, so the slot itself no longer opens either.
    with pytest.raises(EnvelopeError, match="altered"):
        envelope.open_header(_with_clear(data, {"commitment": "A" * 43 + "="}), head_key.key)


def test_another_keyholders_tampered_slot_is_detected(head_key: Keyholder,
                                                      technician_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"shot", [head_key.public, technician_key.public])
    other_mac = _layout(data).slots[1]["mac"][0]
    with pytest.raises(EnvelopeError, match="slot"):
        envelope.open_header(_flip(data, other_mac), head_key.key)


def test_truncation_inside_the_prefix_fails(head_key: Keyholder) -> None:
    data = _seal_chunked(_body(SMALL), [head_key.public])
    for cut in range(0, _layout(data).body, 11):
        with pytest.raises(EnvelopeError):
            envelope.open_header(data[:cut], head_key.key)


def test_not_a_recipient(head_key: Keyholder, stranger_key: Keyholder) -> None:
    data = envelope.seal(META, HEADER, b"shot", [head_key.public])
    with pytest.raises(NotARecipient):
        envelope.open_header(data, stranger_key.key)

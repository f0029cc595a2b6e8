"""The triage list's header-only opening against the real directory blob store."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.store.blobs import BlobStore
from collector.store.models import Event
from core import envelope
from dashboard.captures import open_capture, open_header
from dashboard.errors import BadRequest, NotFound
from tests.fixtures.keys import Keyholder
from tests.unit.test_envelope import HEADER, META, _flip


def _stored(tmp_path: Path, sealed: bytes) -> tuple[BlobStore, Event]:
    blobs = BlobStore(tmp_path / "blobs")
    blobs.put(f"ev/{META.event_id}", sealed)
    event = Event(id=META.event_id, device_id=META.device_id, time=META.time,
                  category=META.category, severity=META.severity, rule=META.rule,
                  source=META.source, blob_key=f"ev/{META.event_id}", size=len(sealed), sha256="0" * 64)
    return blobs, event


def test_header_without_the_screenshot(tmp_path: Path, head_key: Keyholder) -> None:
    blobs, event = _stored(tmp_path, envelope.seal(META, HEADER, b"x" * 5000, [head_key.public]))
    assert open_header(blobs, event, head_key.key) == HEADER
    assert open_capture(blobs, event, head_key.key).header == HEADER


def test_a_damaged_screenshot_still_lists_but_never_opens(tmp_path: Path,
                                                          head_key: Keyholder) -> None:
    sealed = envelope.seal(META, HEADER, b"x" * 5000, [head_key.public])
    blobs, event = _stored(tmp_path, _flip(sealed, len(sealed) - 1))
    assert open_header(blobs, event, head_key.key) == HEADER
    with pytest.raises(BadRequest, match="altered"):
        open_capture(blobs, event, head_key.key)


def test_a_relabelled_row_is_refused(tmp_path: Path, head_key: Keyholder,
                                     stranger_key: Keyholder) -> None:
    sealed = envelope.seal(META, HEADER, b"x", [head_key.public])
    blobs, event = _stored(tmp_path, sealed[:60] + bytes([sealed[60] ^ 1]) + sealed[61:])
    with pytest.raises(BadRequest, match="cannot be opened"):
        open_header(blobs, event, head_key.key)
    blobs, event = _stored(tmp_path, sealed)
    with pytest.raises(BadRequest):
        open_header(blobs, event, stranger_key.key)
    event.blob_key = "ev/missing"
    with pytest.raises(NotFound):
        open_header(blobs, event, head_key.key)

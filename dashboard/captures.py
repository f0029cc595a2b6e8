"""Opening sealed events with a keyholder's unlocked key, in memory only.

The envelope is fetched from the blob store and opened on each request; neither the header nor
the screenshot is cached or written anywhere. Lists that show only headers use
:func:`open_header`, which decrypts the envelope's prefix and leaves the screenshot sealed.
Both first check the event's row against the metadata sealed in the envelope and raise
:class:`~dashboard.errors.Relabelled` (nothing shown) when the row was changed after it arrived.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.errors import BlobNotFound
from collector.relabel import row_meta
from collector.store.models import Event
from core.errors import EnvelopeError, MetadataMismatch
from dashboard.errors import BadRequest, NotFound, Relabelled

__all__ = [
    "Capture",
    "Detected",
    "detected",
    "has_screenshot",
    "highlight",
    "open_capture",
    "open_header",
    "opener",
    "report_details",
    "score_text",
    "sealed_bytes",
]


@dataclass(frozen=True, slots=True)
class Capture:
    header: dict[str, Any]
    body: bytes

    @property
    def media_type(self) -> str:
        # The sealed header is written by the desktop, so it picks this type: only the raster
        # formats the agent makes may reach a browser as images. "image/svg+xml" (or anything
        # else) would be a document with scripts on the dashboard's own origin.
        media = str(self.header.get("media_type") or "image/png").strip().lower()
        return media if media in RASTER_TYPES else "application/octet-stream"

    @property
    def extension(self) -> str:
        return RASTER_TYPES.get(self.media_type, "bin")


RASTER_TYPES = {"image/png": "png", "image/webp": "webp", "image/jpeg": "jpg"}


def sealed_bytes(blobs: Any, event: Event) -> bytes:
    # The blob store has no ranged read, so the whole envelope is fetched; only the caller
    # decides how much of it is decrypted.
    try:
        data = blobs.get(event.blob_key)
    except (FileNotFoundError, KeyError, BlobNotFound) as exc:
        raise NotFound(f"The sealed capture of event {event.id} is missing from the store.") from exc
    if data is None:
        raise NotFound(f"The sealed capture of event {event.id} is missing from the store.")
    return bytes(data)


def _unopenable(event: Event, exc: EnvelopeError) -> BadRequest:
    return BadRequest(f"Event {event.id} cannot be opened with your key: {exc}")


def open_capture(blobs: Any, event: Event, key: Any) -> Capture:
    from core import envelope

    try:
        opened = envelope.open(sealed_bytes(blobs, event), key, expect=row_meta(event))
    except MetadataMismatch as exc:
        raise Relabelled(event.id, exc) from exc
    except EnvelopeError as exc:
        raise _unopenable(event, exc) from exc
    return Capture(header=dict(opened.header), body=bytes(opened.body))


def open_header(blobs: Any, event: Event, key: Any) -> dict[str, Any]:
    """The event's sealed header, authenticated, without decrypting the screenshot."""
    from core import envelope

    try:
        _, header = envelope.open_header(sealed_bytes(blobs, event), key, expect=row_meta(event))
    except MetadataMismatch as exc:
        raise Relabelled(event.id, exc) from exc
    except EnvelopeError as exc:
        raise _unopenable(event, exc) from exc
    return dict(header)


def opener(blobs: Any, key: Any, db: Any, actor: str,
           via: str) -> Callable[[Event], dict[str, Any] | None]:
    """``open_header`` for pages that look at many headers at once and show none of them
    (precision's suggestions, the wordlist replay): an event that cannot be opened is None, left
    out rather than failing the page; a relabelled row is still put in the audit log."""
    def open_one(event: Event) -> dict[str, Any] | None:
        try:
            return open_header(blobs, event, key)
        except (NotFound, BadRequest) as exc:
            if isinstance(exc, Relabelled):
                exc.record(db, actor, via)
            return None

    return open_one


def has_screenshot(header: dict[str, Any]) -> bool:
    """False when the desktop sealed no picture: a supervisor's tamper report says
    ``media_type: null`` and has an empty body. Headers from before tamper reports have no
    ``media_type`` at all and always carry a screenshot."""
    return header.get("media_type", "image/png") is not None


DETAIL_LIMIT = 20  # fields shown of a tamper report's detail; the supervisor sends a handful


def report_details(header: dict[str, Any]) -> list[tuple[str, str]]:
    """A tamper report's ``detail`` as (name, value) text pairs, for the template to escape.
    The header came from a desktop: anything but a flat object of short values is shown as
    text, cut short, never interpreted."""
    detail = header.get("detail")
    if not isinstance(detail, dict):
        return []
    pairs = [(str(name)[:64], _shown(value)) for name, value in detail.items()]
    if isinstance(header.get("count"), int) and header["count"] > 1:
        pairs.append(("times seen", str(header["count"])))
    return pairs[:DETAIL_LIMIT]


def _shown(value: Any, limit: int = 300) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:limit]


def highlight(header: dict[str, Any]) -> tuple[str, str, str]:
    """Split the context into (before, matched, after) so the template can mark the match.

    The parts stay plain strings: the template escapes each one.
    """
    context = str(header.get("context") or "")
    match = header.get("match")
    if not isinstance(match, dict):  # the header came from a desktop: trust no shape
        match = {}
    text = str(match.get("text") or "")
    start, end = match.get("start"), match.get("end")
    if (
        isinstance(start, int)
        and isinstance(end, int)
        and 0 <= start <= end <= len(context)
        and (not text or context[start:end] == text)
    ):
        return context[:start], context[start:end], context[end:]
    if text:
        at = context.lower().find(text.lower())
        if at >= 0:
            return context[:at], context[at : at + len(text)], context[at + len(text) :]
    return context, "", ""


SENTENCE_LIMIT = 1000  # characters shown of each sentence; the agent sends far less


@dataclass(frozen=True, slots=True)
class Detected:
    """Which detector fired and the sentences around the trigger, from a sealed header (issue 13).

    ``detector`` is "" for headers from agents before the sentence model (render as before),
    "list" or "model", or another short word a newer agent may send. ``score`` is the model's
    calibrated probability, already formatted ("0.93"), or "". Every part is plain text for the
    template to escape.
    """

    detector: str = ""
    score: str = ""
    before: str = ""
    trigger: str = ""
    after: str = ""

    @property
    def has_sentences(self) -> bool:
        return bool(self.before or self.trigger or self.after)


def score_text(score: float) -> str:
    """Two decimals ("0.93"); above 0.99, three, cut rather than rounded, so 0.9996 is "0.999"
    and never a certainty the model did not give (severity 5 starts at 0.995)."""
    if score >= 0.99:
        return f"{math.floor(score * 1000) / 1000:.3f}"
    return f"{score:.2f}"


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def detected(header: dict[str, Any]) -> Detected:
    """Read ``detector``, ``score`` and ``sentences`` from a header a desktop wrote: trust no
    shape. Anything malformed is left out rather than shown as something it is not."""
    detector = _text(header.get("detector"), 32).strip()
    raw = header.get("score")
    score = ""
    if (isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw)
            and 0.0 <= raw <= 1.0):
        score = score_text(float(raw))
    sentences = header.get("sentences")
    if not isinstance(sentences, dict):
        sentences = {}
    return Detected(
        detector=detector,
        score=score,
        before=_text(sentences.get("before"), SENTENCE_LIMIT),
        trigger=_text(sentences.get("trigger"), SENTENCE_LIMIT),
        after=_text(sentences.get("after"), SENTENCE_LIMIT),
    )

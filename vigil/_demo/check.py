"""Prove the demo worked: a capture reached the collector and opens with the head's key.

It reads what the collector stored (the event rows and their sealed blobs) and opens each
envelope with core.envelope, exactly as a keyholder's dashboard session would, but in this
process, so a broken dashboard cannot hide a broken pipeline or the other way round.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil._demo.errors import DemoError

__all__ = ["OpenedCapture", "open_captures", "stored_event_ids"]


@dataclass(frozen=True)
class OpenedCapture:
    event_id: str
    category: str
    severity: int
    rule: str
    context: str
    title: str
    image_size: tuple[int, int]
    media_type: str


def _open_db(data_dir: Path) -> tuple[Any, Any]:
    from collector.admin import open_database
    from collector.settings import Settings

    settings = Settings.load(data_dir)
    return settings, open_database(settings)


def stored_event_ids(data_dir: Path) -> list[str]:
    from sqlmodel import col, select

    from collector.store.models import Event

    _, db = _open_db(data_dir)
    try:
        with db.session() as session:
            return list(session.exec(select(Event.id).order_by(col(Event.time))).all())
    finally:
        db.close()


def _image_size(body: bytes) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(body)) as image:
            return image.size
    except UnidentifiedImageError:
        raise DemoError("an opened capture's body is not an image") from None


def open_captures(data_dir: Path, keyholder: str, password: str) -> list[OpenedCapture]:
    """Open every stored event with ``keyholder``'s key, unlocked with ``password``."""
    from sqlmodel import col, select

    from collector.store.blobs import BlobStore
    from collector.store.models import Event, Keyholder
    from core import envelope
    from core.keys import KeyFile

    settings, db = _open_db(data_dir)
    try:
        with db.session() as session:
            holder = session.exec(select(Keyholder).where(Keyholder.name == keyholder)).first()
            if holder is None or holder.key_file is None:
                raise DemoError(f"the collector has no key for keyholder {keyholder!r}")
            key = KeyFile.from_bytes(holder.key_file).unlock(password)
            events = session.exec(select(Event).order_by(col(Event.time))).all()
            blobs = BlobStore(settings.blob_dir)
            opened: list[OpenedCapture] = []
            for event in events:
                sealed = envelope.open(blobs.get(event.blob_key), key)
                header = sealed.header
                opened.append(OpenedCapture(
                    event_id=event.id, category=event.category, severity=event.severity,
                    rule=event.rule, context=str(header.get("context", "")),
                    title=str(header.get("title", "")), image_size=_image_size(sealed.body),
                    media_type=str(header.get("media_type", "")),
                ))
            return opened
    finally:
        db.close()

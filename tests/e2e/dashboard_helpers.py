"""Helpers for the dashboard's browser tests: accounts, sealed events, signing in.

Events are sealed with core.envelope to the collector's real keyholders and posted through the
real ingest API by an enrolled device, exactly as an agent would.
"""

from __future__ import annotations

import base64
import io
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = [
    "GOVERNOR",
    "SCREENSHOTS",
    "SeedEvent",
    "audit_entries",
    "event_status",
    "make_accounts",
    "png",
    "seed_events",
    "shoot",
    "sign_in",
    "unlock",
]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
GOVERNOR = ("governor", "governor-dashboard-password")


def event_status(server: Any, event_id: str) -> str:
    """The triage status the collector's database holds for ``event_id``."""
    from collector.store.models import Event

    db = server.database()
    try:
        with db.session() as session:
            return session.get(Event, event_id).status
    finally:
        db.close()


def audit_entries(server: Any, action: str) -> list[Any]:
    """The collector's audit entries with ``action``, oldest first."""
    from sqlmodel import col, select

    from collector.store.models import AuditEntry

    db = server.database()
    try:
        with db.session() as session:
            return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)
                                     .order_by(col(AuditEntry.seq))).all())
    finally:
        db.close()


def make_accounts(server: Any) -> dict[str, tuple[str, str]]:
    """Sign-ins by role: the fixture's keyholders already have accounts (same name and password
    as their key); a governor is added here."""
    from collector.admin import add_account

    db = server.database()
    try:
        add_account(db, GOVERNOR[0], "governor", GOVERNOR[1], actor="test")
    finally:
        db.close()
    return {
        "technician": (server.keys.technician.name, server.keys.technician.password),
        "head": (server.keys.head.name, server.keys.head.password),
        "governor": GOVERNOR,
    }


NORTH_HILL = ("NHA", "North Hill Academy")
SOUTH_BANK = ("SHB", "South Bank School")


def add_schools(server: Any, *schools: tuple[str, str],
                scopes: dict[str, tuple[str, str | None]] | None = None) -> None:
    """Add ``schools`` (code, name) to the collector, then scope accounts: ``scopes`` maps a
    username to (school code, years as collector.admin.set_account_school takes them)."""
    from collector.admin import add_school, set_account_school

    db = server.database()
    try:
        for code, name in schools:
            add_school(db, code, name, actor="test")
        for username, (code, years) in (scopes or {}).items():
            set_account_school(db, username, code, actor="test", years=years)
    finally:
        db.close()


def png(text: str, size: tuple[int, int] = (640, 360)) -> bytes:
    """A real PNG screenshot-like image with ``text`` drawn on it."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, (236, 240, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, size[0], 28), fill=(40, 82, 122))
    draw.text((10, 8), text, fill=(255, 255, 255))
    draw.text((20, 60), "Document1 - Word", fill=(20, 20, 20))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@dataclass
class SeedEvent:
    category: str
    severity: int
    rule: str
    title: str
    context: str
    matched: str
    user: str = "pupil.y9"
    source: str = "typed"
    minutes_ago: int = 5
    id: str = ""
    body: bytes = b""
    # More sealed header fields, e.g. issue 13's detector, score and sentences.
    extra: dict[str, Any] = field(default_factory=dict)
    year: str = ""  # the cohort tag in the clear metadata (core.cohort); "": untagged


def seed_events(server: Any, events: list[SeedEvent], hostname: str = "IT-SUITE-07",
                group: str = "year-9", school: str = "") -> str:
    """Enrol a device (into ``school``, a code, if given) and post the events sealed to the
    keyholders; returns the device id."""
    from core.envelope import Metadata, seal

    device = server.enrol(hostname=hostname, group=group, school=school)
    device_id = device.id
    recipients = server.public_keys()
    batch = []
    now = datetime.now(UTC)
    for ev in events:
        ev.id = ev.id or str(uuid.uuid4())
        ev.body = ev.body or png(f"{hostname}: {ev.rule}")
        meta = Metadata(event_id=ev.id, device_id=device_id, time=now - timedelta(minutes=ev.minutes_ago),
                        category=ev.category, severity=ev.severity, rule=ev.rule, source=ev.source,
                        year=ev.year)
        start = ev.context.find(ev.matched)
        header = {
            "user": ev.user, "host": hostname, "title": ev.title, "app": "winword.exe",
            "context": ev.context,
            "match": {"start": start, "end": start + len(ev.matched), "text": ev.matched},
            "source": ev.source, "count": 1, "media_type": "image/png",
            **ev.extra,
        }
        envelope = seal(meta, header, ev.body, recipients)
        batch.append({"id": ev.id, "envelope": base64.b64encode(envelope).decode()})
    answer = server.client.post("/api/v1/events", json={"events": batch},
                                headers=device.auth)
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["stored"]) == sorted(e.id for e in events)
    return device_id


def sign_in(page: Any, server: Any, who: tuple[str, str]) -> None:
    page.goto(server.url + "/login")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def unlock(page: Any, server: Any, role: str, next_path: str = "/triage") -> None:
    page.goto(f"{server.url}/unlock?next={next_path}")
    page.fill("input[name=password]", getattr(server.keys, role).password)
    page.click("form[action='/unlock'] button[type=submit]")
    page.wait_for_selector(".key.unlocked")


def shoot(page: Any, name: str) -> None:
    """Screenshot the page: into docs/screenshots/ under ``make screenshots``
    (VIGIL_UPDATE_SCREENSHOTS=1), otherwise only taken, so a test run never edits tracked files."""
    data = page.screenshot(full_page=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), name
    if os.environ.get("VIGIL_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"{name}.png").write_bytes(data)

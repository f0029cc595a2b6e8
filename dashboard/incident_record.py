"""The online safety incident record: its fields, and sealing it to the keyholders.

The record names pupils and staff, so like a capture it is sealed (core.envelope) to every
current keyholder; a stolen database shows only that an incident of some type exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from collector.store.models import Incident
from core.errors import EnvelopeError
from dashboard.errors import BadRequest

__all__ = [
    "INCIDENT_TYPES",
    "INFORMED",
    "IncidentRecord",
    "open_record",
    "seal_record",
]

# From the seeds' "Online safety incident record" (type of incident checklist).
INCIDENT_TYPES: tuple[str, ...] = (
    "Accessing age-inappropriate websites",
    "Bullying or harassment",
    "Hate or discriminatory material",
    "Sexting or child abuse images",
    "Grooming or exploitation",
    "Pornography",
    "Violence",
    "Terrorist or extremist material",
    "Drugs or bomb making",
    "Gambling",
    "Self-harm or suicide",
    "Bypassing security",
    "Hacking or impersonation",
    "Other",
)

# Who was informed (the seeds' incident record and response protocol).
INFORMED: tuple[str, ...] = (
    "Designated Safeguarding Lead",
    "Online safety coordinator",
    "Head teacher",
    "Parents or carers",
    "Police or CEOP",
    "LADO",
    "Safeguarding referral (children's services)",
    "The social network or service",
)

RECORD_TEXT_LIMIT = 8000


@dataclass(slots=True)
class IncidentRecord:
    """The sealed narrative. Every field is free text written by staff."""

    reported_by: str = ""
    involved: str = ""  # who was involved: child, staff, parent, other
    description: str = ""
    action: str = ""  # immediate action taken
    informed: list[str] = field(default_factory=list)
    outcome: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "reported_by": self.reported_by,
            "involved": self.involved,
            "description": self.description,
            "action": self.action,
            "informed": list(self.informed),
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncidentRecord:
        informed = data.get("informed") or []
        return cls(
            reported_by=str(data.get("reported_by") or ""),
            involved=str(data.get("involved") or ""),
            description=str(data.get("description") or ""),
            action=str(data.get("action") or ""),
            informed=[str(x) for x in informed if str(x) in INFORMED],
            outcome=str(data.get("outcome") or ""),
        )

    def check(self) -> IncidentRecord:
        for name in ("reported_by", "involved", "description", "action", "outcome"):
            if len(getattr(self, name)) > RECORD_TEXT_LIMIT:
                raise BadRequest(f"{name} is too long (at most {RECORD_TEXT_LIMIT} characters).")
        return self


def _meta(incident: Incident, created: datetime) -> Any:
    from core.envelope import Metadata

    return Metadata(
        event_id=f"incident-{incident.id}",
        device_id="collector",
        time=created,
        category="incident",
        severity=1,
        rule="incident-record",
        source="dashboard",
    )


def seal_record(db: Session, incident: Incident, record: IncidentRecord) -> bytes:
    """Seal the record to every current keyholder; the incident must already have its id."""
    from collector.keyholders import public_keys
    from core import envelope

    recipients = public_keys(db)
    if not recipients:
        raise BadRequest("There are no keyholders to seal the incident record to.")
    return envelope.seal(_meta(incident, incident.created_at), record.as_dict(), b"", recipients)


def open_record(incident: Incident, key: Any) -> IncidentRecord:
    from core import envelope

    if not incident.sealed_record:
        return IncidentRecord()
    try:
        opened = envelope.open(bytes(incident.sealed_record), key)
    except EnvelopeError as exc:
        raise BadRequest(f"Incident {incident.id}'s record cannot be opened with your key: {exc}") from exc
    if opened.meta.event_id != f"incident-{incident.id}":
        raise BadRequest(f"Incident {incident.id}'s record belongs to another incident.")
    return IncidentRecord.from_dict(opened.header)

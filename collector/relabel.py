"""Relabelling is refused: a stored event's row is checked against the metadata sealed with it.

The clear metadata (event id, device, time, category, severity, rule, source) is bound to every
ciphertext of the envelope as associated data, so it cannot be changed in the blob without the
capture failing to open. The database row is a copy anyone who can write the database can edit.
Every path that opens a stored capture (the dashboard's pages and screenshots, the evidence
export, ``vigil collector event open``) hands :func:`row_meta` to ``core.envelope`` as
``expect``: a row that no longer says what was sealed is refused before anything is shown, and
the refusal goes into the audit log (:func:`record_refusal`).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from collector.store.models import AuditEntry, Event
from core.errors import MetadataMismatch

__all__ = ["REFUSED", "record_refusal", "refusal_details", "row_meta"]

REFUSED = "capture.relabel_refused"  # the audit action


def row_meta(event: Event) -> dict[str, Any]:
    """What the row claims, in the envelope's metadata fields. The user name has no clear
    copy (it is only in the sealed header), so there is nothing of it to relabel. The cohort
    tag (year, form) is compared too: routing acted on it, so a row relabelled to another year
    group is refused like one relabelled to another category."""
    return {"event_id": event.id, "device_id": event.device_id, "time": event.time,
            "category": event.category, "severity": event.severity, "rule": event.rule,
            "source": event.source, "year": event.year or "", "form": event.form or ""}


def _json(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def refusal_details(exc: MetadataMismatch, via: str) -> dict[str, Any]:
    """The audit details of a refusal: each differing field, as the database and the seal have
    it (clear metadata only; nothing sealed in the header is ever decrypted for this)."""
    return {"via": via, "fields": {name: {"database": _json(claimed), "sealed": _json(sealed)}
                                   for name, claimed, sealed in exc.differences}}


def record_refusal(session: Session, actor: str, event_id: str, exc: MetadataMismatch,
                   via: str) -> AuditEntry:
    """Append the refusal to the audit log in the caller's transaction (commit it)."""
    from collector.audit import record

    return record(session, actor, REFUSED, event_id, refusal_details(exc, via))

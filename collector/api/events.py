"""POST /api/v1/events (a batch of sealed events) and POST /api/v1/events/repeats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, col, select

from collector.deps import BlobsDep, DatabaseDep, DeviceDep, SettingsDep
from collector.ingest import IncomingEvent, ingest
from collector.store.models import Event

__all__ = [
    "UUID_PATTERN",
    "EventBatch",
    "EventIn",
    "EventsAnswer",
    "Repeat",
    "RepeatBatch",
    "RepeatsAnswer",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["agent"])

# Canonical lower-case UUID text: event ids name blobs, so nothing else is accepted.
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class EventIn(BaseModel):
    id: str = Field(pattern=UUID_PATTERN)
    envelope: str = Field(min_length=1, description="the sealed event, base64")


class EventBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1)


class EventsAnswer(BaseModel):
    stored: list[str]
    duplicate: list[str]
    deferred: list[str] = Field(
        default_factory=list,
        description="severity 1-3 events held back by the device's rate limit: not stored, "
                    "send them again later (present only when there are any)")


class Repeat(BaseModel):
    id: str = Field(pattern=UUID_PATTERN)
    count: int = Field(ge=1, le=1_000_000)
    last_seen: datetime


class RepeatBatch(BaseModel):
    repeats: list[Repeat] = Field(min_length=1, max_length=1000)


class RepeatsAnswer(BaseModel):
    updated: list[str]


async def _read_batch(request: Request) -> EventBatch:
    """Parse and validate in one pass with pydantic's own JSON parser: a batch is megabytes of
    base64, and the standard json module plus dict validation cost several times as much."""
    try:
        return EventBatch.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its $defs inlined, to embed in the OpenAPI document."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


_BATCH_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _inline_schema(EventBatch)}}}}


@router.post("/events", response_model=EventsAnswer, response_model_exclude_unset=True,
             openapi_extra=_BATCH_BODY)
def post_events(request: Request, batch: Annotated[EventBatch, Depends(_read_batch)],
                device: DeviceDep, db: DatabaseDep, blobs: BlobsDep,
                settings: SettingsDep) -> EventsAnswer:
    result = ingest(db, blobs, settings, device,
                    [IncomingEvent(e.id, e.envelope) for e in batch.events],
                    limiter=getattr(request.app.state, "ingest_limiter", None))
    deferred = {"deferred": result.deferred} if result.deferred else {}  # sent only if any
    return EventsAnswer(stored=result.stored, duplicate=result.duplicate, **deferred)


@router.post("/events/repeats", response_model=RepeatsAnswer)
def post_repeats(batch: RepeatBatch, device: DeviceDep, db: DatabaseDep) -> RepeatsAnswer:
    """Flood control: the agent reports how often a rule fired again after the first event."""

    def job(session: Session) -> list[str]:
        by_id = {r.id: r for r in batch.repeats}
        rows = session.exec(select(Event).where(col(Event.id).in_(list(by_id)),
                                                Event.device_id == device.id)).all()
        for event in rows:
            r = by_id[event.id]
            last = r.last_seen if r.last_seen.tzinfo else r.last_seen.replace(
                tzinfo=event.time.tzinfo)
            event.repeat_count = max(event.repeat_count, r.count)  # a resend changes nothing
            if event.last_repeat_at is None or last > event.last_repeat_at:
                event.last_repeat_at = last
            session.add(event)
        return [event.id for event in rows]

    return RepeatsAnswer(updated=db.write(job))

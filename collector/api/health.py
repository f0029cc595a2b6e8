"""GET /healthz: the service is up and its database answers."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from collector.deps import SessionDep
from collector.errors import StorageError

__all__ = ["Health", "router"]

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health)
def healthz(session: SessionDep) -> Health:
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        raise StorageError("the database does not answer") from None
    return Health(status="ok")

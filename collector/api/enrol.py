"""POST /api/v1/enrol: exchange an enrolment token for a device id and secret."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import update
from sqlmodel import Session, col

from collector import audit
from collector.deps import DatabaseDep, hash_secret
from collector.errors import BadEnrolToken
from collector.keyholders import keyset_fingerprint
from collector.store.models import Device, EnrolToken, utcnow

__all__ = ["EnrolRequest", "EnrolResponse", "router", "token_hash"]

router = APIRouter(prefix="/api/v1", tags=["agent"])


class EnrolRequest(BaseModel):
    token: str = Field(min_length=16, max_length=128)
    hostname: str = Field(min_length=1, max_length=255)
    os: str = Field(default="", max_length=64)
    agent_version: str = Field(default="", max_length=32)


class EnrolResponse(BaseModel):
    device_id: str
    secret: str
    keyset_fingerprint: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@router.post("/enrol", status_code=201, response_model=EnrolResponse)
def enrol(body: EnrolRequest, db: DatabaseDep) -> EnrolResponse:
    def job(session: Session) -> EnrolResponse:
        now = utcnow()
        # One conditional UPDATE both checks and spends the token, so two agents racing for
        # the last use cannot both win.
        spent = session.execute(
            update(EnrolToken)
            .where(col(EnrolToken.token_hash) == token_hash(body.token),
                   col(EnrolToken.revoked_at).is_(None),
                   col(EnrolToken.expires_at) > now,
                   col(EnrolToken.uses) < col(EnrolToken.max_uses))
            .values(uses=EnrolToken.uses + 1)
            .returning(EnrolToken.id, EnrolToken.group, EnrolToken.school_id)
        ).first()
        if spent is None:
            raise BadEnrolToken("enrolment token is unknown, expired, used up or revoked: "
                                "ask for a new one")
        secret = secrets.token_urlsafe(32)
        device = Device(id=str(uuid.uuid4()), hostname=body.hostname, os=body.os,
                        group=spent.group, school_id=spent.school_id,
                        agent_version=body.agent_version,
                        secret_hash=hash_secret(secret), last_seen=now)
        session.add(device)
        details = {"hostname": body.hostname, "group": spent.group, "token_id": spent.id}
        if spent.school_id is not None:  # the school the token enrols into (issue 18)
            details["school_id"] = spent.school_id
        audit.record(session, f"device:{device.id}", "enrol", target=device.id, details=details)
        return EnrolResponse(device_id=device.id, secret=secret,
                             keyset_fingerprint=keyset_fingerprint(session))

    return db.write(job)

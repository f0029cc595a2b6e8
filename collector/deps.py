"""FastAPI dependencies: the settings, a database session, the blob store, the calling device."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from collector.errors import ReEnrol
from collector.settings import Settings
from collector.store.blobs import Blobs
from collector.store.db import Database
from collector.store.models import Device

__all__ = [
    "BlobsDep",
    "DatabaseDep",
    "DeviceDep",
    "SessionDep",
    "SettingsDep",
    "get_blobs",
    "get_db",
    "get_device",
    "get_session",
    "get_settings",
    "hash_secret",
]

# Compared against when the device is unknown, so a wrong id costs the same time as a wrong secret.
_DUMMY_HASH = hashlib.sha256(b"vigil-no-such-device").hexdigest()


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# The trivial getters are async so that FastAPI calls them on the event loop: a sync dependency
# costs a hop through the thread pool, several per request on the ingest path.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_db(request: Request) -> Database:
    return request.app.state.db


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.db.session() as session:
        yield session


async def get_blobs(request: Request) -> Blobs:
    return request.app.state.blobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[Session, Depends(get_session)]
BlobsDep = Annotated[Blobs, Depends(get_blobs)]


def get_device(request: Request, db: DatabaseDep) -> Device:
    """The device named by ``Authorization: Bearer <device_id>.<secret>``, or 401 re-enrol."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    device_id, dot, secret = credential.strip().partition(".")
    if scheme.lower() != "bearer" or not dot or not device_id or not secret or len(device_id) > 36:
        raise ReEnrol("missing or malformed device credential: enrol this device")
    with db.session() as session:  # its own short session: no thread-pool hops of SessionDep
        device = session.get(Device, device_id)
    stored = device.secret_hash if device is not None else _DUMMY_HASH
    if not hmac.compare_digest(hash_secret(secret), stored) or device is None:
        raise ReEnrol("unknown device or wrong secret: enrol this device again")
    if device.revoked_at is not None:
        raise ReEnrol("this device has been revoked: enrol it again")
    request.state.device_id = device.id  # for the access log; never the secret
    return device


DeviceDep = Annotated[Device, Depends(get_device)]

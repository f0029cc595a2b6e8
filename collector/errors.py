"""The collector's errors: each maps to one HTTP status and a machine code the agent understands.

Raised in library code and in routes alike; the app turns them into ``{"detail", "code"}`` JSON,
and the ``vigil`` command prints them as one line.
"""

from __future__ import annotations

__all__ = [
    "BadEnrolToken",
    "BadRequest",
    "BlobKeyError",
    "BlobNotFound",
    "CollectorError",
    "Conflict",
    "Forbidden",
    "NotFound",
    "NotInitialised",
    "PayloadTooLarge",
    "ReEnrol",
    "SettingsError",
    "StorageError",
    "StorageFull",
    "TooManyRequests",
]

from core.errors import VigilError


class CollectorError(VigilError):
    """An expected collector failure. ``status`` and ``code`` are what an HTTP client sees."""

    status: int = 500
    code: str = "collector-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self) -> dict[str, object]:
        """The JSON an HTTP client gets."""
        return {"detail": self.detail, "code": self.code}


class NotInitialised(CollectorError):
    code = "not-initialised"


class SettingsError(CollectorError):
    code = "bad-settings"


class StorageError(CollectorError):
    """The store cannot take the write right now; the agent keeps the event and retries."""

    status = 503
    code = "storage-unavailable"


class StorageFull(StorageError):
    status = 507
    code = "storage-full"


class BlobKeyError(CollectorError):
    status = 422
    code = "bad-blob-key"


class BlobNotFound(CollectorError):
    status = 404
    code = "blob-not-found"


class BadRequest(CollectorError):
    status = 422
    code = "invalid"

    def __init__(self, detail: str, code: str = "invalid") -> None:
        super().__init__(detail)
        self.code = code


class PayloadTooLarge(CollectorError):
    status = 413
    code = "too-large"


class TooManyRequests(CollectorError):
    """This device sent more than its share: send again after ``retry_after`` seconds."""

    status = 429
    code = "slow-down"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, round(retry_after)))}


class ReEnrol(CollectorError):
    """Unknown, revoked or malformed device credential: the agent must enrol again."""

    status = 401
    code = "re-enrol"


class BadEnrolToken(CollectorError):
    status = 401
    code = "bad-token"


class NotFound(CollectorError):
    status = 404
    code = "not-found"


class Conflict(CollectorError):
    status = 409
    code = "conflict"


class Forbidden(CollectorError):
    """The caller may not have this (e.g. /metrics from outside the admin network)."""

    status = 403
    code = "forbidden"

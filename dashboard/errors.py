"""The dashboard's expected failures. Each becomes a one-line page (or JSON for scripts)."""

from __future__ import annotations

from typing import Any

from core.errors import VigilError

__all__ = [
    "BackedOff",
    "BadCredentials",
    "BadRequest",
    "Conflict",
    "CsrfRejected",
    "DashboardError",
    "Forbidden",
    "KeyLocked",
    "LockedOut",
    "NotAReader",
    "NotFound",
    "NotSignedIn",
    "Relabelled",
]


class DashboardError(VigilError):
    """A refused dashboard request; ``status`` and ``code`` go into the HTTP answer."""

    status: int = 400
    code: str = "bad-request"


class NotSignedIn(DashboardError):
    status = 401
    code = "not-signed-in"

    def __init__(self, message: str = "Please sign in.") -> None:
        super().__init__(message)


class Forbidden(DashboardError):
    status = 403
    code = "forbidden"

    def __init__(self, message: str = "Your role does not allow this page.") -> None:
        super().__init__(message)


class CsrfRejected(DashboardError):
    status = 403
    code = "csrf"

    def __init__(self) -> None:
        super().__init__(
            "This form has expired or did not come from the dashboard; reload the page and retry."
        )


class BadCredentials(DashboardError):
    status = 401
    code = "bad-credentials"


class LockedOut(DashboardError):
    status = 429
    code = "locked-out"


class BackedOff(LockedOut):
    """A guess refused untried: the client address or the account must wait a little longer.

    ``kind`` is login or unlock, ``scope`` source (this address) or account (the account, from
    elsewhere), ``seconds`` the whole seconds left.
    """

    def __init__(self, kind: str, scope: str, seconds: int) -> None:
        what = "sign-ins" if kind == "login" else "unlock attempts"
        if seconds < 120:
            wait = f"{seconds} second{'s' if seconds != 1 else ''}"
        else:
            wait = f"{-(-seconds // 60)} minutes"
        if scope == "source":
            message = f"Too many failed {what} from this address: try again in {wait}."
        else:
            message = f"This account has had many failed {what} from elsewhere: try again in {wait}."
        super().__init__(message)
        self.kind, self.scope, self.seconds = kind, scope, seconds


class KeyLocked(DashboardError):
    status = 403
    code = "key-locked"

    def __init__(self) -> None:
        super().__init__("Unlock your key first: captures are sealed to keyholders.")


class NotAReader(Forbidden):
    """A keyholder's key that no signed policy lists: it may not be unlocked here."""

    code = "not-a-reader"

    def __init__(self) -> None:
        super().__init__(
            "Your key is not among the readers the keyholders signed, so it cannot be unlocked "
            "here. A current keyholder must approve it on the Keyholders page first."
        )


class NotFound(DashboardError):
    status = 404
    code = "not-found"


class BadRequest(DashboardError):
    status = 400
    code = "bad-request"


class Conflict(DashboardError):
    """What the request was based on has changed since (e.g. a roster preview): do it again."""

    status = 409
    code = "conflict"


class Relabelled(BadRequest):
    """The event's row no longer says what was sealed with its capture: it is not opened.

    A BadRequest, so any caller that handles "cannot be opened" refuses it too; callers that
    hold a database session also put it in the audit log (:meth:`record`).
    """

    status = 409
    code = "relabelled"

    def __init__(self, event_id: str, mismatch: object) -> None:
        super().__init__(f"Event {event_id}: {mismatch}.")
        self.event_id = event_id
        self.mismatch = mismatch

    def record(self, db: Any, actor: str, via: str) -> None:
        """Put this refusal in the audit log and commit it (via: which page or path)."""
        from dashboard.auditing import audit_relabel

        audit_relabel(db, actor, self, via)

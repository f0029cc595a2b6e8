"""The collector's tables (SQLModel), shared by the collector's API and the dashboard.

What is stored in the clear is only what DESIGN.md allows a thief with the database to learn:
which device fired which category and rule, when, and how staff handled it. Everything a pupil
typed or saw stays inside the sealed envelope in the blob store. Schema changes go through the
Alembic migrations in collector/store/migrations/.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import JSON, Field, SQLModel

__all__ = [
    "DETECTION_NOTE_MAX",
    "Account",
    "AccountRole",
    "AuditEntry",
    "AuditHead",
    "CohortSalt",
    "DetectionMode",
    "Device",
    "EnrolToken",
    "Event",
    "EventNote",
    "Grade",
    "Incident",
    "IncidentEvent",
    "IncidentHistory",
    "IncidentStatus",
    "Keyholder",
    "LoginAttempt",
    "OnCallShift",
    "PolicyRecord",
    "RetentionRun",
    "RosterImport",
    "RosterPupil",
    "RouteDelivery",
    "RouteRule",
    "RouteTarget",
    "School",
    "WordlistFile",
    "WorkingHours",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Grade(StrEnum):
    """An event's triage status. ``new`` until a keyholder grades it."""

    NEW = "new"
    FALSE_POSITIVE = "false_positive"
    NO_CONCERN = "no_concern"
    CONCERN = "concern"
    ESCALATED = "escalated"


class AccountRole(StrEnum):
    TECHNICIAN = "technician"
    HEAD = "head"
    GOVERNOR = "governor"


class IncidentStatus(StrEnum):
    OPEN = "open"
    REFERRED = "referred"
    CLOSED = "closed"


class DetectionMode(StrEnum):
    """What an agent detects with, from its heartbeat (issue 13): the word lists always, and the
    sentence model when it loaded. ``""`` on a device row means the agent never said (older agents)."""

    LISTS_AND_MODEL = "lists+model"
    LISTS = "lists"  # the model is switched off by the agent's settings
    MODEL_UNAVAILABLE = "lists (model unavailable)"  # the model failed to load: degraded


DETECTION_NOTE_MAX = 300
SCREEN_STATE_MAX = 64


class School(SQLModel, table=True):
    """A school of the trust (issue 18). A collector with no schools is one school, as before
    there were schools: every row has ``school_id`` NULL and every account sees everything."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)  # e.g. "NHA", typed in commands and forms
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class Device(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=36)
    hostname: str = Field(max_length=255)
    os: str = Field(default="", max_length=64)
    group: str = Field(default="", max_length=64, index=True)
    # From its enrolment token; NULL: no school (a collector without schools, or enrolled
    # before they were added), seen only by trust-wide accounts once schools exist.
    school_id: int | None = Field(default=None, index=True)
    agent_version: str = Field(default="", max_length=32)
    secret_hash: str = Field(max_length=128)  # SHA-256 of the 256-bit device secret
    enrolled_at: datetime = Field(default_factory=utcnow)
    last_seen: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str = Field(default="", max_length=255)
    user_signed_in: bool = False
    spool_depth: int = 0
    dropped: int = 0  # events the agent had to drop (spool full), cumulative
    quarantined: int = 0
    listener_restarts: int = 0
    policy_serial: int = 0
    # From the heartbeat: a DetectionMode value, or "" until the agent reports one. The server
    # default lets an older collector instance insert a device during a rolling upgrade.
    detection: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})
    # Why the model is off, one line, as the desktop said it (shown escaped, never trusted).
    detection_note: str = Field(default="", max_length=DETECTION_NOTE_MAX,
                                sa_column_kwargs={"server_default": ""})
    # From the heartbeat: "sha256:..." of the signed policy the agent runs under ("" until one
    # reports it), compared with the published one's ETag (collector.device_health).
    policy_digest: str = Field(default="", max_length=80, sa_column_kwargs={"server_default": ""})
    silent_alerted_at: datetime | None = None  # the silent-device job's last alert for it
    # From the heartbeat: the agent's screen reader, "on", "off", "off (engine unavailable)",
    # with " (paused: ...)" while it holds off; "" until an agent reports it (issue 16).
    screen: str = Field(default="", max_length=SCREEN_STATE_MAX,
                        sa_column_kwargs={"server_default": ""})
    screen_note: str = Field(default="", max_length=DETECTION_NOTE_MAX,
                             sa_column_kwargs={"server_default": ""})


class EnrolToken(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=128, unique=True)  # SHA-256; the token itself is shown once
    group: str = Field(default="", max_length=64)
    school_id: int | None = Field(default=None)
    max_uses: int = 1
    uses: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
    created_by: str = Field(default="", max_length=64)


class Event(SQLModel, table=True):
    """One sealed capture: its clear metadata and where its envelope lies in the blob store."""

    __table_args__ = (
        # Keyset pagination of the triage queue: newest first, with every filter.
        Index("ix_event_time_id", "time", "id"),
        Index("ix_event_status_time", "status", "time", "id"),
        Index("ix_event_category_time", "category", "time", "id"),
        Index("ix_event_severity_time", "severity", "time", "id"),
        Index("ix_event_device_time", "device_id", "time", "id"),
        Index("ix_event_received", "received_at"),
    )

    id: str = Field(primary_key=True, max_length=36)  # the agent's event id (UUID)
    device_id: str = Field(foreign_key="device.id", max_length=36)
    time: datetime  # when the rule fired, from the sealed metadata
    received_at: datetime = Field(default_factory=utcnow)
    category: str = Field(max_length=32)
    severity: int
    rule: str = Field(max_length=128)
    source: str = Field(default="typed", max_length=16)  # typed | title | paste
    repeat_count: int = 1  # flood control: how many times the rule fired in the window
    last_repeat_at: datetime | None = None
    blob_key: str = Field(max_length=128)
    size: int
    sha256: str = Field(max_length=64)  # of the blob as stored now (a grant rewrites it)
    # Of the envelope as the agent sent it: what a re-sent event is compared with.
    received_sha256: str | None = Field(default=None, max_length=64)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    status: str = Field(default=Grade.NEW.value, max_length=16)
    graded_by: str | None = Field(default=None, max_length=64)
    graded_at: datetime | None = None
    alerted_at: datetime | None = None  # when the alert e-mail went out (severity >= threshold)
    routed_at: datetime | None = None  # when the routing rules were applied (collector.routing)
    # The pupil's cohort tag from the clear metadata (core.cohort): year group and form as the
    # agent looked them up in its school's cohort map; "" unknown. Never the name.
    year: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})
    form: str = Field(default="", max_length=32, sa_column_kwargs={"server_default": ""})


class EventNote(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(foreign_key="event.id", index=True, max_length=36)
    author: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    text: str = Field(sa_column=Column(Text, nullable=False))


class Keyholder(SQLModel, table=True):
    """A keyholder's key: the public half, and the private half only as its password-encrypted file."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)  # head | technician | recovery
    fingerprint: str = Field(max_length=128, unique=True)
    public_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_file: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # encrypted; None for recovery
    created_at: datetime = Field(default_factory=utcnow)
    retired_at: datetime | None = None


class Account(SQLModel, table=True):
    """A dashboard sign-in. Keyholders' accounts link to their key."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    role: str = Field(max_length=16)  # AccountRole
    password_hash: str = Field(max_length=255)  # Argon2id
    totp_secret: str | None = Field(default=None, max_length=64)
    keyholder_id: int | None = Field(default=None, foreign_key="keyholder.id")
    # The school this account is scoped to (dashboard.scope); NULL: the whole trust.
    school_id: int | None = Field(default=None)
    # Within that school, the year groups it sees (dashboard.scope), comma-separated as events
    # carry them ("7,8"); empty: every year. A deputy DSL for Year 7 sees no other pupils.
    years: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None


class LoginAttempt(SQLModel, table=True):
    """Failed sign-ins and unlocks, kept in the database so every instance sees the same limits."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, index=True)  # login | unlock
    subject: str = Field(max_length=128, index=True)  # username or client address
    at: datetime = Field(default_factory=utcnow, index=True)


class Incident(SQLModel, table=True):
    """An online safety incident record (see the seeds' incident record and protocol)."""

    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    status: str = Field(default=IncidentStatus.OPEN.value, max_length=16, index=True)
    incident_types: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    # The narrative (who was involved, description, action, who was informed, outcome) names
    # pupils, so it is sealed to the keyholders like a capture: an envelope in this column.
    sealed_record: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    created_by: str = Field(max_length=64)
    # The school of its events (dashboard.scope); NULL: trust-wide accounts only see it.
    school_id: int | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None


class IncidentEvent(SQLModel, table=True):
    incident_id: int = Field(foreign_key="incident.id", primary_key=True)
    event_id: str = Field(foreign_key="event.id", primary_key=True, max_length=36)


class IncidentHistory(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=64)
    change: str = Field(max_length=500)  # what changed, never the narrative itself


class PolicyRecord(SQLModel, table=True):
    serial: int = Field(primary_key=True)
    signed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # SignedPolicy bytes
    etag: str = Field(max_length=80)
    signer: str = Field(max_length=128)  # keyholder fingerprint
    created_at: datetime = Field(default_factory=utcnow)


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained: hash = SHA-256(prev_hash || canonical JSON of this entry)."""

    seq: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=128)  # account, device id, or "system"
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=255, index=True)
    details: dict = Field(default_factory=dict, sa_column=Column(JSON))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class AuditHead(SQLModel, table=True):
    """One row: the chain's last seq and hash. Writers lock this row, which serialises appends
    on PostgreSQL (row lock) and SQLite (write lock) alike."""

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)


class RetentionRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    deleted: int = 0
    kept_for_incidents: int = 0


class WordlistFile(SQLModel, table=True):
    """A school's own rule file (same TOML format as wordlists/), edited in the dashboard.

    Kept in the database rather than the data directory so that several collector instances
    publish the same policy.
    """

    name: str = Field(primary_key=True, max_length=64)  # e.g. "school.toml"
    text: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=64)


class RosterPupil(SQLModel, table=True):
    """A pupil from the school's MIS (issue 18), so a keyholder who has opened an event's sealed
    header sees a name, year and form beside the login name.

    Names are personal data kept in the clear, like device hostnames: a thief with the database
    learns the school's roll (and these flags), never which pupil an event concerns, because the
    login name stays inside the sealed header and is matched against this table only in the
    dashboard request that opened it. Nothing here records a match.
    """

    __tablename__ = "roster_pupil"

    id: int | None = Field(default=None, primary_key=True)
    # The login name as agents report it, folded (dashboard.roster.login_key): lower case, no
    # DOMAIN\ prefix, no @domain; unique, so matching is case-insensitive.
    username: str = Field(max_length=64, unique=True)
    upn: str = Field(default="", max_length=13)
    admission_no: str = Field(default="", max_length=20)
    given_name: str = Field(default="", max_length=100)
    family_name: str = Field(default="", max_length=100)
    year: str = Field(default="", max_length=16)  # "7", or as the MIS says it ("Reception")
    form: str = Field(default="", max_length=32)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON))  # SEN, LAC, CP
    source: str = Field(default="", max_length=120)  # the import that last wrote the row
    # Set when an import no longer lists the pupil (kept, not deleted); cleared when one does.
    missing_since: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    # The school whose import last listed the pupil; NULL: no school (a collector without
    # schools, or a row imported before rosters were per school), which every school's cohort
    # map and name lookup still sees, so an upgrade changes nothing until a school imports.
    # ``username`` stays unique across the trust: one login is one pupil, who moves school.
    school_id: int | None = Field(default=None, index=True)


class RosterImport(SQLModel, table=True):
    """One uploaded roster file: held (``data``) between its preview and its confirmation so
    that any collector instance can apply it, then kept with its counts only."""

    __tablename__ = "roster_import"

    id: int | None = Field(default=None, primary_key=True)
    shape: str = Field(max_length=16)  # sims | arbor | bromcom | wonde
    filename: str = Field(default="", max_length=120)
    data: bytes | None = Field(default=None, sa_column=Column(LargeBinary))  # None once applied
    base_digest: str = Field(max_length=64)  # the roster the preview was computed against
    counts: dict = Field(default_factory=dict, sa_column=Column(JSON))
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    applied_at: datetime | None = None
    school_id: int | None = Field(default=None)  # the school the file is for; NULL: no school


class CohortSalt(SQLModel, table=True):
    """The per-school secret of the cohort map (collector.cohorts): keys are
    HMAC-SHA256(salt, folded login), so a map copied off one school's desktops cannot be
    matched against another school's. ``scope`` is the school's id as text, or "" for the
    collector's own (no school). Made once, on first use, and kept: a new salt would only make
    every desktop fetch a new map, with nothing gained (the logins stay guessable either way)."""

    __tablename__ = "cohort_salt"

    scope: str = Field(primary_key=True, max_length=16)
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class RouteTarget(SQLModel, table=True):
    """Where a routing rule sends its alert (collector.routing): an e-mail address, or a
    Microsoft Teams or Slack incoming webhook. A webhook URL is a secret (anyone holding it can
    post to the channel): it is never logged, audited or shown in full, and ``address`` holds it
    sealed under the data directory's secrets.key behind its masked form
    (collector.secrets_at_rest), so the database alone does not reveal it."""

    __tablename__ = "route_target"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # email | webhook
    label: str = Field(max_length=64)  # e.g. "DSL (Mrs Patel)", "Safeguarding channel"
    address: str = Field(sa_column=Column(Text, nullable=False))
    digest: bool = False  # e-mail only: the weekly digest (counts) goes to this address too
    # The school whose account added it (its digest counts that school's events); NULL: trust.
    school_id: int | None = Field(default=None)
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None


class RouteRule(SQLModel, table=True):
    """Events of ``category`` (empty: any) at ``min_severity`` or above, from devices in
    ``group`` (empty: any), of pupils in ``year`` (empty: any) and of ``school_id`` (NULL: any),
    are sent to ``targets`` (RouteTarget ids)."""

    __tablename__ = "route_rule"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    category: str = Field(default="", max_length=32)
    min_severity: int = 1
    group: str = Field(default="", max_length=64)
    # The event's year group from its cohort tag (core.cohort), e.g. "7"; empty: any year.
    year: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})
    # A school's rule matches that school's events only; NULL (a trust-wide account's): any.
    school_id: int | None = Field(default=None)
    targets: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    # Out of working hours (collector.oncall): "" the targets only, "also" the on-call DSL of
    # the rota as well, "instead" the on-call DSL in their place (the targets if nobody is on
    # call). The server default lets an older instance add a rule during a rolling upgrade.
    out_of_hours: str = Field(default="", max_length=8, sa_column_kwargs={"server_default": ""})
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None


class RouteDelivery(SQLModel, table=True):
    """One event for one target: made once when the event is routed, sent (with the target's
    other due events in one message), retried with back-off while the target is down."""

    __tablename__ = "route_delivery"
    __table_args__ = (UniqueConstraint("event_id", "target_id"),
                      Index("ix_route_delivery_due", "status", "next_attempt_at"))

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=36)  # no foreign key: retention deletes events freely
    target_id: int = Field(foreign_key="route_target.id")
    rule_id: int = Field(foreign_key="route_rule.id")
    status: str = Field(default="pending", max_length=16)  # pending | sent | failed
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str = Field(default="", max_length=255)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


class WorkingHours(SQLModel, table=True):
    """A school's working hours, in Europe/London time (collector.oncall): on ``days``
    (0 Monday .. 6 Sunday) from ``start`` to ``end`` ("08:00", "18:00"). One row per school;
    ``school_id`` NULL: the trust's (and a collector without schools'), which a school without
    its own row follows, closed days included. No row at all: Monday to Friday, 08:00 to 18:00."""

    __tablename__ = "working_hours"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int | None = Field(default=None, index=True)
    days: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)
    #: Closed days (collector.oncall.check_closed): [[first, last], ...] as ISO dates, London
    #: calendar; out of hours all day. NULL: none set.
    closed: list[list[str]] | None = Field(default=None, sa_column=Column(JSON))
    updated_by: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class OnCallShift(SQLModel, table=True):
    """One line of a school's out-of-hours rota (collector.oncall): ``name`` is on call on
    ``days`` from ``start`` to ``end`` (London time; an end at or before the start runs into the
    next day, equal ones are the whole day). Alerts reach them through their own routing targets
    (an e-mail, and a webhook if given), so they are sent, retried and audited like any other."""

    __tablename__ = "oncall_shift"

    id: int | None = Field(default=None, primary_key=True)
    school_id: int | None = Field(default=None, index=True)
    name: str = Field(max_length=64)
    days: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)
    email_target_id: int = Field(foreign_key="route_target.id")
    webhook_target_id: int | None = Field(default=None, foreign_key="route_target.id")
    created_by: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    removed_at: datetime | None = None

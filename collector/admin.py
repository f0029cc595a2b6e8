"""Administration the `vigil collector` command performs: data directory, keyholders, accounts,
enrolment tokens, revocation. Each change that matters is recorded in the audit log."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from collector import audit
from collector.api.enrol import token_hash
from collector.errors import BadRequest, CollectorError, Conflict, NotFound
from collector.settings import SETTINGS_FILE, Settings, render_settings_file
from collector.store.db import Database, make_engine
from collector.store.models import Account, AccountRole, EnrolToken, Keyholder, School, utcnow
from collector.store.schema import upgrade
from collector.tls import create_self_signed
from core.cohort import join_years, split_years

__all__ = [
    "KEYHOLDER_ROLES",
    "EnrolTokenInfo",
    "add_account",
    "add_keyholder_key",
    "add_school",
    "create_enrol_token",
    "hash_password",
    "import_recovery_key",
    "init_data_dir",
    "open_database",
    "parse_duration",
    "register_keyholder",
    "revoke_enrol_token",
    "school_by_code",
    "schools",
    "set_account_school",
]

KEYHOLDER_ROLES = ("head", "technician")
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def init_data_dir(data: Path, public_url: str = "", port: int | None = None,
                  database_url: str = "") -> tuple[Settings, str]:
    """Create DATA with settings, database, blob directory and TLS; return (settings, cert fpr)."""
    data = Path(data)
    if (data / SETTINGS_FILE).exists():
        raise Conflict(f"{data} is already initialised (found {SETTINGS_FILE})")
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    settings = Settings(data_dir=data, public_url=public_url, database_url=database_url,
                        **({"port": port} if port else {}))
    settings.blob_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = create_self_signed(settings.tls_cert, settings.tls_key)
    path = data / SETTINGS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # holds the SMTP password
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(render_settings_file(settings))
    db = open_database(settings)
    db.close()
    return settings, fingerprint


def open_database(settings: Settings, *, audit_log: bool = True) -> Database:
    """The settings' database, schema upgraded to the latest migration, its audit entries also
    appended to the append-only log (started if absent; ``audit_log=False`` only for verifying
    it, which must find a missing log rather than start a new one)."""
    from collector.audit_log import open_log

    engine = make_engine(settings.database_url)
    upgrade(engine)
    db = Database(engine)
    if audit_log:
        try:
            open_log(db, settings.audit_log)
        except OSError as exc:
            db.close()
            raise CollectorError(f"cannot open the append-only audit log {settings.audit_log}: "
                                 f"{exc.strerror or exc}") from None
        except BaseException:
            db.close()
            raise
    return db


def hash_password(password: str) -> str:
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def _unique(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} already exists") from None


def register_keyholder(db: Database, key_file: Any, password: str, actor: str = "cli"
                       ) -> Keyholder:
    """Store an existing core.keys.KeyFile (encrypted) and make the keyholder's dashboard
    account with the same password, which must unlock the key.

    For tests and the demo only, until the dashboard sets a PASSWORD_FROM_KEY account's password
    at first sign-in: it needs the password on the server. Schools use add_keyholder_key. Like
    it, the row is only a proposal until a reader signs it (collector.trust_root)."""
    if key_file.role not in KEYHOLDER_ROLES:
        raise BadRequest(f"role must be one of {', '.join(KEYHOLDER_ROLES)}")
    key_file.unlock(password)  # WrongPassword now rather than a dashboard that cannot unlock
    password_hash = hash_password(password)
    name, role = key_file.name, key_file.role

    def job(session: Session) -> Keyholder:
        holder = Keyholder(name=name, role=role, fingerprint=key_file.fingerprint,
                           public_key=key_file.public.to_bytes(), key_file=key_file.to_bytes())
        session.add(holder)
        _unique(session, f"keyholder {name!r}")
        session.add(Account(username=name, role=role, password_hash=password_hash,
                            keyholder_id=holder.id))
        _unique(session, f"account {name!r}")
        audit.record(session, actor, "keyholder.add", target=name,
                     details={"role": role, "fingerprint": key_file.fingerprint})
        return holder

    return db.write(job)


# An account whose password hash is empty has never signed in: its first sign-in proves the
# password by unlocking the linked key file, and only then is the password's hash stored. So the
# keyholder's password is typed by the keyholder alone: on their own machine when they made the
# key (`vigil keys create`), then in their own browser.
PASSWORD_FROM_KEY = ""


def add_keyholder_key(db: Database, key: Any, actor: str = "cli") -> Keyholder:
    """Propose a keyholder from what they made on their own machine: ``key`` is either their
    password-encrypted core.keys.KeyFile (they will unlock it on the dashboard; an account is
    made whose password is the key's, set at first sign-in) or only their core.keys.PublicKey
    (a recovery key, or a keyholder who opens captures on their own machine with `vigil open`).

    The row is only a proposal: it reads nothing until a current keyholder signs the change
    (collector.trust_root, collector.publishing.approve_as).
    """
    from core.keys import KeyFile

    key_file = key if isinstance(key, KeyFile) else None
    public = key_file.public if key_file is not None else key
    role = public.role
    if role not in (*KEYHOLDER_ROLES, "recovery"):
        raise BadRequest(f"role must be one of {', '.join((*KEYHOLDER_ROLES, 'recovery'))}")
    if role == "recovery" and key_file is not None:
        raise BadRequest("a recovery key's private half stays offline: give its .pub file only")

    def job(session: Session) -> Keyholder:
        holder = Keyholder(name=public.name, role=role, fingerprint=public.fingerprint,
                           public_key=public.to_bytes(),
                           key_file=key_file.to_bytes() if key_file is not None else None)
        session.add(holder)
        _unique(session, f"keyholder {public.name!r} (or a key with fingerprint "
                         f"{public.fingerprint})")
        if key_file is not None:
            session.add(Account(username=public.name, role=role,
                                password_hash=PASSWORD_FROM_KEY, keyholder_id=holder.id))
            _unique(session, f"account {public.name!r}")
        audit.record(session, actor, "keyholder.propose", target=public.name,
                     details={"role": role, "fingerprint": public.fingerprint,
                              "key_file": key_file is not None})
        return holder

    return db.write(job)


def import_recovery_key(db: Database, pub_path: Path, actor: str = "cli") -> Keyholder:
    """Add a recovery key by its public half only; its private half stays offline."""
    from core.keys import load_public_key

    public = load_public_key(pub_path)

    def job(session: Session) -> Keyholder:
        holder = Keyholder(name=public.name, role="recovery", fingerprint=public.fingerprint,
                           public_key=public.to_bytes(), key_file=None)
        session.add(holder)
        _unique(session, f"keyholder {public.name!r}")
        audit.record(session, actor, "keyholder.import", target=public.name,
                     details={"role": "recovery", "fingerprint": public.fingerprint})
        return holder

    return db.write(job)


def add_account(db: Database, username: str, role: str, password: str,
                actor: str = "cli", school: str = "") -> Account:
    """A dashboard account without a key (governors); ``school``: the code of the school it is
    scoped to, "" for the whole trust."""
    from core.keys import check_password

    if role != AccountRole.GOVERNOR.value:
        raise BadRequest("only governor accounts are added this way; keyholders get theirs "
                         "from `vigil collector keyholder add`")
    check_password(password)
    password_hash = hash_password(password)

    def job(session: Session) -> Account:
        scope = school_by_code(session, school) if school else None
        account = Account(username=username, role=role, password_hash=password_hash,
                          school_id=scope.id if scope else None)
        session.add(account)
        _unique(session, f"account {username!r}")
        details = {"role": role, **({"school": scope.code} if scope else {})}
        audit.record(session, actor, "account.add", target=username, details=details)
        return account

    return db.write(job)


def parse_duration(text: str) -> timedelta:
    """'7d', '12h', '1w2d', '90m' -> timedelta."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact.replace(" ", ""):
        raise BadRequest(f"cannot read duration {text!r}: use e.g. 7d, 12h, 30m, 2w")
    delta = timedelta(0)
    for number, unit in parts:
        delta += timedelta(**{_UNITS[unit]: int(number)})
    if delta <= timedelta(0):
        raise BadRequest("duration must be positive")
    return delta


ENROL_TOKEN_PREFIX = "vgt_"


@dataclass(frozen=True)
class EnrolTokenInfo:
    token: str
    id: int
    expires_at: datetime
    max_uses: int
    group: str


def create_enrol_token(db: Database, uses: int = 1, expires: timedelta = timedelta(days=7),
                       group: str = "", actor: str = "cli", school: str = "") -> EnrolTokenInfo:
    if not 1 <= uses <= 100_000:
        raise BadRequest("--uses must be between 1 and 100000")
    # The prefix names what the string is when it turns up in a ticket or a shell history, and
    # keeps it from starting with "-", which argparse would take for an option (1 in 64 bare).
    token = ENROL_TOKEN_PREFIX + secrets.token_urlsafe(24)
    expires_at = utcnow() + expires

    def job(session: Session) -> EnrolTokenInfo:
        scope = school_by_code(session, school) if school else None
        row = EnrolToken(token_hash=token_hash(token), group=group[:64], max_uses=uses,
                         expires_at=expires_at, created_by=actor,
                         school_id=scope.id if scope else None)
        session.add(row)
        session.flush()
        details: dict[str, Any] = {"uses": uses, "expires_at": expires_at.isoformat(),
                                   "group": group[:64]}
        if scope is not None:
            details["school"] = scope.code
        audit.record(session, actor, "enrol-token.create", target=str(row.id), details=details)
        return EnrolTokenInfo(token, int(row.id or 0), expires_at, uses, group[:64])

    return db.write(job)


def revoke_enrol_token(db: Database, token_or_id: str, actor: str = "cli") -> int:
    """Revoke by the token itself or by its number; return the token's number."""

    def job(session: Session) -> int:
        query = select(EnrolToken)
        if token_or_id.isdigit():
            query = query.where(EnrolToken.id == int(token_or_id))
        else:
            query = query.where(col(EnrolToken.token_hash) == token_hash(token_or_id))
        row = session.exec(query).first()
        if row is None:
            raise NotFound("no such enrolment token")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.add(row)
            audit.record(session, actor, "enrol-token.revoke", target=str(row.id))
        return int(row.id or 0)

    return db.write(job)



SCHOOL_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")


def school_by_code(session: Session, code: str) -> School:
    """The school with this code (case-insensitive), or NotFound naming the known codes."""
    wanted = code.strip().upper()
    row = session.exec(select(School).where(School.code == wanted)).first()
    if row is None:
        known = ", ".join(s.code for s in session.exec(select(School).order_by(School.code)))
        raise NotFound(f"no school with code {wanted!r}"
                       + (f" (known: {known})" if known else " (add one with `school add`)"))
    return row


def schools(db: Database) -> list[School]:
    with db.session() as session:
        return list(session.exec(select(School).order_by(School.code)).all())


def add_school(db: Database, code: str, name: str, actor: str = "cli") -> School:
    """A school of the trust; its code is kept in capitals (typed in commands and forms)."""
    code = code.strip().upper()
    name = name.strip()
    if not SCHOOL_CODE.fullmatch(code):
        raise BadRequest("a school code is 1 to 32 letters, digits, - or _, e.g. NHA")
    if not name or len(name) > 200:
        raise BadRequest("a school's name is 1 to 200 characters")

    def job(session: Session) -> School:
        row = School(code=code, name=name)
        session.add(row)
        _unique(session, f"school {code!r}")
        audit.record(session, actor, "school.add", target=f"school:{code}",
                     details={"name": name})
        return row

    return db.write(job)


def set_account_school(db: Database, username: str, school: str, actor: str = "cli",
                       years: str | None = None) -> Account:
    """Scope an account (a keyholder's too) to one school, or to the whole trust (``school``
    ""); within a school to some year groups (``years`` "7,8"; "" all years; None: keep the
    account's). Its open sessions keep going: the scope is read from the account on every
    request. A year scope on a trust-wide account is refused: it would mean those years of
    every school, which no one is given."""

    def job(session: Session) -> Account:
        account = session.exec(select(Account).where(Account.username == username)).first()
        if account is None:
            raise NotFound(f"no account {username!r}")
        scope = school_by_code(session, school) if school else None
        try:
            chosen = join_years(split_years(account.years if years is None else years))
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        if chosen and scope is None:
            raise BadRequest(f"a year scope is within a school: give {username} --school CODE "
                             "with --years" + (", or --all-years to make it trust-wide"
                                               if years is None else ""))
        account.school_id = scope.id if scope else None
        account.years = chosen
        session.add(account)
        details: dict[str, Any] = {"school": scope.code if scope else "trust"}
        if chosen:
            details["years"] = chosen
        audit.record(session, actor, "account.scope", target=username, details=details)
        return account

    return db.write(job)

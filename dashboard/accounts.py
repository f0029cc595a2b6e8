"""Dashboard accounts: change passwords, turn on TOTP, disable them.

Accounts are created by the collector (collector.admin: keyholders with their key, governors
without one)."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from collector.store.models import Account, Keyholder, utcnow
from dashboard.errors import BadRequest
from dashboard.models import TotpStep
from dashboard.security import hash_password, new_totp_secret, verify_password
from dashboard.sessions import end_all_for

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "claim_totp_step",
    "disable_account",
    "enable_totp",
    "first_sign_in_unlocks",
    "set_password",
    "store_first_password",
]

MIN_PASSWORD_LENGTH = 12


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"A dashboard password needs at least {MIN_PASSWORD_LENGTH} characters.")


def _get(db: Session, username: str) -> Account:
    account = db.exec(select(Account).where(Account.username == username)).first()
    if account is None:
        raise BadRequest(f"There is no account named {username!r}.")
    return account


def set_password(db: Session, username: str, password: str) -> None:
    _check_password(password)
    account = _get(db, username)
    account.password_hash = hash_password(password)
    db.add(account)
    db.commit()
    end_all_for(db, account.id or 0)


def enable_totp(db: Session, username: str) -> str:
    """Turn on the second factor; returns the otpauth:// URI to put in an authenticator app."""
    import pyotp

    account = _get(db, username)
    account.totp_secret = new_totp_secret()
    db.add(account)
    db.commit()
    return pyotp.TOTP(account.totp_secret).provisioning_uri(name=username, issuer_name="Vigil")


def disable_account(db: Session, username: str) -> None:
    account = _get(db, username)
    account.disabled_at = utcnow()
    db.add(account)
    db.commit()
    end_all_for(db, account.id or 0)


def claim_totp_step(db: Session, account_id: int, step: int) -> bool:
    """Record ``step`` as the account's last accepted TOTP step, if it is later than the last one.

    False means this code (or a later one) was already used. The compare-and-set is one UPDATE
    (or one INSERT on the primary key), so of two requests racing with the same code one wins.
    """
    for _ in range(2):  # a second pass only when a parallel first claim inserted the row
        moved = db.execute(
            update(TotpStep)
            .where(col(TotpStep.account_id) == account_id, col(TotpStep.step) < step)
            .values(step=step)
        )
        if moved.rowcount:
            db.commit()
            return True
        used = db.exec(select(TotpStep.step).where(TotpStep.account_id == account_id)).first()
        if used is not None:
            db.rollback()
            return False
        db.add(TotpStep(account_id=account_id, step=step))
        try:
            db.commit()
            return True
        except IntegrityError:
            db.rollback()
    return False


def first_sign_in_unlocks(db: Session, account: Account, password: str) -> bool:
    """For an account that has never signed in (collector.admin.PASSWORD_FROM_KEY): whether
    ``password`` unlocks the key file the new keyholder made on their own machine. Their
    password is theirs alone: no one set it for them on the server.

    The Argon2 check every sign-in does is done here too, against nothing, so a first sign-in
    never costs less than a normal one. An account with no key file can never sign in so.
    """
    from core.errors import KeyFileError, WrongPassword
    from core.keys import KeyFile

    verify_password(None, password)  # the same work as any sign-in; always False
    holder = db.get(Keyholder, account.keyholder_id) if account.keyholder_id else None
    if holder is None or holder.key_file is None or holder.retired_at is not None:
        return False
    try:
        KeyFile.from_bytes(holder.key_file).unlock(password)
    except (WrongPassword, KeyFileError):
        return False
    return True


def store_first_password(db: Session, account: Account, password: str) -> None:
    """After a first sign-in proved the password against the key: keep its Argon2 hash, so
    later sign-ins check it like any other account's."""
    account.password_hash = hash_password(password)
    db.add(account)
    db.commit()

"""The keyholder page's work: who reads now (as the keyholders signed it), what change waits for
a signature, taking a new keyholder's key file, rejecting a proposal, and who may sign.

The readers come only from collector.trust_root (the signed policy chain); the keyholder table
is a list of proposals. Nothing here widens the circle: an upload or a rejection changes only
the proposals, and a change takes effect only when a current reader signs it
(collector.publishing.approve_as, called by the route with the signer's password).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, delete, select

from collector.store.models import Account, Keyholder, PolicyRecord
from collector.trust_root import KeysetChange, SignedKeyset, proposed_change, signed_chain
from dashboard.auditing import audit
from dashboard.errors import BadRequest, Forbidden, NotFound
from dashboard.models import DashboardSession, TotpStep
from dashboard.sessions import SignedIn

__all__ = [
    "MAX_KEY_BYTES",
    "Overview",
    "Reader",
    "active_row",
    "is_reader",
    "overview",
    "parse_key_upload",
    "reject_proposal",
    "signer_for",
    "unapproved_count",
]

# A key file is a few kilobytes (a hybrid ML-KEM public key is the bulk); core.keys reads at
# most 64 KiB from disk, and an upload gets the same bound before anything parses it.
MAX_KEY_BYTES = 64 * 1024
_MAX_NAME = 64  # the keyholder and account tables' name columns


@dataclass(frozen=True)
class Reader:
    """One keyholder of the last signed policy."""

    name: str
    role: str
    fingerprint: str
    since: int  # the first policy serial of the unbroken run of signed policies listing them
    row_id: int | None  # their keyholder row, if still active (None: removal already proposed)
    has_key: bool  # their key file is on this server (they can unlock and sign here)


@dataclass(frozen=True)
class Overview:
    readers: list[Reader]
    current: SignedKeyset | None
    change: KeysetChange
    rows: dict[str, Keyholder]  # active keyholder rows by fingerprint
    problems: list[str]  # stored policies that did not verify (shown, as agents skip them)


def _since(chain: list[SignedKeyset]) -> dict[str, int]:
    """For each key of the last keyset, the serial from which every later policy listed it."""
    since: dict[str, int] = {}
    for fp in chain[-1].fingerprints if chain else ():
        for keyset in reversed(chain):
            if fp not in keyset.fingerprints:
                break
            since[fp] = keyset.serial
    return since


def overview(session: Session) -> Overview:
    chain, problems = signed_chain(session)
    current = chain[-1] if chain else None
    rows = {row.fingerprint: row for row in session.exec(
        select(Keyholder).where(col(Keyholder.retired_at).is_(None))).all()}
    since = _since(chain)
    readers = [
        Reader(k.name, k.role, k.fingerprint, since.get(k.fingerprint, current.serial),
               rows[k.fingerprint].id if k.fingerprint in rows else None,
               k.fingerprint in rows and rows[k.fingerprint].key_file is not None)
        for k in (current.keyholders if current else ())
    ]
    return Overview(readers, current, proposed_change(session), rows, problems)


# The banner on every keyholder page asks this on each page view; the chain walk verifies every
# stored policy, so its result is kept per process for as long as the stored policies are the
# same (a new or rewritten policy changes the newest serial or its etag, or the count).
_fingerprint_cache: dict[tuple[int, int, str], frozenset[str]] = {}


def _signed_fingerprints(session: Session) -> frozenset[str]:
    from sqlalchemy import func

    count, newest = session.exec(select(func.count(), func.max(PolicyRecord.serial))).one()
    etag = ""
    if newest is not None:
        etag = session.exec(select(PolicyRecord.etag)
                            .where(PolicyRecord.serial == newest)).first() or ""
    key = (int(count), int(newest or 0), str(etag))
    if key not in _fingerprint_cache:
        chain, _ = signed_chain(session)
        _fingerprint_cache.clear()
        _fingerprint_cache[key] = chain[-1].fingerprints if chain else frozenset()
    return _fingerprint_cache[key]


def unapproved_count(session: Session) -> int:
    """Active keys no signed policy lists: each is waiting, or was slipped in behind the
    keyholders' backs. Either way a keyholder should look."""
    signed = _signed_fingerprints(session)
    active = session.exec(select(Keyholder.fingerprint)
                          .where(col(Keyholder.retired_at).is_(None))).all()
    return sum(1 for fp in active if fp not in signed)


def is_reader(session: Session, keyholder: Keyholder) -> bool:
    """Whether this key is among the readers the keyholders signed."""
    return keyholder.fingerprint in _signed_fingerprints(session)


def parse_key_upload(data: bytes) -> Any:
    """A new keyholder's upload as a core.keys.KeyFile (their password-encrypted key file) or
    core.keys.PublicKey (their .pub only). Raises BadRequest with one line for anything else."""
    from core._canonical import parse_json_object
    from core.errors import KeyFileError
    from core.keys import KEY_FORMAT, KeyFile, PublicKey

    if not data:
        raise BadRequest("Choose the key file (.key) or public key (.pub) the new keyholder made "
                         "with `vigil keys create`.")
    if len(data) > MAX_KEY_BYTES:
        raise BadRequest("That file is too large to be a Vigil key: choose the .key or .pub "
                         "file that `vigil keys create` made.")
    try:
        value = parse_json_object(data, "the file", KeyFileError)
        key = KeyFile.from_bytes(data) if value.get("format") == KEY_FORMAT \
            else PublicKey.from_bytes(data)
    except KeyFileError as exc:
        raise BadRequest(f"That is not a Vigil key: {exc}.") from None
    if len(key.name) > _MAX_NAME:
        raise BadRequest(f"The key's name is longer than {_MAX_NAME} characters: make the key "
                         "again with a shorter name.")
    return key


def active_row(session: Session, keyholder_id: int) -> Keyholder:
    row = session.get(Keyholder, keyholder_id)
    if row is None or row.retired_at is not None:
        raise NotFound("There is no such keyholder waiting: the list may have changed.")
    return row


def reject_proposal(session: Session, keyholder_id: int, actor: str) -> str:
    """Delete a proposed addition that no signed policy lists, and its dashboard account (with
    its sessions). A reader cannot be rejected: their removal is proposed and signed instead."""
    row = active_row(session, keyholder_id)
    if is_reader(session, row):
        raise BadRequest(f"{row.name} is a reader: propose removing them instead, and sign it.")
    accounts = session.exec(select(Account).where(Account.keyholder_id == row.id)).all()
    for account in accounts:
        session.exec(delete(DashboardSession).where(  # type: ignore[call-overload]
            col(DashboardSession.account_id) == account.id))
        session.exec(delete(TotpStep).where(  # type: ignore[call-overload]
            col(TotpStep.account_id) == account.id))
        session.delete(account)
    session.flush()
    session.delete(row)
    name = row.name
    audit(session, actor, "keyholder.reject", name, role=row.role, fingerprint=row.fingerprint,
          accounts_deleted=len(accounts))
    return name


def signer_for(session: Session, who: SignedIn, change: KeysetChange) -> Keyholder:
    """The signed-in keyholder's own key, if they may sign ``change``: a current reader (before
    the first policy: a member of the genesis set) whose key file is on this server."""
    row = session.get(Keyholder, who.account.keyholder_id) if who.account.keyholder_id else None
    if row is None or row.key_file is None or row.retired_at is not None:
        raise Forbidden("Only a keyholder whose key file is on this server can sign here.")
    allowed = (_signed_fingerprints(session) if change.serial
               else frozenset(k.fingerprint for k in change.proposed))
    if row.fingerprint not in allowed:
        raise Forbidden("Your key is not among the readers the keyholders signed, so it cannot "
                        "sign a change: a current keyholder signs it.")
    return row

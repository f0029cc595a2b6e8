"""`vigil collector keyholder add|import|list|approve|reject`: proposing keyholders and signing
the change.

Who can read is what keyholders signed (collector.trust_root); the keyholder table only holds
proposals. So `add` uploads what a keyholder made on their own machine and says it waits,
`approve` shows a current keyholder the change (names, roles, fingerprints) and its code and
signs exactly that, and `list` shows every key's standing, loudly for keys no one approved.
Grant and retire stay in vigil.commands.collector.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register_keyholder_parsers"]

_ADD_HELP = """\
Propose a keyholder from what they made on their own machine with `vigil keys create`: either
their password-encrypted key file (--key; the operator never types their password, they unlock
it themselves at their first sign-in) or only its public half (--pub: a recovery key, or a
keyholder who opens captures only with `vigil open` on their own machine). The key reads
nothing until a current keyholder approves it (`vigil collector keyholder approve`)."""

_APPROVE_HELP = """\
Sign the waiting keyholder changes with a current keyholder's key. Prints the change (readers
added and removed: names, roles, fingerprints) and its code; the signature is made only for
exactly that change. Without --change the code must be typed back on a terminal."""

_OLD_ADD = ("`keyholder add --name ... --role ...` is gone: the server no longer makes keys. "
            "The keyholder makes theirs on their own machine (`vigil keys create --name NAME "
            "--role ROLE --out FILE`), then: vigil collector keyholder add --data DIR --key FILE")

# Audit actions by which a keyholder row is added through Vigil; a row without one was not.
_ADDED_ACTIONS = ("keyholder.propose", "keyholder.add", "keyholder.import")


def register_keyholder_parsers(khs: Any, data: Any) -> None:
    """Add the proposal sub-commands to ``keyholder`` (``data`` adds the --data option)."""
    p = khs.add_parser("add", help="propose a keyholder from their key file or public key",
                       description=_ADD_HELP)
    data(p)
    given = p.add_mutually_exclusive_group()
    given.add_argument("--key", type=Path, metavar="FILE",
                       help="the keyholder's password-encrypted key file (from `vigil keys "
                            "create` on their machine)")
    given.add_argument("--pub", type=Path, metavar="FILE", help="a public key (.pub) only")
    # The old form, accepted only to say what replaced it.
    for old in ("--name", "--role"):
        p.add_argument(old, help=argparse.SUPPRESS)
    p.add_argument("--password-stdin", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_add)

    p = khs.add_parser("import", help="propose a public key only (same as add --pub)")
    data(p)
    p.add_argument("--pub", required=True, type=Path, metavar="FILE")
    p.set_defaults(func=_add, key=None, name=None, role=None, password_stdin=False)

    p = khs.add_parser("list", help="every keyholder and whether they can read")
    data(p)
    p.set_defaults(func=_list)

    p = khs.add_parser("approve", help="sign the waiting keyholder changes",
                       description=_APPROVE_HELP)
    data(p)
    p.add_argument("--keyholder", required=True, metavar="NAME",
                   help="the current keyholder (on this collector) who signs")
    p.add_argument("--change", metavar="CODE", help="the change code shown (vkc1:...)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from the first line of standard input")
    p.set_defaults(func=_approve)

    p = khs.add_parser("reject", help="delete a proposed keyholder no policy ever listed")
    data(p)
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=_reject)


def _database(args: argparse.Namespace) -> Any:
    from vigil.commands.collector import _database as database

    return database(args)


# --- add ------------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    from collector.admin import add_keyholder_key
    from collector.errors import BadRequest
    from collector.trust_root import signed_readers
    from core.keys import load_key_file, load_public_key

    if args.name or args.role or args.password_stdin:
        raise BadRequest(_OLD_ADD)
    if args.key is None and args.pub is None:
        raise BadRequest("give the keyholder's key file (--key FILE) or public key (--pub FILE), "
                         "made on their own machine with `vigil keys create`")
    key = load_key_file(args.key) if args.key is not None else load_public_key(args.pub)
    with _database(args) as (_, db):
        holder = add_keyholder_key(db, key)
        with db.session() as session:
            genesis = signed_readers(session) is None
    print(f"keyholder {holder.name} ({holder.role}) added, waiting for a keyholder's signature: "
          f"{holder.fingerprint}")
    if genesis:
        print("It will be a reader once a keyholder publishes the first policy: "
              f"vigil collector policy publish --data {args.data} --keyholder NAME")
    else:
        print("It reads nothing until a current keyholder approves it, after checking the "
              "fingerprint with its owner: "
              f"vigil collector keyholder approve --data {args.data} --keyholder NAME")
    return 0


# --- list -----------------------------------------------------------------------------------------


def _since(fingerprint: str, chain: list[Any]) -> int:
    """The serial from which ``fingerprint`` has been in every signed policy up to the last."""
    since = chain[-1].serial
    for keyset in reversed(chain):
        if fingerprint not in keyset.fingerprints:
            break
        since = keyset.serial
    return since


def _status(row: Any, chain: list[Any], added_through_vigil: bool) -> str:
    current = chain[-1] if chain else None
    signed = current is not None and row.fingerprint in current.fingerprints
    if signed and row.retired_at is None:
        return f"reader (signed, since serial {_since(row.fingerprint, chain)})"
    if signed:
        return "leaving (retired, removal not yet signed)"
    if row.retired_at is not None:
        return "retired"
    status = ("waiting for the first policy" if current is None
              else "waiting for approval")
    if current is not None and not added_through_vigil:
        status += ("  !! NOT ADDED THROUGH VIGIL: no audit record of it being added; someone "
                   "may have put it in the database")
    return status


def _list(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from collector.store.models import AuditEntry, Keyholder
    from collector.trust_root import signed_chain, unapproved_keys

    with _database(args) as (_, db), db.session() as session:
        chain, problems = signed_chain(session)
        rows = list(session.exec(select(Keyholder).order_by(col(Keyholder.id))).all())
        added = set(session.exec(select(AuditEntry.target).where(
            col(AuditEntry.action).in_(_ADDED_ACTIONS))).all())
        unapproved = unapproved_keys(session) if chain else []
    in_table = {row.fingerprint for row in rows}
    for row in rows:
        print(f"{row.name} ({row.role}) {row.fingerprint}: "
              f"{_status(row, chain, row.name in added)}")
    for key in (chain[-1].keyholders if chain else ()):
        if key.fingerprint not in in_table:
            print(f"{key.name} ({key.role}) {key.fingerprint}: reader (signed), but missing from "
                  "the keyholder table: approving the next change removes it")
    for problem in problems:
        print(f"!! {problem}")
    if unapproved:
        print(f"!! {len(unapproved)} key(s) in the keyholder table are in no signed policy: they "
              "read nothing. Approve one only after checking its fingerprint with its owner.",
              file=sys.stderr)
    return 0


# --- approve --------------------------------------------------------------------------------------


def _show_change(change: Any) -> None:
    what = ("the first keyholder set (genesis)" if change.serial == 0
            else f"the keyholders of signed policy {change.serial}")
    print(f"Change to {what}:")
    for line in change.describe():
        print(f"  {line}")
    print("Readers after signing:")
    for key in change.proposed:
        print(f"  {key.name} ({key.role}) {key.fingerprint}")
    print(f"change code: {change.digest}")


def _confirmed_code(args: argparse.Namespace, shown: str) -> str:
    """The code the signer confirms: --change, or typed back on a terminal (not copied by a
    script, so a person saw the change)."""
    from collector.errors import BadRequest, Conflict

    if args.change:
        return str(args.change).strip()
    if not sys.stdin.isatty() or args.password_stdin:
        raise BadRequest("no terminal to confirm the change on: run this again with "
                         "--change CODE, the code shown above, once you have checked it")
    try:
        typed = input("Type the change code to sign it: ").strip()
    except EOFError:
        raise BadRequest("no change code typed; nothing was signed") from None
    if typed != shown:
        raise Conflict("that is not the change code shown; nothing was signed")
    return typed


def _password(args: argparse.Namespace, who: str) -> str:
    import getpass

    from collector.errors import BadRequest

    if args.password_stdin:
        from vigil.commands.collector import _read_password

        return _read_password()
    if not sys.stdin.isatty():
        raise BadRequest("no terminal to ask for the password; use --password-stdin")
    password = getpass.getpass(f"{who}'s password: ")
    if not password:
        raise BadRequest("no password typed; nothing was signed")
    return password


def _approve(args: argparse.Namespace) -> int:
    from collector.errors import Conflict
    from collector.publishing import approve_as
    from collector.trust_root import proposed_change

    with _database(args) as (settings, db):
        with db.session() as session:
            change = proposed_change(session)
        if change.empty:
            raise Conflict("nothing to approve: the keyholder list already matches the signed "
                           "policy")
        _show_change(change)
        code = _confirmed_code(args, change.digest)
        password = _password(args, args.keyholder)
        record = approve_as(db, settings, args.keyholder, password, code, actor=args.keyholder)
    print(f"policy {record.serial} signed by {args.keyholder}: the change takes effect; agents "
          "pick it up at their next policy refresh")
    for member in change.added:
        if change.serial:
            print(f"To let {member.name} open captures stored before today: vigil collector "
                  f"keyholder grant --data {args.data} --from {args.keyholder} --to {member.name}")
    return 0


# --- reject ---------------------------------------------------------------------------------------


def _reject(args: argparse.Namespace) -> int:
    with _database(args) as (_, db):
        removed = db.write(lambda session: _delete_proposal(session, args.name))
    print(f"proposed keyholder {args.name} ({removed}) rejected: its row and account are deleted")
    return 0


def _delete_proposal(session: Any, name: str) -> str:
    """Delete a keyholder row no signed policy ever listed, with its account; audited."""
    from sqlalchemy import delete
    from sqlmodel import col, select

    from collector import audit
    from collector.errors import Conflict, NotFound
    from collector.store.models import Account, Keyholder
    from collector.trust_root import signed_chain

    holder = session.exec(select(Keyholder).where(Keyholder.name == name)).first()
    if holder is None:
        raise NotFound(f"no keyholder named {name!r} on this collector")
    chain, _ = signed_chain(session)
    signed = [k.serial for k in chain if holder.fingerprint in k.fingerprints]
    if signed:
        raise Conflict(f"{name!r} was signed in as a reader (policy {signed[0]}): retire them "
                       "instead (`vigil collector keyholder retire`)")
    accounts = session.execute(delete(Account).where(col(Account.keyholder_id) == holder.id)
                               ).rowcount  # type: ignore[attr-defined]
    session.delete(holder)
    audit.record(session, "cli", "keyholder.reject", target=holder.name,
                 details={"role": holder.role, "fingerprint": holder.fingerprint,
                          "accounts_deleted": int(accounts or 0)})
    return str(holder.fingerprint)

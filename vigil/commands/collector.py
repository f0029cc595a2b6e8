"""`vigil collector ...`: set up, run and administer the collector."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["register"]


def _data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="the collector's data directory")


def _password_stdin(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-stdin", action="store_true", required=True,
                   help="read the password from the first line of standard input")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("collector", help="run and administer the collector")
    sub = parser.add_subparsers(dest="collector_command", metavar="ACTION", required=True)

    p = sub.add_parser("init", help="create a data directory (settings, database, TLS)")
    _data(p)
    p.add_argument("--public-url", default="", help="how agents reach this collector")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--database-url", default="", help="postgresql+psycopg://... (default SQLite)")
    p.set_defaults(func=_init)

    p = sub.add_parser("serve", help="serve agents and the dashboard over HTTPS")
    _data(p)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--database-url", default=None)
    p.add_argument("--fd", type=int, default=None, help=argparse.SUPPRESS)  # tests: a bound socket
    p.set_defaults(func=_serve)

    kh = sub.add_parser("keyholder", help="propose, approve, grant access to or retire "
                        "keyholders")
    khs = kh.add_subparsers(dest="keyholder_command", metavar="ACTION", required=True)
    from vigil.commands.collector_keyholder import register_keyholder_parsers

    register_keyholder_parsers(khs, _data)
    _keyholder_slot_parsers(khs)

    acc = sub.add_parser("account", help="dashboard accounts without a key")
    accs = acc.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    p = accs.add_parser("add", help="add a governor account")
    _data(p)
    p.add_argument("--username", required=True)
    p.add_argument("--role", required=True, choices=("governor",))
    p.add_argument("--school", default="", metavar="CODE",
                   help="scope it to one school (default: the whole trust)")
    _password_stdin(p)
    p.set_defaults(func=_account_add)
    from vigil.commands.collector_school import register_school_parsers, register_scope_parser

    register_scope_parser(accs, _data)

    pol = sub.add_parser("policy", help="the signed policy agents run under")
    pols = pol.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    p = pols.add_parser("publish", help="sign and publish the current policy")
    _data(p)
    p.add_argument("--keyholder", required=True, help="the signing keyholder's name")
    _password_stdin(p)
    p.set_defaults(func=_policy_publish)

    p = sub.add_parser("enrol-token", help="make (or revoke) an enrolment token")
    p.add_argument("--data", type=Path, default=None, help="the collector's data directory")
    p.add_argument("--uses", type=int, default=1)
    p.add_argument("--expires", default="7d", help="e.g. 7d, 12h, 30m")
    p.add_argument("--group", default="")
    p.add_argument("--school", default="", metavar="CODE",
                   help="the school its devices belong to (`school list`)")
    p.set_defaults(func=_enrol_token)
    ets = p.add_subparsers(dest="token_command", metavar="ACTION")
    r = ets.add_parser("revoke", help="revoke a token by its value or number")
    _data(r)
    r.add_argument("token", help="the token, or its number")
    r.set_defaults(func=_enrol_token_revoke)

    dev = sub.add_parser("device", help="manage enrolled devices")
    devs = dev.add_subparsers(dest="device_command", metavar="ACTION", required=True)
    p = devs.add_parser("revoke", help="revoke a device: it must enrol again")
    _data(p)
    p.add_argument("id")
    p.add_argument("--reason", default="")
    p.set_defaults(func=_device_revoke)

    ev = sub.add_parser("event", help="stored events")
    evs = ev.add_subparsers(dest="event_command", metavar="ACTION", required=True)
    p = evs.add_parser("open", help="open a stored capture with a keyholder's key",
                       description=_EVENT_OPEN_HELP)
    _data(p)
    p.add_argument("id", help="the event id")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--keyholder", metavar="NAME", help="a keyholder whose key is on this collector")
    who.add_argument("--key", type=Path, metavar="PATH", help="a key file instead")
    p.add_argument("--header-out", type=Path, metavar="PATH",
                   help="also write the sealed header and metadata as JSON to PATH")
    _password_stdin(p)
    p.set_defaults(func=_event_open)

    aud = sub.add_parser("audit", help="the audit log")
    auds = aud.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    p = auds.add_parser("verify", help="check the audit trail against the append-only log and "
                        "the keyholders' signed checkpoints", description=_VERIFY_HELP)
    _data(p)
    p.add_argument("--log", action="append", type=Path, metavar="FILE",
                   help="compare with this copy of the append-only log instead (e.g. fetched "
                        "back from syslog or another host); repeat to merge several")
    p.add_argument("--trust", metavar="vks1:...",
                   help="the keyholder-set fingerprint pinned at enrolment: the first stored "
                        "policy must list exactly that set")
    p.set_defaults(func=_audit_verify)
    p = auds.add_parser("checkpoint", help="sign the audit chain's head with a keyholder's key")
    _data(p)
    _signing_key(p)
    p.set_defaults(func=_audit_checkpoint)
    p = auds.add_parser("new-log", help="a keyholder starts a new append-only log (after "
                        "restoring a backup, or to acknowledge a lost one)",
                        description=_NEW_LOG_HELP)
    _data(p)
    _signing_key(p)
    p.add_argument("--reason", required=True, help="why, in a few words (recorded)")
    p.set_defaults(func=_audit_new_log)

    ret = sub.add_parser("retention", help="delete events past the retention period")
    rets = ret.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    p = rets.add_parser("run", help="run the retention job now")
    _data(p)
    p.set_defaults(func=_retention_run)

    from vigil.commands.collector_roster import register_roster_parsers
    from vigil.commands.collector_scale import register_scale_parsers

    register_scale_parsers(sub, _data)
    register_roster_parsers(sub, _data)
    register_school_parsers(sub, _data)


_GRANT_HELP = """\
Give a keyholder access to the captures and incident records stored before they joined: every
envelope without their slot gets one, sealed with the data key that the --from keyholder's
unlocked key recovers. Each envelope is rewritten atomically (new blob, then the row, then the old
blob goes), so an interrupted run loses nothing; run it again to finish (done events are skipped).
Envelopes the --from key cannot open are reported as failed and left as they were."""

_RETIRE_HELP = """\
A keyholder leaves: mark them retired and disable their dashboard account at once. Who reads is
what keyholders signed, so retiring only proposes their removal: agents keep sealing new
captures to them until a current keyholder signs it (`vigil collector keyholder approve`). By default
their slots on events already stored are kept: removing a slot cannot take back a copy of a
capture or of its data key they may already have made, and the slots keep the stored data
openable should a successor's access turn out incomplete. --revoke-slots removes them anyway,
rewriting each envelope atomically like `keyholder grant`."""


_VERIFY_HELP = """\
Walk the audit chain in the database and compare it with the append-only log file (settings:
audit_log) and with the checkpoints keyholders signed. Prints one line per finding (rows
rewritten, the chain truncated, rows missing, rows that differ from the log or are not in it,
a log edited, a checkpoint whose signature does not verify) and exits 1; exits 0 when all
agree."""

_NEW_LOG_HELP = """\
The current append-only log is kept beside the new one (renamed with the date) and closed
with a checkpoint signed by the keyholder; the new log begins at the next entry. Use it after
restoring a database backup (the old log holds the entries the backup lacks) or when the log
was lost. Without a keyholder's signature a new log is reported by `audit verify`."""


def _signing_key(p: argparse.ArgumentParser) -> None:
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--keyholder", metavar="NAME",
                        help="the keyholder (on this collector) whose key signs")
    source.add_argument("--key", type=Path, metavar="PATH",
                        help="a key file instead, e.g. the recovery key")
    _password_stdin(p)


def _unlock_signing_key(db: Any, args: argparse.Namespace) -> Any:
    from collector.errors import BadRequest
    from collector.regrant import resolve_keyholder
    from core.keys import KeyFile, load_key_file

    password = _read_password()
    if args.key is not None:
        return load_key_file(args.key).unlock(password)
    with db.session() as session:
        holder = resolve_keyholder(session, args.keyholder)
    if holder.key_file is None:
        raise BadRequest(f"{holder.name!r} has no key on this collector: use --key with their "
                         "key file")
    return KeyFile.from_bytes(holder.key_file).unlock(password)


def _sign_checkpoint(db: Any, private: Any, reason: str) -> Any:
    """A keyholder's key was used: sign the audit chain's head with it (collector.audit)."""
    from collector.audit import checkpoint

    return db.write(lambda s: checkpoint(s, private, private.name, reason))


def _batch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=None, metavar="N",
                   help="envelopes rewritten per transaction (default 64)")


def _keyholder_slot_parsers(khs: Any) -> None:
    p = khs.add_parser("grant", help="give a keyholder access to existing captures",
                       description=_GRANT_HELP)
    _data(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--from", dest="from_name", metavar="NAME",
                        help="the keyholder (on this collector) whose key unlocks the captures")
    source.add_argument("--from-key", type=Path, metavar="PATH",
                        help="a key file instead, e.g. the recovery key from the school safe")
    p.add_argument("--to", required=True, metavar="NAME", help="the keyholder to give access")
    _password_stdin(p)
    _batch(p)
    p.set_defaults(func=_keyholder_grant)

    p = khs.add_parser("retire", help="a keyholder leaves: retire their key and account",
                       description=_RETIRE_HELP)
    _data(p)
    p.add_argument("--name", required=True)
    p.add_argument("--revoke-slots", action="store_true",
                   help="also remove their slot from every stored event and incident record")
    _batch(p)
    p.set_defaults(func=_keyholder_retire)


def _read_password() -> str:
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        from collector.errors import BadRequest

        raise BadRequest("no password on standard input")
    return password


def _settings(args: argparse.Namespace, **overrides: Any) -> Any:
    from collector.settings import Settings

    return Settings.load(args.data, **overrides)


@contextmanager
def _database(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """(settings, database) for the command's --data, the database closed afterwards."""
    from collector.admin import open_database

    settings = _settings(args)
    db = open_database(settings)
    try:
        yield settings, db
    finally:
        db.close()


def _init(args: argparse.Namespace) -> int:
    from collector.admin import init_data_dir

    settings, fingerprint = init_data_dir(args.data, public_url=args.public_url, port=args.port,
                                          database_url=args.database_url)
    print(f"data directory: {settings.data_dir}")
    print(f"append-only audit log: {settings.audit_log} (keep a copy off this server: "
          "docs/admin-guide.md, \"The audit log\")")
    print(f"public URL: {settings.public_url}")
    print(f"certificate SHA-256 fingerprint: {fingerprint}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from collector.logs import uvicorn_log_config
    from vigil.app import build_app

    settings = _settings(args, host=args.host, port=args.port, database_url=args.database_url)
    for path in (settings.tls_cert, settings.tls_key):
        if not path.is_file():
            from collector.errors import NotInitialised

            raise NotInitialised(f"TLS file {path} is missing: run `vigil collector init`")
    where: dict[str, Any] = ({"fd": args.fd} if args.fd is not None
                             else {"host": settings.host, "port": settings.port})
    uvicorn.run(build_app(settings), **where, ssl_certfile=str(settings.tls_cert),
                ssl_keyfile=str(settings.tls_key), log_config=uvicorn_log_config(
                    settings.log_level), server_header=False, proxy_headers=False,
                timeout_graceful_shutdown=5)
    return 0


def _progress(verb: str, checkpoint: Callable[[], None]) -> Any:
    """A progress reporter for collector.regrant: one stderr line now and then (rewritten in
    place on a terminal). regrant calls it between batches, where stopping is safe, so it is
    also where a Ctrl+C takes effect (``checkpoint``, from :func:`_interruptible`)."""
    import time

    tty = sys.stderr.isatty()
    last = [0.0]

    def report(result: Any) -> None:
        checkpoint()
        now = time.monotonic()
        if last[0] and now - last[0] < 0.5 and result.checked < result.total:
            return
        last[0] = now
        line = (f"{verb}: {result.checked}/{result.total} checked, {result.changed} changed, "
                f"{result.skipped} skipped, {result.failed} failed")
        print(f"\r{line}" if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    return report


@contextmanager
def _interruptible() -> Iterator[Callable[[], None]]:
    """Ctrl+C during a slot rewrite: one line, not a traceback (every envelope is intact).

    The first Ctrl+C only asks: the run stops at the next batch boundary, where the yielded
    ``checkpoint`` raises, never inside a decryption or a database write. (Raised anywhere, a
    KeyboardInterrupt that landed inside cryptography's HPKE call came back as a failed
    decryption: the event was reported as altered and the run went on.) A second Ctrl+C stops
    at once.
    """
    import signal
    import threading

    asked = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        asked.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def checkpoint() -> None:
        if asked.is_set():
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield checkpoint
    except KeyboardInterrupt:
        from collector.errors import CollectorError

        err = CollectorError("interrupted; nothing is lost: run the same command again to finish")
        err.exit_code = 130
        raise err from None
    finally:
        signal.signal(signal.SIGINT, previous)


def _slot_summary(verb: str, result: Any, what: str) -> int:
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{verb}: {result.changed} {what}, {result.skipped} skipped, {result.failed} failed "
          f"({result.checked} events and incident records checked)")
    for failure in result.failures[:20]:
        print(f"  failed: {failure.target}: {failure.reason}")
    if result.failed > 20:
        print(f"  ... and {result.failed - 20} more (all are in the audit log)")
    if result.failed:
        print(f"vigil: {result.failed} could not be changed; they are as they were (see above)",
              file=sys.stderr)
        return 1
    return 0


def _keyholder_grant(args: argparse.Namespace) -> int:
    from collector.errors import BadRequest
    from collector.regrant import DEFAULT_BATCH, grant_all, resolve_keyholder
    from collector.store.blobs import open_blobs
    from core.keys import KeyFile, PublicKey, load_key_file

    password = _read_password()
    with _database(args) as (settings, db):
        with db.session() as session:
            to = resolve_keyholder(session, args.to)
            source = resolve_keyholder(session, args.from_name) if args.from_name else None
        if source is not None and source.key_file is None:
            raise BadRequest(f"{source.name!r} has no key on this collector: use --from-key with "
                             "their key file")
        key_file = (KeyFile.from_bytes(source.key_file) if source is not None and source.key_file
                    else load_key_file(args.from_key))
        private = key_file.unlock(password)  # WrongPassword: one line, nothing changed
        if private.fingerprint == to.fingerprint:
            raise BadRequest("--from and --to are the same key")
        with _interruptible() as checkpoint:
            result = grant_all(db, open_blobs(settings, db.engine), private,
                               PublicKey.from_bytes(to.public_key), actor=private.name,
                               progress=_progress("grant", checkpoint),
                               batch=args.batch or DEFAULT_BATCH)
        _sign_checkpoint(db, private, "keyholder grant")
    return _slot_summary(f"grant to {to.name}", result, "granted")


def _keyholder_retire(args: argparse.Namespace) -> int:
    from collector.keyholders import retire
    from collector.regrant import DEFAULT_BATCH, revoke_all
    from collector.store.blobs import open_blobs

    with _database(args) as (settings, db):
        retired = db.write(lambda s: retire(s, args.name, actor="cli"))
        if retired.already:
            print(f"keyholder {retired.name} was already retired")
        else:
            print(f"keyholder {retired.name} retired; {retired.accounts_disabled} dashboard "
                  "account(s) disabled")
            print(f"{retired.name} still reads new captures until a current keyholder signs "
                  f"the removal: vigil collector keyholder approve --data {args.data} "
                  "--keyholder NAME")
        if not args.revoke_slots:
            return 0
        with _interruptible() as checkpoint:
            result = revoke_all(db, open_blobs(settings, db.engine), retired.fingerprint,
                                retired.name, actor="cli",
                                progress=_progress("revoke", checkpoint),
                                batch=args.batch or DEFAULT_BATCH)
    return _slot_summary(f"revoke {retired.name}", result, "slots removed")


def _account_add(args: argparse.Namespace) -> int:
    from collector.admin import add_account

    password = _read_password()
    with _database(args) as (_, db):
        account = add_account(db, args.username, args.role, password, school=args.school)
    print(f"account {account.username} ({account.role}) added"
          + (f", school {args.school.strip().upper()}" if args.school else ""))
    return 0


def _policy_publish(args: argparse.Namespace) -> int:
    from collector.publishing import publish_as
    from collector.trust_root import proposed_change, signed_readers

    password = _read_password()
    with _database(args) as (settings, db):
        with db.session() as session:
            genesis = signed_readers(session) is None
        record = publish_as(db, settings, args.keyholder, password, actor=args.keyholder)
        with db.session() as session:
            readers = signed_readers(session)
            waiting = proposed_change(session)
    print(f"policy {record.serial} published, signed by {record.signer} (ETag {record.etag})")
    if genesis and readers is not None:
        # The first signature decides who reads from now on: show exactly whom it signed.
        print("This first policy signs who can read (the genesis); the readers are:")
        for key in readers.keyholders:
            print(f"  {key.name} ({key.role}) {key.fingerprint}")
        print(f"keyholder-set fingerprint (agents pin it): {readers.keyset_fingerprint}")
    changes = len(waiting.added) + len(waiting.removed)
    if changes:
        print(f"{changes} keyholder change{'s wait' if changes > 1 else ' waits'} for approval: "
              f"vigil collector keyholder approve --data {args.data} --keyholder NAME")
    return 0


def _enrol_token(args: argparse.Namespace) -> int:
    from collector.admin import create_enrol_token, parse_duration
    from collector.errors import BadRequest
    from collector.keyholders import keyset_fingerprint
    from collector.tls import cert_fingerprint

    if args.data is None:
        raise BadRequest("--data is required")
    expires = parse_duration(args.expires)
    with _database(args) as (settings, db):
        with db.session() as session:
            keyset = keyset_fingerprint(session)
        if not keyset:
            # Agents pin what keyholders signed, never the table: nothing to pin yet.
            raise BadRequest("no keyholder has signed a policy yet: a keyholder publishes the "
                             "first one (`vigil collector policy publish --keyholder NAME`) "
                             "before agents enrol")
        info = create_enrol_token(db, uses=args.uses, expires=expires, group=args.group,
                                  school=args.school)
    cert = cert_fingerprint(settings.tls_cert)
    print(f"token: {info.token}")
    print(f"uses: {info.max_uses}  expires: {info.expires_at:%Y-%m-%d %H:%M} UTC"
          + (f"  group: {info.group}" if info.group else "")
          + (f"  school: {args.school.strip().upper()}" if args.school else ""))
    print(f"collector URL: {settings.public_url}")
    print(f"certificate SHA-256 fingerprint: {cert}")
    print(f"keyholder-set fingerprint: {keyset}")
    print(f"vigil agent enrol --collector {settings.public_url} --token {info.token} "
          f"--trust {keyset} --ca-fingerprint {cert}")
    return 0


def _enrol_token_revoke(args: argparse.Namespace) -> int:
    from collector.admin import revoke_enrol_token

    with _database(args) as (_, db):
        number = revoke_enrol_token(db, args.token)
    print(f"enrolment token {number} revoked")
    return 0


def _device_revoke(args: argparse.Namespace) -> int:
    from collector.devices import revoke

    with _database(args) as (_, db):
        device = db.write(lambda s: revoke(s, args.id, actor="cli", reason=args.reason))
    print(f"device {device.id} ({device.hostname}) revoked")
    return 0


def _audit_verify(args: argparse.Namespace) -> int:
    from collector.admin import open_database
    from collector.audit_verify import verify_trail

    settings = _settings(args)
    db = open_database(settings, audit_log=False)  # a missing log is a finding, not a new log
    try:
        with db.session() as session:
            report = verify_trail(session, args.log or [settings.audit_log],
                                  configured=settings.audit_log, pin=args.trust)
    finally:
        db.close()
    for note in report.notes:
        print(f"note: {note}")
    if report.ok:
        print(f"audit log intact: {report.summary()}")
        return 0
    for finding in report.findings:
        print(f"vigil: {finding}", file=sys.stderr)
    return 1


def _audit_checkpoint(args: argparse.Namespace) -> int:
    with _database(args) as (_, db):
        private = _unlock_signing_key(db, args)
        entry = _sign_checkpoint(db, private, "cli")
    details = entry.details
    print(f"checkpoint signed by {private.name}: entry {details['seq']}, head {details['head']} "
          f"(recorded as entry {entry.seq})")
    return 0


def _audit_new_log(args: argparse.Namespace) -> int:
    from collector.audit_log import new_log

    with _database(args) as (settings, db):
        private = _unlock_signing_key(db, args)
        archived, seq = new_log(db, settings.audit_log, private, private.name, args.reason)
    print(f"the previous append-only log is kept as {archived}")
    print(f"a new log {settings.audit_log} begins at entry {seq}, signed off by {private.name}")
    return 0


def _retention_run(args: argparse.Namespace) -> int:
    from collector.errors import Conflict
    from collector.retention import run_retention
    from collector.store.blobs import open_blobs
    from collector.store.db import advisory_lock

    with _database(args) as (settings, db), \
            advisory_lock(db.engine, "vigil-job:retention") as mine:
        if not mine:
            raise Conflict("the collector is running retention right now: try again shortly")
        result = run_retention(db, open_blobs(settings, db.engine), settings, actor="cli")
    print(f"retention: {result.deleted} events deleted, {result.kept_for_incidents} kept for "
          f"incidents (older than {result.cutoff:%Y-%m-%d})")
    return 0


_EVENT_OPEN_HELP = """\
Open a stored capture: the screenshot goes to standard output, the sealed header (with
--header-out) to a file. The event's database row is first checked against the metadata sealed
with the capture; if anyone changed the row after it arrived (its severity, category, rule,
source, time, device), nothing is opened and the refusal, like every opening, is recorded in the
audit log."""


def _event_open(args: argparse.Namespace) -> int:

    from collector.audit import record
    from collector.errors import BadRequest, BlobNotFound, NotFound
    from collector.regrant import resolve_keyholder
    from collector.relabel import record_refusal, row_meta
    from collector.store.blobs import open_blobs
    from collector.store.models import Event
    from core import envelope
    from core.errors import MetadataMismatch
    from core.keys import KeyFile, load_key_file

    password = _read_password()
    with _database(args) as (settings, db):
        with db.session() as session:
            event = session.get(Event, args.id)
            holder = resolve_keyholder(session, args.keyholder) if args.keyholder else None
        if event is None:
            raise NotFound(f"there is no event {args.id}")
        if holder is not None and holder.key_file is None:
            raise BadRequest(f"{holder.name!r} has no key on this collector: use --key with "
                             "their key file")
        key_file = (KeyFile.from_bytes(holder.key_file) if holder is not None and holder.key_file
                    else load_key_file(args.key))
        key = key_file.unlock(password)
        try:
            sealed = open_blobs(settings, db.engine).get(event.blob_key)
        except (FileNotFoundError, KeyError, BlobNotFound):
            raise NotFound(f"the sealed capture of event {event.id} is missing from the store"
                           ) from None
        try:
            opened = envelope.open(sealed, key, expect=row_meta(event))
        except MetadataMismatch as exc:
            refused = exc
            db.write(lambda s: record_refusal(s, key.name, event.id, refused, "cli"))
            raise
        db.write(lambda s: record(s, key.name, "capture.view", event.id,
                                  {"via": "cli", "bytes": len(opened.body)}))
    from vigil.commands.crypto import emit, write_header

    if args.header_out:
        write_header(opened, args.header_out, BadRequest)
    emit(opened.body)
    return 0

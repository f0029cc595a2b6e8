"""`vigil collector migrate|backup|restore`: moving a school to PostgreSQL, and backups.

The work is in collector.migrate and collector.backup; this module parses and prints.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

__all__ = ["register_scale_parsers"]

_MIGRATE_HELP = """\
Copy this collector's SQLite database to an empty PostgreSQL database (its schema is created),
table by table in batches, then verify: rows per table, the audit chain against the append-only
log, and every blob's SHA-256 against its row. Stop the collector first. Interrupted? Run it
again: rows already copied are skipped. A database holding anything but a partial copy of this
collector (told by the first audit entry, which is unique to an installation) is refused.
The blobs stay in blob_dir; afterwards set database_url in settings.toml as printed."""


_BACKUP_HELP = """\
Write one tar file, while the collector runs: the database (SQLite: the backup API; PostgreSQL:
pg_dump in one snapshot), settings.toml and tls/ (the certificate desktops pin), the audit log
cut where the database copy ends, and the sealed blobs. Keep it as private as the server: it
holds clear metadata and encrypted keys, never an opened capture (docs/admin-guide.md)."""

_RESTORE_HELP = """\
Unpack a backup into a new, empty data directory (and, for PostgreSQL, an empty database), then
check the audit chain. If the lost server's audit log or a copy of it survives, verify against
it and start a new log: docs/admin-guide.md, "After restoring a backup"."""


def register_scale_parsers(sub: Any, data: Any) -> None:
    p = sub.add_parser("migrate", help="copy this collector's SQLite database to PostgreSQL",
                       description=_MIGRATE_HELP)
    data(p)
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user:password@host:5432/database (empty)")
    p.add_argument("--batch", type=int, default=500, metavar="N", help="rows per transaction")
    p.add_argument("--blobs-to-database", action="store_true",
                   help='copy the sealed captures into PostgreSQL too (for blob_store = '
                        '"postgresql"); without it they stay in blob_dir')
    p.set_defaults(func=_migrate)

    p = sub.add_parser("backup", help="a consistent online backup in one tar file",
                       description=_BACKUP_HELP)
    data(p)
    p.add_argument("--out", required=True, type=Path, metavar="FILE.tar")
    p.set_defaults(func=_backup)

    p = sub.add_parser("restore", help="restore a backup into an empty data directory",
                       description=_RESTORE_HELP)
    p.add_argument("--data", required=True, type=Path, help="the new (empty) data directory")
    p.add_argument("--from", dest="archive", required=True, type=Path, metavar="FILE.tar")
    p.add_argument("--database-url", default=None, metavar="URL",
                   help="PostgreSQL backups: the empty database to restore into (default: the "
                        "backed-up settings' one)")
    p.set_defaults(func=_restore)


def _migrate(args: argparse.Namespace) -> int:
    from collector.migrate import MigrateError, migrate, settings_hint
    from collector.settings import Settings

    if args.batch < 1:
        raise MigrateError("--batch must be at least 1")
    settings = Settings.load(args.data)
    stop = os.environ.get("VIGIL_TEST_MIGRATE_STOP_AFTER")  # tests: interrupt, as a crash would
    report = migrate(settings, args.to, batch=args.batch,
                     stop_after=int(stop) if stop else None,
                     blobs_to_database=args.blobs_to_database, progress=print)
    if not report.ok:
        print(report.summary())
        raise MigrateError("the copy does not match the source: see the lines above; fix and "
                           "run again")
    print(report.summary())
    print(settings_hint(settings, args.to, args.blobs_to_database))
    return 0


def _backup(args: argparse.Namespace) -> int:
    from collector.backup import backup
    from collector.settings import Settings

    result = backup(Settings.load(args.data), args.out, progress=print)
    print(f"backup written: {result.path} ({result.size} bytes, {result.backend}, audit entry "
          f"{result.audit_seq}, {result.blobs} blobs)")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from collector.admin import open_database
    from collector.audit_verify import verify_trail
    from collector.backup import BackupError, restore

    settings = restore(args.archive, args.data, database_url=args.database_url, progress=print)
    db = open_database(settings, audit_log=False)
    try:
        with db.session() as session:
            report = verify_trail(session, [settings.audit_log], configured=settings.audit_log)
    finally:
        db.close()
    if not report.ok:
        for finding in report.findings:
            print(f"audit: {finding}")
        raise BackupError("restored, but the audit trail does not verify: see above")
    print(f"audit log intact: {report.summary()}")
    print("next: if the lost server's audit.log (or a copy kept off it) survives, check the "
          "restored database against it: `vigil collector audit verify --data "
          f"{args.data} --log COPY` reports the entries made since the backup as truncated; then "
          "start a new log (`vigil collector audit new-log`), as docs/admin-guide.md says under "
          "\"After restoring a backup\".")
    return 0

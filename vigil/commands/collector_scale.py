"""`vigil collector migrate|backup|restore`: moving a school to PostgreSQL, and backups.

The work is in collector.migrate and collector.backup; this module parses and prints.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register_scale_parsers"]

_MIGRATE_HELP = """\
Copy this collector's SQLite database to an empty PostgreSQL database (its schema is created),
table by table in batches, then verify: rows per table, the audit chain against the append-only
log, and every blob's SHA-256 against its row. Stop the collector first. Interrupted? Run it
again: rows already copied are skipped. A database holding anything but a partial copy of this
collector (told by the first audit entry, which is unique to an installation) is refused.
The blobs stay in blob_dir; afterwards set database_url in settings.toml as printed."""


def register_scale_parsers(sub: Any, data: Any) -> None:
    p = sub.add_parser("migrate", help="copy this collector's SQLite database to PostgreSQL",
                       description=_MIGRATE_HELP)
    data(p)
    p.add_argument("--to", required=True, metavar="URL",
                   help="postgresql://user:password@host:5432/database (empty)")
    p.add_argument("--batch", type=int, default=500, metavar="N", help="rows per transaction")
    p.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from collector.migrate import MigrateError, migrate, settings_hint
    from collector.settings import Settings

    if args.batch < 1:
        raise MigrateError("--batch must be at least 1")
    settings = Settings.load(args.data)
    stop = os.environ.get("VIGIL_TEST_MIGRATE_STOP_AFTER")  # tests: interrupt, as a crash would
    report = migrate(settings, args.to, batch=args.batch,
                     stop_after=int(stop) if stop else None, progress=print)
    if not report.ok:
        print(report.summary())
        raise MigrateError("the copy does not match the source: see the lines above; fix and "
                           "run again")
    print(report.summary())
    print(settings_hint(settings, args.to))
    return 0

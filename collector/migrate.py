"""Move a school from SQLite to PostgreSQL: `vigil collector migrate --data DIR --to URL`.

Every table is copied, in dependency order (the audit chain first, see below), in batches read
from a streaming cursor, each batch committed on its own. Then the copy is verified: row counts
per table, the audit chain walked on the target (collector.audit_verify against the data
directory's append-only log, so what is checked is what `audit verify` will check after the
switch), and every blob an event row names is hashed against the row's sha256.

With ``blobs_to_database`` the blobs are copied too, from ``blob_dir`` into the target's own
blob tables (collector.store.pgblobs, ``blob_store = "postgresql"``), and verified there; blobs
already in the target are skipped, so this resumes like the rows.

Resuming: a second run skips rows whose primary key is already in the target, so an interrupted
run is finished by running it again. A target that already holds rows is accepted only when it
is a previous partial run of the same source, which is told by the audit chain: it is copied
first, and its first entry's hash (SHA-256 over the time the collector was set up, and what was
recorded) is unique to an installation. A target with rows and no first audit entry, or another
first entry, is refused. The one row the schema upgrade itself makes (``audithead``) is written
last, from the source, so a partial copy never claims a head it does not hold.

The collector must be stopped (or at least receive nothing) while this runs: rows changed in
the source after they were copied are not copied again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine, MetaData, Table, func, select, text, tuple_
from sqlalchemy.engine import make_url

from collector.errors import CollectorError
from collector.settings import Settings

__all__ = ["MigrateError", "MigrationReport", "TableResult", "migrate"]

BATCH = 500
FIRST = "auditentry"  # copied first: its entry 1 tells a partial run of this source
LAST = "audithead"  # made by the schema upgrade; overwritten from the source at the end
SKIP = {"alembic_version"}


class MigrateError(CollectorError):
    """An expected failure: one line for the operator."""


class _Stop(Exception):
    """The test hook's interruption (``stop_after`` rows)."""


@dataclass
class TableResult:
    name: str
    source: int = 0
    copied: int = 0
    skipped: int = 0  # already in the target (a resumed run)
    target: int = 0

    @property
    def ok(self) -> bool:
        return self.source == self.target

    def line(self) -> str:
        state = "ok" if self.ok else "MISMATCH"
        return (f"{self.name}: {self.source} rows, {self.copied} copied, {self.skipped} already "
                f"there, target has {self.target}: {state}")


@dataclass
class MigrationReport:
    tables: list[TableResult] = field(default_factory=list)
    resumed: bool = False
    audit_summary: str = ""
    audit_findings: list[str] = field(default_factory=list)
    blobs_checked: int = 0
    blob_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (all(t.ok for t in self.tables) and not self.audit_findings
                and not self.blob_problems)

    def summary(self) -> str:
        rows = sum(t.target for t in self.tables)
        if self.ok:
            return (f"migrated: {len(self.tables)} tables, {rows} rows, audit chain intact "
                    f"({self.audit_summary}), {self.blobs_checked} blobs match their rows")
        problems = ([t.line() for t in self.tables if not t.ok] + self.audit_findings
                    + self.blob_problems)
        return f"migration NOT verified: {len(problems)} problem(s): " + "; ".join(problems[:5])


def _postgres_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - sqlalchemy raises ArgumentError with a long message
        raise MigrateError(f"--to {url!r} is not a database URL (postgresql://...)") from None
    if parsed.get_backend_name() != "postgresql":
        raise MigrateError("--to must be a PostgreSQL URL (postgresql://user@host/db)")
    if parsed.drivername == "postgresql":  # the driver Vigil installs
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _order(meta: MetaData) -> list[Table]:
    tables = [t for t in meta.sorted_tables if t.name not in SKIP]
    first = [t for t in tables if t.name == FIRST]
    last = [t for t in tables if t.name == LAST]
    return first + [t for t in tables if t.name not in (FIRST, LAST)] + last


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _first_audit_hash(engine: Engine, table: Table) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(table.c.hash).where(table.c.seq == 1)).scalar()


def _check_target(source: Engine, target: Engine, src: MetaData, dst: MetaData) -> bool:
    """True when the target holds a previous partial run of this source, False when empty;
    raises MigrateError for anything else."""
    missing = sorted(t for t in src.tables if t not in dst.tables and t not in SKIP)
    if missing:
        raise MigrateError(f"the target lacks the table(s) {', '.join(missing)}: it is not a "
                           "Vigil database of this version")
    held = [t.name for t in _order(dst) if t.name != LAST and t.name in src.tables
            and _count(target, t) > 0]
    if not held:
        return False
    mine = _first_audit_hash(source, src.tables[FIRST])
    theirs = (_first_audit_hash(target, dst.tables[FIRST]) if FIRST in dst.tables else None)
    if mine is None or theirs is None or mine != theirs:
        raise MigrateError(
            f"the target database is not empty ({', '.join(held[:4])} hold rows) and is not a "
            "partial copy of this collector (its first audit entry differs): use an empty "
            "database")
    return True


def _copy_table(source: Engine, target: Engine, s_table: Table, t_table: Table,
                result: TableResult, batch: int, budget: list[int] | None) -> None:
    pk_names = [c.name for c in t_table.primary_key.columns]
    if not pk_names:
        raise MigrateError(f"table {t_table.name} has no primary key: cannot resume safely")
    columns = [c.name for c in s_table.columns if c.name in t_table.c]
    query = select(*[s_table.c[n] for n in columns]).order_by(*[s_table.c[n] for n in pk_names])
    with source.connect() as s_conn:
        rows = s_conn.execution_options(stream_results=True, yield_per=batch).execute(query)
        while True:
            chunk = rows.fetchmany(batch)
            if not chunk:
                break
            records = [dict(zip(columns, row, strict=True)) for row in chunk]
            with target.begin() as t_conn:
                if len(pk_names) == 1:
                    key_col = t_table.c[pk_names[0]]
                    present = {r[0] for r in t_conn.execute(
                        select(key_col).where(key_col.in_([r[pk_names[0]] for r in records])))}
                    fresh = [r for r in records if r[pk_names[0]] not in present]
                else:
                    cols = [t_table.c[n] for n in pk_names]
                    keys = [tuple(r[n] for n in pk_names) for r in records]
                    present = {tuple(r) for r in t_conn.execute(
                        select(*cols).where(tuple_(*cols).in_(keys)))}
                    fresh = [r for r in records if tuple(r[n] for n in pk_names) not in present]
                result.skipped += len(records) - len(fresh)
                if budget is not None and len(fresh) > budget[0]:
                    fresh = fresh[:budget[0]]
                if fresh:
                    t_conn.execute(t_table.insert(), fresh)
                result.copied += len(fresh)
                if budget is not None:
                    budget[0] -= len(fresh)
            if budget is not None and budget[0] <= 0:
                raise _Stop


def _upsert_head(source: Engine, target: Engine, s_table: Table, t_table: Table,
                 result: TableResult) -> None:
    with source.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(s_table))]
    with target.begin() as conn:
        for row in rows:
            conn.execute(t_table.delete().where(t_table.c.id == row["id"]))
            conn.execute(t_table.insert(), row)
    result.copied = len(rows)


def _reset_sequences(target: Engine, tables: list[Table]) -> None:
    """Explicit ids were inserted: move each serial column's sequence past them, or the next
    row the collector adds would collide."""
    with target.begin() as conn:
        for table in tables:
            for column in table.primary_key.columns:
                seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                   {"t": table.name, "c": column.name}).scalar()
                if seq is None:
                    continue
                conn.execute(text(
                    f'SELECT setval(:s, COALESCE((SELECT MAX("{column.name}") FROM '
                    f'"{table.name}"), 0) + 1, false)'), {"s": seq})


BLOB_BATCH_BYTES = 16 << 20  # blobs copied per transaction, at most (and at least one)


def _event_keys(target: Engine) -> list[str]:
    meta = MetaData()
    event = Table("event", meta, autoload_with=target)
    with target.connect() as conn:
        return list(conn.execute(select(event.c.blob_key).order_by(event.c.id)).scalars())


def _copy_blobs(target: Engine, settings: Settings, progress: Callable[[str], None]) -> None:
    """Every blob an event row names, from blob_dir into the target's blob tables."""
    from collector.errors import BlobNotFound
    from collector.store.blobs import BlobStore
    from collector.store.pgblobs import PgBlobStore

    source, dest = BlobStore(settings.blob_dir), PgBlobStore(target)
    copied = skipped = missing = 0
    pending: list[tuple[str, bytes]] = []
    for key in _event_keys(target):
        if dest.exists(key):
            skipped += 1
            continue
        try:
            pending.append((key, source.get(key)))
        except BlobNotFound:
            missing += 1  # reported by the verification
            continue
        if sum(len(data) for _, data in pending) >= BLOB_BATCH_BYTES:
            dest.put_many(pending)
            copied, pending = copied + len(pending), []
    dest.put_many(pending)
    copied += len(pending)
    progress(f"blobs: {copied} copied into the database, {skipped} already there"
             + (f", {missing} missing from {settings.blob_dir}" if missing else ""))


def _verify_blobs(target: Engine, settings: Settings, report: MigrationReport,
                  in_database: bool = False) -> None:
    from collector.errors import BlobNotFound
    from collector.store.blobs import Blobs, BlobStore
    from collector.store.pgblobs import PgBlobStore

    # Where the collector will read them: the target's tables, or the source's blob_dir.
    store: Blobs = PgBlobStore(target) if in_database else BlobStore(settings.blob_dir)
    meta = MetaData()
    event = Table("event", meta, autoload_with=target)
    with target.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
            select(event.c.id, event.c.blob_key, event.c.sha256).order_by(event.c.id))
        for event_id, key, sha in rows:
            digest = hashlib.sha256()
            try:
                for block in store.chunks(key):  # streamed: a capture can be large
                    digest.update(block)
            except (OSError, BlobNotFound):
                report.blob_problems.append(f"event {event_id}: blob {key} is missing")
                continue
            if digest.hexdigest() != sha:
                report.blob_problems.append(f"event {event_id}: blob {key} does not match its "
                                            "row's sha256")
            report.blobs_checked += 1


def _verify_audit(target: Engine, settings: Settings, report: MigrationReport) -> None:
    from sqlmodel import Session

    from collector.audit import verify
    from collector.audit_verify import verify_trail

    with Session(target) as session:
        chain = verify(session)
        if not chain.ok:
            report.audit_findings.append(f"audit chain: entry {chain.first_broken_seq}: "
                                         f"{chain.reason}")
            return
        logs = [settings.audit_log] if settings.audit_log.exists() else []
        trail = verify_trail(session, logs, configured=settings.audit_log)
    report.audit_findings += [f"audit: {f}" for f in trail.findings]
    report.audit_summary = trail.summary()


def migrate(settings: Settings, to_url: str, *, batch: int = BATCH,
            stop_after: int | None = None, blobs_to_database: bool = False,
            progress: Callable[[str], None] = lambda line: None) -> MigrationReport:
    """Copy ``settings``' SQLite database to the PostgreSQL database at ``to_url`` and verify.

    ``stop_after`` (tests) interrupts the copy after that many rows, as a crash would; the
    report then has ``tables`` only up to the interruption and MigrateError is raised."""
    from sqlalchemy.exc import OperationalError

    from collector.store.db import make_engine
    from collector.store.schema import upgrade

    if not settings.is_sqlite:
        raise MigrateError(f"this collector's database is already {settings.database_url.split(':')[0]}"
                           ": migrate copies a SQLite database")
    db_file = settings.database_url.removeprefix("sqlite:///")
    import os

    if not os.path.isfile(db_file):
        raise MigrateError(f"no database at {db_file}")
    url = _postgres_url(to_url)
    source = make_engine(settings.database_url)
    target = make_engine(url)
    try:
        try:
            upgrade(source)  # both at the same revision: the collector would do this at start
            upgrade(target)
        except OperationalError as exc:
            raise MigrateError(f"cannot reach the target database: "
                               f"{str(exc.orig).strip().splitlines()[0]}") from None
        src, dst = MetaData(), MetaData()
        src.reflect(source)
        dst.reflect(target)
        report = MigrationReport(resumed=_check_target(source, target, src, dst))
        progress("resuming a previous partial run" if report.resumed
                 else "copying into an empty database")
        budget = [stop_after] if stop_after is not None else None
        ordered = [t for t in _order(src) if t.name not in SKIP]
        for s_table in ordered:
            t_table = dst.tables[s_table.name]
            result = TableResult(s_table.name, source=_count(source, s_table))
            if s_table.name == LAST:
                _upsert_head(source, target, s_table, t_table, result)
            else:
                try:
                    _copy_table(source, target, s_table, t_table, result, batch, budget)
                except _Stop:
                    raise MigrateError(f"stopped after {stop_after} rows (test hook), in "
                                       f"table {s_table.name}: run again to resume") from None
            result.target = _count(target, t_table)
            report.tables.append(result)
            progress(result.line())
        _reset_sequences(target, [dst.tables[t.name] for t in ordered])
        _verify_audit(target, settings, report)
        if blobs_to_database:
            _copy_blobs(target, settings, progress)
        _verify_blobs(target, settings, report, in_database=blobs_to_database)
        return report
    finally:
        source.dispose()
        target.dispose()


def settings_hint(settings: Settings, to_url: str, blobs_to_database: bool = False) -> str:
    """What the operator does next, printed after a verified migration."""
    url = make_url(_postgres_url(to_url)).render_as_string(hide_password=True)
    blobs = ('  blob_store = "postgresql"\n' if blobs_to_database else "")
    kept = ("keep blob_dir too until then" if blobs_to_database
            else "the blobs stay where they are (blob_dir)")
    return (f"next: stop the collector if it runs, set\n"
            f'  database_url = "{url}"\n{blobs}'
            f"in {settings.data_dir / 'settings.toml'} (with the real password in place of ***, if "
            f"any), start it again, and check with `vigil collector audit verify --data "
            f"{settings.data_dir}`. Keep {settings.database_url.removeprefix('sqlite:///')} until "
            f"you are satisfied; {kept}.")

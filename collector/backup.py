"""Online backups and restores: `vigil collector backup --out FILE.tar` and `restore --from`.

One tar file holds what restoring service needs:

- ``database/vigil.db`` (SQLite, through the sqlite3 backup API: a consistent copy while the
  collector writes) or ``database/vigil.pgdump`` (PostgreSQL: ``pg_dump -Fc`` run inside an
  exported snapshot, so the head of the audit chain in the dump is known exactly);
- ``data/settings.toml`` and ``data/tls/`` (the certificate the agents pin and its key: without
  them every desktop would have to enrol again), and ``data/secrets.key``, which seals the
  webhook URLs in the database (collector.secrets_at_rest);
- ``data/audit.log``, cut at the backup's audit head so that it and the database agree, and any
  closed logs (``audit.log.<date>``) whole;
- ``blobs/``, after the database: a blob without a row is swept as an orphan, a row without its
  blob would be a lost capture.

What a thief of the file gets is what a thief of the server's disk gets (docs/crypto.md): clear
metadata (which device raised which category when, and how staff handled it), staff names and
Argon2id password hashes, the keyholders' key files encrypted under their passwords, the
sealed captures (unreadable without a keyholder's key and password, or the recovery key, which
is never on the server), the TLS key (enough to impersonate the collector to desktops, which
still seal every capture to the keyholders), secrets.key with the webhook URLs it seals (enough
to post into the safeguarding channels) and the SMTP password if settings.toml holds one.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from collector.errors import CollectorError
from collector.settings import SETTINGS_FILE, Settings

__all__ = ["BackupError", "BackupResult", "backup", "restore"]

MANIFEST = "vigil-backup.json"
FORMAT = 1
_SEQ = re.compile(rb'"seq":(\d+)\}\s*$')


class BackupError(CollectorError):
    """An expected failure: one line for the operator."""


@dataclass
class BackupResult:
    path: Path
    backend: str
    audit_seq: int
    blobs: int
    size: int


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o600, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = tar.gettarinfo(str(path), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with open(path, "rb") as fh:
        tar.addfile(info, fh)


def _sqlite_copy(settings: Settings, dest: Path) -> int:
    """Copy the live database with the backup API; the copy's audit head."""
    source = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), timeout=30)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
            row = target.execute("SELECT seq FROM audithead WHERE id = 1").fetchone()
        finally:
            target.close()
    finally:
        source.close()
    return int(row[0]) if row else 0


def _pg_args(url: str) -> tuple[list[str], dict[str, str]]:
    """libpq connection arguments and environment for pg_dump/pg_restore from a SQLAlchemy URL."""
    parsed = make_url(url)
    args = ["-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432), "-d",
            parsed.database or "postgres"]
    if parsed.username:
        args += ["-U", parsed.username]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = parsed.password
    options = parsed.query.get("options")
    if options:
        env["PGOPTIONS"] = options if isinstance(options, str) else " ".join(options)
    return args, env


def _pg_dump(settings: Settings, dest: Path) -> tuple[int, int]:
    """pg_dump -Fc inside an exported snapshot (one consistent state); the snapshot's audit head
    and how many blobs it holds (blob_store = "postgresql" keeps them in the database)."""
    from collector.store.db import make_engine

    if shutil.which("pg_dump") is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
            only = ["-n", schema] if schema != "public" else []  # a schema of a shared database
            seq = conn.execute(text("SELECT seq FROM audithead WHERE id = 1")).scalar() or 0
            in_db = 0
            if conn.execute(text("SELECT to_regclass('vigil_blob')")).scalar() is not None:
                in_db = conn.execute(text("SELECT count(*) FROM vigil_blob")).scalar_one()
            args, env = _pg_args(settings.database_url)
            done = subprocess.run(["pg_dump", "-Fc", "--no-owner", "--no-privileges",
                                   f"--snapshot={snapshot}", *only, "-f", str(dest), *args],
                                  env=env, capture_output=True, text=True, check=False)
            conn.execute(text("COMMIT"))
    finally:
        engine.dispose()
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return int(seq), int(in_db)


def _log_prefix(path: Path, upto: int) -> bytes:
    """The log's lines for entries 1..upto (the log is append-only: this is the log as it was
    when the database copy was taken)."""
    out = []
    with open(path, "rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break  # a line being written
            match = _SEQ.search(line)
            if match and int(match.group(1)) > upto:
                break
            out.append(line)
    return b"".join(out)


def backup(settings: Settings, out: Path, progress: Callable[[str], None] = lambda s: None
           ) -> BackupResult:
    from collector.store.blobs import BlobStore

    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists: choose a new file name")
    backend = "sqlite" if settings.is_sqlite else "postgresql"
    partial = out.with_name(f".{out.name}.partial")
    blobs = 0
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-backup-") as tmp:
            db_file = Path(tmp) / ("vigil.db" if backend == "sqlite" else "vigil.pgdump")
            seq, blobs = ((_sqlite_copy(settings, db_file), 0) if backend == "sqlite"
                          else _pg_dump(settings, db_file))
            progress(f"database: {backend}, audit head at entry {seq}")
            with tarfile.open(partial, "w") as tar:
                _add_bytes(tar, MANIFEST, json.dumps({
                    "format": FORMAT, "backend": backend, "audit_seq": seq,
                    "blob_dir": _relative(settings, settings.blob_dir),
                    "audit_log": _relative(settings, settings.audit_log),
                    "made": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
                _add_file(tar, db_file, f"database/{db_file.name}")
                _add_file(tar, settings.data_dir / SETTINGS_FILE, f"data/{SETTINGS_FILE}")
                for path in (settings.tls_cert, settings.tls_key):
                    if path.is_file():
                        _add_file(tar, path, f"data/tls/{path.name}")
                if settings.secrets_key.is_file():  # without it, webhook URLs cannot be opened
                    _add_file(tar, settings.secrets_key, f"data/{settings.secrets_key.name}")
                log = settings.audit_log
                if log.is_file():
                    _add_bytes(tar, "data/audit.log", _log_prefix(log, seq))
                for closed in sorted(log.parent.glob(f"{log.name}.*")):
                    if closed.is_file() and not closed.name.endswith(".lock"):
                        _add_file(tar, closed, f"data/{closed.name}")
                # Blobs kept in PostgreSQL are in the dump, in the same snapshot as their rows.
                store = BlobStore(settings.blob_dir)
                for key in (sorted(store.keys()) if settings.blob_store == "files" else []):
                    try:
                        _add_file(tar, settings.blob_dir / key, f"blobs/{key}")
                    except FileNotFoundError:
                        continue  # deleted meanwhile (retention): its row is gone too
                    blobs += 1
            with open(partial, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    progress(f"blobs: {blobs}")
    return BackupResult(out, backend, seq, blobs, out.stat().st_size)


def _relative(settings: Settings, path: Path) -> str:
    return str(path.relative_to(settings.data_dir)) if path.is_relative_to(settings.data_dir) \
        else str(path)


def _safe(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"the backup holds an unsafe name {name[:80]!r}: not a Vigil backup")
    return path


def _empty(path: Path) -> bool:
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def restore(archive: Path, data_dir: Path, *, database_url: str | None = None,
            progress: Callable[[str], None] = lambda s: None) -> Settings:
    """Restore ``archive`` into the empty ``data_dir`` (and, for PostgreSQL, into the empty
    database ``database_url``, default the backed-up settings' one)."""
    from collector.store.blobs import check_key

    data_dir = Path(data_dir)
    if not _empty(data_dir):
        raise BackupError(f"{data_dir} is not empty: restore into a new, empty data directory")
    try:
        tar = tarfile.open(archive, "r")  # noqa: SIM115 - closed by the with below
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {archive}: {exc}") from None
    with tar:
        try:
            manifest = json.loads(tar.extractfile(MANIFEST).read())  # type: ignore[union-attr]
        except (KeyError, AttributeError, ValueError):
            raise BackupError(f"{archive} is not a Vigil backup (no {MANIFEST})") from None
        if manifest.get("format") != FORMAT:
            raise BackupError(f"{archive} has backup format {manifest.get('format')!r}; this "
                              f"version reads {FORMAT}")
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        db_member: tarfile.TarInfo | None = None
        for member in tar:
            name = _safe(member.name)
            if not member.isfile() or name.parts[0] == MANIFEST:
                continue
            if name.parts[0] == "data":
                dest = data_dir.joinpath(*name.parts[1:])
            elif name.parts[0] == "database":
                db_member = member
                continue
            elif name.parts[0] == "blobs":
                check_key("/".join(name.parts[1:]))
                dest = (data_dir / manifest["blob_dir"]).joinpath(*name.parts[1:])
            else:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tar.extractfile(member) as src, open(  # type: ignore[union-attr]
                    os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as dst:
                shutil.copyfileobj(src, dst)
        if db_member is None:
            raise BackupError(f"{archive} holds no database")
        if database_url:
            _set_database_url(data_dir, database_url)
        elif manifest["backend"] == "sqlite":
            _set_database_url(data_dir, "")  # the default: DATA/vigil.db, in the new directory
        settings = Settings.load(data_dir)
        with tar.extractfile(db_member) as src:  # type: ignore[union-attr]
            if manifest["backend"] == "sqlite":
                if not settings.is_sqlite:
                    raise BackupError("this is a SQLite backup but settings name a PostgreSQL "
                                      "database: restore without --database-url, then migrate")
                dest = Path(settings.database_url.removeprefix("sqlite:///"))
                if dest.exists():
                    raise BackupError(f"{dest} exists: restore into a new database file")
                with open(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600),
                          "wb") as dst:
                    shutil.copyfileobj(src, dst)
            else:
                _pg_restore(settings, src)
    progress(f"restored a {manifest['backend']} backup of {manifest.get('made', '?')} "
             f"(audit head at entry {manifest['audit_seq']}) into {data_dir}")
    return settings


def _set_database_url(data_dir: Path, url: str) -> None:
    path = data_dir / SETTINGS_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    out = [f"database_url = {json.dumps(url)}" if line.startswith("database_url") else line
           for line in lines]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _pg_restore(settings: Settings, src: Any) -> None:
    from sqlalchemy import inspect

    from collector.store.db import make_engine

    if settings.is_sqlite:
        raise BackupError("this is a PostgreSQL backup: give the empty database to restore "
                          "into with --database-url postgresql://...")
    if shutil.which("pg_restore") is None:
        raise BackupError("pg_restore is not installed (Debian: apt-get install "
                          "postgresql-client)")
    engine = make_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar()
            if schema is not None and inspect(conn).get_table_names(schema=schema):
                raise BackupError("the database to restore into is not empty: use a new one")
            if schema is not None and schema != "public":
                # The dump creates its own schema; an empty one in the way is dropped
                # (RESTRICT: only if nothing at all is in it).
                conn.execute(text(f'DROP SCHEMA "{schema}" RESTRICT'))
                conn.commit()
    finally:
        engine.dispose()
    with tempfile.NamedTemporaryFile(prefix="vigil-restore-", suffix=".pgdump") as dump:
        shutil.copyfileobj(src, dump)
        dump.flush()
        args, env = _pg_args(settings.database_url)
        env.pop("PGOPTIONS", None)  # the dump names its schema itself
        done = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                               *args, dump.name], env=env, capture_output=True, text=True,
                              check=False)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")

"""Create and upgrade the schema with Alembic (collector/store/migrations)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select
from sqlmodel import Session

from collector.store.models import AuditHead

__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "upgrade"]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine):  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; idempotent, safe to call at every start."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
    with Session(engine) as session:
        if session.exec(select(AuditHead).where(AuditHead.id == 1)).first() is None:
            session.add(AuditHead(id=1))
            session.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()

"""school, and school_id on device, enroltoken, account, incident, route_target and route_rule:
schools of a trust (issue 18).

A device takes its school from its enrolment token; an account with a school sees only that
school's devices, events and incidents (dashboard.scope), and its routing rules match its school's events only (collector.routing);
an account without one sees the whole trust. Every new column is nullable, so a collector upgraded with no schools behaves as before.

Named 0010_schools so that a renumber at merge (another branch may add a 0010) is a rename and
this revision's ``down_revision``. Plain ADD/DROP COLUMN, as in 0005 and 0006, and so no foreign
key (SQLite cannot drop a column that has one, nor rebuild ``device`` under the events' foreign
key): a school is never deleted, and the code that sets ``school_id`` looks the school up first.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 03:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_TABLES = ('device', 'enroltoken', 'account', 'incident', 'route_target', 'route_rule')
_INDEXED = ('device', 'incident')


def upgrade() -> None:
    op.create_table('school',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    for table in _TABLES:
        op.add_column(table, sa.Column('school_id', sa.Integer(), nullable=True))
    for table in _INDEXED:
        op.create_index(op.f(f'ix_{table}_school_id'), table, ['school_id'], unique=False)


def downgrade() -> None:
    for table in _INDEXED:
        op.drop_index(op.f(f'ix_{table}_school_id'), table_name=table)
    for table in reversed(_TABLES):
        op.drop_column(table, 'school_id')
    op.drop_table('school')

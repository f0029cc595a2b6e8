"""roster_pupil and roster_import: pupils' names from the school's MIS (issue 18).

``roster_pupil`` holds one row per pupil, keyed by the folded login name agents report (unique,
so matching is case-insensitive); names, year, form and flags are in the clear like device
hostnames (docs/admin-guide.md, "Roster"). ``roster_import`` holds an uploaded file between its
preview and its confirmation, then only its counts.

New tables only; nothing existing changes, so the downgrade drops them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('roster_pupil',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('upn', sqlmodel.sql.sqltypes.AutoString(length=13), nullable=False),
    sa.Column('admission_no', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('given_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('family_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('year', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('form', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('missing_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('roster_import',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shape', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.Column('base_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('applied_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('roster_import')
    op.drop_table('roster_pupil')

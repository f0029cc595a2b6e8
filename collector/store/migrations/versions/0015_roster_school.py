"""roster_pupil.school_id and roster_import.school_id: a school's roster (issue 18).

An import is for one school and changes only that school's pupils; a pupil's row says which
school last listed them. NULL is no school: rows imported before this revision, and every row
of a collector without schools, which each school still sees, so nothing changes at upgrade
until a school imports its file. Nullable, so an older instance can still write rows during a
rolling upgrade; plain ADD/DROP COLUMN and no foreign key, as in 0010 (a school is never
deleted). ``roster_pupil.school_id`` is indexed: each school's cohort map selects by it.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('roster_pupil', sa.Column('school_id', sa.Integer(), nullable=True))
    op.create_index(op.f('ix_roster_pupil_school_id'), 'roster_pupil', ['school_id'],
                    unique=False)
    op.add_column('roster_import', sa.Column('school_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column('roster_import', 'school_id')
    op.drop_index(op.f('ix_roster_pupil_school_id'), table_name='roster_pupil')
    op.drop_column('roster_pupil', 'school_id')

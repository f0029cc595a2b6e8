"""event.year, event.form, route_rule.year and cohort_salt: routing by year group (issue 18).

An event's cohort tag (core.cohort: year group and form, never the name) comes from the agent's
cohort map, whose keys are HMACs under a per-school salt kept in cohort_salt. The new columns
have server defaults so that an older instance can still insert events and rules during a
rolling upgrade; plain ADD/DROP COLUMN, as in 0005, 0010 and 0011.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('event', sa.Column('year', sqlmodel.sql.sqltypes.AutoString(length=16),
                                     server_default='', nullable=False))
    op.add_column('event', sa.Column('form', sqlmodel.sql.sqltypes.AutoString(length=32),
                                     server_default='', nullable=False))
    op.add_column('route_rule', sa.Column('year', sqlmodel.sql.sqltypes.AutoString(length=16),
                                          server_default='', nullable=False))
    op.create_table('cohort_salt',
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('salt', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('scope')
    )


def downgrade() -> None:
    op.drop_table('cohort_salt')
    op.drop_column('route_rule', 'year')
    op.drop_column('event', 'form')
    op.drop_column('event', 'year')

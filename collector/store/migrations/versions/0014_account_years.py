"""account.years: a deputy DSL scoped to some year groups of their school (issue 18).

A comma-separated list of year groups as events carry them (``Event.year``, core.cohort), e.g.
"7,8"; empty: every year of the account's scope, which is what accounts already there keep. A
server default so that an older instance can still add accounts during a rolling upgrade; plain
ADD/DROP COLUMN, as in 0013.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 22:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('account', sa.Column('years', sqlmodel.sql.sqltypes.AutoString(length=200),
                                       server_default='', nullable=False))


def downgrade() -> None:
    op.drop_column('account', 'years')

"""working_hours.closed: a school's closed days (bank holidays, holidays, INSET days), out of
hours all day for escalation by the rota (issue 18; collector.oncall).

Nullable, so an older instance writing working hours during a rolling upgrade leaves it empty;
plain ADD/DROP COLUMN, as in 0005, 0010 and 0011.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('working_hours', sa.Column('closed', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('working_hours', 'closed')

"""dashboard TOTP step: the last accepted time step per account (dashboard/models.py TotpStep),
so a second-factor code is accepted only once. Spelled out here because the collector owns every
migration and never imports the dashboard.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dashboard_totp_step',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('account_id')
    )


def downgrade() -> None:
    op.drop_table('dashboard_totp_step')

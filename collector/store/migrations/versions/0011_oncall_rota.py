"""working_hours, oncall_shift and route_rule.out_of_hours: out-of-hours escalation by a
school's rota (issue 18).

A school's working hours and its rota of on-call DSLs; a routing rule says whether an event
routed out of hours goes to the on-call DSL as well as, or instead of, its targets. The new
column has a server default so that an older instance can still add a rule during a rolling
upgrade; plain ADD/DROP COLUMN, as in 0005 and 0010.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('route_rule', sa.Column('out_of_hours',
                                          sqlmodel.sql.sqltypes.AutoString(length=8),
                                          server_default='', nullable=False))
    op.create_table('working_hours',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('days', sa.JSON(), nullable=True),
    sa.Column('start', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('end', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_working_hours_school_id'), 'working_hours', ['school_id'],
                    unique=False)
    op.create_table('oncall_shift',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('school_id', sa.Integer(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('days', sa.JSON(), nullable=True),
    sa.Column('start', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('end', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('email_target_id', sa.Integer(), nullable=False),
    sa.Column('webhook_target_id', sa.Integer(), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('removed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['email_target_id'], ['route_target.id'], ),
    sa.ForeignKeyConstraint(['webhook_target_id'], ['route_target.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_oncall_shift_school_id'), 'oncall_shift', ['school_id'],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_oncall_shift_school_id'), table_name='oncall_shift')
    op.drop_table('oncall_shift')
    op.drop_index(op.f('ix_working_hours_school_id'), table_name='working_hours')
    op.drop_table('working_hours')
    op.drop_column('route_rule', 'out_of_hours')

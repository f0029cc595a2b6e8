"""device.policy_digest and device.silent_alerted_at: health the technician can trust (issue 15).

``policy_digest`` is the SHA-256 of the signed policy the agent runs under, from its heartbeat,
so the devices page can flag a device running anything but the published policy (a serial alone
cannot tell a forged policy with the right number). ``silent_alerted_at`` is when the silent-
device job last alerted about the device: one alert per silence, not one per run of the job.

NOT NULL with a server default of "" for the digest (existing rows read as "never reported"); the
alert time is nullable. Plain ADD/DROP COLUMN, as in 0005 (the device table is referenced by
event rows, and SQLite's batch copy would fail on the DROP TABLE).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('device', sa.Column('policy_digest', sa.String(length=80), nullable=False,
                                      server_default=''))
    op.add_column('device', sa.Column('silent_alerted_at', sqlmodel.sql.sqltypes.UTCDateTime(),
                                      nullable=True))


def downgrade() -> None:
    op.drop_column('device', 'silent_alerted_at')
    op.drop_column('device', 'policy_digest')

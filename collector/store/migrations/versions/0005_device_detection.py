"""device.detection and device.detection_note: what each agent detects with (issue 13).

The agent's heartbeat says whether its sentence model is loaded ("lists+model"), switched off by
its settings ("lists") or failed to load ("lists (model unavailable)"), and in one line why it is
off. The devices page shows it, so a desktop quietly running on the word lists alone is seen.

Both columns are NOT NULL with a server default of "": existing rows read as "never reported",
and a collector instance still on the previous revision (a rolling upgrade behind a load
balancer) can go on inserting devices without naming them.

Plain ADD/DROP COLUMN, not a batch copy of the table: every event row references device, and
with SQLite's foreign keys on, the copy-and-drop of a batch migration would fail on the DROP
TABLE. SQLite has had ALTER TABLE DROP COLUMN since 3.35 (Debian 12 ships 3.40).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('device', sa.Column('detection', sa.String(length=32), nullable=False,
                                      server_default=''))
    op.add_column('device', sa.Column('detection_note', sa.String(length=300), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    op.drop_column('device', 'detection_note')
    op.drop_column('device', 'detection')

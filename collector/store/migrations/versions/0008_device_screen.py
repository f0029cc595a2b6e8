"""device.screen and device.screen_note: the agent's screen reading, from its heartbeat (issue 16).

``screen`` is what the agent says of its screen reader ("on", "off", "off (engine unavailable)",
with " (paused: busy)" or " (paused: on battery)" while it holds off); ``screen_note`` says why
it is off, one line as the desktop wrote it. The devices page shows both, so a technician sees a
device whose policy asks for screen reading but whose OCR engine did not load.

NOT NULL with a server default of "" (existing rows and older agents read as "never reported").
Plain ADD/DROP COLUMN, as in 0005 and 0006.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('device', sa.Column('screen', sa.String(length=64), nullable=False,
                                      server_default=''))
    op.add_column('device', sa.Column('screen_note', sa.String(length=300), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    op.drop_column('device', 'screen_note')
    op.drop_column('device', 'screen')

"""event.received_sha256: the hash of the envelope as the agent sent it.

``event.sha256`` is the hash of the blob as stored now, and a keyholder grant rewrites the blob
(a new recipient slot), so it changes. An agent that never got the acknowledgement of an upload
made before a grant sends the same event again; compared with the new hash it looked like a
replay (422 "replayed") and the agent quarantined an event the collector had safely stored.
The replay check now compares what the agent sends with what it sent. Rows from before this
revision get their current hash: exact unless a grant already rewrote them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 08:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('event') as batch:
        batch.add_column(sa.Column('received_sha256', sa.String(length=64), nullable=True))
    op.execute("UPDATE event SET received_sha256 = sha256 WHERE received_sha256 IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('event') as batch:
        batch.drop_column('received_sha256')

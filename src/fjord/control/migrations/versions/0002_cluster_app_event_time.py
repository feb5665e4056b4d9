"""When the cluster sent the event a status cell (and a cluster's root sync) reflects, so a late
delivery of an older event cannot overwrite it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 11:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cluster_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_event_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clusters", schema=None) as batch_op:
        batch_op.drop_column("sync_event_at")
    with op.batch_alter_table("cluster_apps", schema=None) as batch_op:
        batch_op.drop_column("event_at")

"""Real identities: the requester's identity on deployments (four eyes), the provider and
subject on audit entries, and API tokens with an expiry, a last-used time and an environment
scope.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 06:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by_identity", sa.String(400), nullable=True))
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_subject", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("actor_provider", sa.String(300), nullable=True))
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("environments", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("environments")
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_column("actor_provider")
        batch_op.drop_column("actor_subject")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("requested_by_identity")

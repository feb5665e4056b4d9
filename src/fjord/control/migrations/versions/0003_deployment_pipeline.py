"""Deployments as declared step pipelines claimed by replicas: a lease per claim, the inputs
pinned at request time, and one row per step run with its start and end.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 03:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_expires", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("config_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("source_revision", sa.String(length=200), nullable=True))
    op.create_table(
        "deployment_steps",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("replica", sa.String(length=200), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_steps_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint("deployment_id", "position", name=op.f("pk_deployment_steps")),
    )


def downgrade() -> None:
    op.drop_table("deployment_steps")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("source_revision")
        batch_op.drop_column("config_version")
        batch_op.drop_column("lease_expires")

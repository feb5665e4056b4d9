"""Apps registered by Git repository: per-org read credentials, webhook settings and deliveries,
release provenance (ref, commit, image), a deploy's pinned ref/version/image, and the commit
statuses posted back to Gitea.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 03:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag_pattern", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("deploy_branch", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("deploy_environment", sa.String(63), nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_cipher", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("webhook_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_ref", sa.String(300), nullable=True))
        batch_op.add_column(sa.Column("source_version", sa.String(200), nullable=True))
        batch_op.add_column(sa.Column("image", sa.String(512), nullable=True))
        # A build of a pushed tag is a queued job of the pipeline with no environment.
        batch_op.alter_column("environment_id", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ref", sa.String(300), nullable=True))
        batch_op.add_column(sa.Column("commit", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("image", sa.String(512), nullable=True))
    op.create_table(
        "org_credentials",
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("token_cipher", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_org_credentials_org_id_orgs")
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_org_credentials")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery", sa.String(100), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("ref", sa.String(300), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_webhook_deliveries_app_id_apps")
        ),
        sa.PrimaryKeyConstraint("delivery", name=op.f("pk_webhook_deliveries")),
    )
    op.create_table(
        "commit_statuses",
        sa.Column("deployment_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_commit_statuses_deployment_id_deployments"),
        ),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_commit_statuses")),
    )


def downgrade() -> None:
    op.drop_table("commit_statuses")
    op.drop_table("webhook_deliveries")
    op.drop_table("org_credentials")
    with op.batch_alter_table("releases", schema=None) as batch_op:
        batch_op.drop_column("image")
        batch_op.drop_column("commit")
        batch_op.drop_column("ref")
    op.execute(
        "DELETE FROM deployment_steps WHERE deployment_id IN "
        "(SELECT id FROM deployments WHERE environment_id IS NULL)"
    )
    op.execute(
        "DELETE FROM timeline WHERE deployment_id IN "
        "(SELECT id FROM deployments WHERE environment_id IS NULL)"
    )
    op.execute("DELETE FROM deployments WHERE environment_id IS NULL")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.alter_column("environment_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("image")
        batch_op.drop_column("source_version")
        batch_op.drop_column("source_ref")
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("webhook_id")
        batch_op.drop_column("webhook_secret_cipher")
        batch_op.drop_column("deploy_environment")
        batch_op.drop_column("deploy_branch")
        batch_op.drop_column("tag_pattern")

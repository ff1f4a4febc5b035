"""Heartbeats: when a running run last said it was alive, and how often it says so; the
run's history (lost, a late heartbeat, revived) in ``run_events``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.Text))
        batch.add_column(sa.Column("heartbeat_s", sa.Float))
    op.create_table(
        "run_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("run_events_run", "run_events", ["run_id", "id"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA user_version = 2")


def downgrade() -> None:
    op.drop_table("run_events")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_s")
        batch.drop_column("heartbeat_at")

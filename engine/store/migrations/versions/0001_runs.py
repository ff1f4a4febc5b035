"""The run index: runs, their params, metrics and tags (the schema of SQLite stores with
``PRAGMA user_version = 1``, written before the schema was versioned with Alembic).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        *(sa.Column(name, sa.Text) for name in ("name", "kind", "status", "started_at", "ended_at")),
        sa.Column("duration_s", sa.Float),
        sa.Column("run_dir", sa.Text),
        sa.Column("pid", sa.Integer),
        *(sa.Column(name, sa.Text) for name in ("host", "hypothesis", "error", "git_commit")),
        sa.Column("git_dirty", sa.Integer),
        *(sa.Column(name, sa.Text) for name in ("model_sha256", "config_sha256", "fingerprints")),
    )
    op.create_index("runs_started", "runs", ["started_at"])
    for table, value in (("params", sa.Text), ("metrics", sa.Float), ("tags", sa.Text)):
        op.create_table(table, sa.Column("run_id", sa.Text, primary_key=True),
                        sa.Column("key", sa.Text, primary_key=True), sa.Column("value", value))
    op.create_index("metrics_key", "metrics", ["key", "value"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA user_version = 1")


def downgrade() -> None:
    for table in ("tags", "metrics", "params", "runs"):
        op.drop_table(table)

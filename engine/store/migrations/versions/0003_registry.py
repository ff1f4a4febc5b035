"""The model registry in the store, for a team: versions, aliases and the alias history
(the model files stay on disk, under the registry's artifact root).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registry_versions",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("record", sa.Text, nullable=False),  # the version's record, JSON (run, sha256s, metrics, ...)
    )
    op.create_table(
        "registry_aliases",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("alias", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "registry_alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("previous", sa.Integer),
        sa.Column("at", sa.Text, nullable=False),
    )
    op.create_index("registry_alias_history_name", "registry_alias_history", ["name", "id"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA user_version = 3")


def downgrade() -> None:
    for table in ("registry_alias_history", "registry_aliases", "registry_versions"):
        op.drop_table(table)

"""Alembic's environment: run the revisions on the connection :mod:`engine.store.schema` passes.

There is no ``alembic.ini``: the engine builds Alembic's config in code, so an installed
wheel migrates a store with no file beside it. On PostgreSQL the whole upgrade is one
transaction (its DDL is transactional) under an advisory lock, so two processes that
upgrade the same store at once apply each revision once, and a failed revision leaves
the store at the revision it had.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

#: pg_advisory_xact_lock's key: any constant that no other tool on the server uses.
ADVISORY_LOCK = 0x6D6C6F7073  # "mlops"

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})"))
    context.run_migrations()

"""One module a schema revision, oldest first (Alembic reads them by path)."""

"""The metadata store's schema, versioned with Alembic: ``versions/`` holds one module a
revision, applied by :mod:`engine.store.schema` (``mlops db upgrade``)."""

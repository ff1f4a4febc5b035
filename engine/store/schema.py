"""The store's schema revision: read it, check it, upgrade it (Alembic, in code).

Both backends carry the same revisions (:mod:`engine.store.migrations`). An SQLite store
also mirrors its revision in ``PRAGMA user_version`` (``0003`` -> 3), so the check every
connection makes costs one pragma and imports neither SQLAlchemy nor Alembic; stores
written before Alembic have ``user_version`` 1 and no ``alembic_version`` table, which
is revision ``0001`` exactly, and ``mlops db upgrade`` stamps them so before upgrading.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

#: Every revision, oldest first; an SQLite store's ``user_version`` is its position (from 1).
REVISIONS = ("0001", "0002", "0003")
HEAD = REVISIONS[-1]
HEAD_NUMBER = len(REVISIONS)


def revision_of(number: int) -> str | None:
    """The revision an SQLite ``user_version`` stands for (0: none yet; past the head: None)."""
    return REVISIONS[number - 1] if 1 <= number <= HEAD_NUMBER else None


def _config(connection: Connection):  # noqa: ANN202 -- alembic.config.Config, imported lazily
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = connection
    return config


def current(connection: Connection) -> str | None:
    """The store's revision: None for an empty database (no table of ours yet);
    ``"unversioned"`` when it has a ``runs`` table but no revision (not a store of ours)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import inspect

    revision = MigrationContext.configure(connection).get_current_revision()
    if revision is not None:
        return revision
    if connection.dialect.name == "sqlite":
        number = connection.exec_driver_sql("PRAGMA user_version").scalar() or 0
        if number == 1:
            return REVISIONS[0]  # the store of an engine before Alembic
    return "unversioned" if inspect(connection).has_table("runs") else None


def upgrade(connection: Connection, target: str = "head") -> tuple[str | None, str]:
    """Upgrade the store on ``connection`` to ``target``; returns (before, after).

    On PostgreSQL every revision runs in one transaction: a failure leaves the store as
    it was. The caller commits.
    """
    from alembic import command

    before = current(connection)
    if connection.in_transaction():
        connection.commit()
    config = _config(connection)
    if before == REVISIONS[0] and connection.dialect.name == "sqlite" and not _has_version_table(connection):
        command.stamp(config, REVISIONS[0])
    command.upgrade(config, target)
    if connection.in_transaction():
        connection.commit()
    return before, current(connection) or "none"


def _has_version_table(connection: Connection) -> bool:
    from sqlalchemy import inspect

    return inspect(connection).has_table("alembic_version")

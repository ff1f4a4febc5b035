"""The run store through SQLAlchemy 2 Core: PostgreSQL for a team, and SQLite where the
registry (:mod:`engine.store.registrydb`) and ``mlops db`` reach the embedded store.

``postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DB`` (``postgresql://`` and
``postgres://`` are read the same way, with psycopg 3: ``pip install
'mlops-engine[postgres]'``). The tables are the SQLite store's (the same Alembic
revisions) and so are the queries: the leaderboard's top N, the run cache's tag lookup,
and every run with its params, metrics and tags for ``--where``.

Faults a team meets, each one line (:class:`engine.errors.StoreError`, exit 2) that
never holds the password:

- a server that cannot be reached: retried with a growing pause for
  ``MLOPS_STORE_RETRY_SECONDS`` (default 15), then the host and port are named;
- a server that restarts while a sweep writes: each write is one transaction, retried
  the same way, so no run is lost (an upsert done twice is the same row);
- refused credentials or an unknown database: not retried;
- a schema older or newer than the engine's: refused, naming ``mlops db upgrade``.

Only writes create the store: reading an empty database finds no run.

On an SQLite file (``sqlite:///PATH``) it keeps the embedded store's settings
(:class:`engine.store.tracking.SqliteRunStore`): the file is created by that store, in
WAL mode under its lock; every connection waits up to 60 s for a lock and syncs as
``NORMAL``; a write is one ``BEGIN IMMEDIATE`` transaction, which takes the write lock
before its first read (what the advisory lock does on PostgreSQL), and a read one
deferred transaction, so it sees one snapshot. Only "database is locked" is retried.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from engine.errors import StoreError, UsageError
from engine.store import schema, tracking

T = TypeVar("T")

#: How long a write or read keeps retrying a server it cannot reach (seconds).
RETRY_SECONDS = 15.0
#: psycopg's connect timeout (seconds) for one try.
CONNECT_TIMEOUT = 5

#: What a server says when the credentials or the database are wrong: retrying cannot help.
_REFUSED = re.compile(r"password authentication failed|no password supplied|role \"[^\"]*\" does not exist|"
                      r"database \"[^\"]*\" does not exist|pg_hba\.conf|authentication failed", re.I)


def _tables() -> Any:
    """The store's tables as SQLAlchemy Core objects (the head revision's shape)."""
    from sqlalchemy import Column, Float, Integer, MetaData, Table, Text

    metadata = MetaData()
    text_columns = {"name", "kind", "status", "started_at", "ended_at", "run_dir", "host", "hypothesis", "error",
                    "git_commit", "model_sha256", "config_sha256", "fingerprints", "heartbeat_at"}
    columns = [Column("id", Text, primary_key=True)]
    for name in tracking.RUN_FIELDS[1:]:
        kind = Text if name in text_columns else Integer if name in ("pid", "git_dirty") else Float
        columns.append(Column(name, kind))
    runs = Table("runs", metadata, *columns)
    values = {}
    for table, kind in (("params", Text), ("metrics", Float), ("tags", Text)):
        values[table] = Table(table, metadata, Column("run_id", Text, primary_key=True),
                              Column("key", Text, primary_key=True), Column("value", kind))
    events = Table("run_events", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
                   Column("run_id", Text, nullable=False), Column("at", Text, nullable=False),
                   Column("event", Text, nullable=False), Column("detail", Text))
    registry = {
        "registry_versions": Table("registry_versions", metadata, Column("name", Text, primary_key=True),
                                   Column("version", Integer, primary_key=True, autoincrement=False),
                                   Column("record", Text, nullable=False)),
        "registry_aliases": Table("registry_aliases", metadata, Column("name", Text, primary_key=True),
                                  Column("alias", Text, primary_key=True), Column("version", Integer, nullable=False)),
        "registry_alias_history": Table("registry_alias_history", metadata,
                                        Column("id", Integer, primary_key=True, autoincrement=True),
                                        Column("name", Text, nullable=False), Column("alias", Text, nullable=False),
                                        Column("version", Integer, nullable=False), Column("previous", Integer),
                                        Column("at", Text, nullable=False)),
    }
    return metadata, runs, values, events, registry


METADATA, RUNS, VALUES, EVENTS, REGISTRY = _tables()
#: Every table of the store, in the order ``mlops db copy`` copies them.
TABLES = ("runs", "params", "metrics", "tags", "run_events", "registry_versions", "registry_aliases",
          "registry_alias_history")
#: The column that says whose a row is: a run's (by id) or a registered model's (by name).
OWNER = {"runs": "id", "params": "run_id", "metrics": "run_id", "tags": "run_id", "run_events": "run_id",
         "registry_versions": "name", "registry_aliases": "name", "registry_alias_history": "name"}
#: Tables whose ``id`` is a sequence number of the database: not copied, the order kept.
SEQUENCED = ("run_events", "registry_alias_history")


def table(name: str) -> Any:
    """A store table by name."""
    return {"runs": RUNS, "run_events": EVENTS, **VALUES, **REGISTRY}[name]


def url_of(uri: str) -> Any:
    """The SQLAlchemy URL of a store URI, with psycopg 3 as the driver of PostgreSQL.

    Raises:
        UsageError: Not a URL.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise UsageError(f"usage error: {masked_text(uri)} is not a store URI; expected one of: "
                         f"{tracking.SCHEMES}") from exc
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def masked(uri: str) -> str:
    """A store URI as messages show it: the password, if any, as ``***``."""
    try:
        return url_of(uri).render_as_string(hide_password=True)
    except UsageError:
        return masked_text(uri)


def masked_text(text: str) -> str:
    """``scheme://user:secret@host`` anywhere in ``text`` with the secret as ``***``."""
    return tracking.shown_uri(text)


def where(url: Any) -> str:
    """``host:port`` of a server URL, as an unreachable-server message names it."""
    return f"{url.host or 'localhost'}:{url.port or 5432}"


class SqlRunStore(tracking.RunStore):
    """Runs in a PostgreSQL database (any SQLAlchemy URL of the same schema works).

    Args:
        uri: The store's URI (its password is never shown).
        retry_seconds: How long an operation retries a server it cannot reach; default
            ``MLOPS_STORE_RETRY_SECONDS`` or :data:`RETRY_SECONDS`.
    """

    def __init__(self, uri: str, retry_seconds: float | None = None) -> None:
        self.url = url_of(uri)
        self.shown = self.url.render_as_string(hide_password=True)
        if retry_seconds is None:
            try:
                retry_seconds = float(os.environ.get("MLOPS_STORE_RETRY_SECONDS", RETRY_SECONDS))
            except ValueError:
                retry_seconds = RETRY_SECONDS
        self.retry_seconds = retry_seconds
        self._engine: Any = None
        self._ready = False
        #: The database file of an SQLite URL (None: a server).
        self.path = Path(str(self.url.database)) if self.url.drivername.startswith("sqlite") and self.url.database \
            else None

    def __repr__(self) -> str:
        return f"SqlRunStore({self.shown!r})"

    # ------------------------------------------------------------ connections

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine (made on first use; no connection yet)."""
        if self._engine is None:
            from sqlalchemy import create_engine

            if self.url.drivername == "postgresql+psycopg":
                try:
                    import psycopg  # noqa: F401
                except ImportError as exc:
                    raise UsageError("usage error: a postgresql store needs psycopg: pip install "
                                     "'mlops-engine[postgres]'") from exc
                connect_args = {"connect_timeout": CONNECT_TIMEOUT, "application_name": "mlops"}
            elif self.path is not None:
                self._engine = create_engine(self.url, connect_args={"timeout": 60}, pool_size=2, max_overflow=4)
                _sqlite_transactions(self._engine)
                return self._engine
            else:
                connect_args = {}
            # pre_ping: a pooled connection the server closed (a restart) is replaced, not used.
            self._engine = create_engine(self.url, pool_pre_ping=True, pool_size=2, max_overflow=4,
                                         connect_args=connect_args)
        return self._engine

    def dispose(self) -> None:
        """Close the pooled connections."""
        if self._engine is not None:
            self._engine.dispose()

    def run(self, work: Callable[[Any], T], write: bool = False, default: T | None = None,
            check: bool = True) -> T | None:
        """``work(connection)`` in one transaction, committed; retried while the server
        cannot be reached. Checks (and, for a write, creates) the schema first, unless
        ``check`` is false (``mlops db`` reads and upgrades the schema itself).

        Returns:
            What ``work`` returns; ``default`` when the store is empty and this is a read.

        Raises:
            StoreError: The server cannot be reached within :attr:`retry_seconds`, refuses
                the credentials, or its schema is not the engine's.
        """
        from sqlalchemy.exc import DBAPIError

        if self.path is not None and check and not self._ready and not self._sqlite_file(write):
            return default
        start, pause, tries = time.monotonic(), 0.1, 0
        while True:
            tries += 1
            try:
                with self.engine.connect() as conn:
                    if write and self.path is not None:
                        conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                    if check and not self._check(conn, create=write):
                        return default
                    result = work(conn)
                    conn.commit()
                    return result
            except DBAPIError as exc:
                message = masked_text(_first_line(exc.orig if exc.orig is not None else exc))
                password = self.url.password
                if password:
                    message = message.replace(str(password), "***")
                if self.path is not None and "locked" not in message:
                    raise StoreError(f"store error at {self.shown}: {message}") from None
                if _REFUSED.search(message) and self.path is None:
                    raise StoreError(f"store error: {self.shown} refused the connection: {message}") from None
                if not _transient(exc):
                    raise StoreError(f"store error at {self.shown}: {message}") from None
                waited = time.monotonic() - start
                if waited + pause > self.retry_seconds and self.path is not None:
                    raise StoreError(f"store error at {self.shown}: {message} (after {tries} tries in "
                                     f"{waited:.0f} s)") from None
                if waited + pause > self.retry_seconds:
                    raise StoreError(f"store error: cannot reach the PostgreSQL server at {where(self.url)} "
                                     f"({self.shown}) after {tries} tries in {waited:.0f} s: {message}") from None
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _sqlite_file(self, create: bool) -> bool:
        """Whether the SQLite file holds a store of the engine's revision; with ``create``,
        make it so, as the embedded store does (WAL, the schema written under its lock).
        SQLAlchemy is never the one to create the file: it would make it without WAL.

        Raises:
            DataError: The file is empty (0 bytes) or not a database.
            StoreError: The schema is older or newer than the engine's.
        """
        store = tracking.SqliteRunStore(self.path)  # type: ignore[arg-type]
        if not store.exists(create=create):
            return False
        with store._connect():  # refuses another revision in one line; creates the tables of an empty file
            pass
        return True

    def _check(self, conn: Any, create: bool) -> bool:
        """Whether the store has the engine's schema; an empty database is created by a write.

        Raises:
            StoreError: The schema is older or newer than the engine's.
        """
        if self._ready:
            return True
        if self.path is not None and conn.exec_driver_sql("PRAGMA user_version").scalar() == schema.HEAD_NUMBER:
            self._ready = True  # one pragma, as the embedded store checks: no Alembic import
            return True
        revision = schema.current(conn)
        if revision is None:
            if not create:
                conn.rollback()
                return False
            schema.upgrade(conn)  # every revision in one transaction, under an advisory lock
            revision = schema.current(conn)
        if revision != schema.HEAD:
            raise tracking.schema_refused(self.shown, str(revision))
        self._ready = True
        return True

    # ------------------------------------------------------------ RunStore

    def upsert(self, run: Mapping[str, Any], params: Mapping[str, Any] | None = None,
               metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None) -> None:
        row = {name: tracking._column(run.get(name)) for name in tracking.RUN_FIELDS}
        rows = {"params": params, "metrics": metrics, "tags": tags}

        def work(conn: Any) -> None:
            from sqlalchemy import delete, func

            insert = _insert(conn)
            statement = insert(RUNS).values(row)
            updates = {name: (func.coalesce(statement.excluded[name], RUNS.c[name]) if name.startswith("heartbeat_")
                              else statement.excluded[name]) for name in tracking.RUN_FIELDS if name != "id"}
            conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=updates))
            given = {table: [(k, v if table == "metrics" else tracking._text(v)) for k, v in values.items()
                             if v is not None or table != "metrics"]
                     for table, values in rows.items() if values is not None}
            if conn.dialect.name == "postgresql":
                _replace_values_pg(conn, row["id"], given)
                return
            for table, pairs in given.items():
                conn.execute(delete(VALUES[table]).where(VALUES[table].c.run_id == row["id"]))
                if pairs:
                    conn.execute(VALUES[table].insert(), [{"run_id": row["id"], "key": k, "value": v}
                                                          for k, v in pairs])

        self.run(work, write=True)

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = self.run(lambda conn: _read(conn, [run_id]), default=[])
        return rows[0] if rows else None

    def search(self, top: tuple[str, bool, int] | None = None,
               tag: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        from sqlalchemy import select

        def work(conn: Any) -> list[dict[str, Any]]:
            if tag is not None:
                tags = VALUES["tags"]
                ids = list(conn.execute(select(tags.c.run_id).where(tags.c.key == tag[0], tags.c.value == tag[1]))
                           .scalars())
                return _read(conn, ids) if ids else []
            if top is None:
                return _read(conn, None)
            metric, descending, n = top
            value = VALUES["metrics"].c.value
            ids = list(conn.execute(select(VALUES["metrics"].c.run_id)
                                    .where(VALUES["metrics"].c.key == metric, value.is_not(None))
                                    .order_by(value.desc() if descending else value.asc()).limit(n)).scalars())
            found = {r["id"]: r for r in _read(conn, ids)} if ids else {}
            return [found[i] for i in ids if i in found]

        return self.run(work, default=[]) or []

    def heartbeat(self, run_id: str) -> str | None:
        from sqlalchemy import select, update

        def work(conn: Any) -> str | None:
            status = conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(heartbeat_at=tracking.now_iso())
                                  .returning(RUNS.c.status)).scalar()
            if status == "interrupted":
                last = conn.execute(select(EVENTS.c.event).where(EVENTS.c.run_id == run_id)
                                    .order_by(EVENTS.c.id.desc()).limit(1)).scalar()
                if last == "lost":
                    conn.execute(EVENTS.insert().values(run_id=run_id, at=tracking.now_iso(), event="late heartbeat",
                                                        detail=tracking.LATE_HEARTBEAT))
            return status

        return self.run(work)

    def mark_lost(self, run_id: str, heartbeat_at: str, message: str) -> bool:
        from sqlalchemy import update

        def work(conn: Any) -> bool:
            marked = conn.execute(update(RUNS).where(RUNS.c.id == run_id, RUNS.c.status == "running",
                                                     RUNS.c.heartbeat_at == heartbeat_at)
                                  .values(status="interrupted", error=message)).rowcount
            if marked:
                conn.execute(EVENTS.insert().values(run_id=run_id, at=tracking.now_iso(), event="lost",
                                                    detail=message))
            return bool(marked)

        return bool(self.run(work))

    def log_event(self, run_id: str, event: str, detail: str) -> None:
        self.run(lambda conn: conn.execute(EVENTS.insert().values(run_id=run_id, at=tracking.now_iso(), event=event,
                                                                  detail=detail)), write=True)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        def work(conn: Any) -> list[dict[str, Any]]:
            query = select(EVENTS.c.at, EVENTS.c.event, EVENTS.c.detail).where(EVENTS.c.run_id == run_id)
            return [dict(r._mapping) for r in conn.execute(query.order_by(EVENTS.c.id))]

        return self.run(work, default=[]) or []


def _sqlite_transactions(engine: Any) -> None:
    """Give an SQLite engine the embedded store's settings and real transactions.

    Python's sqlite3 opens a transaction only before a write, so a read-then-write would
    read outside it; here the driver's own transaction handling is off and every
    transaction starts with ``BEGIN`` (a read: one snapshot) or, for a write, with the
    ``sqlite_begin`` execution option's ``BEGIN IMMEDIATE`` (SQLAlchemy's documented
    recipe for pysqlite).
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = 60000")
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    @event.listens_for(engine, "begin")
    def begin(conn: Any) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))


def _replace_values_pg(conn: Any, run_id: str, given: dict[str, list[tuple[str, Any]]]) -> None:
    """Replace a run's params, metrics and tags on PostgreSQL in a statement per table plus
    one for the deletes: each table's rows go as two arrays (``unnest``), not a round trip
    per row, which keeps logging a run with 50 params near the SQLite store's time."""
    from sqlalchemy import text

    if not given:
        return
    deletes = [f"DELETE FROM {table} WHERE run_id = :run_id" for table in given]
    statement = deletes[-1] if len(deletes) == 1 else \
        "WITH " + ", ".join(f"d{i} AS ({d})" for i, d in enumerate(deletes[:-1])) + " " + deletes[-1]
    conn.execute(text(statement), {"run_id": run_id})
    for table, pairs in given.items():
        if pairs:
            kind = "float8" if table == "metrics" else "text"
            conn.execute(text(f"INSERT INTO {table} (run_id, key, value) SELECT :run_id, k, v FROM "
                              f"unnest(CAST(:keys AS text[]), CAST(:values AS {kind}[])) AS t(k, v)"),
                         {"run_id": run_id, "keys": [k for k, _ in pairs],
                          "values": [float(v) if kind == "float8" else v for _, v in pairs]})


def _insert(conn: Any) -> Any:
    """The dialect's INSERT, which has ``ON CONFLICT DO UPDATE`` (PostgreSQL, SQLite)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


#: Above this many ids, a read selects every row and keeps the wanted ones in Python.
_MAX_IN = 1000


def _read(conn: Any, ids: list[str] | None) -> list[dict[str, Any]]:
    """Runs (all, or those of ``ids``) with their params, metrics and tags, by start time."""
    from sqlalchemy import select

    wanted = None if ids is None or len(ids) > _MAX_IN else ids
    keep = None if ids is None else set(ids)
    query = select(RUNS).order_by(RUNS.c.started_at)
    if wanted is not None:
        query = query.where(RUNS.c.id.in_(wanted))
    runs = {r["id"]: {**r, "params": {}, "metrics": {}, "tags": {}}
            for r in (dict(m) for m in conn.execute(query).mappings()) if keep is None or r["id"] in keep}
    for name, table in VALUES.items():
        query = select(table.c.run_id, table.c.key, table.c.value)
        if wanted is not None:
            query = query.where(table.c.run_id.in_(wanted))
        for run_id, key, value in conn.execute(query):
            if run_id in runs:
                runs[run_id][name][key] = value
    for run in runs.values():
        run["fingerprints"] = json.loads(run["fingerprints"]) if run["fingerprints"] else {}
        run["git_dirty"] = None if run["git_dirty"] is None else bool(run["git_dirty"])
    return list(runs.values())


def _transient(exc: Any) -> bool:
    """Whether a database error is the server being away (retry) rather than a bad statement."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    if getattr(exc, "connection_invalidated", False) or isinstance(exc, InterfaceError):
        return True
    if isinstance(exc, OperationalError):
        return True  # connection refused, reset, server shutting down or starting up, timeouts
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return sqlstate.startswith(("08", "57P"))  # connection exception; operator intervention (a shutdown)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__

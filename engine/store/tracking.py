"""The metadata store: an index of every run, behind a small interface chosen by URI.

The run directory stays the source of truth; the store is an index over run
directories (params flattened from the resolved config, metrics, tags, status,
fingerprints, the run dir) that makes ``mlops runs`` fast, and ``reindex`` rebuilds
it from the run directories alone.

The embedded default is one SQLite file (``sqlite:///outputs/mlops.db``) in WAL mode
with a busy timeout, created with its schema under a file lock, so many sweep
workers starting together on a fresh store all succeed. A team points the URI at a
PostgreSQL server (``postgresql+psycopg://USER@HOST:PORT/DB``,
:mod:`engine.store.sql`): the same tables and the same queries, through SQLAlchemy Core.
The schema is versioned (:mod:`engine.store.schema`, Alembic): a store older or newer
than the engine is refused with the command that upgrades it.

Only writes create the store: reading a store that does not exist yet finds no run and
creates no file or folder. A store file that is empty (truncated to 0 bytes) is an
error with the ``mlops runs reindex`` hint, never silently a new empty index: the file
is created, schema and all, while its lock is held, so once the lock is free an empty
file is a damaged one.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import DataError, StoreError, UsageError
from engine.files import locked
from engine.store import schema

DEFAULT_URI = "sqlite:///outputs/mlops.db"
#: ``PRAGMA user_version`` of a store at the engine's schema revision (:data:`schema.HEAD`).
SCHEMA_VERSION = schema.HEAD_NUMBER
#: The URI schemes that have a store, as an error lists them.
SCHEMES = "sqlite:///PATH, postgresql+psycopg://USER[:PASSWORD]@HOST[:PORT]/DB"
#: How often a running job says it is alive (seconds); ``MLOPS_HEARTBEAT_SECONDS`` overrides it.
HEARTBEAT_SECONDS = 30.0
#: A ``running`` run whose last heartbeat is older than this many of its intervals is lost.
LOST_AFTER_BEATS = 4
LATE_HEARTBEAT = "a heartbeat after the run was marked lost: it still runs, and is revived only if it finishes"

#: Run fields kept as columns (the rest of run.json stays in the run directory).
RUN_FIELDS = ("id", "name", "kind", "status", "started_at", "ended_at", "duration_s", "run_dir", "pid", "host",
              "hypothesis", "error", "git_commit", "git_dirty", "model_sha256", "config_sha256", "fingerprints",
              "heartbeat_at", "heartbeat_s")


class RunStore(ABC):
    """Where runs are indexed: create or update a run, get one, search them."""

    @abstractmethod
    def upsert(self, run: Mapping[str, Any], params: Mapping[str, Any] | None = None,
               metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None) -> None:
        """Create the run or update it; params, metrics and tags given replace the old ones."""

    @abstractmethod
    def get(self, run_id: str) -> dict[str, Any] | None:
        """One run with its params, metrics and tags, by full id."""

    @abstractmethod
    def search(self, top: tuple[str, bool, int] | None = None,
               tag: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """Runs with their params, metrics and tags.

        Args:
            top: ``(metric, descending, n)``: only the best ``n`` runs by a metric, found
                by the store itself (runs without the metric are left out); None: every
                run (filtering and sorting then happen in :mod:`engine.store.runs`).
            tag: ``(key, value)``: only the runs with that tag (the run cache looks up
                ``cache_key`` this way); ``top`` is then ignored.
        """

    # A fourth method, argued: runs on other hosts can only be seen alive through the
    # store, so the store is where a job says so. Optional: a store without it says so.
    def heartbeat(self, run_id: str) -> str | None:
        """Say that a running run is alive (now); returns the run's status in the store
        (``interrupted`` when a reader already marked it lost, and then the history gets
        a ``late heartbeat``, once), None when it has no row."""
        raise NotImplementedError(f"{type(self).__name__} keeps no heartbeats")

    def mark_lost(self, run_id: str, heartbeat_at: str, message: str) -> bool:
        """Mark a ``running`` run ``interrupted`` with ``message`` and a ``lost`` event, in
        one transaction, only if its last heartbeat is still ``heartbeat_at`` (a run that
        beat or ended since is left as it is); returns whether it was marked."""
        raise NotImplementedError(f"{type(self).__name__} keeps no heartbeats")

    def log_event(self, run_id: str, event: str, detail: str) -> None:
        """Append to the run's history (``lost``, ``late heartbeat``, ``revived``)."""
        raise NotImplementedError(f"{type(self).__name__} keeps no run history")

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's history, oldest first: ``{"at", "event", "detail"}``."""
        raise NotImplementedError(f"{type(self).__name__} keeps no run history")



@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (BEGIN IMMEDIATE): committed when the block ends,
    rolled back when it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # An interrupt can land just after COMMIT: then there is nothing to roll back, and
        # a failed ROLLBACK must not replace the interrupt.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise

def open_store(uri: str, root: Path) -> RunStore:
    """The store for ``uri``; a relative SQLite path is relative to ``root``.

    Raises:
        UsageError: The URI's scheme has no store, or its driver is not installed.
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return SqliteRunStore(path if path.is_absolute() else root / path)
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    if scheme in SERVER_SCHEMES:
        from engine.store import sql  # SQLAlchemy: only for a server store

        return sql.SqlRunStore(uri)
    shown = uri.split("@", 1)[-1] if "@" in uri else uri  # never the credentials before the host
    raise UsageError(f"usage error: no run store for {scheme or 'scheme-less'!r} URIs ({shown}); "
                     f"expected one of: {SCHEMES}")


#: The schemes of PostgreSQL URIs; all are read as ``postgresql+psycopg`` (psycopg 3).
SERVER_SCHEMES = ("postgresql+psycopg", "postgresql", "postgres")


def shown_uri(uri: str) -> str:
    """A store URI as messages show it: ``scheme://user:***@host`` (never the password)."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", uri)


def without_password(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved config as runs record it (config.resolved.yaml, the store's params): a
    store URI's password left out (``scheme://user@host``; libpq finds it in PGPASSWORD or
    ~/.pgpass when the record is run again)."""
    tracking_cfg = resolved.get("tracking")
    if not isinstance(tracking_cfg, Mapping) or not isinstance(tracking_cfg.get("uri"), str):
        return dict(resolved)
    uri = re.sub(r"(://[^:/@\s]*):[^@\s]*@", r"\1@", tracking_cfg["uri"])
    return {**resolved, "tracking": {**tracking_cfg, "uri": uri}}


def host_id() -> str:
    """This machine as run records name it: ``MLOPS_HOST_ID``, else the host name."""
    return os.environ.get("MLOPS_HOST_ID") or socket.gethostname()


def heartbeat_seconds() -> float:
    """The heartbeat interval: ``MLOPS_HEARTBEAT_SECONDS`` (a positive number), else 30."""
    try:
        value = float(os.environ.get("MLOPS_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
    except ValueError:
        return HEARTBEAT_SECONDS
    return value if value > 0 else HEARTBEAT_SECONDS


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def lost_since(run: Mapping[str, Any], now: datetime | None = None) -> str | None:
    """The last heartbeat of a ``running`` run that stopped beating: older than
    :data:`LOST_AFTER_BEATS` of its own intervals. None while it beats, or when it never did."""
    if run.get("status") != "running" or not run.get("heartbeat_at") or not run.get("heartbeat_s"):
        return None
    try:
        last = datetime.fromisoformat(str(run["heartbeat_at"]))
    except ValueError:
        return None
    if last.tzinfo is None:
        last = last.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    late = (now - last).total_seconds() > LOST_AFTER_BEATS * float(run["heartbeat_s"])
    return str(run["heartbeat_at"]) if late else None


class SqliteRunStore(RunStore):
    """The embedded default: one SQLite file, safe for many concurrent writers."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"SqliteRunStore({str(self.path)!r})"

    @property
    def lock_path(self) -> Path:
        """The file locked while the store is created or its schema changes."""
        return self.path.with_suffix(self.path.suffix + ".lock")

    def exists(self, create: bool = False) -> bool:
        """Whether the store file exists and holds a database; with ``create``, make it so.

        Raises:
            DataError: The file is empty (0 bytes): truncated, or damaged.
        """
        if _size(self.path):  # the common case: one stat, no lock
            return True
        if not create:
            if _size(self.path) is None:
                return False
            if self.lock_path.exists():  # a first writer may be creating it: wait for it
                with locked(self.lock_path):
                    pass
            if _size(self.path):
                return True
            raise self._empty()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.lock_path):
            size = _size(self.path)
            if size == 0:
                raise self._empty()
            if size is None:
                try:
                    conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
                except sqlite3.Error as exc:
                    raise DataError(f"data error at run store {self.path}: cannot create it: {exc}") from exc
                try:
                    self._create_schema(conn)
                finally:
                    conn.close()
        return True

    def _empty(self) -> DataError:
        return DataError(f"data error at run store {self.path}: the file is empty (0 bytes), expected an SQLite "
                         "database; rebuild it from the run directories with: mlops runs reindex")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise DataError(f"data error at run store {self.path}: cannot open it: {exc}") from exc
        try:
            conn.execute("PRAGMA busy_timeout = 60000")
            # WAL with synchronous=NORMAL: no fsync per commit. A power cut may lose the
            # last index rows, never corrupt the file; the run dirs are the source of
            # truth and `mlops runs reindex` restores them.
            conn.execute("PRAGMA synchronous = NORMAL")
            self._ensure_schema(conn)
            yield conn
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise DataError(f"data error at run store {self.path}: {exc}; rebuild it from the run "
                            "directories with: mlops runs reindex") from exc
        finally:
            conn.close()

    def _ensure_schema(self, conn: sqlite3.Connection) -> None:
        """One pragma per connection: the store's revision is the engine's, or it is refused
        (a store with no table yet is created, under the lock)."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            # Once, under a lock: concurrent writers would otherwise race on DDL.
            with locked(self.lock_path):
                if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                    return
                if not conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'runs'").fetchone()[0]:
                    self._create_schema(conn)
                    return
        raise schema_refused(f"sqlite:///{self.path}", schema.revision_of(version) or f"user_version {version}")

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        """Create the tables at the head revision (the caller holds the lock); WAL first,
        which writes the file's header.

        The same tables as the Alembic revisions build, written out so that creating the
        embedded store imports neither SQLAlchemy nor Alembic
        (tests/unit/store/test_store_contract.py compares the two).
        """
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(f"""
            BEGIN IMMEDIATE;
            CREATE TABLE IF NOT EXISTS runs (
                id TEXT NOT NULL, name TEXT, kind TEXT, status TEXT, started_at TEXT, ended_at TEXT,
                duration_s FLOAT, run_dir TEXT, pid INTEGER, host TEXT, hypothesis TEXT, error TEXT,
                git_commit TEXT, git_dirty INTEGER, model_sha256 TEXT, config_sha256 TEXT,
                fingerprints TEXT, heartbeat_at TEXT, heartbeat_s FLOAT, PRIMARY KEY (id));
            CREATE INDEX IF NOT EXISTS runs_started ON runs (started_at);
            CREATE TABLE IF NOT EXISTS params (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
                PRIMARY KEY (run_id, key));
            CREATE TABLE IF NOT EXISTS metrics (run_id TEXT NOT NULL, key TEXT NOT NULL, value FLOAT,
                PRIMARY KEY (run_id, key));
            CREATE INDEX IF NOT EXISTS metrics_key ON metrics (key, value);
            CREATE TABLE IF NOT EXISTS tags (run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
                PRIMARY KEY (run_id, key));
            CREATE TABLE IF NOT EXISTS run_events (id INTEGER NOT NULL, run_id TEXT NOT NULL, at TEXT NOT NULL,
                event TEXT NOT NULL, detail TEXT, PRIMARY KEY (id));
            CREATE INDEX IF NOT EXISTS run_events_run ON run_events (run_id, id);
            CREATE TABLE IF NOT EXISTS registry_versions (name TEXT NOT NULL, version INTEGER NOT NULL,
                record TEXT NOT NULL, PRIMARY KEY (name, version));
            CREATE TABLE IF NOT EXISTS registry_aliases (name TEXT NOT NULL, alias TEXT NOT NULL,
                version INTEGER NOT NULL, PRIMARY KEY (name, alias));
            CREATE TABLE IF NOT EXISTS registry_alias_history (id INTEGER NOT NULL, name TEXT NOT NULL,
                alias TEXT NOT NULL, version INTEGER NOT NULL, previous INTEGER, at TEXT NOT NULL, PRIMARY KEY (id));
            CREATE INDEX IF NOT EXISTS registry_alias_history_name ON registry_alias_history (name, id);
            CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL,
                CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));
            INSERT INTO alembic_version (version_num) VALUES ('{schema.HEAD}');
            PRAGMA user_version = {SCHEMA_VERSION};
            COMMIT;
        """)

    def upsert(self, run: Mapping[str, Any], params: Mapping[str, Any] | None = None,
               metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None) -> None:
        row = {name: _column(run.get(name)) for name in RUN_FIELDS}
        names = ", ".join(RUN_FIELDS)
        marks = ", ".join(f":{n}" for n in RUN_FIELDS)
        # A run's last update (its end) keeps the last heartbeat it sent.
        updates = ", ".join(f"{n} = coalesce(excluded.{n}, runs.{n})" if n.startswith("heartbeat_")
                            else f"{n} = excluded.{n}" for n in RUN_FIELDS if n != "id")
        self.exists(create=True)
        with self._connect() as conn, _immediate(conn):
            conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {updates}", row)
            for table, values in (("params", params), ("metrics", metrics), ("tags", tags)):
                if values is None:
                    continue
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (row["id"],))
                conn.executemany(f"INSERT INTO {table} (run_id, key, value) VALUES (?, ?, ?)",
                                 [(row["id"], k, v if table == "metrics" else _text(v))
                                  for k, v in values.items() if v is not None or table != "metrics"])

    def get(self, run_id: str) -> dict[str, Any] | None:
        if not self.exists():
            return None
        with self._connect() as conn:
            rows = self._read(conn, "WHERE id = ?", (run_id,))
        return rows[0] if rows else None

    def heartbeat(self, run_id: str) -> str | None:
        if not self.exists():
            return None
        with self._connect() as conn, _immediate(conn):
            conn.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", (now_iso(), run_id))
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row and row[0] == "interrupted":
                last = conn.execute("SELECT event FROM run_events WHERE run_id = ? ORDER BY id DESC LIMIT 1",
                                    (run_id,)).fetchone()
                if last and last[0] == "lost":
                    conn.execute("INSERT INTO run_events (run_id, at, event, detail) VALUES (?, ?, ?, ?)",
                                 (run_id, now_iso(), "late heartbeat", LATE_HEARTBEAT))
        return row[0] if row else None

    def mark_lost(self, run_id: str, heartbeat_at: str, message: str) -> bool:
        with self._connect() as conn, _immediate(conn):
            marked = conn.execute("UPDATE runs SET status = 'interrupted', error = ? WHERE id = ? AND "
                                  "status = 'running' AND heartbeat_at = ?", (message, run_id, heartbeat_at))
            if marked.rowcount:
                conn.execute("INSERT INTO run_events (run_id, at, event, detail) VALUES (?, ?, ?, ?)",
                             (run_id, now_iso(), "lost", message))
        return bool(marked.rowcount)

    def log_event(self, run_id: str, event: str, detail: str) -> None:
        self.exists(create=True)
        with self._connect() as conn:
            conn.execute("INSERT INTO run_events (run_id, at, event, detail) VALUES (?, ?, ?, ?)",
                         (run_id, now_iso(), event, detail))

    def events(self, run_id: str) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        with self._connect() as conn:
            return [{"at": at, "event": event, "detail": detail} for at, event, detail in conn.execute(
                "SELECT at, event, detail FROM run_events WHERE run_id = ? ORDER BY id", (run_id,))]

    def search(self, top: tuple[str, bool, int] | None = None,
               tag: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        if not self.exists():
            return []
        with self._connect() as conn:
            if tag is not None:
                ids = [row[0] for row in conn.execute("SELECT run_id FROM tags WHERE key = ? AND value = ?", tag)]
                marks = ", ".join("?" * len(ids))
                return self._read(conn, f"WHERE id IN ({marks})", tuple(ids)) if ids else []
            if top is None:
                return self._read(conn, "", ())
            metric, descending, n = top
            ids = [row[0] for row in conn.execute(
                f"SELECT run_id FROM metrics WHERE key = ? ORDER BY value {'DESC' if descending else 'ASC'} LIMIT ?",
                (metric, n))]
            marks = ", ".join("?" * len(ids))
            found = {r["id"]: r for r in self._read(conn, f"WHERE id IN ({marks})", tuple(ids))} if ids else {}
            return [found[i] for i in ids if i in found]

    def _read(self, conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        conn.row_factory = sqlite3.Row
        runs = {r["id"]: {**dict(r), "params": {}, "metrics": {}, "tags": {}}
                for r in conn.execute(f"SELECT * FROM runs {where} ORDER BY started_at", args)}
        for table in ("params", "metrics", "tags"):
            query = f"SELECT run_id, key, value FROM {table}"
            if where:
                query += " " + where.replace("WHERE id", "WHERE run_id")
            for run_id, key, value in conn.execute(query, args):
                if run_id in runs:
                    runs[run_id][table][key] = value
        for run in runs.values():
            run["fingerprints"] = json.loads(run["fingerprints"]) if run["fingerprints"] else {}
            run["git_dirty"] = None if run["git_dirty"] is None else bool(run["git_dirty"])
        return list(runs.values())


#: The config groups a run of each kind never reads: not indexed as its parameters, so a
#: quality run in ``mlops runs`` shows no model.
UNREAD_BY_KIND = {"quality": ("features", "preprocess", "model", "split", "business"),
                  "features": ("preprocess", "model", "split", "business")}


def track(store: RunStore, record: Mapping[str, Any], resolved: Mapping[str, Any] | None,
          metrics: Mapping[str, Any] | None = None) -> None:
    """Index one run record (and the parts of its resolved config it read, and its
    metrics) in the store."""
    numbers = {k: float(v) for k, v in (metrics or {}).items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    for dimension, score in ((record.get("quality") or {}).get("scores") or {}).items():
        if score is not None:
            numbers[f"quality.{dimension}"] = float(score)
    tags = {"kind": str(record.get("kind", "run"))}
    if record.get("cache_key"):
        tags["cache_key"] = str(record["cache_key"])
    if record.get("reused"):
        tags["reused_from"] = str(record["reused"]["run"])
    for key, value in (record.get("lineage") or {}).items():  # monitor -> retrain -> registry -> validation
        tags[f"lineage.{key}"] = str(value)
    unread = UNREAD_BY_KIND.get(tags["kind"], ())
    if resolved:
        resolved = {key: value for key, value in resolved.items() if key not in unread}
    if resolved and "model" in resolved:
        tags["model"] = str(resolved["model"].get("_target_", "")).rsplit(".", 1)[-1]
    store.upsert(summary(record, resolved),
                 params=flatten(resolved) if resolved else None,
                 metrics=numbers, tags=tags)


def summary(record: Mapping[str, Any], resolved: Mapping[str, Any] | None) -> dict[str, Any]:
    """The store's view of a run record (``run.json``) and its resolved config."""
    git = (record.get("provenance") or {}).get("git") or {}
    error = record.get("error")
    return {
        **{k: record.get(k) for k in ("id", "name", "kind", "status", "started_at", "ended_at", "duration_s",
                                      "run_dir", "pid", "host")},
        "hypothesis": (resolved or {}).get("hypothesis"),
        "error": error.get("message") if isinstance(error, Mapping) else error,
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "model_sha256": (record.get("model") or {}).get("sha256"),
        "config_sha256": record.get("config_sha256"),
        "fingerprints": {name: d.get("fingerprint") for name, d in (record.get("data") or {}).items()},
        # Every update of a running run says it is alive; its end keeps the last beat.
        "heartbeat_at": now_iso() if record.get("status") == "running" else None,
        "heartbeat_s": record.get("heartbeat_s"),
    }


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"C": 1}}`` -> ``{"model.C": 1}``; lists stay whole values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def alive(run: Mapping[str, Any]) -> bool | None:
    """Whether a ``running`` run's process still exists: None when it ran on another host."""
    if run.get("host") != host_id() or not run.get("pid"):
        return None
    try:
        os.kill(int(run["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def schema_refused(shown: str, revision: str) -> StoreError:
    """The one line that refuses a store at another schema revision than the engine's."""
    if revision in schema.REVISIONS[:-1]:
        return StoreError(f"store error: the run store {shown} has schema revision {revision}, older than this "
                          f"engine's {schema.HEAD}; upgrade it with: mlops db upgrade {shown}")
    if revision == "unversioned":
        return StoreError(f"store error: {shown} has a runs table but no schema revision: not a store of "
                          f"mlops-engine; expected an empty database or a store made by mlops")
    return StoreError(f"store error: the run store {shown} has schema revision {revision}, newer than this "
                      f"engine's {schema.HEAD} (a later mlops-engine wrote it); upgrade mlops-engine to read it")


def _size(path: Path) -> int | None:
    """A file's size in bytes; None when it does not exist."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _column(value: Any) -> Any:
    if isinstance(value, Mapping | list):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, bool):
        return int(value)
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def index_run_dirs(outputs: Path) -> Iterable[Path]:
    """Every run directory under ``outputs`` (those holding a run.json)."""
    return sorted(path.parent for path in outputs.rglob("run.json"))

"""``mlops db copy``: every run, its params, metrics, tags and history, and every registry
version, alias and alias move, from one store to another (SQLite to PostgreSQL and back),
table to table, then verified. Both backends keep the registry in those tables, so what
is copied is what the destination's registry reads.

The copy is one transaction on the destination: it lands whole or not at all. Each copied
run replaces the destination's rows of that run, so a second copy of the same source
changes nothing (idempotent), and runs the destination already had that the source does
not are left alone. The check afterwards compares, table by table, the number of rows
and a content hash of the copied runs' rows on both sides: a sum of each row's sha256,
so it does not depend on the order either database returns rows in.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.errors import StoreError, UsageError
from engine.store import schema, sql, tracking

#: Rows read and written per batch.
BATCH = 5000


def store_for(uri: str, root: Path) -> sql.SqlRunStore:
    """The store of ``uri`` through SQLAlchemy (an SQLite path is relative to ``root``).

    Raises:
        UsageError: An unknown scheme (the message lists the schemes).
    """
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        return sql.SqlRunStore(f"sqlite:///{path if path.is_absolute() else root / path}")
    scheme = uri.split(":", 1)[0] if ":" in uri else ""
    if scheme not in tracking.SERVER_SCHEMES:
        tracking.open_store(uri, root)  # raises the one line that lists the schemes
    return sql.SqlRunStore(uri)


def revision(store: sql.SqlRunStore) -> str | None:
    """The store's schema revision (None: empty)."""
    return store.run(schema.current, check=False)


def upgrade(store: sql.SqlRunStore) -> tuple[str | None, str]:
    """Upgrade the store to the engine's revision; returns (before, after)."""
    return store.run(schema.upgrade, check=False) or (None, "none")


def _require_head(store: sql.SqlRunStore, role: str, create: bool) -> None:
    if create and store.path is not None and not store.path.is_file():
        tracking.SqliteRunStore(store.path).exists(create=True)  # as the engine makes one: WAL, under its lock
    current = revision(store)
    if current is None and create:
        upgrade(store)
        return
    if current is None:
        raise UsageError(f"usage error: the {role} store {store.shown} is empty: expected a store with runs")
    if current != schema.HEAD:
        raise tracking.schema_refused(store.shown, current)


def copy(source_uri: str, target_uri: str, root: Path, registry: Path | None = None) -> dict[str, dict[str, Any]]:
    """Copy every run with its rows, and every registered model's rows, from one store to
    another, then verify.

    Args:
        registry: With an SQLite source, the registry's folder: models an earlier engine
            kept there as ``<name>.json`` files (and not in the source's registry tables)
            are copied into the destination's registry tables too, each version recording
            the folder as its artifact root.

    Returns:
        Per table: ``{"copied": rows, "source": (count, hash), "target": (count, hash)}``.

    Raises:
        UsageError: The same store twice, an unknown scheme, or an empty source.
        StoreError: A store at another revision, one that cannot be reached, or a
            verification that found a difference (the message names the table).
    """
    source, target = store_for(source_uri, root), store_for(target_uri, root)
    if source.url == target.url:
        raise UsageError(f"usage error: db copy: the source and the destination are the same store ({source.shown})")
    if source.url.drivername.startswith("sqlite") and not Path(str(source.url.database)).is_file():
        raise UsageError(f"usage error: db copy: no store at {source.shown}; expected an existing store")
    _require_head(source, "source", create=False)
    _require_head(target, "destination", create=True)
    owners = source.run(_owners, check=False) or {"run": set(), "model": set()}
    files = _file_registry(registry, owners["model"]) \
        if registry is not None and source.url.drivername.startswith("sqlite") else {}
    owners["model"] |= set(files.get("names", ()))
    copied = target.run(lambda conn: _write(source, conn, owners, files), write=True, check=False) or {}
    report: dict[str, dict[str, Any]] = {}
    for table in sql.TABLES:
        mine = source.run(lambda conn, t=table: _digest(conn, t, None, files.get(t, [])), check=False)
        theirs = target.run(lambda conn, t=table: _digest(conn, t, _of(owners, t)), check=False)
        report[table] = {"copied": copied.get(table, 0), "source": mine, "target": theirs}
        if mine != theirs:
            raise StoreError(f"store error: db copy: {table} differs after the copy: {mine[0]} row(s) in "
                             f"{source.shown}, {theirs[0]} in {target.shown} (content hash {mine[1][:12]} against "
                             f"{theirs[1][:12]}); the destination kept the copy, nothing was deleted")
    return report


def _owners(conn: Any) -> dict[str, set[str]]:
    """The source's run ids and registered model names."""
    from sqlalchemy import select, union

    names = union(*(select(sql.REGISTRY[t].c.name) for t in sql.REGISTRY))
    return {"run": set(conn.execute(select(sql.RUNS.c.id)).scalars()), "model": set(conn.execute(names).scalars())}


def _of(owners: dict[str, set[str]], table: str) -> set[str]:
    return owners["model" if table.startswith("registry_") else "run"]


def _file_registry(folder: Path, stored: set[str]) -> dict[str, Any]:
    """The rows of the models kept in the file registry's JSON files (not in the store's tables).

    Raises:
        EngineError: A registry file that is damaged (its one-line error).
    """
    import json

    from engine.store.registry import file_entries

    rows: dict[str, Any] = {"names": [], "registry_versions": [], "registry_aliases": [],
                            "registry_alias_history": []}
    for name, entry in file_entries(folder).items():
        if name in stored:
            continue
        rows["names"].append(name)
        for version in entry["versions"]:
            record = {**version, "artifact_root": str(folder.resolve())}
            rows["registry_versions"].append({"name": name, "version": version["version"],
                                              "record": json.dumps(record, sort_keys=True, default=str)})
        rows["registry_aliases"] += [{"name": name, "alias": a, "version": v} for a, v in entry["aliases"].items()]
        rows["registry_alias_history"] += [{"name": name, "alias": m["alias"], "version": m["version"],
                                            "previous": m.get("previous"), "at": m.get("at") or ""}
                                           for m in entry["alias_history"]]
    return rows


def _write(source: sql.SqlRunStore, conn: Any, owners: dict[str, set[str]],
           files: dict[str, Any]) -> dict[str, int]:
    """Replace the destination's rows of every source run and model with the source's (one transaction)."""
    from sqlalchemy import delete

    counts: dict[str, int] = {}
    for table in sql.TABLES:
        target = _table(table)
        key = target.c[sql.OWNER[table]]
        order = sorted(_of(owners, table))
        for start in range(0, len(order), 1000):
            conn.execute(delete(target).where(key.in_(order[start:start + 1000])))
        counts[table] = 0
        for batch in _batches(source, table):
            if table in sql.SEQUENCED:
                batch = [{k: v for k, v in row.items() if k != "id"} for row in batch]
            conn.execute(target.insert(), batch)
            counts[table] += len(batch)
        if files.get(table):
            conn.execute(target.insert(), files[table])
            counts[table] += len(files[table])
    return counts


def _batches(store: sql.SqlRunStore, table: str) -> Iterator[list[dict[str, Any]]]:
    """Every row of a source table, in batches (run_events in their order)."""
    from sqlalchemy import select

    source = _table(table)
    query = select(source)
    if table in sql.SEQUENCED:
        query = query.order_by(source.c.id)

    from sqlalchemy.exc import DBAPIError

    # Streamed (a server-side cursor on PostgreSQL): a large store is never held in memory.
    # Not retried: the destination's transaction is, and it reads the source again.
    try:
        with store.engine.connect() as conn:
            result = conn.execution_options(yield_per=BATCH).execute(query).mappings()
            for part in result.partitions(BATCH):
                yield [dict(row) for row in part]
    except DBAPIError as exc:
        raise StoreError(f"store error: db copy: reading {table} from {store.shown} failed: "
                         f"{sql.masked_text(str(exc.orig or exc).splitlines()[0])}") from None


def _digest(conn: Any, table: str, ids: set[str] | None, extra: list[dict[str, Any]] = ()) -> tuple[int, str]:
    """(rows, content hash) of a table (or of the rows of ``ids``' runs or models), with ``extra`` rows."""
    from sqlalchemy import select

    source = _table(table)
    columns = [c for c in source.c if c.name != "id" or table not in sql.SEQUENCED]
    key = sql.OWNER[table]
    count, total = 0, 0
    for row in itertools.chain(conn.execution_options(yield_per=BATCH).execute(select(*columns)).mappings(), extra):
        if ids is not None and row[key] not in ids:
            continue
        count += 1
        text = "\x1f".join(_canonical(row[c.name]) for c in columns)
        total = (total + int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")) % 2 ** 256
    return count, f"{total:064x}"


def _canonical(value: Any) -> str:
    """One text for a value, whichever database returned it (numbers as floats)."""
    if value is None:
        return "\x00"
    if isinstance(value, bool):
        return repr(float(value))
    if isinstance(value, int | float):
        return repr(float(value))
    return str(value)


def _table(name: str) -> Any:
    return sql.table(name)

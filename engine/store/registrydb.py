"""The registry's entries in the metadata store: the SQLite file by default, or a team's
PostgreSQL server; the same tables and queries on both.

A registered model's versions, aliases and alias history are rows of the store
(``registry_versions``, ``registry_aliases``, ``registry_alias_history``); the model
files stay on disk under the registry's artifact root (for a team, a path it shares on
a network file system), which each version records. Every change (a registration, a
promotion) is one transaction that serialises the changes of the model's name: on
PostgreSQL it holds an advisory lock on the name, on SQLite it is ``BEGIN IMMEDIATE``,
which holds the file's write lock from its first read. So two promotions of the same
alias at once are applied one after the other: both are in the history, in order, and
the alias ends on the later one. A model still kept in the JSON file of the file
registry (``<name>.json``, what the engine wrote before) is read from it, and moved
into the store, whole, by its next change, in that change's transaction
(:class:`engine.store.registry.Registry` then renames the file).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.store import sql

T = TypeVar("T")
VERSIONS, ALIASES, HISTORY = (sql.REGISTRY[t] for t in ("registry_versions", "registry_aliases",
                                                         "registry_alias_history"))


class StoreEntries:
    """Registry entries in the store at ``uri``.

    Args:
        uri: The store's URI: ``sqlite:///PATH`` or a server's.
        root: The folder a relative SQLite path is relative to (default: the current one).
    """

    def __init__(self, uri: str, root: Path | None = None) -> None:
        if uri.startswith("sqlite:///"):
            path = Path(uri.removeprefix("sqlite:///"))
            uri = f"sqlite:///{path if path.is_absolute() else (root or Path.cwd()) / path}"
        self.store = sql.SqlRunStore(uri)
        self.shown = self.store.shown

    def read(self, name: str) -> dict[str, Any] | None:
        """The entry of ``name`` (the file registry's shape), None when the store has none."""
        return self.store.run(lambda conn: _entry(conn, name))

    def names(self) -> list[str]:
        from sqlalchemy import select

        return sorted(self.store.run(lambda conn: list(conn.execute(select(VERSIONS.c.name).distinct()).scalars()),
                                     default=[]) or [])

    def stamp(self, name: str) -> tuple[int, int] | None:
        """Changes whenever the entry does: (versions, last alias move)."""
        from sqlalchemy import func, select

        def work(conn: Any) -> tuple[int, int]:
            versions = conn.execute(select(func.count()).where(VERSIONS.c.name == name)).scalar() or 0
            moved = conn.execute(select(func.max(HISTORY.c.id)).where(HISTORY.c.name == name)).scalar() or 0
            return int(versions), int(moved)

        return self.store.run(work)

    def update(self, name: str, change: Callable[[dict[str, Any]], T],
               legacy: Callable[[], dict[str, Any] | None],
               check: Callable[[dict[str, Any]], None] | None = None) -> T:
        """Apply ``change`` to the entry of ``name`` in one transaction, under the name's lock.

        ``change`` mutates the entry as the file registry does (appends versions and
        alias moves, sets aliases); what it added is written. ``legacy`` gives the entry
        from the file registry when the store has none yet: it is written whole, with
        the change, in the same transaction. ``check`` refuses a stored entry of the wrong
        shape (an edited row) before anything is changed.
        """
        from sqlalchemy import text

        def work(conn: Any) -> T:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"mlops-registry:{name}"})
            entry = _entry(conn, name)
            fresh = entry is None
            if entry is not None and check is not None:
                check(entry)
            if entry is None:
                entry = legacy() or {"name": name, "versions": [], "aliases": {}, "alias_history": []}
            known = set() if fresh else {v["version"] for v in entry["versions"]}
            moves = 0 if fresh else len(entry["alias_history"])
            aliases = {} if fresh else dict(entry["aliases"])
            result = change(entry)
            for version in entry["versions"]:
                if version["version"] not in known:
                    conn.execute(VERSIONS.insert().values(name=name, version=version["version"],
                                                          record=json.dumps(version, sort_keys=True, default=str)))
            for alias, number in entry["aliases"].items():
                if aliases.get(alias) != number:
                    conn.execute(ALIASES.delete().where(ALIASES.c.name == name, ALIASES.c.alias == alias))
                    conn.execute(ALIASES.insert().values(name=name, alias=alias, version=number))
            for move in entry["alias_history"][moves:]:
                conn.execute(HISTORY.insert().values(name=name, alias=move["alias"], version=move["version"],
                                                     previous=move.get("previous"), at=move["at"]))
            return result

        return self.store.run(work, write=True)  # type: ignore[return-value]


def _entry(conn: Any, name: str) -> dict[str, Any] | None:
    from sqlalchemy import select

    versions = [_record(r) for r in conn.execute(select(VERSIONS.c.record).where(VERSIONS.c.name == name)
                                                 .order_by(VERSIONS.c.version)).scalars()]
    if not versions:
        return None
    aliases = {alias: number for alias, number in conn.execute(select(ALIASES.c.alias, ALIASES.c.version)
                                                               .where(ALIASES.c.name == name))}
    history = [{"alias": r.alias, "version": r.version, "previous": r.previous, "at": r.at}
               for r in conn.execute(select(HISTORY).where(HISTORY.c.name == name).order_by(HISTORY.c.id))]
    first: dict[str, int] = {}
    for i, move in enumerate(history):
        first.setdefault(move["alias"], i)
    # in the order they were first set, as the file registry's entries kept them (messages list them so)
    aliases = dict(sorted(aliases.items(), key=lambda item: (first.get(item[0], len(history)), item[0])))
    return {"name": name, "versions": versions, "aliases": aliases, "alias_history": history}


def _record(text: str) -> Any:
    """A version's record; a row that is not JSON is kept as its text, which the registry's
    shape check refuses in one line (it is not an object)."""
    try:
        return json.loads(text)
    except ValueError:
        return text

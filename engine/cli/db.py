"""``mlops db``: the metadata store's schema (upgrade, current) and moving a store (copy)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.cli.common import command_parser, project_setting
from engine.errors import UsageError

DB_USAGE = """\
usage: mlops db upgrade [URI]            migrate the store to this engine's schema revision
       mlops db current [URI]            show the store's schema revision
       mlops db copy SRC_URI DST_URI [--registry PATH]
                                         copy every run (params, metrics, tags, history) and
                                         every registry version, alias and alias move, then
                                         verify row counts and a content hash per table

  URI   sqlite:///PATH (relative to this folder) or postgresql+psycopg://USER@HOST:PORT/DB
        (the password: in the URI, in PGPASSWORD or in ~/.pgpass; never printed).
        Default: --tracking-uri, else the project's tracking.uri ($MLOPS_TRACKING_URI,
        else sqlite:///outputs/mlops.db).

--registry  with an SQLite source: the registry's folder (default $MLOPS_REGISTRY or
            outputs/registry); models an earlier engine kept there as <name>.json files,
            not yet in the source's tables, are copied into the destination's registry
            tables too, each version recording the folder as its artifact root

A store older than the engine is refused by every command until `mlops db upgrade`;
on PostgreSQL the upgrade is one transaction. `db copy` is idempotent: run it again and
the destination is the same.
"""


def db_command(args: list[str]) -> int:
    """``mlops db upgrade|current|copy``."""
    from engine.store import copy, schema, tracking

    if not args:
        raise UsageError("usage error: db needs an action; expected one of: upgrade, current, copy "
                         "(see mlops db --help)")
    if args[0] in ("-h", "--help"):
        print(DB_USAGE, end="")
        return 0
    parser = command_parser("mlops db", DB_USAGE)
    parser.add_argument("action", choices=["upgrade", "current", "copy"])
    parser.add_argument("uris", nargs="*")
    parser.add_argument("--registry", default=os.environ.get("MLOPS_REGISTRY", str(Path("outputs") / "registry")))
    options = parser.parse_args(args)
    wanted = 2 if options.action == "copy" else 1
    if len(options.uris) > wanted or (options.action == "copy" and len(options.uris) != 2):
        raise UsageError(f"usage error: db {options.action} takes {'SRC_URI DST_URI' if wanted == 2 else '[URI]'}, "
                         f"got {len(options.uris)} argument(s)")
    root = Path.cwd()
    if options.action == "copy":
        report = copy.copy(options.uris[0], options.uris[1], root, Path(options.registry))
        source, target = copy.store_for(options.uris[0], root).shown, copy.store_for(options.uris[1], root).shown
        print(f"copied {source} -> {target}")
        for table, line in report.items():
            print(f"  {table:<11} {line['source'][0]:>8} row(s)  source {line['source'][1][:12]}  "
                  f"destination {line['target'][1][:12]}  ok")
        print(f"verified: {sum(r['source'][0] for r in report.values())} row(s) in {len(report)} tables match")
        return 0
    uri = options.uris[0] if options.uris else (options.tracking_uri or
                                                str(project_setting("tracking.uri", tracking.DEFAULT_URI)))
    store = copy.store_for(uri, root)
    if store.url.drivername.startswith("sqlite") and not Path(str(store.url.database)).is_file():
        raise UsageError(f"usage error: db {options.action}: no store at {store.shown} (a store is created by "
                         "its first run)")
    if options.action == "current":
        current = copy.revision(store)
        if current is None:
            print(f"{store.shown}: none (an empty database; the first run creates revision {schema.HEAD})")
        elif current == schema.HEAD:
            print(f"{store.shown}: {current} (head)")
        elif current in schema.REVISIONS:
            print(f"{store.shown}: {current} (older than this engine's {schema.HEAD}; upgrade it with: "
                  f"mlops db upgrade {store.shown})")
        else:
            print(f"{store.shown}: {current} (not a revision this engine knows; its head is {schema.HEAD})")
        return 0
    current = copy.revision(store)
    if current == schema.HEAD:
        print(f"{store.shown}: already at {schema.HEAD} (head); nothing to do")
        return 0
    if current is not None and current not in schema.REVISIONS:
        raise tracking.schema_refused(store.shown, current)
    before, after = _upgrade(store, uri, root)
    print(f"upgraded {store.shown} from {before or 'an empty database'} to {after}")
    return 0


def _upgrade(store: object, uri: str, root: Path) -> tuple[str | None, str]:
    """Upgrade under the SQLite store's lock, so no first writer creates it meanwhile."""
    from engine.files import locked
    from engine.store import copy, tracking

    embedded = tracking.open_store(uri, root) if uri.startswith("sqlite:///") else None
    if isinstance(embedded, tracking.SqliteRunStore):
        with locked(embedded.lock_path):
            return copy.upgrade(store)  # type: ignore[arg-type]
    return copy.upgrade(store)  # type: ignore[arg-type]

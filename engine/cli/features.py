"""``mlops features``: look at a feature store (list, show), clean it up (gc), and build the
composed config's features without training (materialize)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.cli.app import hydra_app, lazy_task
from engine.cli.common import command_parser, project_setting
from engine.errors import UsageError
from engine.files import leftovers
from engine.store.featurestore import GROUP_NAME, FeatureStore

FEATURES_USAGE = """\
usage: mlops features <list|show NAME|materialize [overrides]|gc [--dry-run]> [--store PATH]

  list          every table in the feature store
  show NAME     a feature group's definitions over time, who used them, and its tables
  materialize   build the features of the composed config (Hydra overrides), no training
  gc            remove tables no run under outputs/ references (--dry-run: only list them)
"""


def features_command(args: list[str]) -> int:
    """``mlops features ...``: look after the feature store."""
    if args[:1] == ["materialize"]:
        defaults = [f"{flag}=outputs/features/${{now:%Y-%m-%d}}/${{now:%H-%M-%S-%f}}-${{name}}"
                    for flag in ("hydra.run.dir", "hydra.sweep.dir") if not any(a.startswith(flag) for a in args)]
        return hydra_app(lazy_task("features_task"), defaults + args[1:], "mlops features materialize")
    if not args:
        raise UsageError("usage error: features needs an action; expected one of: list, show, materialize, gc "
                         "(see mlops features --help)")
    if args[0] in ("-h", "--help"):
        print(FEATURES_USAGE, end="")
        return 0
    parser = command_parser("mlops features", FEATURES_USAGE, tracking_uri=False)
    parser.add_argument("action", choices=["list", "show", "gc"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--store", default=None, help="default: features.store.path of the project's config")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--keep-recent", type=float, default=60.0,
                        help="minutes: younger tables are kept (a run may be about to reference them)")
    options = parser.parse_args(args)
    store = Path(options.store or str(project_setting("features.store.path", "outputs/feature_store")))
    if options.action == "show":
        if not options.name:
            parser.error("show needs a feature group or table name")
        return show(store, options.name)
    if options.name:
        parser.error(f"unexpected argument {options.name!r}")
    if options.action == "list":
        return list_tables(store)
    return gc(store, Path("outputs"), dry_run=options.dry_run, keep_recent_min=options.keep_recent)


def list_tables(root: Path) -> int:
    """Print every table of the store, one line each."""
    store = _existing(root)
    tables = list(store.list())
    _warn_damaged(store)
    print(f"{'name':<20}{'kind':<14}{'key':<14}{'rows':>9}{'columns':>9}{'MiB':>8}  created")
    for table in tables:
        m = table.manifest
        print(f"{table.name:<20}{m.get('kind', ''):<14}{table.key[:12]:<14}{m.get('rows', 0):>9}"
              f"{len(m.get('columns', [])):>9}{m.get('bytes', 0) / 2**20:>8.2f}  {m.get('created_at', '')}")
    print(f"{len(tables)} table(s) in {store.root}")
    return 0


def show(root: Path, name: str) -> int:
    """Print a group's definitions over time, who used them, and its tables.

    Raises:
        UsageError: ``name`` is not a group or table name (a path, say), or the store
            has no such group or table.
        DataError: The group's history file is damaged.
    """
    if not GROUP_NAME.fullmatch(name):
        raise UsageError(f"usage error: features show takes a feature group or table name (letters, digits, '_'), "
                         f"got {name!r}")
    store = _existing(root)
    history = store.history(name)
    tables = [t for t in store.list() if t.name == name]
    _warn_damaged(store)
    if history is None and not tables:
        known = sorted({t.name for t in store.list()})
        raise UsageError(f"usage error: no feature group or table {name!r} in {store.root}; "
                         f"expected one of: {', '.join(known) or '(the store is empty)'}")
    if history is not None:
        print(f"feature group {name}: {len(history['definitions'])} definition(s)")
        for i, definition in enumerate(history["definitions"], 1):
            users = definition.get("used_by", [])
            models = sorted({str(u.get("model", "?")).rsplit(".", 1)[-1] for u in users})
            print(f"  {i}. definition {definition['hash'][:12]}  version {definition.get('version')}  "
                  f"first used {definition.get('first_used')}  used by {len(users)} run(s): {', '.join(models)}")
    for table in tables:
        m = table.manifest
        print(f"table {table.key[:12]}  {m.get('rows')} rows  as_of {m.get('as_of')}  "
              f"created {m.get('created_at')}")
        if "definition" in m:
            print("  definition: " + json.dumps(m["definition"], sort_keys=True))
    return 0


def gc(root: Path, outputs: Path, dry_run: bool, keep_recent_min: float) -> int:
    """Remove tables that no run directory under ``outputs`` references, and what killed
    writers left behind: temp files, tables without a manifest, damaged manifests.

    Raises:
        DataError: A group history is damaged: the runs it names are unknown, so no
            table is removed.
    """
    store = _existing(root)
    # Runs of this project, and of every project sharing the store: each run that used
    # a group left its run dir in the group's history.
    records = set(outputs.rglob("run.json"))
    for _, history in store.histories():
        for definition in history["definitions"]:
            records |= {Path(str(u["run_dir"])) / "run.json" for u in definition["used_by"] if u.get("run_dir")}
    referenced: set[str] = set()
    for path in records:
        referenced |= _tables_of(path)
    cutoff = datetime.now(timezone.utc) - timedelta(minutes=keep_recent_min)
    verb = "would remove" if dry_run else "removed"
    left = _left_behind(store, keep_recent_min * 60)
    for path, why in left:
        print(f"{verb} {path.relative_to(store.root)} ({why})")
        if not dry_run:
            path.unlink(missing_ok=True)
    removed = kept_recent = 0
    for table in store.list():
        if table.key in referenced:
            continue
        created = _created(table.manifest)
        if created > cutoff:
            kept_recent += 1
            continue
        print(f"{verb} {table.name} {table.key[:12]} "
              f"({table.manifest.get('bytes', 0) / 2**20:.2f} MiB)")
        if not dry_run:
            store.remove(table.key)
        removed += 1
    leftover = f" and {len(left)} file(s) left by interrupted writes" if left else ""
    print(f"{verb} {removed} table(s){leftover}; kept {len(referenced)} referenced key(s) and {kept_recent} table(s) "
          f"younger than {keep_recent_min:g} min")
    return 0


def _tables_of(record_path: Path) -> set[str]:
    """The store keys a run's record references (none when it is gone or unreadable)."""
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return set()  # a deleted or damaged run no longer holds its tables
    features = record.get("features") if isinstance(record, dict) else None
    tables = features.get("tables") if isinstance(features, dict) else None
    return {str(t["key"]) for t in tables or () if isinstance(t, dict) and "key" in t} if isinstance(tables, list) \
        else set()


def _left_behind(store: FeatureStore, min_age_s: float) -> list[tuple[Path, str]]:
    """Files of no table, older than ``min_age_s``: temp files of killed writes, tables
    whose manifest was never written, and damaged manifests with their tables."""
    found = [(path, "temp file of an interrupted write") for folder in (store.tables, store.groups)
             for path in leftovers(folder, min_age_s)]
    cutoff = datetime.now().timestamp() - min_age_s
    old = [p for p in store.tables.glob("*") if _mtime(p) <= cutoff] if store.tables.is_dir() else []
    names = {p.name for p in old}
    found += [(p, "table without a manifest") for p in old
              if p.suffix == ".parquet" and not (store.tables / f"{p.stem}.json").exists()]
    for key, _ in store.damaged():
        found += [(p, "damaged manifest") for p in (store.tables / f"{key}.json", store.tables / f"{key}.parquet")
                  if p.name in names]
    return sorted(found)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _created(manifest: dict[str, Any]) -> datetime:
    """When a table was written (aware, UTC when the manifest says no zone); unknown: long ago."""
    try:
        created = datetime.fromisoformat(str(manifest.get("created_at")))
    except ValueError:
        return datetime.fromtimestamp(0, timezone.utc)
    return created if created.tzinfo else created.replace(tzinfo=timezone.utc)


def _warn_damaged(store: FeatureStore) -> None:
    for key, problem in store.damaged():
        print(f"mlops: warning: feature store table {key[:12]} is ignored: its manifest {problem}; "
              "mlops features gc removes it", file=sys.stderr)


def _existing(root: Path) -> FeatureStore:
    if not root.is_dir():
        raise UsageError(f"usage error: no feature store at {root}; pass --store PATH")
    return FeatureStore(root)

"""``mlops features list | show | gc``: look at and clean up a feature store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from engine.errors import UsageError
from engine.featurestore import FeatureStore


def list_tables(root: Path) -> int:
    """Print every table of the store, one line each."""
    store = _existing(root)
    tables = list(store.list())
    print(f"{'name':<20}{'kind':<14}{'key':<14}{'rows':>9}{'columns':>9}{'MiB':>8}  created")
    for table in tables:
        m = table.manifest
        print(f"{table.name:<20}{m.get('kind', ''):<14}{table.key[:12]:<14}{m.get('rows', 0):>9}"
              f"{len(m.get('columns', [])):>9}{m.get('bytes', 0) / 2**20:>8.2f}  {m.get('created_at', '')}")
    print(f"{len(tables)} table(s) in {store.root}")
    return 0


def show(root: Path, name: str) -> int:
    """Print a group's definitions over time, who used them, and its tables."""
    store = _existing(root)
    history = store.history(name)
    tables = [t for t in store.list() if t.name == name]
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
    """Remove tables that no run directory under ``outputs`` references."""
    store = _existing(root)
    # Runs of this project, and of every project sharing the store: each run that used
    # a group left its run dir in the group's history.
    records = set(outputs.rglob("run.json"))
    for path in store.groups.glob("*.json") if store.groups.is_dir() else ():
        history = json.loads(path.read_text())
        for definition in history.get("definitions", []):
            records |= {Path(u["run_dir"]) / "run.json" for u in definition.get("used_by", []) if u.get("run_dir")}
    referenced: set[str] = set()
    for path in records:
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a deleted run no longer holds its tables
        referenced |= {t["key"] for t in (record.get("features") or {}).get("tables", []) if "key" in t}
    cutoff = datetime.now(timezone.utc) - timedelta(minutes=keep_recent_min)
    removed = kept_recent = 0
    for table in store.list():
        if table.key in referenced:
            continue
        created = datetime.fromisoformat(str(table.manifest.get("created_at", "1970-01-01T00:00:00+00:00")))
        if created > cutoff:
            kept_recent += 1
            continue
        print(f"{'would remove' if dry_run else 'removed'} {table.name} {table.key[:12]} "
              f"({table.manifest.get('bytes', 0) / 2**20:.2f} MiB)")
        if not dry_run:
            store.remove(table.key)
        removed += 1
    verb = "would remove" if dry_run else "removed"
    print(f"{verb} {removed} table(s); kept {len(referenced)} referenced key(s) and {kept_recent} table(s) "
          f"younger than {keep_recent_min:g} min")
    return 0


def _existing(root: Path) -> FeatureStore:
    if not root.is_dir():
        raise UsageError(f"usage error: no feature store at {root}; pass --store PATH")
    return FeatureStore(root)

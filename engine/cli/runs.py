"""``mlops runs``, ``mlops show`` and ``mlops compare``: look at runs in the metadata store."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

from engine.cli.common import command_parser, project_setting, tracking_store
from engine.errors import EXIT_BAD_INPUT, UsageError
from engine.store.runs import Row, field

DEFAULT_COLUMNS = ("id", "started_at", "status", "name", "params.model._target_", "metrics.roc_auc",
                   "metrics.recall", "metrics.net_value_per_month", "duration_s", "hypothesis")


RUNS_USAGE = """\
usage: mlops runs [--where FILTER] [--sort FIELD] [--asc|--desc] [--limit N]
                  [--columns F1,F2,...] [--format table|csv|json] [--tracking-uri URI]
       mlops runs reindex [--outputs DIR] [--tracking-uri URI]
       mlops runs sync-mlflow --uri URI [--outputs DIR] [--all]

  --where    metrics.roc_auc > 0.8 and params.model._target_ ~ Forest
             (= != < <= > >= ~ !~, in (a, b), and, or, not, parentheses)
  --sort     a field: metrics.<name> (best first), params.<key>, tags.<name>, started_at, ...
  reindex    rebuild the store from the run directories under outputs/
  sync-mlflow  mirror runs not yet in MLflow (--all: every run) to the MLflow at URI
"""


def runs_command(args: list[str]) -> int:
    """``mlops runs``: a table of runs from the metadata store; ``mlops runs reindex``."""
    from engine.store import runs

    if args[:1] in (["-h"], ["--help"]):
        print(RUNS_USAGE, end="")
        return 0
    if args[:1] == ["sync-mlflow"]:
        from engine.store.mlflow_mirror import record_mirror

        parser = command_parser("mlops runs sync-mlflow", "mlops runs sync-mlflow --uri URI [--outputs DIR] [--all]")
        parser.add_argument("--uri", default=os.environ.get("MLFLOW_TRACKING_URI"))
        parser.add_argument("--outputs", default="outputs")
        parser.add_argument("--all", action="store_true", help="also runs already mirrored")
        options = parser.parse_args(args[1:])
        if not options.uri:
            raise UsageError("usage error: sync-mlflow needs --uri URI (or MLFLOW_TRACKING_URI)")
        from engine.errors import DataError
        from engine.store.tracking import index_run_dirs

        done = failed = 0
        for run_dir in index_run_dirs(Path(options.outputs)):
            try:
                record = runs.load_run_dir(run_dir)[0]
            except DataError as exc:  # a damaged run.json: skipped and named, as reindex does
                print(f"mlops: skipped: {exc}", file=sys.stderr)
                failed += 1
                continue
            if record.get("status") == "running" or (not options.all and (record.get("mlflow") or {}).get("synced")):
                continue
            outcome = record_mirror(run_dir, options.uri)
            done += outcome["synced"]
            failed += not outcome["synced"]
            if not outcome["synced"]:
                print(f"not mirrored: {run_dir}: {outcome['error']}", file=sys.stderr)
        print(f"mirrored {done} run(s) to {options.uri}" + (f"; {failed} failed" if failed else ""))
        return 0 if not failed else EXIT_BAD_INPUT
    if args[:1] == ["reindex"]:
        parser = command_parser("mlops runs reindex", RUNS_USAGE)
        parser.add_argument("--outputs", default="outputs")
        options = parser.parse_args(args[1:])
        from engine.store.tracking import DEFAULT_URI

        uri = options.tracking_uri or str(project_setting("tracking.uri", DEFAULT_URI))
        if not uri.startswith("sqlite:///"):
            from engine.store.tracking import shown_uri

            raise UsageError(f"usage error: reindex rebuilds SQLite stores only, got {shown_uri(uri)}; a server "
                             "store is moved with: mlops db copy")
        path = Path(uri.removeprefix("sqlite:///"))
        count = runs.reindex(path if path.is_absolute() else Path.cwd() / path, Path(options.outputs))
        print(f"indexed {count} run(s) from {options.outputs}/ into {uri}")
        return 0
    parser = command_parser("mlops runs", RUNS_USAGE)
    parser.add_argument("--where")
    parser.add_argument("--sort")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--asc", dest="descending", action="store_false", default=None)
    order.add_argument("--desc", dest="descending", action="store_true")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--columns")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    options = parser.parse_args(args)
    if options.limit is not None and options.limit < 1:
        raise UsageError(f"usage error: --limit must be 1 or more, got {options.limit}")
    store = tracking_store(options.tracking_uri)
    metric = (options.sort or "").removeprefix("metrics.")
    if options.limit and not options.where and (options.sort or "").startswith("metrics."):
        # A leaderboard: the store finds the top N itself instead of loading every run.
        top = store.search((metric, options.descending is not False, options.limit))
        # None found: maybe no run has that metric, which select() names with the known fields
        rows = runs.select(top or runs.all_runs(store), None, options.sort, options.descending, options.limit)
    else:
        rows = runs.select(runs.all_runs(store), options.where, options.sort, options.descending, options.limit)
    columns = options.columns.split(",") if options.columns else list(DEFAULT_COLUMNS)
    print(render(rows, columns, options.format))
    if options.format == "table":
        print(f"{len(rows)} run(s)")
    return 0


SHOW_USAGE = """\
usage: mlops show RUN [--tracking-uri URI]

  RUN   latest (the newest training run), a run id, a unique id prefix, or a run directory

Prints what the metadata store holds for the run: status, times, metrics, tags, data
fingerprints and every config key.
"""

COMPARE_USAGE = """\
usage: mlops compare RUN RUN... [--all] [--tracking-uri URI]

  RUN    latest, a run id, a unique id prefix, or a run directory (two or more)
  --all  every config key, not only the keys whose values differ

Side by side: the config keys that differ, each metric with its change against the first
run, the data fingerprints and the git commits.
"""


def show_command(args: list[str]) -> int:
    """``mlops show RUN``: one run, by id, id prefix, run directory or ``latest``."""
    from engine.store import runs

    parser = command_parser("mlops show", SHOW_USAGE)
    parser.add_argument("run")
    options = parser.parse_args(args)
    store = tracking_store(options.tracking_uri)
    row = runs.resolve(store, options.run, runs.all_runs(store))
    try:
        row = {**row, "history": store.events(row["id"])}
    except NotImplementedError:
        pass
    show(row)
    return 0


def compare_command(args: list[str]) -> int:
    """``mlops compare RUN RUN...``: config differences, metric deltas, data and code."""
    from engine.store import runs

    parser = command_parser("mlops compare", COMPARE_USAGE)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--only-changed", action="store_true", default=True, help="the default")
    parser.add_argument("--all", action="store_true", help="show every config key, not only the changed ones")
    options = parser.parse_args(args)
    if len(options.runs) < 2:
        raise UsageError("usage error: compare needs at least two runs (see mlops compare --help)")
    store = tracking_store(options.tracking_uri)
    rows = runs.all_runs(store)
    compare([runs.resolve(store, ref, rows) for ref in options.runs], only_changed=not options.all)
    return 0


def render(rows: list[Row], columns: list[str], fmt: str) -> str:
    """The runs as an aligned table, CSV or JSON."""
    values = [[_cell(field(r, c), c, fmt) for c in columns] for r in rows]
    if fmt == "json":
        return json.dumps([dict(zip(columns, [field(r, c) for c in columns], strict=True)) for r in rows],
                          indent=2, default=str)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(values)
        return out.getvalue().rstrip("\n")
    headers = [c.removeprefix("metrics.").removeprefix("params.") for c in columns]
    widths = [max([len(h)] + [len(v[i]) for v in values]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in values]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any, column: str, fmt: str) -> str:
    if value is None:
        return ""
    if fmt == "table":
        if column == "id":
            return str(value)[:8]
        if column.endswith("_target_"):
            return str(value).rsplit(".", 1)[-1]
        if column == "started_at":
            return str(value)[:19].replace("T", " ")
        if isinstance(value, float):
            return f"{value:.4f}"
        if column == "hypothesis" and len(str(value)) > 48:
            return str(value)[:47] + "…"
    return str(value)


def show(row: Row, out: Any = sys.stdout) -> None:
    """Everything the store knows about one run, then where the rest lives."""
    print(f"run {row['id']}  ({row['status']})", file=out)
    for name in ("name", "kind", "started_at", "ended_at", "duration_s", "run_dir", "hypothesis", "error",
                 "git_commit", "git_dirty", "model_sha256"):
        if row.get(name) not in (None, ""):
            print(f"  {name}: {row[name]}", file=out)
    for section in ("metrics", "tags", "fingerprints"):
        if row.get(section):
            print(f"{section}:", file=out)
            for key, value in sorted(row[section].items()):
                print(f"  {key}: {value:.6g}" if isinstance(value, float) else f"  {key}: {value}", file=out)
    if row.get("history"):  # lost (no heartbeat in time), a late heartbeat, revived
        print("history:", file=out)
        for event in row["history"]:
            print(f"  {str(event['at'])[:23]}  {event['event']}: {event['detail']}", file=out)
    if row.get("params"):
        print("params:", file=out)
        for key, value in sorted(row["params"].items()):
            print(f"  {key}: {value}", file=out)


def compare(rows: list[Row], only_changed: bool = True, out: Any = sys.stdout) -> None:
    """Config differences, metric deltas, and differences in data and code, side by side.

    The first run is the reference: metric deltas are against it.
    """
    table: list[tuple[str, list[str]] | str] = [("run", [r["id"][:8] for r in rows])]
    if any(r.get("hypothesis") for r in rows):
        table.append("hypothesis:")
        table += [f"  {r['id'][:8]}: {r.get('hypothesis') or '-'}" for r in rows]
    keys = sorted({k for r in rows for k in r["params"]})
    changed = [k for k in keys if len({r["params"].get(k) for r in rows}) > 1]
    table.append(f"config ({len(changed)} of {len(keys)} keys differ{'' if only_changed else ', all shown'}):")
    for key in changed if only_changed else keys:
        values = [r["params"].get(key) for r in rows]
        if key.endswith("_target_"):  # a class path: its name says it
            values = [v.rsplit(".", 1)[-1] if isinstance(v, str) else v for v in values]
        table.append((key, [_short(v) for v in values]))
    table.append("metrics (delta against the first run):")
    base = rows[0]["metrics"]
    for name in sorted({k for r in rows for k in r["metrics"]}):
        cells = [_short(base.get(name))]
        for r in rows[1:]:
            value = r["metrics"].get(name)
            cells.append("-" if value is None or base.get(name) is None
                         else f"{_short(value)} ({value - base[name]:+.4g})")
        table.append((name, cells))
    table.append("data fingerprints:")
    for name in sorted({k for r in rows for k in r.get("fingerprints", {})}):
        values = [str(r.get("fingerprints", {}).get(name) or "-").removeprefix("sha256:")[:12] for r in rows]
        table.append((name + ("  (differs)" if len(set(values)) > 1 else ""), values))
    commits = [f"{str(r.get('git_commit') or '-')[:10]}{'+dirty' if r.get('git_dirty') else ''}" for r in rows]
    table += ["code:", ("git commit" + ("  (differs)" if len(set(commits)) > 1 else ""), commits)]
    cells = [c for entry in table if isinstance(entry, tuple) for c in entry[1]]
    labels = [entry[0] for entry in table if isinstance(entry, tuple)]
    label_width, width = max(map(len, labels)) + 2, max(map(len, cells)) + 2
    for entry in table:
        if isinstance(entry, str):
            print(entry, file=out)
        else:
            print(f"  {entry[0]:<{label_width}}" + "".join(f"{c:>{width}}" for c in entry[1]), file=out)


def _short(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    text = str(value)
    return text if len(text) <= 28 else text[:12] + "…" + text[-14:]

"""``mlops runs`` and ``mlops show``: look at runs through the metadata store.

The filter language of ``--where``::

    metrics.roc_auc > 0.8 and params.model._target_ ~ Forest
    status in (failed, interrupted) or (tags.kind = quality and started_at > 2026-11-01)

Fields are ``metrics.<name>``, ``params.<dotted.key>``, ``tags.<name>`` or a run
field (``status``, ``name``, ``kind``, ``started_at``, ``duration_s``, ``hypothesis``,
...). Operators: ``= == != < <= > >= ~`` (regular-expression search) ``!~`` and
``in (a, b)``; combine with ``and``, ``or``, ``not`` and parentheses. Numbers compare
as numbers, everything else as text (ISO times sort as text).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from engine import tracking
from engine.errors import UsageError
from engine.files import write_json

DEFAULT_COLUMNS = ("id", "started_at", "status", "name", "params.model._target_", "metrics.roc_auc",
                   "metrics.recall", "metrics.net_value_per_month", "duration_s", "hypothesis")

Row = dict[str, Any]


# ------------------------------------------------------------------ indexing


def reindex(store_path: Path, outputs: Path) -> int:
    """Rebuild the SQLite store from the run directories alone; returns the runs indexed."""
    if store_path.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            old = Path(f"{store_path}{suffix}")
            if old.exists():
                shutil.move(old, f"{store_path}.old-{stamp}{suffix}")
    store = tracking.SqliteRunStore(store_path)
    count = 0
    for run_dir in tracking.index_run_dirs(outputs):
        loaded = load_run_dir(run_dir)
        if loaded is not None:
            record, resolved, metrics = loaded
            tracking.track(store, record, resolved, metrics)
            count += 1
    return count


def load_run_dir(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]] | None:
    """A run directory's record, resolved config and hold-out metrics (None if unreadable)."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    record = close_if_dead(record, run_dir)
    resolved = None
    if (run_dir / "config.resolved.yaml").exists():
        loaded = OmegaConf.to_container(OmegaConf.load(run_dir / "config.resolved.yaml"))
        resolved = loaded if isinstance(loaded, dict) else None
    metrics: dict[str, Any] = {}
    if (run_dir / "metrics.json").exists():
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text()).get("metrics", {})
        except (OSError, json.JSONDecodeError):
            metrics = {}
    return record, resolved, metrics


def close_if_dead(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A ``running`` run whose process is gone (kill -9, power loss) becomes ``interrupted``.

    The run directory is updated too, so it and the store agree.
    """
    if record.get("status") != "running" or tracking.alive(record) is not False:
        return record
    record = {**record, "status": "interrupted",
              "error": {"type": "Interrupted", "message": f"process {record.get('pid')} on {record.get('host')} "
                        "ended without closing the run (killed, or the machine stopped)"}}
    try:
        write_json(run_dir / "run.json", record)
    except OSError:
        pass  # a read-only run dir: the store still says interrupted
    return record


# ------------------------------------------------------------------ resolving RUN arguments


def resolve(store: tracking.RunStore, ref: str, rows: list[Row] | None = None,
            succeeded: bool = False) -> Row:
    """A run by id, unique id prefix, run directory, or ``latest``.

    Args:
        succeeded: ``latest`` means the newest succeeded training run (for reproduce and
            register) instead of the newest training run of any status.

    Raises:
        UsageError: No run, or several, match.
    """
    rows = rows if rows is not None else store.search()
    if ref == "latest":
        done = [r for r in rows if r["kind"] == "run" and (not succeeded or r["status"] == "succeeded")]
        if not done:
            what = "succeeded training run" if succeeded else "training run"
            raise UsageError(f"usage error: no {what} in the store yet; expected one before 'latest'")
        return max(done, key=lambda r: r["started_at"] or "")
    path = Path(ref)
    if path.is_dir():
        target = str(path.resolve())
        match = [r for r in rows if r["run_dir"] and str(Path(r["run_dir"]).resolve()) == target]
    else:
        match = [r for r in rows if r["id"].startswith(ref)]
    if len(match) == 1:
        return match[0]
    if not match:
        raise UsageError(f"usage error: no run matches {ref!r}; expected a run id, a unique id prefix, "
                         "a run directory or 'latest' (see mlops runs)")
    raise UsageError(f"usage error: {ref!r} matches {len(match)} runs ({', '.join(r['id'][:8] for r in match[:5])}"
                     f"{', ...' if len(match) > 5 else ''}); expected a longer prefix")


# ------------------------------------------------------------------ filtering


_TOKEN = re.compile(r"""\s*(?:(?P<op><=|>=|==|!=|!~|=|<|>|~)|(?P<paren>[(),])|(?P<quoted>'[^']*'|"[^"]*")"""
                    r"""|(?P<word>[^\s(),<>=!~'"]+))""")


def parse_where(text: str) -> Callable[[Row], bool]:
    """Compile a ``--where`` filter into a predicate over runs.

    Raises:
        UsageError: The filter does not parse; the message says where.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise UsageError(f"usage error: --where: unexpected {text[pos:pos + 10]!r} at position {pos}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        tokens.append((kind, value[1:-1] if kind == "quoted" else value))
        pos = match.end()
    parser = _WhereParser(tokens, text)
    predicate = parser.or_()
    if parser.i != len(tokens):
        raise UsageError(f"usage error: --where: unexpected {tokens[parser.i][1]!r} in {text!r}")
    return predicate


class _WhereParser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens, self.text, self.i = tokens, text, 0

    def peek(self) -> tuple[str, str]:
        return self.tokens[self.i] if self.i < len(self.tokens) else ("end", "")

    def word(self, *words: str) -> bool:
        kind, value = self.peek()
        if kind == "word" and value.lower() in words:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, value: str | None = None) -> str:
        got_kind, got = self.peek()
        if got_kind != kind or (value is not None and got != value):
            wanted = value or kind
            raise UsageError(f"usage error: --where: expected {wanted!r}, got {got or 'the end'!r} in {self.text!r}")
        self.i += 1
        return got

    def or_(self) -> Callable[[Row], bool]:
        left = self.and_()
        while self.word("or"):
            right, first = self.and_(), left
            left = lambda row, a=first, b=right: a(row) or b(row)  # noqa: E731
        return left

    def and_(self) -> Callable[[Row], bool]:
        left = self.atom()
        while self.word("and"):
            right, first = self.atom(), left
            left = lambda row, a=first, b=right: a(row) and b(row)  # noqa: E731
        return left

    def atom(self) -> Callable[[Row], bool]:
        if self.word("not"):
            inner = self.atom()
            return lambda row: not inner(row)
        if self.peek() == ("paren", "("):
            self.i += 1
            inner = self.or_()
            self.expect("paren", ")")
            return inner
        name = self.expect("word")
        _check_field(name)
        if self.word("in"):
            self.expect("paren", "(")
            values = [self.value()]
            while self.peek() == ("paren", ","):
                self.i += 1
                values.append(self.value())
            self.expect("paren", ")")
            return lambda row: any(_compare(field(row, name), "=", v) for v in values)
        op = self.expect("op")
        value = self.value()
        if op in ("~", "!~"):
            try:
                pattern = re.compile(value)
            except re.error as exc:
                raise UsageError(f"usage error: --where: bad regular expression {value!r}: {exc}") from exc
            hit = lambda row: field(row, name) is not None and bool(pattern.search(str(field(row, name))))  # noqa: E731
            return hit if op == "~" else (lambda row: not hit(row))
        return lambda row: _compare(field(row, name), op, value)

    def value(self) -> str:
        kind, value = self.peek()
        if kind not in ("word", "quoted"):
            raise UsageError(f"usage error: --where: expected a value, got {value or 'the end'!r} in {self.text!r}")
        self.i += 1
        return value


RUN_COLUMNS = frozenset({*tracking.RUN_FIELDS, "id"})


def _check_field(name: str) -> None:
    section, _, rest = name.partition(".")
    if section in ("metrics", "params", "tags") and rest:
        return
    if name in RUN_COLUMNS or "." not in name:  # a run column, or a bare metric name
        return
    raise UsageError(f"usage error: --where: unknown field {name!r}; expected metrics.<name>, params.<key>, "
                     f"tags.<name> or one of: {', '.join(sorted(RUN_COLUMNS))}")


def field(row: Row, name: str) -> Any:
    """A run's value for a field name: ``metrics.x``, ``params.a.b``, ``tags.x`` or a run column."""
    section, _, rest = name.partition(".")
    if section in ("metrics", "params", "tags") and rest:
        value = row[section].get(rest)
        if section == "params" and isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value
    if name in row:
        return row[name]
    if name in row["metrics"]:  # a bare metric name: roc_auc
        return row["metrics"][name]
    return None


def _compare(left: Any, op: str, right: str) -> bool:
    if right.lower() in ("null", "none"):  # field = null: the run has no such value
        if op in ("=", "=="):
            return left is None
        if op == "!=":
            return left is not None
        raise UsageError(f"usage error: --where: only = and != compare with null, got {op!r}")
    if left is None:
        return op == "!="
    try:
        a: Any = float(left) if not isinstance(left, bool) else left
        b: Any = float(right)
    except (TypeError, ValueError):
        a, b = str(left), right
    if isinstance(a, bool):
        a, b = str(a).lower(), right.lower()
    return {"=": a == b, "==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


# ------------------------------------------------------------------ output


def select(rows: list[Row], where: str | None, sort: str | None, descending: bool | None,
           limit: int | None) -> list[Row]:
    """Filter, sort (missing values last) and cut a list of runs."""
    if where:
        predicate = parse_where(where)
        rows = [r for r in rows if predicate(r)]
    key = sort or "started_at"
    desc = descending if descending is not None else (sort is None or key.startswith("metrics.")
                                                      or key in _metric_names(rows))
    present = [r for r in rows if field(r, key) is not None]
    missing = [r for r in rows if field(r, key) is None]
    try:
        present.sort(key=lambda r: field(r, key), reverse=desc)
    except TypeError:
        present.sort(key=lambda r: str(field(r, key)), reverse=desc)
    ordered = present + missing
    return ordered[:limit] if limit else ordered


def _metric_names(rows: Iterable[Row]) -> set[str]:
    return {name for r in rows for name in r["metrics"]}


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
    if row.get("params"):
        print("params:", file=out)
        for key, value in sorted(row["params"].items()):
            print(f"  {key}: {value}", file=out)


def all_runs(store: tracking.RunStore) -> list[Row]:
    """All runs, with dead ``running`` runs closed as interrupted in the store and run dir."""
    rows = store.search()
    for row in rows:
        if row["status"] == "running" and tracking.alive(row) is False:
            loaded = load_run_dir(Path(row["run_dir"])) if row.get("run_dir") else None
            if loaded is None:  # the run dir is gone too: close the run from what the store knows
                message = f"process {row.get('pid')} ended without closing the run, and its run dir is gone"
                store.upsert({**row, "status": "interrupted", "error": message})
                row.update(status="interrupted", error=message)
                continue
            record, resolved, metrics = loaded
            tracking.track(store, record, resolved, metrics)
            row.update(status=record["status"], error=record["error"]["message"])
    return rows


# ------------------------------------------------------------------ compare


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

"""Finding runs in the metadata store: resolve a reference, filter, sort, and rebuild the
store from the run directories (what ``mlops runs``, ``show`` and ``compare`` read).

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

import json
import os
import re
import shutil
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from engine.errors import DataError, UsageError
from engine.files import atomic_path, locked, write_json
from engine.store import tracking

Row = dict[str, Any]


# ------------------------------------------------------------------ indexing


def reindex(store_path: Path, outputs: Path, err: Any = sys.stderr) -> int:
    """Rebuild the SQLite store from the run directories alone; returns the runs indexed.

    The new index is built beside the old one and swapped in only when it is complete,
    so an interrupted or failed reindex leaves the old index as it was; the old file is
    kept aside as ``<store>.old-<time>``. A run directory that cannot be read is
    skipped, with one line on ``err`` naming it and why. The registry's entries are not in
    the run directories: they are carried over from the old index when it can be read
    (one line on ``err`` says so when it cannot; they stay in the file kept aside).

    Raises:
        UsageError: ``outputs`` holds no run directory: rebuilding from it would empty
            the index, so it is left as it is.
    """
    run_dirs = list(tracking.index_run_dirs(outputs)) if outputs.is_dir() else []
    if not run_dirs:
        what = "no run directories (folders with a run.json)" if outputs.is_dir() else "no such folder"
        raise UsageError(f"usage error: runs reindex --outputs {outputs}: {what}; expected the outputs folder of a "
                         "project with runs (the index is left as it is)")
    count = 0
    store_path.parent.mkdir(parents=True, exist_ok=True)
    # The store's lock: no first writer creates a store at this path while it is rebuilt.
    with locked(tracking.SqliteRunStore(store_path).lock_path), atomic_path(store_path) as building:
        store = tracking.SqliteRunStore(building)  # beside the old index; renamed over it on success
        try:
            for run_dir in run_dirs:
                try:
                    loaded = load_run_dir(run_dir)
                except DataError as exc:
                    print(f"mlops: skipped {str(exc).removeprefix('data error at ')}", file=err)
                    continue
                try:
                    tracking.track(store, *loaded)
                except DataError:
                    raise  # the new index itself failed: nothing is swapped
                except (ValueError, TypeError, AttributeError, sqlite3.InterfaceError) as exc:  # odd fields
                    print(f"mlops: skipped {run_dir / 'run.json'}: cannot be indexed ({type(exc).__name__}: {exc})",
                          file=err)
                    continue
                count += 1
            store.exists(create=True)  # every run dir skipped: still a valid, empty index
            _carry_registry(store_path, building, err)
        finally:
            store.lock_path.unlink(missing_ok=True)
        _set_aside(store_path)
    return count


#: The registry's tables: what a reindex carries over from the old index.
REGISTRY_TABLES = ("registry_versions", "registry_aliases", "registry_alias_history")


def _carry_registry(old: Path, new: Path, err: Any) -> None:
    """Copy the registry's rows from the old index into the new one, in one transaction
    (their order and ids kept); one line on ``err`` when the old index cannot be read."""
    if not old.is_file() or not old.stat().st_size:
        return
    conn = sqlite3.connect(new, timeout=60, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS old", (str(old),))
        present = {r[0] for r in conn.execute("SELECT name FROM old.sqlite_master WHERE type = 'table'")}
        with tracking._immediate(conn):
            for table in REGISTRY_TABLES:
                if table in present:
                    columns = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
                    conn.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM old.{table}")
    except sqlite3.DatabaseError as exc:
        print(f"mlops: the registry's entries could not be carried over from {old} ({exc}); they stay in the old "
              "index, kept aside beside it", file=err)
    finally:
        conn.close()


def _set_aside(store_path: Path) -> None:
    """Keep the old index as ``<store>.old-<time>``, its WAL files with it: a WAL left beside
    the new file would be replayed into it."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    if store_path.exists():
        try:
            os.link(store_path, f"{store_path}.old-{stamp}")  # the store stays in place until the swap
        except OSError:
            shutil.copy2(store_path, f"{store_path}.old-{stamp}")
    for suffix in ("-wal", "-shm"):
        old = Path(f"{store_path}{suffix}")
        if old.exists():
            shutil.move(old, f"{store_path}.old-{stamp}{suffix}")


def load_run_dir(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """A run directory's record, resolved config and hold-out metrics.

    Raises:
        DataError: The run.json is missing, unreadable or not a run record, or the
            resolved config or metrics file is damaged; the message says which.
    """
    def damaged(name: str, problem: str) -> DataError:
        return DataError(f"data error at {run_dir / name}: {problem}")

    try:
        record = json.loads((run_dir / "run.json").read_text())
    except OSError as exc:
        raise damaged("run.json", f"cannot read it: {exc.strerror}") from exc
    except ValueError as exc:
        raise damaged("run.json", f"not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"] \
            or not isinstance(record.get("status"), str):
        raise damaged("run.json", "expected a run record (an object with an id and a status), got "
                      f"{json.dumps(record, default=str)[:60]}")
    record = close_if_dead(record, run_dir)
    resolved = None
    if (run_dir / "config.resolved.yaml").exists():
        try:
            loaded = OmegaConf.to_container(OmegaConf.load(run_dir / "config.resolved.yaml"))
        except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as exc:
            raise damaged("config.resolved.yaml", f"cannot read it: {str(exc).splitlines()[0]}") from exc
        resolved = loaded if isinstance(loaded, dict) else None
    metrics: dict[str, Any] = {}
    if (run_dir / "metrics.json").exists():
        try:
            metrics = json.loads((run_dir / "metrics.json").read_text()).get("metrics", {})
        except (OSError, ValueError, AttributeError):
            metrics = {}  # the metrics are optional in the index; the record is what counts
        metrics = metrics if isinstance(metrics, dict) else {}
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


#: Limits of a ``--where`` filter, far above what a person types (a real filter is a line,
#: nested a few levels): ``and``/``or`` chains are flat lists and ``not`` chains a loop, so
#: only parentheses recurse, about 3 frames a level, far from Python's recursion limit.
MAX_WHERE_LENGTH = 2000
MAX_WHERE_DEPTH = 20
#: Python's ``re`` has no timeout, and a pattern that nests repetitions, such as
#: ``(a+)+$``, backtracks for hours on a 40-character value. Each search of a ``~``/``!~``
#: gets this many seconds: a timer signal interrupts it (the matcher checks for signals
#: as it runs, as it does for Ctrl-C). A sane pattern takes microseconds on a run's
#: values. Outside the main thread, where no signal can be delivered, there is no limit.
REGEX_SECONDS = 1.0


def parse_where(text: str) -> Callable[[Row], bool]:
    """Compile a ``--where`` filter into a predicate over runs.

    Raises:
        UsageError: The filter does not parse, is longer than :data:`MAX_WHERE_LENGTH`
            or nested deeper than :data:`MAX_WHERE_DEPTH`; the message says where.
    """
    if len(text) > MAX_WHERE_LENGTH:
        raise UsageError(f"usage error: --where: expected at most {MAX_WHERE_LENGTH} characters, got {len(text)}")
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
    depth = max(_running_depth(tokens))
    if depth > MAX_WHERE_DEPTH:
        raise UsageError(f"usage error: --where: expected parentheses nested at most {MAX_WHERE_DEPTH} deep, "
                         f"got {depth}")
    parser = _WhereParser(tokens, text)
    predicate = parser.or_()
    if parser.i != len(tokens):
        raise UsageError(f"usage error: --where: unexpected {tokens[parser.i][1]!r} in {text!r}")
    return predicate


def _running_depth(tokens: list[tuple[str, str]]) -> Iterator[int]:
    depth = 0
    yield 0
    for token in tokens:
        depth += (token == ("paren", "(")) - (token == ("paren", ")"))
        yield depth


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

    # Chains are flat lists, not nested closures: a thousand "or"s never recurse.
    def or_(self) -> Callable[[Row], bool]:
        terms = [self.and_()]
        while self.word("or"):
            terms.append(self.and_())
        return terms[0] if len(terms) == 1 else (lambda row: any(term(row) for term in terms))

    def and_(self) -> Callable[[Row], bool]:
        terms = [self.atom()]
        while self.word("and"):
            terms.append(self.atom())
        return terms[0] if len(terms) == 1 else (lambda row: all(term(row) for term in terms))

    def atom(self) -> Callable[[Row], bool]:
        negations = 0
        while self.word("not"):  # a loop: "not not ... x" is x or not x, whatever its length
            negations += 1
        inner = self.operand()
        return inner if negations % 2 == 0 else (lambda row: not inner(row))

    def operand(self) -> Callable[[Row], bool]:
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
            hit = lambda row: field(row, name) is not None and _search(pattern, str(field(row, name)), name)  # noqa: E731
            return hit if op == "~" else (lambda row: not hit(row))
        return lambda row: _compare(field(row, name), op, value)

    def value(self) -> str:
        kind, value = self.peek()
        if kind not in ("word", "quoted"):
            raise UsageError(f"usage error: --where: expected a value, got {value or 'the end'!r} in {self.text!r}")
        self.i += 1
        return value


class _RegexTimeout(Exception):
    """Raised by the timer signal inside a regular-expression search."""


def _expired(signum: int, frame: Any) -> None:
    raise _RegexTimeout


@contextmanager
def _regex_clock() -> Iterator[None]:
    """Let :func:`_search` time each search (main thread, POSIX); restores the old handler."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, _expired)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _search(pattern: re.Pattern[str], value: str, name: str) -> bool:
    """``pattern.search(value)``, stopped after :data:`REGEX_SECONDS` inside :func:`_regex_clock`."""
    if not hasattr(signal, "SIGALRM") or signal.getsignal(signal.SIGALRM) is not _expired:
        return pattern.search(value) is not None
    signal.setitimer(signal.ITIMER_REAL, REGEX_SECONDS)
    try:
        return pattern.search(value) is not None
    except _RegexTimeout:
        raise UsageError(f"usage error: --where: the regular expression {pattern.pattern!r} took more than "
                         f"{REGEX_SECONDS:g} s on one {name} value of {len(value)} characters (it backtracks: "
                         "repetition nested in repetition, such as (a+)+); expected a simpler pattern") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


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


# ------------------------------------------------------------------ selection


def select(rows: list[Row], where: str | None, sort: str | None, descending: bool | None,
           limit: int | None) -> list[Row]:
    """Filter, sort (missing values last) and cut a list of runs.

    Raises:
        UsageError: The filter is invalid (see :func:`parse_where`), or no run has the
            ``sort`` field; the message lists the fields the runs have.
    """
    if sort and rows and sort not in RUN_COLUMNS and all(field(r, sort) is None for r in rows):
        known = known_fields(rows)
        shown = ", ".join(known[:MAX_LISTED]) + (f", ... ({len(known) - MAX_LISTED} more)"
                                                 if len(known) > MAX_LISTED else "")
        raise UsageError(f"usage error: --sort: no run has the field {sort!r}; expected one of: {shown}")
    if where:
        predicate = parse_where(where)
        with _regex_clock():
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


#: How many field names a message lists before it says how many more there are.
MAX_LISTED = 40


def known_fields(rows: Iterable[Row]) -> list[str]:
    """Every field the runs have, as ``--where``, ``--sort`` and ``--columns`` name it:
    run columns, then ``metrics.*``, ``tags.*`` and ``params.*``, each sorted. The
    heartbeat's bookkeeping columns work in a filter but are not listed: a message that
    names the fields has room for the metrics first."""
    rows = list(rows)
    names = sorted(RUN_COLUMNS - {"heartbeat_at", "heartbeat_s"})
    for section in ("metrics", "tags", "params"):
        names += sorted({f"{section}.{key}" for r in rows for key in r.get(section) or {}})
    return names


def _metric_names(rows: Iterable[Row]) -> set[str]:
    return {name for r in rows for name in r["metrics"]}


def all_runs(store: tracking.RunStore) -> list[Row]:
    """All runs, with dead ``running`` runs closed as interrupted in the store and run dir.

    A run on this host is dead when its process is gone; a run on another host (or
    whose process cannot be asked) when it missed :data:`tracking.LOST_AFTER_BEATS` of
    its heartbeats: it is shown ``interrupted``, "lost: no heartbeat since ...", and its
    history keeps the fact (a late heartbeat, and its end if it still finishes, follow).
    """
    rows = store.search()
    for row in rows:
        if row["status"] == "running" and tracking.alive(row) is None:
            since = tracking.lost_since(row)
            if since is not None:
                message = (f"lost: no heartbeat since {since} (expected every {float(row['heartbeat_s']):g} s "
                           f"from host {row.get('host')})")
                try:
                    if store.mark_lost(row["id"], since, message):
                        row.update(status="interrupted", error=message)
                except NotImplementedError:
                    pass
            continue
        if row["status"] == "running" and tracking.alive(row) is False:
            try:
                if not row.get("run_dir"):
                    raise DataError("data error: the run has no run dir")
                record, resolved, metrics = load_run_dir(Path(row["run_dir"]))
            except DataError:  # the run dir is gone too: close the run from what the store knows
                message = f"process {row.get('pid')} ended without closing the run, and its run dir is gone"
                store.upsert({**row, "status": "interrupted", "error": message})
                row.update(status="interrupted", error=message)
                continue
            # The run dir is the truth: the run may have ended in any status (succeeded, and
            # only the store's last update was lost), or been closed just now as interrupted.
            tracking.track(store, record, resolved, metrics)
            row.update(store.get(row["id"]) or tracking.summary(record, resolved))
    return rows

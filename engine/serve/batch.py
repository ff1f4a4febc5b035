"""``mlops predict``: score a file (or the feature store's latest materialization) in chunks.

The same checks as a request to ``mlops serve`` (:mod:`engine.serve.inputs`: every input
column, every value of its type, a row that gives only the key looked up in the feature
store), the same domain flags, the same prediction log. The input is read whole, then
checked and scored ``chunk_rows`` rows at a time, with a progress line on large inputs.
The first bad row stops the command with one line naming the row (its position among the
file's data rows, from 0) and the column; nothing is written then.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import DataError, RequestError, UsageError
from engine.files import atomic_path
from engine.serve import inputs
from engine.serve.model import Served
from engine.stages import domain as domains

#: ``--input`` that names the feature store rather than a file.
FEATURE_STORE = "feature-store"
OUTPUT_SCHEMA_NAMES = ("row", "key", "status", "score", "decision", "in_domain", "domain_flags", "rule_flags",
                       "as_of")


@dataclass(frozen=True)
class Summary:
    """What one ``mlops predict`` did."""

    rows: int
    scored: int
    positive: int
    outside: int
    unknown: int
    seconds: float


def read_rows(path: str, served: Served, online: Any) -> list[Any] | dict[str, list[Any]]:
    """The rows of ``--input``: a CSV, Parquet or JSON file, or ``feature-store``.

    Raises:
        UsageError: No such file, an unknown suffix, or no feature store.
        RequestError: A file that is not what its suffix says (400 in the server).
    """
    if path == FEATURE_STORE:
        if online is None or served.key is None:
            raise UsageError("usage error at --input: feature-store needs a feature store (--feature-store PATH) "
                             "and a model trained on keyed rows")
        table = online.table(served)
        if table is None:
            raise UsageError(f"usage error at --input: the feature store {online.store.root} holds no "
                             "materialization of this model's features (mlops features materialize)")
        return {served.key: table.frame.index.tolist()}
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"usage error at --input: {path} is not a file (or {FEATURE_STORE!r})")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        return inputs.parse(file.read_bytes(), "text/csv")
    if suffix in (".json", ".jsonl"):
        if suffix == ".jsonl":
            try:
                return [json.loads(line, parse_constant=inputs._refuse_constant)
                        for line in file.read_text().splitlines() if line.strip()]
            except ValueError as exc:
                raise RequestError(400, f"{path} is not JSON lines: {exc}") from exc
        return inputs.parse(file.read_bytes(), "application/json")
    if suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(file)
        except Exception as exc:  # pyarrow's errors are many; the file is the user's
            raise RequestError(400, f"{path} is not a readable Parquet file: {str(exc).splitlines()[0]}") from exc
        return {str(c): [None if _missing(v) else v.item() if hasattr(v, "item") else v for v in frame[c].tolist()]
                for c in frame.columns}
    raise UsageError(f"usage error at --input: expected a .csv, .parquet, .json or .jsonl file, got {file.name}")


def score(served: Served, rows: list[Any] | dict[str, list[Any]], output: Path, online: Any = None,
          log: Any = None, chunk_rows: int = 50_000,
          progress: Callable[[int, int], None] | None = None, quality: str = "flag") -> Summary:
    """Check and score every row, write ``output`` (Parquet), append to the log; return a summary.

    Args:
        quality: What to do with the row rules a row breaks, as ``mlops serve --quality``.

    Raises:
        RequestError: The first row that does not fit the model (its row and column named),
            or, under ``quality="enforce"``, that breaks an error-severity rule.
    """
    started = time.perf_counter()
    n = len(next(iter(rows.values()), [])) if isinstance(rows, dict) else len(rows)
    parts: list[pa.Table] = []
    scored = positive = outside = unknown_count = 0
    for start in range(0, max(n, 1), chunk_rows):
        chunk = {c: v[start:start + chunk_rows] for c, v in rows.items()} if isinstance(rows, dict) \
            else rows[start:start + chunk_rows]
        try:
            checked = inputs.check(chunk, served.domain, chunk_rows, by_key_allowed=online is not None)
        except RequestError as exc:
            raise _at_file_row(exc, start) from exc
        frame, as_of, unknown = checked.features, None, []
        if checked.by_key:
            looked_up, as_of, unknown = online.lookup(served, checked.by_key, [checked.keys[i] for i in checked.by_key])
            frame = pd.concat([frame, looked_up]).sort_index() if len(frame) else looked_up
        violations = domains.rule_violations(frame, served.rules) if quality != "off" and served.rules else None
        if violations is not None and quality == "enforce":
            try:
                inputs.enforce_rules(violations, frame.index.tolist())
            except RequestError as exc:
                raise _at_file_row(exc, start) from exc
        values = served.scores(frame) if len(frame) else np.empty(0)
        decisions = values >= served.threshold
        flags = domains.flags(frame, served.domain, None if checked.by_key else checked.arrays) if len(frame) else []
        by_key = set(checked.by_key)
        positions = frame.index.tolist()
        part = {
            "row": [start + p for p in positions] + [start + p for p in unknown],
            "key": [_key(checked.keys[p]) for p in positions] + [_key(checked.keys[p]) for p in unknown],
            "status": [200] * len(positions) + [404] * len(unknown),
            "score": [float(v) for v in values] + [None] * len(unknown),
            "decision": [int(d) for d in decisions] + [None] * len(unknown),
            "in_domain": [not f for f in flags] + [None] * len(unknown),
            "domain_flags": [[f"{x['column']}:{x['flag']}" for x in f] for f in flags] + [None] * len(unknown),
            "rule_flags": [[f"{v['rule']}:{v['column']}" for v in row] for row in violations or [[]] * len(positions)]
            + [None] * len(unknown),
            "as_of": [as_of if p in by_key else None for p in positions] + [as_of] * len(unknown),
        }
        parts.append(pa.Table.from_pydict(part, schema=_schema()).sort_by("row"))
        if log is not None and len(frame):
            log.append(served, uuid.uuid4().hex, frame, [checked.keys[p] for p in positions], values, decisions,
                       flags, [p in by_key for p in positions], as_of, 0.0, violations)
        scored += len(frame)
        positive += int(decisions.sum())
        outside += sum(1 for f in flags if f)
        unknown_count += len(unknown)
        if progress is not None:
            progress(min(start + chunk_rows, n), n)
    table = pa.concat_tables(parts) if parts else pa.Table.from_pydict({}, schema=_schema())
    identity = {k: str(v) for k, v in served.identity().items()}
    table = table.replace_schema_metadata({f"mlops.model.{k}": v for k, v in identity.items()}
                                          | {"mlops.threshold": str(served.threshold)})
    with atomic_path(output) as tmp:
        pq.write_table(table, tmp)
    return Summary(n, scored, positive, outside, unknown_count, time.perf_counter() - started)


def progress_printer(stream: Any = None, every_s: float = 1.0) -> Callable[[int, int], None]:
    """A progress line on stderr: rewritten in place on a terminal, else one line per second at most."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    state = {"last": 0.0, "started": time.perf_counter()}

    def show(done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - state["last"] < every_s:
            return
        state["last"] = now
        rate = done / max(now - state["started"], 1e-9)
        line = f"scored {done:,} / {total:,} rows ({100 * done / max(total, 1):.0f}%, {rate:,.0f} rows/s)"
        stream.write(("\r" + line + ("\n" if done >= total else "")) if tty else line + "\n")
        stream.flush()

    return show


def _schema() -> pa.Schema:
    return pa.schema([("row", pa.int64()), ("key", pa.string()), ("status", pa.int16()), ("score", pa.float64()),
                      ("decision", pa.int8()), ("in_domain", pa.bool_()), ("domain_flags", pa.list_(pa.string())),
                      ("rule_flags", pa.list_(pa.string())), ("as_of", pa.string())])


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array cell: not missing, refused by the checks
        return False


def _at_file_row(exc: RequestError, start: int) -> DataError:
    """The error of a chunk, at the row of the file."""
    row = None if exc.row is None else start + exc.row
    moved = RequestError(exc.status, exc.message, row=row, column=exc.column)
    return DataError(f"data error in --input{str(moved).removeprefix('request error')}")

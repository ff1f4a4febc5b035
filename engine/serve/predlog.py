"""The prediction log: every scored row, appended to partitioned Parquet by a background writer.

Layout (readable as one dataset by pandas, pyarrow, DuckDB and Spark)::

    outputs/predictions/<model name>/date=YYYY-MM-DD/part-<time>-<pid>-<n>.parquet

One row per scored row, in one fixed schema (:data:`SCHEMA`), whatever the model
version: the request id and time, the model (name, version, run, sha256), the key,
the raw inputs as scored (a JSON object: its columns change with the model version,
the file schema does not), where they came from (the request or the feature store, with
its as_of), the score, the decision and threshold, the domain flags and the latency.

A request only hands its rows to a bounded queue (no copying, no encoding): the writer
thread builds the table and writes a file when it holds ``batch_rows`` rows or
``flush_s`` seconds have passed, so a kill loses at most that much. A full queue drops
the request's rows instead of making it wait; the drop is counted (``/metrics``:
``mlops_prediction_log_dropped_rows_total``) and logged. :meth:`PredictionLog.close`
writes everything queued: the server calls it after SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from engine.files import atomic_path

log = logging.getLogger("engine.serve")

#: Every file of the log has this schema, so a month of files reads as one table.
SCHEMA = pa.schema([
    ("request_id", pa.string()),
    ("row", pa.int32()),
    ("received_at", pa.timestamp("us", tz="UTC")),
    ("model_name", pa.string()),
    ("model_version", pa.int64()),
    ("run_id", pa.string()),
    ("model_sha256", pa.string()),
    ("key", pa.string()),
    ("inputs", pa.string()),
    ("source", pa.string()),
    ("as_of", pa.string()),
    ("score", pa.float64()),
    ("decision", pa.int8()),
    ("threshold", pa.float64()),
    ("in_domain", pa.bool_()),
    ("domain_flags", pa.list_(pa.string())),
    ("rule_flags", pa.list_(pa.string())),  # "<rule>:<column>": the quality rules the row breaks
    ("latency_ms", pa.float64()),
])


@dataclass(frozen=True)
class _Entry:
    """One request's scored rows, as the request left them (built into a table by the writer)."""

    received_at: datetime
    request_id: str
    identity: dict[str, Any]
    threshold: float
    frame: pd.DataFrame
    keys: list[Any]
    scores: np.ndarray
    decisions: np.ndarray
    flags: list[list[dict[str, Any]]]
    by_key: list[bool]
    as_of: str | None
    latency_ms: float
    violations: list[list[dict[str, Any]]] | None = None


class PredictionLog:
    """The background writer of one model name's prediction log.

    Args:
        root: The log's folder for this model (``outputs/predictions/<name>``).
        max_queued_rows: Rows that may wait for the writer; beyond, rows are dropped.
        batch_rows: Write a file once this many rows wait.
        flush_s: Write what waits at least this often.
        on_written: Called with the number of rows of every file written.
        on_dropped: Called with the number of rows of every request dropped.
    """

    def __init__(self, root: Path, max_queued_rows: int = 100_000, batch_rows: int = 20_000, flush_s: float = 2.0,
                 on_written: Callable[[int], None] | None = None,
                 on_dropped: Callable[[int], None] | None = None) -> None:
        self.root = root
        self.max_queued_rows = max_queued_rows
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.on_written = on_written or (lambda n: None)
        self.on_dropped = on_dropped or (lambda n: None)
        self.written_rows = 0
        self.dropped_rows = 0
        self.failed_rows = 0
        self._queued = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Entry | object | None] = queue.SimpleQueue()
        self._files = 0
        self._last_drop_logged = 0.0
        self._thread = threading.Thread(target=self._run, name="mlops-prediction-log", daemon=True)
        self._closed = False
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        """Rows waiting to be written."""
        return self._queued

    def append(self, served: Any, request_id: str, frame: pd.DataFrame, keys: Sequence[Any], scores: np.ndarray,
               decisions: np.ndarray, flags: list[list[dict[str, Any]]], by_key: Sequence[bool],
               as_of: str | None, latency_ms: float,
               violations: list[list[dict[str, Any]]] | None = None) -> bool:
        """Queue one request's scored rows; never waits. Return False when they were dropped."""
        n = len(frame)
        with self._lock:
            if self._closed or self._queued + n > self.max_queued_rows:
                self.dropped_rows += n
                dropped = True
            else:
                self._queued += n
                dropped = False
        if dropped:
            self.on_dropped(n)
            now = time.monotonic()
            if now - self._last_drop_logged > 10:  # one line per 10 s, the count in /metrics
                self._last_drop_logged = now
                log.warning("prediction log: queue full (%d rows waiting, limit %d); dropped %d row(s) so far",
                            self._queued, self.max_queued_rows, self.dropped_rows)
            return False
        self._queue.put(_Entry(datetime.now(timezone.utc), request_id, served.identity(), served.threshold, frame,
                               list(keys), scores, decisions, flags, list(by_key), as_of, latency_ms,
                               violations))
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued, then stop the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("prediction log: the writer did not finish within %.0f s; %d row(s) may be lost", timeout,
                      self._queued)

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` says about the log."""
        return {"path": str(self.root), "written_rows": self.written_rows, "queued_rows": self._queued,
                "dropped_rows": self.dropped_rows, "failed_rows": self.failed_rows}

    def _run(self) -> None:
        pending: list[_Entry] = []
        rows = 0
        deadline = time.monotonic() + self.flush_s
        while True:
            try:
                entry = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                entry = _TICK
            if entry is None:  # close(): the last write
                self._write(pending, rows)
                return
            if isinstance(entry, _Entry):
                pending.append(entry)
                rows += len(entry.frame)
            if rows >= self.batch_rows or (time.monotonic() >= deadline):
                self._write(pending, rows)
                pending, rows = [], 0
                deadline = time.monotonic() + self.flush_s

    def _write(self, entries: list[_Entry], rows: int) -> None:
        if not entries:
            return
        try:
            table = to_table(entries)
            dates = pc.strftime(table["received_at"], format="%Y-%m-%d").to_pylist()
            for date in sorted(set(dates)):
                part = table.filter(pa.array([d == date for d in dates])) if len(set(dates)) > 1 else table
                self._files += 1
                stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
                path = self.root / f"date={date}" / f"part-{stamp}-{os.getpid()}-{self._files}.parquet"
                with atomic_path(path) as tmp:  # a temp name starting with '.': readers skip it
                    pq.write_table(part, tmp, compression="zstd")
            self.written_rows += rows
            self.on_written(rows)
        except Exception as exc:  # noqa: BLE001 - a full disk must not stop the server; said, and counted
            self.failed_rows += rows
            log.error("prediction log: %d row(s) not written to %s (%s: %s)", rows, self.root, type(exc).__name__,
                      exc)
        finally:
            with self._lock:
                self._queued -= rows


_TICK = object()  # the writer's wake-up with nothing new: time to flush


def to_table(entries: list[_Entry]) -> pa.Table:
    """The log rows of some requests, in :data:`SCHEMA`."""
    columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
    for entry in entries:
        n = len(entry.frame)
        positions = entry.frame.index.tolist()
        ident = entry.identity
        columns["request_id"] += [entry.request_id] * n
        columns["row"] += positions
        columns["received_at"] += [entry.received_at] * n
        columns["model_name"] += [ident["name"]] * n
        columns["model_version"] += [ident["version"]] * n
        columns["run_id"] += [ident["run_id"]] * n
        columns["model_sha256"] += [ident["sha256"]] * n
        columns["key"] += [None if k is None else str(k) for k in entry.keys]
        columns["inputs"] += _inputs_json(entry.frame)
        columns["source"] += ["feature_store" if b else "request" for b in entry.by_key]
        columns["as_of"] += [entry.as_of if b else None for b in entry.by_key]
        columns["score"] += [float(s) for s in entry.scores]
        columns["decision"] += [int(d) for d in entry.decisions]
        columns["threshold"] += [entry.threshold] * n
        columns["in_domain"] += [not f for f in entry.flags]
        columns["domain_flags"] += [[f"{f['column']}:{f['flag']}" for f in row] for row in entry.flags]
        columns["rule_flags"] += ([[f"{v['rule']}:{v['column']}" for v in row] for row in entry.violations]
                                  if entry.violations is not None else [[] for _ in range(n)])
        columns["latency_ms"] += [round(entry.latency_ms, 3)] * n
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def _inputs_json(frame: pd.DataFrame) -> list[str]:
    """Each row's input values as a JSON object (missing: null).

    With orjson (the serve extra) a row costs a microsecond or two: a request of one row
    is the common case, and pandas' ``to_json`` costs a few hundred microseconds a call,
    on the writer's thread but under the same GIL as the requests. Without it, pandas'
    encoder (numbers to 15 significant digits).
    """
    if not len(frame):
        return []
    if _orjson is None:
        text = frame.to_json(orient="records", lines=True, double_precision=15)
        return text.rstrip("\n").split("\n")  # JSON escapes a newline inside a string: one line per row
    names = [str(c) for c in frame.columns]
    return [_orjson.dumps(dict(zip(names, row, strict=True)), default=_plain).decode()
            for row in frame.to_numpy(dtype=object).tolist()]


def _plain(value: Any) -> Any:
    """What orjson cannot write itself: pandas' missing values, numpy scalars."""
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


try:
    import orjson as _orjson
except ImportError:  # the serve extra brings it
    _orjson = None

"""The prediction log: every scored row, appended to partitioned Parquet by a background writer.

Layout (readable as one dataset by pandas, pyarrow, DuckDB and Spark)::

    outputs/predictions/<model name>/date=YYYY-MM-DD/part-<time>-<pid>-<n>.parquet

One row per scored row, in one schema (:data:`SCHEMA`) whatever the model version but
for the fields of ``inputs``: the request id and time, the model (name, version, run,
sha256), the key, the inputs as scored (a struct of the version's input columns, typed
as the model takes them: numbers as float64, the rest as text), where they came from
(the request or the feature store, with its as_of), the score, the decision and
threshold, the domain and rule flags and the latency. Files of versions with other
input columns unify by field name (``pyarrow.unify_schemas``, DuckDB's
``union_by_name``), as ``mlops monitor`` reads them.

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
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    ("inputs", pa.struct([])),  # the input columns of the version that scored the rows: schema()
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
    flags: Sequence[Sequence[dict[str, Any]]]
    by_key: list[bool]
    as_of: str | None
    latency_ms: float
    violations: Sequence[Sequence[dict[str, Any]]] | None = None
    #: ``frame``'s columns as the input checks typed them (None: the rows came otherwise)
    arrays: Mapping[str, np.ndarray] | None = None


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
               decisions: np.ndarray, flags: Sequence[Sequence[dict[str, Any]]], by_key: Sequence[bool],
               as_of: str | None, latency_ms: float,
               violations: Sequence[Sequence[dict[str, Any]]] | None = None,
               arrays: Mapping[str, np.ndarray] | None = None) -> bool:
        """Queue one request's scored rows; never waits. Return False when they were dropped.

        Args:
            arrays: ``frame``'s columns as numpy arrays, when the caller has them (the
                input checks do): the writer joins many requests' inputs from them with
                one ``numpy.concatenate`` per column, where ``pandas.concat`` of a few
                hundred one-row frames costs tens of milliseconds under the GIL.
        """
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
                               violations, arrays))
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
            for table in tables(entries):
                dates = pc.strftime(table["received_at"], format="%Y-%m-%d")
                for date in pc.unique(dates).to_pylist():
                    part = table.filter(pc.equal(dates, date)) if len(pc.unique(dates)) > 1 else table
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


def tables(entries: list[_Entry]) -> Iterator[pa.Table]:
    """The log rows of some requests: one table per run of consecutive requests whose
    inputs have the same columns (one, unless the model changed meanwhile)."""
    run: list[_Entry] = []
    for entry in entries:
        if run and list(entry.frame.columns) != list(run[0].frame.columns):
            yield to_table(run)
            run = []
        run.append(entry)
    if run:
        yield to_table(run)


def to_table(entries: list[_Entry]) -> pa.Table:
    """The log rows of some requests whose inputs have the same columns, in
    :func:`schema` of those columns, built a column at a time.

    The writer runs under the GIL the requests need, so nothing here loops over values
    in Python where Arrow or numpy can: a request's own values (id, time, the model) are
    one row per request, repeated by ``take``, and the inputs of all the requests are
    joined into one frame (one ``concat`` costs what a few pandas calls on each small
    frame would) and taken over as typed columns by :func:`inputs_array`.
    """
    sizes = np.array([len(entry.frame) for entry in entries], dtype=np.int64)
    request_of_row = pa.array(np.repeat(np.arange(len(entries)), sizes))
    ident = [entry.identity for entry in entries]
    per_request = pa.table({
        "request_id": pa.array([entry.request_id for entry in entries], pa.string()),
        "received_at": pa.array([entry.received_at for entry in entries], SCHEMA.field("received_at").type),
        "model_name": pa.array([i["name"] for i in ident], pa.string()),
        "model_version": pa.array([i["version"] for i in ident], pa.int64()),
        "run_id": pa.array([i["run_id"] for i in ident], pa.string()),
        "model_sha256": pa.array([i["sha256"] for i in ident], pa.string()),
        "threshold": pa.array([entry.threshold for entry in entries], pa.float64()),
        "latency_ms": pa.array([round(entry.latency_ms, 3) for entry in entries], pa.float64()),
        "as_of": pa.array([entry.as_of for entry in entries], pa.string()),
    }).take(request_of_row)
    by_key = np.concatenate([np.asarray(entry.by_key, dtype=bool) for entry in entries])
    flags = [row for entry in entries for row in entry.flags]
    frames = [entry.frame for entry in entries]
    if len(entries) > 1 and all(entry.arrays is not None for entry in entries):
        inputs = _struct({str(name): np.concatenate([entry.arrays[name] for entry in entries])  # type: ignore[index]
                          for name in frames[0].columns})
    else:
        inputs = inputs_array(pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0])
    columns = {
        **{name: per_request[name] for name in per_request.column_names},
        "row": pa.array(np.concatenate([frame.index.to_numpy(dtype=np.int64) for frame in frames]), pa.int32()),
        "key": pa.array([None if k is None else str(k) for entry in entries for k in entry.keys], pa.string()),
        "inputs": inputs,
        "source": pa.array(np.where(by_key, "feature_store", "request"), pa.string()),
        "as_of": pc.if_else(pa.array(by_key), per_request["as_of"], pa.scalar(None, pa.string())),
        "score": pa.array(np.concatenate([np.asarray(entry.scores, dtype=float) for entry in entries])),
        "decision": pa.array(np.concatenate([np.asarray(entry.decisions) for entry in entries]).astype(np.int8)),
        "in_domain": pa.array([not row for row in flags], pa.bool_()),
        "domain_flags": _lists(flags, "column", "flag"),
        "rule_flags": _lists([row for entry in entries for row in (entry.violations if entry.violations is not None
                                                                   else [[]] * len(entry.frame))], "rule", "column"),
    }
    target = schema(inputs.type)
    return pa.table([columns[name] for name in target.names], schema=target)


def _lists(rows: list[list[dict[str, Any]]], first: str, second: str) -> pa.ListArray:
    """Each row's ``"<first>:<second>"`` texts, as a list column built from its offsets
    (most rows have none)."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(row) for row in rows], out=offsets[1:])
    values = pa.array([f"{item[first]}:{item[second]}" for row in rows for item in row], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def schema(inputs: pa.DataType) -> pa.Schema:
    """:data:`SCHEMA` with the inputs' struct of one model version's input columns."""
    return SCHEMA.set(SCHEMA.get_field_index("inputs"), pa.field("inputs", inputs))


def inputs_array(frame: pd.DataFrame) -> pa.StructArray:
    """Each row's inputs as the model took them (:func:`engine.stages.model.as_model_input`):
    a number as float64, anything else (text, a category, a boolean) as its text, missing
    as null. One struct field per input column, taken over a column at a time."""
    if not len(frame.columns):
        return pa.array([{}] * len(frame), pa.struct([]))
    return _struct({str(name): series for name, series in frame.items()})


def _struct(columns: Mapping[str, pd.Series | np.ndarray]) -> pa.StructArray:
    """:func:`inputs_array` of columns given as Series or numpy arrays."""
    arrays = []
    for values in columns.values():
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
            numbers = values.to_numpy(dtype=float, na_value=np.nan) if isinstance(values, pd.Series) else \
                np.asarray(values, dtype=float)
            arrays.append(pa.array(numbers, pa.float64(), from_pandas=True))
        else:
            arrays.append(_text(values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)))
    return pa.StructArray.from_arrays(arrays, names=list(columns))


def _text(series: pd.Series) -> pa.Array:
    """A column that is not a number as text (null where missing)."""
    try:
        array = pa.array(series, from_pandas=True)
        if isinstance(array, pa.ChunkedArray):  # pandas' Arrow-backed str dtype
            array = array.combine_chunks()
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            return array.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):  # mixed objects
        pass
    present = series.notna().to_numpy()
    return pa.array([str(v) if ok else None for v, ok in zip(series.to_numpy(dtype=object), present, strict=True)],
                    pa.string())

"""The feature store: content-addressed Parquet tables, built once and reused.

A table's key is a hash of everything that decides its content: the feature
definitions, the fingerprints of the source data, the cut-off ``as_of`` and the
version of the feature code. A run whose key exists reads the table instead of
computing it, across runs and across projects that point at the same folder.

Layout under the store's root (any tool can read the tables)::

    tables/<key>.parquet   the materialised table
    tables/<key>.json      its manifest, written last: no manifest, no table
    groups/<name>.json     each named group's definitions over time and who used them

Writes are atomic (temp file, fsync, then rename; the manifest only after the table
is on disk) and the shared group history is updated under a file lock, so parallel
sweep workers and concurrent projects are safe. Two processes building the same key
at once both write the same content; the last rename wins and either way one valid
table remains.

A table can be written in the background (:meth:`FeatureStore.put_later`), so a run
goes on with its next stages while the Parquet file is encoded and synced; the run
calls :meth:`FeatureStore.flush` before it records itself, which waits for every
queued write and raises the first one that failed. A crash or a failed write never
leaves a visible table: without its manifest a table does not exist.

Every read checks the file against the size and the CRC-32 its manifest recorded when
it was written: a truncated, damaged or edited file is a miss, logged and rebuilt by
the run, never a wrong answer. The checksum is computed on a helper thread while Arrow
decodes the very same bytes, so it costs little wall time. CRC-32 (as in Parquet's own
pages, gzip and zip) catches any burst of up to 32 flipped bits and random damage but
for one case in 4 billion; it is not a defence against someone who can rewrite the
store, and neither would a hash be, since the manifest lies beside the table. The
manifest also records the file's sha256: :meth:`FeatureStore.verify` checks it, and
manifests written before the CRC-32 was recorded are read with their sha256.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import signal
import threading
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import DataError
from engine.files import atomic_path, locked, write_json

log = logging.getLogger(__name__)

#: A feature group's name, as the features schema allows it: it names the group's
#: history file, so it can hold no path separator and no '..'.
GROUP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def digest(payload: Mapping[str, Any]) -> str:
    """A stable sha256 of JSON-able content (keys sorted)."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class StoredTable:
    """A table in the store, as its manifest describes it."""

    key: str
    manifest: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", ""))


class FeatureStore:
    """A folder of feature tables.

    Args:
        root: The store's folder; created on first write.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tables = root / "tables"
        self.groups = root / "groups"
        self._pending: dict[str, Future[dict[str, Any]]] = {}
        self._writer: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    def get(self, key: str) -> pd.DataFrame | None:
        """The table stored under ``key``, or None when it is absent or damaged.

        The file's size and CRC-32 are checked against its manifest; a mismatch (a
        truncated, damaged or edited file) is logged and treated as a miss, so it is
        rebuilt. A table this store is still writing in the background is waited for
        first.
        """
        if key in self._pending:
            self._wait(key)
        manifest = self.manifest(key)
        if manifest is None:
            return None
        path = self.tables / f"{key}.parquet"
        try:
            with pa.memory_map(str(path)) as source:
                data = source.read_buffer()
        except OSError:
            return None
        if data.size != manifest.get("bytes"):
            log.warning("feature store: table %s has %d bytes, its manifest says %s; rebuilding it",
                        key[:12], data.size, manifest.get("bytes"))
            return None
        # The checksum runs beside the decoding (both release the GIL) over the very
        # bytes decoded; a frame is returned only when they are the bytes that were written.
        field, check = ("crc32", _crc32) if "crc32" in manifest else ("sha256", _sha256)
        with _signals_deferred():
            checking = _hasher().submit(check, data)
        try:
            frame: pd.DataFrame | None = _decode(data)
        except Exception:  # damaged bytes fail in many ways; the hash says which case this is
            frame = None
        if checking.result() != manifest.get(field):
            log.warning("feature store: table %s does not match its manifest; rebuilding it", key[:12])
            return None
        if frame is None:
            log.warning("feature store: table %s matches its manifest but cannot be read; rebuilding it",
                        key[:12])
        return frame

    def put(self, key: str, frame: pd.DataFrame, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``frame`` under ``key`` now: the Parquet file first, then its manifest.

        Returns:
            The manifest written.
        """
        return self._write(key, frame, dict(manifest))

    def put_later(self, key: str, frame: pd.DataFrame, manifest: Mapping[str, Any]) -> None:
        """Queue ``frame`` to be stored under ``key`` by the store's writer thread.

        The write is complete and visible after :meth:`flush` returns (or after
        :meth:`get` of the same key). The frame is not copied: pandas' copy-on-write
        keeps the writer's view unchanged if the caller edits ``frame`` later.
        """
        snapshot = frame.copy(deep=False)
        with self._lock, _signals_deferred():
            if self._writer is None:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-store-writer")
            previous = self._pending.pop(key, None)
            if previous is not None:
                previous.result()
            future = self._writer.submit(self._write, key, snapshot, dict(manifest))
            future.add_done_callback(functools.partial(self._report, key))
            self._pending[key] = future

    def _report(self, key: str, future: Future[dict[str, Any]]) -> None:
        """Log a failed background write when it happens, whether or not anyone flushes."""
        exc = None if future.cancelled() else future.exception()
        if exc is not None:
            log.error("feature store: writing table %s to %s failed (%s: %s); the table is not stored",
                      key[:12], self.tables, type(exc).__name__, exc)

    def flush(self) -> list[dict[str, Any]]:
        """Wait for every write :meth:`put_later` queued.

        Returns:
            The manifests written, in the order the writes were queued.

        Raises:
            Exception: The first write that failed, re-raised (after every other
                write has finished); no table of a failed write is visible.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
            writer, self._writer = self._writer, None
        if writer is not None:
            writer.shutdown(wait=False)  # its queued writes still run; the thread ends after them
        written, failed = [], []
        for key, future in pending.items():
            try:
                written.append(future.result())
            except Exception as exc:  # re-raised below, once the other writes have finished
                failed.append(exc)
        if failed:
            raise failed[0]
        return written

    def _wait(self, key: str) -> None:
        with self._lock:
            future = self._pending.pop(key, None)
        if future is not None:
            future.result()

    def _write(self, key: str, frame: pd.DataFrame, manifest: dict[str, Any]) -> dict[str, Any]:
        """Encode, hash, write and sync the table, then its manifest (atomic renames)."""
        self.tables.mkdir(parents=True, exist_ok=True)
        data = _encode(frame)
        with atomic_path(self.tables / f"{key}.parquet") as tmp:
            with open(tmp, "wb") as handle:
                handle.write(data)  # atomic_path fsyncs it before the rename
        record = {
            **manifest,
            "key": key,
            "rows": len(frame),
            "columns": [str(c) for c in frame.columns],
            "bytes": data.size,
            "crc32": _crc32(data),
            "sha256": _sha256(data),
            "created_at": _now(),
        }
        write_json(self.tables / f"{key}.json", record)
        return record

    def verify(self, key: str) -> bool:
        """Whether the table under ``key`` is exactly the file that was written (sha256)."""
        manifest = self.manifest(key)
        try:
            with pa.memory_map(str(self.tables / f"{key}.parquet")) as source:
                data = source.read_buffer()
        except OSError:
            return False
        return manifest is not None and data.size == manifest.get("bytes") and _sha256(data) == manifest.get("sha256")

    def manifest(self, key: str) -> dict[str, Any] | None:
        """The manifest of the table under ``key``; None when it is absent or damaged.

        A damaged manifest (not JSON, or JSON of another shape) is logged: its table is
        a miss, rebuilt by the next run that needs it, and ``mlops features gc`` removes it.
        """
        try:
            text = (self.tables / f"{key}.json").read_text()
        except OSError:
            return None
        manifest, problem = _parse_manifest(text)
        if problem is not None:
            log.warning("feature store: table %s is ignored: its manifest %s; rebuilding it", key[:12], problem)
        return manifest

    def list(self) -> Iterator[StoredTable]:
        """Every complete table (one with a valid manifest), oldest first."""
        found = []
        for path in self.tables.glob("*.json") if self.tables.is_dir() else ():
            try:
                manifest, _ = _parse_manifest(path.read_text())
            except OSError:  # removed meanwhile
                continue
            if manifest is not None:
                found.append(StoredTable(path.stem, manifest))
        yield from sorted(found, key=lambda t: str(t.manifest.get("created_at", "")))

    def damaged(self) -> list[tuple[str, str]]:
        """Tables whose manifest is not one this store wrote: (key, what is wrong), by key.

        Such a table does not exist for :meth:`get` and :meth:`list`; it is reported so
        that a person sees it, and :meth:`remove` deletes it.
        """
        found = []
        for path in sorted(self.tables.glob("*.json")) if self.tables.is_dir() else ():
            try:
                _, problem = _parse_manifest(path.read_text())
            except OSError:
                continue
            if problem is not None:
                found.append((path.stem, f"{path} {problem}"))
        return found

    def remove(self, key: str) -> None:
        """Delete a table: the manifest first, so a half-deleted table is never read."""
        (self.tables / f"{key}.json").unlink(missing_ok=True)
        (self.tables / f"{key}.parquet").unlink(missing_ok=True)

    def record_use(self, name: str, definition_hash: str, version: Any, used_by: Mapping[str, Any]) -> list[
            dict[str, Any]]:
        """Note that a run used group ``name`` with this definition.

        Returns:
            The earlier definitions of the group (most recent first) when this one is
            new, with the runs and models that used them; empty when it is unchanged.
        """
        path = self._history_path(name)
        self.groups.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".lock"):
            history = _read_history(path) or {"name": name, "definitions": []}
            definitions = history["definitions"]
            current = next((d for d in definitions if d["hash"] == definition_hash), None)
            changed = []
            if current is None:
                changed = [d for d in reversed(definitions)]
                current = {"hash": definition_hash, "version": version, "first_used": _now(), "used_by": []}
                definitions.append(current)
            current["used_by"] = (current["used_by"] + [{**used_by, "at": _now()}])[-100:]
            write_json(path, history)
        return changed

    def history(self, name: str) -> dict[str, Any] | None:
        """Group ``name``'s definitions over time and who used them; None when it has none.

        Raises:
            DataError: The history file is not one this store wrote (never read as empty:
                it is the only record of which runs used the group).
        """
        return _read_history(self._history_path(name))

    def histories(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every group's history, by name.

        Raises:
            DataError: A history file is not one this store wrote.
        """
        for path in sorted(self.groups.glob("*.json")) if self.groups.is_dir() else ():
            history = _read_history(path)
            if history is not None:
                yield path.stem, history

    def _history_path(self, name: str) -> Path:
        if not isinstance(name, str) or not GROUP_NAME.fullmatch(name):
            raise ValueError(f"feature group name {name!r} is not an identifier")
        return self.groups / f"{name}.json"


def _describe(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _parse_manifest(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """A manifest's content, or what is wrong with it: (manifest, None) or (None, problem)."""
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON ({exc.msg} at line {exc.lineno})"
    expected = "expected a JSON object with bytes and crc32 or sha256, as the store writes it"
    if not isinstance(manifest, dict):
        return None, f"is {_describe(manifest)}; {expected}"
    typed = {"bytes": int, "rows": int, "crc32": str, "sha256": str, "name": str, "kind": str, "created_at": str,
             "columns": list, "groups": list}
    for field, kind in typed.items():
        value = manifest.get(field)
        if (value is not None or field == "bytes") and (not isinstance(value, kind) or isinstance(value, bool)):
            return None, f"has a {field} of the wrong type ({_describe(value)}); {expected}"
    if not isinstance(manifest.get("crc32"), str) and not isinstance(manifest.get("sha256"), str):
        return None, f"has neither crc32 nor sha256; {expected}"
    if not all(isinstance(g, dict) for g in manifest.get("groups") or ()):
        return None, f"has groups that are not objects; {expected}"
    return manifest, None


def _read_history(path: Path) -> dict[str, Any] | None:
    """A group history file; None when it does not exist.

    Raises:
        DataError: The file is not JSON, or JSON of another shape.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DataError(f"data error at feature group history {path}: cannot read it: {exc.strerror}") from exc
    fix = "restore it, or move it away to start the group's history afresh"
    try:
        history = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"data error at feature group history {path}: not valid JSON ({exc.msg} at line "
                        f"{exc.lineno}); expected the file the store writes: {fix}") from exc
    expected = "expected an object whose definitions are objects with a hash and a used_by list"
    problem = None
    if not isinstance(history, dict):
        problem = _describe(history)
    elif not isinstance(history.get("definitions"), list):
        problem = f"definitions: {_describe(history.get('definitions'))}"
    else:
        for i, definition in enumerate(history["definitions"]):
            if not isinstance(definition, dict) or not isinstance(definition.get("hash"), str) \
                    or not isinstance(definition.get("used_by", []), list) \
                    or not all(isinstance(u, dict) for u in definition.get("used_by", [])):
                problem = f"definitions.{i}: {json.dumps(definition, default=str)[:60]}"
                break
    if problem is not None:
        raise DataError(f"data error at feature group history {path}: {expected}, got {problem}; {fix}")
    history["definitions"] = [{**d, "used_by": d.get("used_by", [])} for d in history["definitions"]]
    return history


def _encode(frame: pd.DataFrame) -> pa.Buffer:
    """``frame`` (its index dropped) as the bytes of a Parquet file.

    Plain and uncompressed: the tables are mostly floats, which codecs and dictionaries
    hardly shrink, and raw pages are the fastest to write, hash and read back (a warm
    run's whole feature stage is one such read).

    A missing value of a float column is stored as the NaN pandas holds, not as an
    Arrow null: the column then has no definition levels to decode, which halves the
    read, and it comes back as the same NaN.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = [pa.array(frame[name].to_numpy(), from_pandas=False)
               if isinstance(frame[name].dtype, np.dtype) and frame[name].dtype.kind == "f" else table.column(i)
               for i, name in enumerate(table.column_names)]
    table = pa.Table.from_arrays(columns, schema=table.schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="none", use_dictionary=False)
    return sink.getvalue()


def _decode(data: pa.Buffer) -> pd.DataFrame:
    # One thread: on a small, busy machine Arrow's thread pool mostly adds hand-offs
    # (the checksum already runs on the other core).
    return (pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
            .to_pandas(split_blocks=True, use_threads=False))


def _sha256(data: Any) -> str:
    return hashlib.sha256(data).hexdigest()


def _crc32(data: Any) -> str:
    return f"{zlib.crc32(data):08x}"


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while a thread pool starts a worker and submits to it.

    An interrupt raised between a worker's ``start()`` and its registration for shutdown
    leaves a thread that nobody tells to stop: the interrupted run is recorded, then the
    process waits for it forever at exit. Blocked here, the signal is delivered (and
    raised) right after; the worker, started while they are blocked, never takes them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


_HASHER: ThreadPoolExecutor | None = None


def _hasher() -> ThreadPoolExecutor:
    global _HASHER
    if _HASHER is None:
        _HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-store-hash")
    return _HASHER


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

"""Serving by key: an entity's features from the feature store's latest materialization.

A request row that gives only the entity key (``{"customer_id": 1234}``) is scored on
that entity's row of the newest feature table in the store that the model can read, as
Feast's online store serves the last materialized values: a table of kind ``features``
whose definitions are the ones the model was trained on (the definition hash its run
recorded; for tables written before that hash existed, the same feature groups) and
that holds every input column. ``mlops features materialize as_of=...`` writes a newer
one; the server notices a new table in the store within ``rescan_s`` seconds and
answers with its ``as_of``. Tables are read through :meth:`FeatureStore.get`, which
checks each file against its manifest.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from engine.serve.model import Served
from engine.store.featurestore import FeatureStore, StoredTable

log = logging.getLogger("engine.serve")


@dataclass(frozen=True)
class _Loaded:
    """One materialization, indexed by the entity key, holding the model's input columns."""

    key: str
    as_of: str | None
    created_at: str | None
    frame: pd.DataFrame


class OnlineFeatures:
    """The rows of the latest materialization, by entity key.

    Args:
        root: The feature store's folder.
        rescan_s: How often, at most, the store is looked at for a newer table.
    """

    def __init__(self, root: Path, rescan_s: float = 1.0) -> None:
        self.store = FeatureStore(root)
        self.rescan_s = rescan_s
        self._lock = threading.Lock()
        self._loaded: dict[str, _Loaded] = {}  # model sha256 -> its table
        self._scanned: dict[str, tuple[float, Any]] = {}  # model sha256 -> (when, the store's folder stamp)

    def lookup(self, served: Served, positions: list[int], keys: list[Any]) -> tuple[pd.DataFrame, str | None,
                                                                                        list[int]]:
        """The input rows of ``keys`` for ``served``.

        Returns:
            The rows found (index: the request positions), the table's as_of, and the
            positions whose key the table does not hold.

        Raises:
            RequestError: No materialization the model can read (a 422 naming the key column).
        """
        from engine.errors import RequestError

        table = self.table(served)
        if table is None:
            raise RequestError(422, f"the feature store {self.store.root} holds no materialization of this model's "
                                    "features (mlops features materialize writes one); give every input column instead",
                               row=positions[0], column=served.key)
        index = table.frame.index
        found = index.get_indexer(pd.Index(keys, dtype=index.dtype if _same_kind(keys, index) else object))
        unknown = [p for p, i in zip(positions, found, strict=True) if i < 0]
        hits = [(p, i) for p, i in zip(positions, found, strict=True) if i >= 0]
        rows = table.frame.iloc[[i for _, i in hits]]
        rows = rows.set_axis(pd.Index([p for p, _ in hits], dtype="int64"), axis=0)
        return rows, table.as_of, unknown

    def table(self, served: Served) -> _Loaded | None:
        """The latest materialization ``served`` can read (rescanned every ``rescan_s`` at most)."""
        now = time.monotonic()
        with self._lock:
            scanned = self._scanned.get(served.sha256)
            loaded = self._loaded.get(served.sha256)
            if scanned is not None and now - scanned[0] < self.rescan_s:
                return loaded
            stamp = _stamp(self.store.tables)
            if scanned is not None and scanned[1] == stamp:
                self._scanned[served.sha256] = (now, stamp)
                return loaded
            best = self._latest(served)
            if best is not None and (loaded is None or best.key != loaded.key):
                frame = self.store.get(best.key)
                if frame is not None and served.key in frame.columns:
                    new = _Loaded(best.key, best.manifest.get("as_of"), best.manifest.get("created_at"),
                                  frame.set_index(served.key)[served.columns])
                    if loaded is not None:
                        log.info("feature store: serving by key from the materialization as of %s (table %s, %d rows)",
                                 new.as_of, best.key[:12], len(frame))
                    loaded = self._loaded[served.sha256] = new
            self._scanned[served.sha256] = (now, stamp)
            return loaded

    def _latest(self, served: Served) -> StoredTable | None:
        trained = [t for t in served.feature_tables if t.get("table") == "features"]
        definition = trained[0].get("definition_hash") if trained else None
        groups = sorted(str(t.get("definition_hash")) for t in served.feature_tables if "group" in t)
        needed = {served.key, *served.columns}
        candidates = []
        for table in self.store.list():
            manifest = table.manifest
            if manifest.get("kind") != "features" or not needed <= set(manifest.get("columns") or []):
                continue
            if definition and manifest.get("definition_hash"):
                if manifest["definition_hash"] != definition:
                    continue
            elif sorted(str(g.get("definition_hash")) for g in manifest.get("groups") or []) != groups:
                continue
            candidates.append(table)
        return max(candidates, key=lambda t: (str(t.manifest.get("as_of") or ""),
                                              str(t.manifest.get("created_at") or "")), default=None)

    def describe(self, served: Served) -> dict[str, Any]:
        """What ``GET /model`` says about serving by key."""
        table = self.table(served)
        return {"path": str(self.store.root), "key": served.key,
                "table": table.key if table else None, "as_of": table.as_of if table else None,
                "rows": len(table.frame) if table else 0, "created_at": table.created_at if table else None}


def _stamp(folder: Path) -> Any:
    try:
        info = folder.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _same_kind(keys: list[Any], index: pd.Index) -> bool:
    """Whether the keys can be looked up as the index's dtype (ints in an integer index)."""
    if pd.api.types.is_integer_dtype(index):
        return all(type(k) is int for k in keys)
    return False

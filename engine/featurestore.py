"""The feature store: content-addressed Parquet tables, built once and reused.

A table's key is a hash of everything that decides its content: the feature
definitions, the fingerprints of the source data, the cut-off ``as_of`` and the
version of the feature code. A run whose key exists reads the table instead of
computing it, across runs and across projects that point at the same folder.

Layout under the store's root (any tool can read the tables)::

    tables/<key>.parquet   the materialised table
    tables/<key>.json      its manifest, written last: no manifest, no table
    groups/<name>.json     each named group's definitions over time and who used them

Writes are atomic (temp file, then rename) and the shared group history is updated
under a file lock, so parallel sweep workers and concurrent projects are safe. Two
processes building the same key at once both write the same content; the last
rename wins and either way one valid table remains.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from engine.files import atomic_path, locked, sha256_file, write_json

log = logging.getLogger(__name__)


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

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r})"

    def get(self, key: str) -> pd.DataFrame | None:
        """The table stored under ``key``, or None when it is absent or damaged.

        The Parquet file's sha256 is checked against its manifest; a mismatch (a
        truncated or edited file) is logged and treated as a miss, so it is rebuilt.
        """
        manifest = self.manifest(key)
        if manifest is None:
            return None
        path = self.tables / f"{key}.parquet"
        try:
            if sha256_file(path) != manifest.get("sha256"):
                log.warning("feature store: table %s does not match its manifest; rebuilding it", key[:12])
                return None
            return pd.read_parquet(path)
        except OSError:
            return None

    def put(self, key: str, frame: pd.DataFrame, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``frame`` under ``key``: the Parquet file first, then its manifest."""
        self.tables.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.tables / f"{key}.parquet") as tmp:
            # Dictionary encoding pays for text and categories, not for floats (it is
            # most of the write time there); lz4 is the fastest codec pyarrow offers.
            dictionary = [str(c) for c in frame.columns if not pd.api.types.is_float_dtype(frame[c])]
            frame.to_parquet(tmp, index=False, compression="lz4", use_dictionary=dictionary)
            checksum = sha256_file(tmp)
            size = tmp.stat().st_size
        record = {
            **manifest,
            "key": key,
            "rows": len(frame),
            "columns": [str(c) for c in frame.columns],
            "bytes": size,
            "sha256": checksum,
            "created_at": _now(),
        }
        write_json(self.tables / f"{key}.json", record)
        return record

    def manifest(self, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.tables / f"{key}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def list(self) -> Iterator[StoredTable]:
        """Every complete table (one with a manifest), oldest first."""
        found = []
        for path in self.tables.glob("*.json") if self.tables.is_dir() else ():
            manifest = self.manifest(path.stem)
            if manifest is not None:
                found.append(StoredTable(path.stem, manifest))
        yield from sorted(found, key=lambda t: str(t.manifest.get("created_at", "")))

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
        self.groups.mkdir(parents=True, exist_ok=True)
        path = self.groups / f"{name}.json"
        with locked(self.root / ".lock"):
            try:
                history = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                history = {"name": name, "definitions": []}
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
        try:
            return json.loads((self.groups / f"{name}.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

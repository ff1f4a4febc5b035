"""The run cache: a run that already succeeded with the same inputs is reused, not retrained.

A run's cache key hashes what decides its result: the resolved config (minus the keys
that only say where to record it or why), the fingerprint of every data source, and
the code (the project's and the engine's git commit plus a hash of any uncommitted
diff and of untracked Python files, and the versions of the packages that decide
results, estimator plugins included). Every training run records
its key, so ``cache=true`` finds earlier runs made with or without the cache.

Re-running a sweep that was killed halfway with ``cache=true`` therefore runs only the
jobs that did not succeed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.files import atomic_path, sha256_file
from engine.store import tracking

log = logging.getLogger(__name__)

#: Config keys that do not change a run's result.
VOLATILE = ("tracking", "cache", "hypothesis", "register", "select", "report", "name")

#: What a reused run takes from the earlier run's folder (hard links where possible);
#: an earlier run missing any of the first four is not reused, so a run whose model is
#: a pickle (model.joblib, written before models were saved with skops) is retrained.
REQUIRED = ("quality.json", "metrics.json", "predictions.parquet", "model/model.skops")
ARTIFACTS = (*REQUIRED, "requirements.json", "model/model.skops.sha256", "model/input_schema.json",
             "model/input_domain.json", "model/reference_profile.json")  # the model's training domain (serving), in run.json's model record

#: What a reused run's record takes from the earlier record.
FIELDS = ("features", "quality", "speed", "model", "metrics", "requirements")


def key(resolved: Mapping[str, Any], fingerprints: Mapping[str, str], provenance: Mapping[str, Any]) -> str:
    """The cache key of a run: sha256 of its config, data and code."""
    code = {
        "project": _code(provenance.get("git")),
        "engine": _code((provenance.get("engine") or {}).get("git")),
        "packages": provenance.get("packages"),
        "python": provenance.get("python"),
    }
    config = {k: v for k, v in resolved.items() if k not in VOLATILE}
    if isinstance(config.get("features"), Mapping):  # where the feature store lives changes no feature
        config["features"] = {k: v for k, v in config["features"].items() if k != "store"}
    payload = json.dumps({"config": config, "data": dict(sorted(fingerprints.items())), "code": code},
                         sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def find(store: tracking.RunStore | None, cache_key: str, exclude: str) -> dict[str, Any] | None:
    """The latest succeeded training run with this key whose model still matches its record."""
    if store is None:
        return None
    try:
        found = store.search(tag=("cache_key", cache_key))
    except (EngineError, sqlite3.Error, OSError) as exc:
        log.warning("run cache: the run store cannot be searched (%s); training instead", str(exc).splitlines()[0])
        return None
    candidates = [r for r in found if r["id"] != exclude and r.get("status") == "succeeded"
                  and r.get("tags", {}).get("kind", "run") == "run"]
    for run in sorted(candidates, key=lambda r: r.get("started_at") or "", reverse=True):
        record = _record(Path(run.get("run_dir") or ""))
        if record is not None and record.get("status") == "succeeded" and record.get("cache_key") == cache_key:
            return record
    return None


def reuse(record: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    """Link (or copy) the earlier run's artifacts into ``run_dir``; return the fields to record.

    Raises:
        OSError: An artifact cannot be linked or copied, or the linked model no longer
            matches its recorded sha256 (it changed after :func:`find`).
    """
    source = Path(record["run_dir"])
    for name in ARTIFACTS:
        if not (source / name).is_file():
            continue
        target = run_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            try:
                os.link(source / name, tmp)
            except OSError:  # another file system, or links not allowed: copy
                shutil.copyfile(source / name, tmp)
    model = record["model"]
    if sha256_file(run_dir / model["path"]) != model["sha256"]:
        raise OSError(f"the model of run {str(record['id'])[:8]} changed while it was being reused")
    return {k: record[k] for k in FIELDS if k in record}


def _record(run_dir: Path) -> dict[str, Any] | None:
    """A run folder's record, if it is readable and its model matches the recorded sha256."""
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    model = record.get("model") or {}
    path = run_dir / str(model.get("path", ""))
    if model.get("path") != REQUIRED[-1]:  # a pickle of an earlier version is never passed on
        log.warning("run cache: run %s has no %s model; not reused", str(record.get("id"))[:8], REQUIRED[-1])
        return None
    if not model.get("sha256") or not path.is_file() or sha256_file(path) != model["sha256"]:
        log.warning("run cache: run %s has no model matching its record; not reused", str(record.get("id"))[:8])
        return None
    missing = [name for name in REQUIRED if not (run_dir / name).is_file()]
    if missing:
        log.warning("run cache: run %s lacks %s; not reused", str(record.get("id"))[:8], ", ".join(missing))
        return None
    return record


def _code(git: Mapping[str, Any] | None) -> Any:
    if not git:
        return None
    return {"commit": git.get("commit"), "diff": git.get("diff_sha256"), "untracked_py": git.get("untracked_py")}

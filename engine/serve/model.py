"""The model a server holds: loaded, verified, and what ``GET /model`` tells about it.

MODEL is ``NAME@ALIAS``, ``NAME/VERSION``, ``NAME`` (its latest version) or a run (an
id, an id prefix, a run directory, ``latest``). A registered version is loaded through
:func:`engine.store.registry.load_model`, which checks the file's sha256 against the
registry and the run's records and reads it with skops' trusted types; its training
domain (``input_domain.json``) is checked against the sha256 the registry recorded. A run
is loaded from its directory, checked against its ``run.json``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from engine.errors import UsageError
from engine.stages import domain as domains
from engine.stages.model import as_model_input
from engine.store import registry as registries


@dataclass(frozen=True)
class Served:
    """One loaded model and its records: immutable, so a swap replaces it whole."""

    model: Any
    domain: dict[str, Any]
    name: str
    version: int | None
    alias: str | None
    run_id: str
    sha256: str
    threshold: float
    config_sha256: str | None = None
    data_fingerprints: dict[str, Any] = field(default_factory=dict)
    feature_tables: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    feature_store: str | None = None
    as_of: str | None = None
    #: The training config's quality rules that judge one input row (input_domain.json).
    rules: tuple[domains.RowRule, ...] = ()
    loaded_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def columns(self) -> list[str]:
        """The input columns, in the Pipeline's order."""
        return list(self.domain["columns"])

    @property
    def key(self) -> str | None:
        """The entity key's name, when the model was trained on keyed rows."""
        return (self.domain.get("key") or {}).get("name")

    @property
    def label(self) -> str:
        """``churn/2`` (or ``run 1a2b3c4d``)."""
        return f"{self.name}/{self.version}" if self.version is not None else f"run {self.run_id[:8]}"

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """The positive class's probability for each row of ``frame`` (the input columns)."""
        if list(frame.columns) != self.columns:  # the checked rows are in this order already: no copy
            frame = frame[self.columns]
        return np.asarray(self.model.predict_proba(model_input(frame))[:, 1], dtype=float)

    def identity(self) -> dict[str, Any]:
        """What every answer says about the model that scored it."""
        return {"name": self.name, "version": self.version, "alias": self.alias, "run_id": self.run_id,
                "sha256": self.sha256}

    def describe(self) -> dict[str, Any]:
        """The body of ``GET /model``."""
        return {**self.identity(), "threshold": self.threshold, "config_sha256": self.config_sha256,
                "training_data": self.data_fingerprints, "as_of": self.as_of, "loaded_at": self.loaded_at,
                "input_schema": {"key": self.domain.get("key"), "columns": self.domain["columns"],
                                 "training_rows": self.domain.get("rows")},
                "environment": self.environment}


def model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as the Pipeline takes it (:func:`engine.stages.model.as_model_input`).

    Numbers pass as they are; text columns (pandas' str dtype, which the input checks'
    frames and the feature store's tables have) become objects with NaN for missing in one
    step; anything else (booleans, categoricals) goes through ``as_model_input`` itself.
    """
    ready: dict[str, pd.Series] = {}
    other: list[str] = []
    for column, dtype in frame.dtypes.items():
        if dtype == object or (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)):
            continue
        if isinstance(dtype, pd.StringDtype):  # text already: to objects, NaN for missing, no astype(str) pass
            ready[str(column)] = pd.Series(frame[column].to_numpy(dtype=object, na_value=np.nan), index=frame.index,
                                           dtype=object)
        else:
            other.append(str(column))
    if other:
        converted = as_model_input(frame[other])
        ready.update({c: converted[c] for c in other})
    return frame.assign(**ready) if ready else frame


def load(ref: str, registry: Path, tracking_uri: str | None = None, allow_version_mismatch: bool = False) -> Served:
    """Load MODEL: a registered ``NAME@ALIAS`` / ``NAME/VERSION`` / ``NAME``, or a run.

    A ref that looks like a model reference and names a registered model is one; any
    other ref is looked up among the runs of the metadata store.

    Raises:
        UsageError: No such model, alias, version or run.
        ModelIntegrityError: The model or its domain does not match its records.
    """
    store = registries.Registry(registry, tracking_uri)
    match = registries.REF.match(ref)
    if match and (match["alias"] or match["version"] or match["name"] in store.names()):
        return load_version(store, ref, tracking_uri, allow_version_mismatch=allow_version_mismatch)
    return load_run(ref, tracking_uri, allow_version_mismatch)


def load_version(store: registries.Registry, ref: str, tracking_uri: str | None = None,
                 alias: str | None = None, allow_version_mismatch: bool = False) -> Served:
    """Load a registered version; an alias in ``ref`` is resolved once, here
    (:class:`~engine.serve.follow.AliasFollower` follows it).

    Args:
        alias: The alias to report for an exact ``NAME/VERSION`` ref (the follower's).
    """
    entry, version = store.resolve(ref)
    match = registries.REF.match(ref)
    alias = (match["alias"] if match else None) or alias
    exact = f"{entry['name']}/{version['version']}"
    model = registries.load_model(exact, store.root, tracking_uri, allow_version_mismatch)
    payload = store.input_domain(version)
    if payload is None:
        raise UsageError(f"usage error: {exact} was registered without its input domain (input_domain.json, "
                         "written by runs of this engine version); re-run its run and register it again to serve it")
    domain = _domain(payload, store.root / str(version["input_domain"]))
    return Served(model=model, domain=domain, rules=_rules(domain, store.root / str(version["input_domain"])),
                  name=entry["name"], version=int(version["version"]), alias=alias,
                  run_id=str(version["run_id"]), sha256=str(version["model_sha256"]),
                  threshold=_threshold(model, version.get("threshold")),
                  config_sha256=version.get("config_sha256"),
                  data_fingerprints=dict(version.get("data_fingerprints") or {}),
                  feature_tables=list(version.get("feature_tables") or []),
                  environment=dict(version.get("environment") or {}), as_of=version.get("as_of"),
                  feature_store=_feature_store(version.get("run_dir")))


def load_run(ref: str, tracking_uri: str | None = None, allow_version_mismatch: bool = False) -> Served:
    """Load the model of a succeeded run, checked against its ``run.json``."""
    from engine.store import environment, runs, tracking

    path = Path(ref)
    if not (path / "run.json").is_file():
        store = tracking.open_store(tracking_uri or tracking.DEFAULT_URI, Path.cwd())
        path = Path(runs.resolve(store, ref, runs.all_runs(store), succeeded=True)["run_dir"])
    try:
        record = json.loads((path / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"usage error: {path} has no readable run.json") from exc
    model_record = record.get("model") if isinstance(record, dict) else None
    if not isinstance(model_record, dict) or record.get("status") != "succeeded":
        raise UsageError(f"usage error: {ref!r} is not a succeeded training run with a model")
    model_path = path / str(model_record.get("path", ""))
    if model_path.name != "model.skops":
        raise UsageError(f"usage error: run {str(record['id'])[:8]} has no model.skops; serve a registered version")
    lineage = registries.lineage(record)  # the same fields a registered version records
    environment.compare(lineage["environment"], f"run {str(record['id'])[:8]}", allow_version_mismatch)
    payload = model_path.read_bytes()
    if hashlib.sha256(payload).hexdigest() != model_record.get("sha256"):
        raise registries.ModelIntegrityError(f"registry error: refusing to load {model_path}: it does not match the "
                                             "sha256 in its run.json (the file was changed or replaced)")
    model = registries.read_model(payload, model_path)
    declared = model_record.get("input_domain") or {}
    domain_path = path / str(declared.get("path", ""))
    if domain_path.name != domains.DOMAIN_FILE or not domain_path.is_file():
        raise UsageError(f"usage error: run {str(record['id'])[:8]} has no input domain (input_domain.json, written "
                         "by runs of this engine version); re-run it to serve it")
    domain_bytes = domain_path.read_bytes()
    if hashlib.sha256(domain_bytes).hexdigest() != declared.get("sha256"):
        raise registries.ModelIntegrityError(f"registry error: refusing {domain_path}: it does not match the sha256 "
                                             "in its run.json (the file was changed or replaced)")
    config = path / "config.resolved.yaml"
    domain = _domain(domain_bytes, domain_path)
    return Served(model=model, domain=domain, rules=_rules(domain, domain_path), name=str(record.get("name", "run")),
                  version=None, alias=None, run_id=str(record["id"]), sha256=str(model_record["sha256"]),
                  threshold=_threshold(model, model_record.get("threshold")),
                  config_sha256=hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None,
                  data_fingerprints=lineage["data_fingerprints"], feature_tables=lineage["feature_tables"],
                  environment=lineage["environment"], as_of=lineage["as_of"],
                  feature_store=_feature_store(str(path)))


def warm_up(served: Served, rows: pd.DataFrame | None = None) -> float:
    """Score a few rows once, so the first request does not pay for lazy set-up; return the seconds.

    Then every object alive (the model, the libraries, the warm-up's own) leaves the
    garbage collector's generations (``gc.freeze``): they live as long as the model
    does, and a full collection walking them all paused one request of 1,000 rows in
    every second or so by 200-300 ms (``bench/serve.py``). Objects freed by their
    reference counts, as a swapped-out model's are, are still freed.

    Args:
        rows: Rows to score (recently logged requests); default one typical row built
            from the training domain.

    Raises:
        Exception: Whatever the model raises on them: it is not fit to serve.
    """
    started = time.perf_counter()
    frame = rows if rows is not None and len(rows) else typical_row(served.domain)
    served.scores(frame)
    gc.freeze()
    return time.perf_counter() - started


def typical_row(domain: dict[str, Any]) -> pd.DataFrame:
    """One row inside the training domain: each number's midrange, each column's first category."""
    values: dict[str, Any] = {}
    for name, spec in domain["columns"].items():
        if spec["type"] in ("number", "integer"):
            low, high = spec.get("min"), spec.get("max")
            values[name] = [float((low + high) / 2) if low is not None and high is not None else np.nan]
        else:
            categories = spec.get("categories") or [None]
            first = categories[0]
            values[name] = [(first == "True") if spec["type"] == "boolean" and first is not None else first]
    return pd.DataFrame(values, columns=list(domain["columns"]))


def _domain(payload: bytes, where: Path) -> dict[str, Any]:
    try:
        return domains.read(payload, str(where))
    except ValueError as exc:
        raise registries.ModelIntegrityError(f"registry error: refusing the input domain: {exc}") from exc


def _rules(domain: dict[str, Any], where: Path) -> tuple[domains.RowRule, ...]:
    try:
        return tuple(domains.read_rules(domain, str(where)))
    except ValueError as exc:
        raise registries.ModelIntegrityError(f"registry error: refusing the input domain's rules: {exc}") from exc


def _threshold(model: Any, recorded: Any) -> float:
    """The threshold the model decides with (its own attribute), else the recorded one."""
    value = getattr(model, "threshold", recorded)
    return float(value if value is not None else 0.5)


def _feature_store(run_dir: str | None) -> str | None:
    """The feature store the run read its features from (run.json ``features.store``)."""
    if not run_dir:
        return None
    try:
        record = json.loads((Path(run_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    features = record.get("features") if isinstance(record, dict) else None
    store = features.get("store") if isinstance(features, dict) else None
    return str(store) if store else None

"""The model registry: numbered versions of a named model, aliases, and verified loading.

The entries (versions, aliases and the append-only alias history) are rows of the
metadata store (:mod:`engine.store.registrydb`): the SQLite file by default
(``sqlite:///outputs/mlops.db``), a PostgreSQL server for a team; the same tables and
queries on both, each change one transaction. The model files stay on disk, under the
registry's folder (default ``outputs/registry``, the artifact root each version records)::

    <name>/<version>/model.skops  the registered Pipeline, copied from its run
                                  (model.joblib: a pickle registered by an earlier version)
    <name>/<version>/input_schema.json  the columns it takes, with their types and sources
                                  (its sha256 checked against the run's record when copied)
    <name>/<version>/input_domain.json  the training domain of its input (serving checks
                                  requests against it), sha256 checked when copied and read
    <name>/<version>/reference_profile.json  the training inputs' histograms and the hold-out
                                  scores (mlops monitor), sha256 checked when copied and read
    <name>.json                   an entry kept as a file by an engine before the store kept
                                  them: read while the store has no entry of that name, moved
                                  into the store whole (alias history included) by the name's
                                  next change, in that change's transaction, then renamed
                                  <name>.json.moved and never read again

A version records its run, the model's sha256, the config's hash and the metrics.
:func:`load_model` checks the file's sha256 against that record and against what the
run recorded (its ``run.json`` and the metadata store's row), then reads it with
:func:`read_model`, which refuses any type outside a trusted list before it builds an
object: a file that was changed or substituted is refused, and one whose hashes were
all edited to match still cannot run code. Model files are written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.config import targets
from engine.errors import EngineError, UsageError
from engine.files import atomic_path
from engine.store import environment, tracking

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("outputs") / "registry"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))?$")
#: The longest model name: registry files were written atomically through a temp file
#: beside them, ``.<name>.json.XXXXXXXX.tmp`` (engine.files.atomic_path), and that name
#: had to fit the file systems' 255 bytes; kept, so every registered name stays valid.
MAX_NAME_BYTES = 255 - len("..json.XXXXXXXX.tmp")
#: The model files a run may hold: skops, and the pickles earlier versions wrote.
MODEL_FILES = ("model.skops", "model.joblib")
#: How a zip file, hence a skops file, starts; anything else is a pickle (or garbage).
ZIP_MAGIC = b"PK\x03\x04"

#: The types a model file may hold beyond those skops trusts by default (Python's plain
#: values and containers; numpy's arrays, dtypes, ufuncs and bit generators; scipy's
#: sparse matrices; scikit-learn's public estimators and its loss and binning helpers)
#: and the allowlisted estimators (:func:`engine.config.targets.allowed_targets`, entry-point
#: additions included): the scikit-learn and numpy classes the built-in estimators keep
#: in their fitted state, each reviewed. Building one runs no code beyond setting its
#: attributes; the compiled ones whose predict follows indices read from the file are
#: bounds-checked after loading (:func:`_index_problems`). Not every ``sklearn.*`` and
#: ``numpy.*`` name: those packages hold classes that act on their attributes when they
#: are merely dropped (``numpy.lib._datasource.DataSource`` deletes the folder it names
#: when garbage-collected), and their functions (``FunctionTransformer(func=...)``) could
#: be chained into running code. The one function trusted beyond skops' ufuncs is
#: ``check_array``, which only validates an array.
TRUSTED_INTERNALS: dict[str, str] = {
    "numpy.dtype": "the dtype class (OneHotEncoder's dtype parameter): a value",
    "sklearn.tree._tree.Tree": "the nodes of every decision tree (forests, gradient boosting, AdaBoost)",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": "HistGradientBoosting's trees",
    "sklearn.neighbors._kd_tree.KDTree": "KNeighbors' search tree",
    "sklearn.neighbors._ball_tree.BallTree": "KNeighbors' search tree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64": "KNeighbors' distance: reads no array of the file",
    "sklearn.metrics._dist_metrics.ManhattanDistance64": "KNeighbors' distance: reads no array of the file",
    "sklearn.metrics._dist_metrics.ChebyshevDistance64": "KNeighbors' distance: reads no array of the file",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64": "KNeighbors' distance: p and optional weights",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer": "MLP's training state; predict never uses it",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer": "MLP's training state; predict never uses it",
    "sklearn.utils.validation.check_array": "HistGradientBoosting's input check with categorical_features",
    "functools.partial": "check_array with its arguments: wraps only a function trusted here",
}


#: A staging folder older than this was left by a killed registration (seconds).
STALE_STAGING_S = 3600


class ModelIntegrityError(EngineError):
    """A model file that must not be loaded: changed, substituted, or holding untrusted types."""


class Registry:
    """Named models: their entries in the metadata store, their files in a folder.

    The versions, aliases and alias history are rows of the store at ``tracking_uri``
    (else ``$MLOPS_TRACKING_URI``, else ``sqlite:///outputs/mlops.db``; a relative SQLite
    path is relative to the current folder), each change one transaction
    (:mod:`engine.store.registrydb`); ``root`` is the artifact root the model files are
    copied to (for a team, a path it shares), recorded in each version. A model still
    in a ``<name>.json`` file of ``root`` (an earlier engine's) is read from it until
    its next change moves it into the store.

    Args:
        root: The registry's folder (the artifact root).
        tracking_uri: The metadata store; default ``$MLOPS_TRACKING_URI`` or ``sqlite:///outputs/mlops.db``.

    Raises:
        UsageError: A URI of a scheme that has no store (the message lists them).
    """

    def __init__(self, root: Path, tracking_uri: str | None = None) -> None:
        from engine.store.registrydb import StoreEntries

        self.root = root
        uri = tracking_uri or os.environ.get("MLOPS_TRACKING_URI") or tracking.DEFAULT_URI
        if not uri.startswith("sqlite:///") and uri.split(":", 1)[0] not in tracking.SERVER_SCHEMES:
            tracking.open_store(uri, Path.cwd())  # the one line that lists the schemes
        self.entries = StoreEntries(uri, Path.cwd())

    def _file(self, name: str) -> Path:
        return self.root / f"{check_name(name)}.json"

    def read(self, name: str) -> dict[str, Any]:
        """The record of one model: versions, aliases, alias history.

        Raises:
            UsageError: Not a model name (a path, say), or no model of that name.
            EngineError: The store's entry or the model's JSON file is not a registry
                entry's shape (one line naming where).
        """
        entry = self.entries.read(check_name(name))
        if entry is not None:
            _check_entry(entry, name, f"the registry in {self.entries.shown}")
            return entry
        entry = self._read_file(name)
        if entry is None:
            known = ", ".join(self.names()) or "(none yet)"
            raise UsageError(f"usage error: no registered model {name!r}; expected one of: {known}")
        return entry

    def _read_file(self, name: str) -> dict[str, Any] | None:
        return read_entry_file(self._file(name), name)

    def names(self) -> list[str]:
        """The registered models' names: the store's, and those still in JSON files (files
        whose name is not a model name are not models)."""
        stored = set(self.entries.names())
        if not self.root.is_dir():
            return sorted(stored)
        return sorted(stored | {p.stem for p in self.root.glob("*.json") if NAME.match(p.stem) and ".." not in p.stem})

    def stamp(self, name: str) -> Any:
        """A value that changes whenever the model's entry does (what ``mlops serve`` polls):
        the count of its versions and the id of its last alias move, two indexed reads."""
        return self.entries.stamp(name)

    def _update(self, name: str, change: Any) -> Any:
        """Apply ``change(entry)`` to the model's entry (a new one if none) and save it, in
        one store transaction that serialises the name's changes. An entry still in its
        JSON file is moved into the store in that transaction; the file is then renamed
        ``<name>.json.moved`` (kept for people, never read again)."""
        moved: list[bool] = []

        def read_file() -> dict[str, Any] | None:
            entry = self._read_file(name)
            moved.append(entry is not None)
            return entry

        self.root.mkdir(parents=True, exist_ok=True)
        where = f"the registry in {self.entries.shown}"
        result = self.entries.update(name, change, read_file, lambda entry: _check_entry(entry, name, where))
        if moved and moved[-1]:
            try:
                os.replace(self._file(name), self._file(name).with_name(f"{name}.json.moved"))
            except OSError as exc:  # the store holds the entry and wins: the file is only left behind
                log.warning("registry: %s moved into the store, but the file could not be renamed: %s",
                            self._file(name), exc.strerror)
        return result

    def register(self, name: str, run_dir: Path) -> dict[str, Any]:
        """Register the model of a succeeded run as the next version of ``name``.

        Raises:
            UsageError: A bad name, or a run that did not succeed (a failed run, or one
                that failed a gate, is never registered), or one without a model.
            ModelIntegrityError: The run's model file does not match its run record, is
                a pickle (an earlier version's), or holds types outside the trusted list.
        """
        check_name(name)  # before anything is written: a bad name leaves no model file behind
        try:
            record = json.loads((run_dir / "run.json").read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"usage error: {run_dir} has no readable run.json") from exc
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise UsageError(f"usage error: {run_dir / 'run.json'} is not a run record: expected an object "
                             f"with an 'id', got {_shape(record)}")
        if record.get("status") != "succeeded" or record.get("kind", "run") != "run":
            raise UsageError(f"usage error: run {record['id'][:8]} is {record.get('status')!r} "
                             f"({record.get('kind', 'run')}); only a succeeded training run can be registered")
        model = record.get("model") if isinstance(record.get("model"), dict) else {}
        source = run_dir / str(model.get("path", ""))
        if not model.get("sha256") or not source.is_file():
            raise UsageError(f"usage error: run {record['id'][:8]} has no model file")
        if source.name not in MODEL_FILES:
            raise UsageError(f"usage error: run {record['id'][:8]} names its model {model.get('path')!r}; "
                             f"expected model/{' or model/'.join(MODEL_FILES)}")
        payload = source.read_bytes()  # hash and check the bytes that are copied: no swap in between
        if hashlib.sha256(payload).hexdigest() != model["sha256"]:
            raise ModelIntegrityError(f"registry error: {source} does not match the sha256 in its run.json; "
                                      "refusing to register a model that changed after its run")
        if not payload.startswith(ZIP_MAGIC):
            raise ModelIntegrityError(f"registry error: refusing to register {source}: a pickle saved by an earlier "
                                      "version (pickles can run code when loaded); re-run it (mlops reproduce "
                                      f"{run_dir}) to save it as model.skops, then register that run")
        _refuse_untrusted(payload, source, "register")
        # Files the run recorded beside its model (runs before them have none), checked
        # against run.json and copied beside the registered model.
        companions = {field: (filename, _companion(record, run_dir, field, filename))
                      for field, filename in (("input_schema", INPUT_SCHEMA_FILE), ("input_domain", DOMAIN_FILE),
                                                  ("reference_profile", PROFILE_FILE))}
        metrics: Any = {}
        if (run_dir / "metrics.json").exists():
            try:
                metrics = json.loads((run_dir / "metrics.json").read_text())
            except (OSError, ValueError):
                metrics = None
            if not isinstance(metrics, dict) or not isinstance(metrics.get("metrics", {}), dict):
                raise UsageError(f"usage error: {run_dir / 'metrics.json'}: expected an object with the run's "
                                 f"metrics, got {_shape(metrics)}")
            metrics = metrics.get("metrics", {})
        config_sha = hashlib.sha256((run_dir / "config.resolved.yaml").read_bytes()).hexdigest() \
            if (run_dir / "config.resolved.yaml").exists() else None

        # The files are written (and synced) before the store's write transaction, which
        # then only links them into place: a large model does not hold the store's
        # write lock, which every other writer (a run, a promotion) waits on.
        staging = self._stage(name, {source.name: payload, **{filename: companion[0] for filename, companion
                                                             in companions.values() if companion is not None}})

        def add(entry: dict[str, Any]) -> dict[str, Any]:
            version = 1 + max((v["version"] for v in entry["versions"]), default=0)
            target = _place(staging, self.root / name / str(version)) / source.name
            added: dict[str, Any] = {}
            for field, (filename, companion) in companions.items():
                if companion is not None:
                    added.update({field: str((target.parent / filename).relative_to(self.root)),
                                  f"{field}_sha256": companion[1]})
            # what serving reports of the model's run (runs before serving have no domain)
            served = lineage(record) if companions["input_domain"][1] is not None else {}
            shared = {"artifact_root": str(self.root.resolve())}
            entry["versions"].append({
                "version": version, "run_id": record["id"], "run_dir": str(run_dir.resolve()),
                "model": str(target.relative_to(self.root)), "model_sha256": model["sha256"], **added,
                "model_target": model.get("target"), "threshold": model.get("threshold"),
                "config_sha256": config_sha, "metrics": metrics,
                "registered_at": _now(), **served, **shared,
            })
            return entry["versions"][-1]

        try:
            return self._update(name, add)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # placed by links; a failed change leaves nothing

    def _stage(self, name: str, files: Mapping[str, bytes]) -> Path:
        """Write a new version's files into a hidden folder beside the versions, each synced.

        Staging folders a killed registration left behind (older than an hour: no
        registration takes that long to write its files) are removed first.
        """
        folder = self.root / name
        for stale in folder.glob(".staging-*") if folder.is_dir() else ():
            try:
                if time.time() - stale.stat().st_mtime > STALE_STAGING_S:
                    shutil.rmtree(stale, ignore_errors=True)
            except OSError:  # another registration removed or placed it meanwhile
                pass
        staging = folder / f".staging-{uuid.uuid4().hex}"
        staging.mkdir(parents=True)
        try:
            for filename, payload in files.items():
                with atomic_path(staging / filename) as tmp:
                    tmp.write_bytes(payload)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def promote(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """Point ``alias`` at a version; the alias history keeps every move."""
        if not re.match(r"^[A-Za-z0-9_-]+$", alias):
            raise UsageError(f"usage error: alias {alias!r} must be letters, digits, '_', '-'")
        self.read(name)  # an unknown model is a usage error before anything is created

        def move_alias(entry: dict[str, Any]) -> dict[str, Any]:
            self._version(entry, version)
            move = {"alias": alias, "version": version, "previous": entry["aliases"].get(alias), "at": _now()}
            entry["aliases"][alias] = version
            entry["alias_history"].append(move)
            return move

        return self._update(name, move_alias)

    def resolve(self, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``churn``, ``churn@champion`` or ``churn/3`` -> (model record, version record)."""
        match = REF.match(ref)
        if match is None:
            raise UsageError(f"usage error: {ref!r} is not NAME, NAME@ALIAS or NAME/VERSION")
        entry = self.read(match["name"])
        if match["alias"]:
            if match["alias"] not in entry["aliases"]:
                raise UsageError(f"usage error: model {match['name']!r} has no alias {match['alias']!r}; "
                                 f"expected one of: {', '.join(entry['aliases']) or '(none yet)'}")
            return entry, self._version(entry, entry["aliases"][match["alias"]])
        if match["version"]:
            return entry, self._version(entry, int(match["version"]))
        if not entry["versions"]:
            raise UsageError(f"usage error: model {match['name']!r} has no versions")
        return entry, entry["versions"][-1]

    def _version(self, entry: Mapping[str, Any], version: int) -> dict[str, Any]:
        for candidate in entry["versions"]:
            if candidate["version"] == version:
                return dict(candidate)
        known = ", ".join(str(v["version"]) for v in entry["versions"])
        raise UsageError(f"usage error: model {entry['name']!r} has no version {version}; expected one of: {known}")

    def model_path(self, version: Mapping[str, Any]) -> Path:
        """The version's model file (a relative path inside the registry: checked by :meth:`read`);
        under the artifact root the version recorded when this host's registry folder lacks it."""
        path = self.root / str(version["model"])
        recorded = version.get("artifact_root")
        if not path.is_file() and isinstance(recorded, str) and (Path(recorded) / str(version["model"])).is_file():
            return Path(recorded) / str(version["model"])
        return path

    def input_domain(self, version: Mapping[str, Any]) -> bytes | None:
        """The bytes of the version's ``input_domain.json``, verified against its recorded sha256
        (:func:`engine.stages.domain.read` parses them); None for a version registered
        without one (by an engine before it).

        Raises:
            ModelIntegrityError: The file is gone, changed, or not a domain file inside the registry.
        """
        return self._companion_bytes(version, "input_domain", DOMAIN_FILE, "input domain")

    def reference_profile(self, version: Mapping[str, Any]) -> bytes | None:
        """The bytes of the version's ``reference_profile.json`` (mlops monitor), verified
        against its recorded sha256; None for a version registered without one.

        Raises:
            ModelIntegrityError: The file is gone, changed, or not a profile inside the registry.
        """
        return self._companion_bytes(version, "reference_profile", PROFILE_FILE, "reference profile")

    def _companion_bytes(self, version: Mapping[str, Any], field: str, filename: str, what: str) -> bytes | None:
        """A file registered beside the version's model (``version[field]``, its sha256 in
        ``version[field + "_sha256"]``), read only from inside the registry and verified."""
        declared = version.get(field)
        if not declared:
            return None
        relative = Path(str(declared))
        if relative.is_absolute() or ".." in relative.parts or relative.name != filename:
            raise ModelIntegrityError(f"registry error: refusing {what} {declared!r}: expected a path inside the "
                                      f"registry ending in {filename}")
        path = self.root / relative
        try:
            payload = path.read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(f"registry error: cannot read the {what} of run "
                                      f"{str(version.get('run_id', '?'))[:8]}: {path} ({exc.strerror})") from exc
        if hashlib.sha256(payload).hexdigest() != version.get(f"{field}_sha256"):
            raise ModelIntegrityError(f"registry error: refusing {path}: its sha256 is not the one the registry "
                                      "recorded (the file was changed or replaced)")
        return payload


#: The files a run writes beside its model (engine.stages.model.INPUT_SCHEMA_FILE and
#: engine.stages.domain.DOMAIN_FILE: the store layer names them, it does not import stages):
#: the columns the model takes, and the training domain of its input.
INPUT_SCHEMA_FILE = "input_schema.json"
DOMAIN_FILE = "input_domain.json"
#: engine.stages.monitor.PROFILE_FILE: the reference profile mlops monitor compares live data with.
PROFILE_FILE = "reference_profile.json"


def _companion(record: Mapping[str, Any], run_dir: Path, field: str, filename: str) -> tuple[bytes, str] | None:
    """A file the run recorded beside its model (``model.<field>: {path, sha256}``), checked
    against that record: (bytes, sha256), or None when the run recorded none.

    Raises:
        ModelIntegrityError: The file is missing or changed since its run recorded it.
    """
    declared = (record.get("model") or {}).get(field)
    if not isinstance(declared, dict):
        return None
    path = run_dir / str(declared.get("path", ""))
    if Path(str(declared.get("path", ""))).name != filename or not path.is_file():
        raise ModelIntegrityError(f"registry error: run {str(record.get('id'))[:8]} records its model's {field} at "
                                  f"{declared.get('path')!r} but {path} is not there; refusing to register it")
    payload = path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != declared.get("sha256"):
        raise ModelIntegrityError(f"registry error: {path} does not match the sha256 in its run.json; refusing to "
                                  f"register a model whose {field} changed after its run")
    return payload, digest


def lineage(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a served model reports of its run: the training data's fingerprints, the
    feature tables it was trained from, and the environment it was trained in."""
    sources = record.get("data") if isinstance(record.get("data"), dict) else {}
    provenance = record.get("provenance") if isinstance(record.get("provenance"), dict) else {}
    features = record.get("features") if isinstance(record.get("features"), dict) else {}
    return {
        "data_fingerprints": {str(n): s.get("fingerprint") for n, s in sources.items() if isinstance(s, dict)},
        "feature_tables": [t for t in features.get("tables") or [] if isinstance(t, dict)],
        "as_of": record.get("as_of"),
        "environment": {"python": provenance.get("python"), "packages": provenance.get("packages") or {}},
    }



def read_entry_file(path: Path, name: str) -> dict[str, Any] | None:
    """The entry an earlier engine kept in a ``<name>.json`` file; None when there is no file.

    Raises:
        EngineError: The file is not JSON, or not a registry file's shape.
    """
    try:
        entry = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineError(f"registry error: {path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise EngineError(f"registry error: cannot read {path}: {exc.strerror}") from exc
    _check_entry(entry, name, path)
    return entry


def file_entries(root: Path) -> dict[str, dict[str, Any]]:
    """The entries still kept in ``<name>.json`` files in ``root`` (not moved into a store), by name.

    Raises:
        EngineError: A file that is damaged (its one-line error).
    """
    if not root.is_dir():
        return {}
    found = {}
    for path in sorted(root.glob("*.json")):
        if NAME.match(path.stem) and ".." not in path.stem:
            entry = read_entry_file(path, path.stem)
            if entry is not None:
                found[path.stem] = entry
    return found


def check_name(name: str) -> str:
    """``name`` if it can name a model: a file name in the registry's folder, never a path.

    Raises:
        UsageError: Not letters, digits, '_', '.', '-' from a letter or digit, or holds
            '..', or ``<name>.json`` is longer than the file system allows.
    """
    size = len(name.encode("utf-8", "surrogateescape"))
    if NAME.match(name) and ".." not in name and size <= MAX_NAME_BYTES:
        return name
    shown = repr(name) if len(name) <= 60 else f"{name[:40]!r}... ({size} bytes)"
    raise UsageError(f"usage error at model name: expected 1 to {MAX_NAME_BYTES} bytes of letters, digits, '_', "
                     f"'.', '-' starting with a letter or digit, without '..' or '/', got {shown}")


def load_model(ref: str, registry: str | Path = DEFAULT_PATH, tracking_uri: str | None = None,
               allow_version_mismatch: bool = False) -> Any:
    """The fitted Pipeline registered as ``ref`` (``churn@champion``, ``churn/2``, ``churn``).

    The file's sha256 must match the registry's record, and the run's own records
    (``run.json`` in its run directory, the metadata store's row) must not disagree
    with it. A skops file is then read by :func:`read_model`: a tampered file whose
    hashes were all edited to match can still run no code. A run or store row that is
    gone (a deleted run, a store not built here) does not block a skops file. A pickle
    saved by an earlier version (``model.joblib``) can run code when loaded, so it loads
    only when the registry, the run's ``run.json`` and the store all record its sha256,
    with a warning; a ``model.skops`` is never read as a pickle.

    Args:
        ref: ``NAME``, ``NAME@ALIAS`` or ``NAME/VERSION``.
        registry: The registry folder.
        tracking_uri: The metadata store; default ``$MLOPS_TRACKING_URI`` or
            ``sqlite:///outputs/mlops.db``, relative to the current folder.
        allow_version_mismatch: Load it even when a package it depends on runs at
            another major version than it was trained with (:mod:`engine.store.environment`).

    Raises:
        ModelIntegrityError: The file does not match its records, or cannot be trusted.
        UsageError: The name, alias or version does not exist.
        EnvironmentMismatch: Trained with another major version of scikit-learn, numpy,
            scipy, pandas or skops than this process runs (a minor one: a warning).
    """
    store = Registry(Path(registry), tracking_uri)
    entry, version = store.resolve(ref)
    label = f"{entry['name']}/{version['version']}"
    environment.compare(version.get("environment"), label, allow_version_mismatch)  # before the file is read
    path = store.model_path(version)
    try:
        payload = path.read_bytes()  # hash and load the same bytes: no swap in between
    except OSError as exc:
        raise ModelIntegrityError(f"registry error: cannot read the file of {label}: {path} ({exc.strerror})") from exc
    expected = version["model_sha256"]
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected:
        raise ModelIntegrityError(
            f"registry error: refusing to load {label}: {path} has sha256 {actual[:12]}, the registry recorded "
            f"{expected[:12]} (the file was changed or replaced)")
    recorded = _run_records(version, tracking_uri)
    for where, sha in recorded.items():
        if sha is not None and sha != expected:
            shown = sha[:12] if re.fullmatch(r"[0-9a-f]{64}", sha) else sha
            raise ModelIntegrityError(
                f"registry error: refusing to load {label}: the registry's sha256 {expected[:12]} for {path} is not "
                f"what {where} recorded ({shown}); the registry file or the run's records were edited")
    # Only a model.joblib may be a pickle: one put in place of a model.skops is refused
    # whatever its records say.
    legacy = path.name == "model.joblib" and not payload.startswith(ZIP_MAGIC)
    if legacy:
        unconfirmed = [where for where, sha in recorded.items() if sha is None]
        if unconfirmed:
            raise ModelIntegrityError(
                f"registry error: refusing to load {label}: {path} is a pickle saved by an earlier version, which can "
                f"run code, and {' and '.join(unconfirmed)} cannot confirm its sha256; re-run run "
                f"{version['run_id'][:8]} and register it again to save it as model.skops")
    return read_model(payload, path, legacy=legacy)


def read_model(payload: bytes, path: str | Path, legacy: bool = False) -> Any:
    """The model in ``payload`` (the bytes of ``path``), built from trusted types only.

    A skops file is refused if it holds a type outside :func:`trusted_types`, checked
    before any object is built or module imported, and if a tree in it indexes outside
    its arrays (:func:`_index_problems`). Its hash is the caller's business: see
    :func:`load_model`.

    Args:
        legacy: Also read a pickle (an earlier version's ``model.joblib``) whose hash
            the caller has confirmed against every record; a warning says so.

    Raises:
        ModelIntegrityError: Not a readable skops file, untrusted types, bad indices, or
            a pickle without ``legacy``.
    """
    if not payload.startswith(ZIP_MAGIC):
        if not legacy:
            raise ModelIntegrityError(f"registry error: refusing to load {path}: expected a skops file, got a pickle "
                                      "or another format (pickles load only through load_model, with their sha256 "
                                      "confirmed by the registry, the run and the store)")
        import joblib

        log.warning("registry: %s is a pickle saved by an earlier version, loaded because its sha256 matches the "
                    "registry, the run and the store; re-run the run and register it again to save it as model.skops",
                    path)
        return joblib.load(io.BytesIO(payload))
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        model = sio.loads(payload, trusted=sorted(trusted_types()))
    except UntrustedTypesFoundException as exc:
        _refuse_untrusted(payload, path)  # names the types
        raise ModelIntegrityError(f"registry error: refusing to load {path}: {_first_line(exc)}") from exc
    except Exception as exc:  # the bytes are anyone's: whatever skops or a class rejects is a refusal
        raise ModelIntegrityError(f"registry error: refusing to load {path}: not a readable skops file: "
                                  f"{type(exc).__name__}: {_first_line(exc)}") from exc
    problems = _index_problems(model)
    if problems:
        raise ModelIntegrityError(f"registry error: refusing to load {path}: {problems[0]}"
                                  + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return model


def trusted_types() -> frozenset[str]:
    """What a model file may hold beyond skops' defaults: :data:`TRUSTED_INTERNALS` and
    the allowlisted estimators."""
    return frozenset(TRUSTED_INTERNALS) | targets.allowed_targets()


def _refuse_untrusted(payload: bytes, path: str | Path, verb: str = "load") -> None:
    """Refuse a skops file holding types outside :func:`trusted_types`; builds nothing.

    Raises:
        ModelIntegrityError: It does, or it cannot be parsed.
    """
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=payload)
    except Exception as exc:  # the bytes are anyone's
        raise ModelIntegrityError(f"registry error: refusing to {verb} {path}: not a readable skops file: "
                                  f"{type(exc).__name__}: {_first_line(exc)}") from exc
    refused = sorted(set(untrusted) - trusted_types())
    if refused:
        raise ModelIntegrityError(f"registry error: refusing to {verb} {path}: expected only scikit-learn, numpy "
                                  f"and allowlisted estimator types, got {', '.join(refused)}")


def _run_records(version: Mapping[str, Any], tracking_uri: str | None) -> dict[str, str | None]:
    """What the registered version's run recorded as its model's sha256, by where.

    ``None``: nothing there to ask (the run directory or the store is gone, the store
    never indexed the run). A run.json of another run counts as a different record.
    """
    run_id, run_dir = str(version["run_id"]), Path(str(version["run_dir"]))
    found: dict[str, str | None] = {}
    where = f"the run.json in {run_dir}"
    try:
        record = json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict):
        found[where] = None
    elif record.get("id") != run_id:
        found[where] = f"a model of another run, {str(record.get('id'))[:8]}"
    else:
        model = record.get("model") if isinstance(record.get("model"), dict) else {}
        found[where] = str(model.get("sha256") or "no model")
    uri = tracking_uri or os.environ.get("MLOPS_TRACKING_URI") or tracking.DEFAULT_URI
    where = f"the run store {tracking.shown_uri(uri)}"  # never its password
    try:
        store = tracking.open_store(uri, Path.cwd())
        path = getattr(store, "path", None)
        row = None if isinstance(path, Path) and not path.is_file() else store.get(run_id)  # never create a store
    except (EngineError, sqlite3.Error, OSError, NotImplementedError):
        row = None
    found[where] = str(row["model_sha256"]) if row and row.get("model_sha256") else None
    return found


def _index_problems(model: Any) -> list[str]:
    """Indices in a loaded model's compiled trees that point outside their arrays.

    skops checks a file's types, not their content. scikit-learn's trees keep raw node
    and feature indices that its compiled predict follows without bounds checks, so a
    crafted file of trusted types could make predict read outside its memory (a crash,
    or leaked bytes in the scores) or loop for ever. Every tree must belong to an
    estimator that checks the width of its input (``n_features_in_``), and stay within
    it and its own nodes.
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.tree._tree import Tree

    problems: list[str] = []
    checked: set[int] = set()
    objects = list(_reachable(model))
    width_of: dict[int, Any] = {}  # an ensemble's members see the ensemble's input
    for obj in objects:
        attrs = _attributes(obj)
        members = attrs.get("estimators_")
        if members is not None:
            for member in _flat(members):
                width_of[id(member)] = attrs.get("n_features_in_")
                own = getattr(member, "n_features_in_", None)
                if own is not None and own != attrs.get("n_features_in_"):
                    problems.append(f"{type(obj).__name__} sees {attrs.get('n_features_in_')} features, a member "
                                    f"{type(member).__name__} {own}")
    for obj in objects:
        attrs = _attributes(obj)
        owner = type(obj).__name__
        width = attrs.get("n_features_in_", width_of.get(id(obj)))
        if isinstance(attrs.get("tree_"), Tree):
            checked.add(id(attrs["tree_"]))
            problems += [f"a tree of {owner}: {p}" for p in _tree_problems(attrs["tree_"], width)]
        if attrs.get("_predictors") is not None:  # HistGradientBoosting's trees
            mapper = attrs.get("_bin_mapper")
            categorical = getattr(mapper, "is_categorical_", None)
            for predictor in _flat(attrs["_predictors"]):
                if isinstance(predictor, TreePredictor):
                    checked.add(id(predictor))
                    problems += [f"a tree of {owner}: {p}" for p in _predictor_problems(predictor, width, categorical)]
        if isinstance(attrs.get("_tree"), KDTree | BallTree):
            checked.add(id(attrs["_tree"]))
            problems += [f"the search tree of {owner}: {p}" for p in _search_tree_problems(attrs["_tree"])]
    for obj in objects:
        if isinstance(obj, Tree | TreePredictor | KDTree | BallTree) and id(obj) not in checked:
            problems.append(f"a {type(obj).__name__} outside the estimator that uses it")
    return problems


def _tree_problems(tree: Any, width: Any) -> list[str]:
    import numpy as np

    count, capacity = int(tree.node_count), int(tree.capacity)
    if not 0 < count <= capacity:  # first: the arrays below are read up to node_count
        return [f"expected 1 to {capacity} nodes, got node_count {count}"]
    if not isinstance(width, int) or width != tree.n_features:
        return [f"expected the estimator's n_features_in_ to equal the tree's {tree.n_features} features, got {width!r}"]
    left, right, feature = tree.children_left, tree.children_right, tree.feature
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        return ["a node with one child"]
    return _node_problems(np.arange(count), ~leaf, left, right, feature, width, int(tree.max_depth))


def _node_problems(index: Any, inner: Any, left: Any, right: Any, feature: Any, width: int,
                   max_depth: int | None = None) -> list[str]:
    """Children after their parent and among the nodes (so every walk ends), features
    within the input, and no path deeper than ``max_depth`` (``decision_path`` sizes its
    output by it)."""
    import numpy as np

    count = len(index)
    for side, child in (("left", left), ("right", right)):
        child = np.asarray(child, dtype=np.int64)
        if ((child[inner] <= index[inner]) | (child[inner] >= count)).any():
            return [f"a {side} child outside nodes 1..{count - 1} or before its parent"]
    feature = np.asarray(feature, dtype=np.int64)
    if ((feature[inner] < 0) | (feature[inner] >= width)).any():
        return [f"a split on a feature outside 0..{width - 1}"]
    if max_depth is not None:
        depth, level = 0, np.zeros(1, dtype=np.int64)
        while (level := level[inner[level]]).size:
            depth += 1
            if depth > max_depth:
                return [f"a path deeper than its max_depth {max_depth}"]
            level = np.unique(np.concatenate([left[level], right[level]]).astype(np.int64))
    return []


def _predictor_problems(predictor: Any, width: Any, categorical: Any) -> list[str]:
    import numpy as np
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    nodes = predictor.nodes
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1 or not len(nodes):
        return ["expected a non-empty array of predictor records for its nodes"]
    if not isinstance(width, int):
        return [f"expected an integer n_features_in_, got {width!r}"]
    inner = nodes["is_leaf"] == 0
    problems = _node_problems(np.arange(len(nodes)), inner, nodes["left"], nodes["right"], nodes["feature_idx"], width)
    split = inner & (nodes["is_categorical"] != 0)
    if problems or not split.any():
        return problems
    features = nodes["feature_idx"][split]
    if not isinstance(categorical, np.ndarray) or categorical.shape != (width,) or not categorical[features].all():
        return ["a categorical split on a feature its bin mapper does not know as categorical"]
    for bitsets in (predictor.raw_left_cat_bitsets, predictor.binned_left_cat_bitsets):
        if not isinstance(bitsets, np.ndarray) or bitsets.ndim != 2 or bitsets.shape[1] != 8 \
                or (nodes["bitset_idx"][split] >= bitsets.shape[0]).any():
            return ["a categorical split outside its category bitsets"]
    return []


def _search_tree_problems(tree: Any) -> list[str]:
    import numpy as np
    from sklearn.neighbors import KDTree

    state = tree.__getstate__()
    data, order, nodes, bounds, _, levels, count = state[:7]
    metric, weights = state[11:13]
    if data.ndim != 2 or order.shape != (len(data),) or not np.array_equal(np.sort(order), np.arange(len(data))):
        return ["expected its index array to order its data rows"]
    rows, width = data.shape
    if not 0 < levels < 64 or count != 2 ** levels - 1 or nodes.shape != (count,) \
            or bounds.shape != (2 if isinstance(tree, KDTree) else 1, count, width):
        return [f"expected 2**levels - 1 nodes in every array for its {levels} levels, got {count}"]
    start, end = nodes["idx_start"], nodes["idx_end"]
    inner = np.flatnonzero(nodes["is_leaf"] == 0)
    if ((start < 0) | (start > end) | (end > rows)).any() or (2 * inner + 2 >= count).any():
        return ["a node outside its data rows or its nodes"]
    if weights is not None and np.shape(weights) != (rows,):
        return ["sample weights of another length than its data"]
    if type(metric).__name__ == "MinkowskiDistance64" and np.asarray(metric.__getstate__()[1]).size not in (0, width):
        return ["distance weights of another length than its features"]  # the only metric here that reads them
    return []


def _reachable(root: Any) -> Iterator[Any]:
    """Every object reachable from ``root`` through attributes, containers and object arrays."""
    import numpy as np

    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float | type(None)):
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif isinstance(obj, np.ndarray):
            if obj.dtype == object:
                stack.extend(obj.ravel().tolist())
        else:
            stack.extend(_attributes(obj).values())


def _attributes(obj: Any) -> dict[str, Any]:
    attrs = getattr(obj, "__dict__", None)
    return attrs if isinstance(attrs, dict) and not isinstance(obj, type) else {}


def _flat(values: Any) -> list[Any]:
    """The members of a list, a list of lists or an object array."""
    import numpy as np

    if isinstance(values, np.ndarray):
        return values.ravel().tolist() if values.dtype == object else []
    if isinstance(values, list | tuple):
        return [leaf for value in values for leaf in _flat(value)]
    return [values]


def _check_entry(entry: Any, name: str, path: Path | str) -> None:
    """Refuse a registry file of the wrong shape, in one line, before any key is used.

    Raises:
        EngineError: ``registry error: <file> at <key>: expected ..., got ...``.
    """
    def refuse(where: str, expected: str, got: Any) -> None:
        raise EngineError(f"registry error: {path} at {where}: expected {expected}, got {_shape(got)}")

    if not isinstance(entry, dict):
        refuse("the top level", "an object with name, versions, aliases, alias_history", entry)
    if entry.get("name") != name:
        refuse("name", f"{name!r} (the file's name)", entry.get("name"))
    for key, kind in (("versions", list), ("aliases", dict), ("alias_history", list)):
        if not isinstance(entry.get(key), kind):
            refuse(key, f"a{'n object' if kind is dict else ' list'}", entry.get(key))
    numbers = set()
    for i, version in enumerate(entry["versions"]):
        where = f"versions[{i}]"
        if not isinstance(version, dict):
            refuse(where, "an object", version)
        if not _is_number(version.get("version")) or version["version"] in numbers:
            refuse(f"{where}.version", "a version number >= 1 not used before", version.get("version"))
        numbers.add(version["version"])
        for key in ("run_id", "run_dir", "model"):
            if not isinstance(version.get(key), str) or not version[key]:
                refuse(f"{where}.{key}", "a non-empty string", version.get(key))
        if not re.fullmatch(r"[0-9a-f]{64}", str(version.get("model_sha256"))):
            refuse(f"{where}.model_sha256", "64 lowercase hex digits", version.get("model_sha256"))
        model = Path(version["model"])
        if model.is_absolute() or ".." in model.parts or model.name not in MODEL_FILES:
            refuse(f"{where}.model", f"a path inside the registry ending in {' or '.join(MODEL_FILES)}",
                   version["model"])
        if version.get("artifact_root") is not None and not (isinstance(version["artifact_root"], str)
                                                              and Path(version["artifact_root"]).is_absolute()):
            refuse(f"{where}.artifact_root", "an absolute path (the team's shared registry folder)",
                   version["artifact_root"])
        if version.get("input_domain") is not None:
            domain = Path(str(version["input_domain"]))
            if domain.is_absolute() or ".." in domain.parts or domain.name != DOMAIN_FILE:
                refuse(f"{where}.input_domain", f"a path inside the registry ending in {DOMAIN_FILE}",
                       version["input_domain"])
    for alias, number in entry["aliases"].items():
        if number not in numbers:
            refuse(f"aliases.{alias}", f"one of the versions {sorted(numbers)}", number)
    for i, move in enumerate(entry["alias_history"]):
        if not isinstance(move, dict) or not isinstance(move.get("alias"), str) or not _is_number(move.get("version")) \
                or not (move.get("previous") is None or _is_number(move["previous"])):
            refuse(f"alias_history[{i}]", "an object with alias, version, previous, at", move)


def _is_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _place(staging: Path, folder: Path) -> Path:
    """Link the staged files into a version's ``folder`` (a new hard link each: no bytes
    copied; a copy on a file system without hard links); return it.

    The staged files stay where they are until the transaction is over: the store retries
    a transaction after a transient error (SQLite busy, a PostgreSQL connection reset),
    and the retry places them again, perhaps as another version. A folder already there
    belongs to no committed version (the store just gave out its number): files of an
    attempt that never committed, this registration's or a killed one's. It is replaced.
    """
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for staged in staging.iterdir():
        try:
            os.link(staged, folder / staged.name)
        except OSError:
            shutil.copy2(staged, folder / staged.name)
    return folder


def _shape(value: Any) -> str:
    """A short description of a JSON value for an error line."""
    text = json.dumps(value, default=str)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

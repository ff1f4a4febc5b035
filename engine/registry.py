"""The model registry: numbered versions of a named model, aliases, and verified loading.

Layout under the registry's folder (default ``outputs/registry``)::

    <name>.json                   versions, aliases and the append-only alias history
    <name>/<version>/model.joblib  the registered Pipeline, copied from its run

A version records its run, the model's sha256, the config's hash and the metrics.
:func:`load_model` checks the file's sha256 against that record before unpickling,
so a tampered file, or a registry edited to point at another model, is refused.
Writes are atomic and serialised by a lock.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import EngineError, UsageError
from engine.files import atomic_path, locked, sha256_file, write_json

DEFAULT_PATH = Path("outputs") / "registry"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))?$")


class ModelIntegrityError(EngineError):
    """A registered model file does not match its recorded sha256."""


class Registry:
    """A folder of named models.

    Args:
        root: The registry's folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, name: str) -> Path:
        return self.root / f"{name}.json"

    def read(self, name: str) -> dict[str, Any]:
        """The record of one model: versions, aliases, alias history.

        Raises:
            UsageError: No model of that name.
        """
        try:
            return json.loads(self._file(name).read_text())
        except FileNotFoundError as exc:
            known = ", ".join(self.names()) or "(none yet)"
            raise UsageError(f"usage error: no registered model {name!r}; expected one of: {known}") from exc
        except json.JSONDecodeError as exc:
            raise EngineError(f"registry error: {self._file(name)} is not valid JSON: {exc}") from exc

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.json")) if self.root.is_dir() else []

    def register(self, name: str, run_dir: Path) -> dict[str, Any]:
        """Register the model of a succeeded run as the next version of ``name``.

        Raises:
            UsageError: A bad name, or a run that did not succeed (a failed run, or one
                that failed a gate, is never registered), or one without a model.
            ModelIntegrityError: The run's model file does not match its run record.
        """
        if not NAME.match(name):
            raise UsageError(f"usage error: model name {name!r} must be letters, digits, '_', '.', '-'")
        try:
            record = json.loads((run_dir / "run.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"usage error: {run_dir} has no readable run.json") from exc
        if record.get("status") != "succeeded" or record.get("kind", "run") != "run":
            raise UsageError(f"usage error: run {record.get('id', '?')[:8]} is {record.get('status')!r} "
                             f"({record.get('kind', 'run')}); only a succeeded training run can be registered")
        model = record.get("model") or {}
        source = run_dir / str(model.get("path", ""))
        if not model.get("sha256") or not source.is_file():
            raise UsageError(f"usage error: run {record['id'][:8]} has no model file")
        if sha256_file(source) != model["sha256"]:
            raise ModelIntegrityError(f"registry error: {source} does not match the sha256 in its run.json; "
                                      "refusing to register a model that changed after its run")
        metrics = {}
        if (run_dir / "metrics.json").exists():
            metrics = json.loads((run_dir / "metrics.json").read_text()).get("metrics", {})
        config_sha = hashlib.sha256((run_dir / "config.resolved.yaml").read_bytes()).hexdigest() \
            if (run_dir / "config.resolved.yaml").exists() else None
        self.root.mkdir(parents=True, exist_ok=True)
        with locked(self.root / ".lock"):
            try:
                entry = self.read(name)
            except UsageError:
                entry = {"name": name, "versions": [], "aliases": {}, "alias_history": []}
            version = 1 + max((v["version"] for v in entry["versions"]), default=0)
            target = self.root / name / str(version) / "model.joblib"
            with atomic_path(target) as tmp:
                shutil.copyfile(source, tmp)
            entry["versions"].append({
                "version": version, "run_id": record["id"], "run_dir": str(run_dir),
                "model": str(target.relative_to(self.root)), "model_sha256": model["sha256"],
                "model_target": model.get("target"), "threshold": model.get("threshold"),
                "config_sha256": config_sha, "metrics": metrics,
                "registered_at": _now(),
            })
            write_json(self._file(name), entry)
        return entry["versions"][-1]

    def promote(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """Point ``alias`` at a version; the alias history keeps every move."""
        if not re.match(r"^[A-Za-z0-9_-]+$", alias):
            raise UsageError(f"usage error: alias {alias!r} must be letters, digits, '_', '-'")
        self.read(name)  # an unknown model is a usage error before anything is created
        with locked(self.root / ".lock"):
            entry = self.read(name)
            self._version(entry, version)
            move = {"alias": alias, "version": version, "previous": entry["aliases"].get(alias), "at": _now()}
            entry["aliases"][alias] = version
            entry["alias_history"].append(move)
            write_json(self._file(name), entry)
        return move

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
        return self.root / str(version["model"])


def load_model(ref: str, registry: str | Path = DEFAULT_PATH) -> Any:
    """The fitted Pipeline registered as ``ref`` (``churn@champion``, ``churn/2``, ``churn``).

    The file's sha256 is checked against the registry before it is unpickled.

    Raises:
        ModelIntegrityError: The file does not match its recorded sha256.
        UsageError: The name, alias or version does not exist.
    """
    import io

    import joblib

    store = Registry(Path(registry))
    entry, version = store.resolve(ref)
    path = store.model_path(version)
    try:
        payload = path.read_bytes()  # hash and unpickle the same bytes: no swap in between
    except OSError as exc:
        raise ModelIntegrityError(f"registry error: cannot read the file of {entry['name']}/{version['version']}: "
                                  f"{path} ({exc.strerror})") from exc
    actual = hashlib.sha256(payload).hexdigest()
    if actual != version["model_sha256"]:
        raise ModelIntegrityError(
            f"registry error: refusing to load {entry['name']}/{version['version']}: {path} has sha256 "
            f"{actual[:12]}, the registry recorded {version['model_sha256'][:12]} (the file was changed or replaced)")
    return joblib.load(io.BytesIO(payload))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

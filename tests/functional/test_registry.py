"""Loading a registered model with ``engine.load_model`` in a fresh Python process, after
an attacker edited what they could: the model file, the registry file, the run's
run.json and the metadata store. No mlops command loads a registered model, so these
run ``python -c "import engine; engine.load_model(...)"`` in the project folder and
check its exit status, its stderr, and that nothing the planted payload would do was
done."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import joblib
import pytest

from engine.stages import model
from engine.store.registry import read_model
from tests.conftest import MLOPS, champion_project, edit_registered_version, read_json, registry_entry

LOAD = "import engine; m = engine.load_model('churn@champion'); print(type(m).__name__)"


class Creates:
    """A pickle payload: unpickling it creates a folder."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.makedirs, (self.path,))


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that has run once and registered its model as churn@champion."""
    root = tmp_path_factory.mktemp("registered") / "project"
    return champion_project(root)


@pytest.fixture
def project(registered: Path, tmp_path: Path) -> Path:
    shutil.copytree(registered, tmp_path / "project", symlinks=True)
    (tmp_path / "outside").mkdir()
    return tmp_path / "project"


def load(project: Path) -> subprocess.CompletedProcess[str]:
    python = Path(MLOPS).parent / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_REGISTRY", "MLOPS_TRACKING_URI")}
    return subprocess.run([str(python), "-c", LOAD], cwd=project, capture_output=True, text=True, timeout=120,
                          env=env)


class Records:
    """The three places that record a registered model's sha256, and its files."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.version = registry_entry(project)["versions"][0]
        # the copied project: the run folder is the copy's, not the fixture's
        self.run = project / Path(self.version["run_dir"]).relative_to(
            Path(self.version["run_dir"]).parents[3])
        self.version["run_dir"] = str(self.run)
        self.record = read_json(self.run / "run.json")
        self.save()

    def point_at(self, name: str, payload: bytes, registry: bool = True, run: bool = False,
                 store: bool = False) -> None:
        """Put ``payload`` in the registry as churn/1/<name> and record its sha256 where asked."""
        digest = hashlib.sha256(payload).hexdigest()
        (self.project / "outputs" / "registry" / "churn" / "1" / name).write_bytes(payload)
        if registry:
            self.version.update(model=f"churn/1/{name}", model_sha256=digest)
        if run:
            self.record["model"].update(path=f"model/{name}", sha256=digest)
        if store:
            with sqlite3.connect(self.project / "outputs" / "mlops.db") as conn:
                conn.execute("UPDATE runs SET model_sha256 = ? WHERE id = ?", (digest, self.record["id"]))
        self.save()

    def save(self) -> None:
        edit_registered_version(self.project, self.version)
        (self.run / "run.json").write_text(json.dumps(self.record))


def test_the_registered_model_loads_in_a_fresh_process(project: Path) -> None:
    Records(project)
    done = load(project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "FixedThresholdClassifier" and done.stderr == ""


def test_a_registry_and_store_pointing_at_a_malicious_pickle_run_nothing(project: Path) -> None:
    records = Records(project)
    records.point_at("model.joblib", pickle.dumps(Creates(project.parent / "outside" / "pwned")), store=True)
    done = load(project)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        "engine.store.registry.ModelIntegrityError: registry error: refusing to load churn/1: the registry's sha256 ")
    assert "is not what the run.json in" in done.stderr
    assert not any((project.parent / "outside").iterdir())


def test_a_pickle_in_place_of_the_skops_file_is_never_unpickled_whatever_the_records_say(project: Path) -> None:
    records = Records(project)
    records.point_at("model.skops", pickle.dumps(Creates(project.parent / "outside" / "pwned")),
                     run=True, store=True)
    done = load(project)
    assert done.returncode == 1
    assert "model.skops: expected a skops file, got a pickle" in done.stderr.strip().splitlines()[-1]
    assert not any((project.parent / "outside").iterdir())


def test_a_skops_file_holding_os_system_is_refused_whatever_the_records_say(project: Path) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    records = Records(project)
    evil = Pipeline([("run", FunctionTransformer(func=os.system, kw_args={"command": "mkdir ../outside/pwned"}))])
    records.point_at("model.skops", model._skops_bytes(evil), run=True, store=True)
    done = load(project)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].endswith(
        "model.skops: expected only scikit-learn, numpy and allowlisted estimator types, got posix.system")
    assert not any((project.parent / "outside").iterdir())


def test_a_legacy_pickle_all_records_confirm_loads_with_one_warning_line(project: Path) -> None:
    # What an earlier version left: the run's model.joblib, registered, hashed everywhere.
    records = Records(project)
    skops_file = project / "outputs" / "registry" / "churn" / "1" / "model.skops"
    fitted = read_model(skops_file.read_bytes(), skops_file)
    joblib.dump(fitted, records.run / "model" / "model.joblib", compress=("zlib", 3))
    records.point_at("model.joblib", (records.run / "model" / "model.joblib").read_bytes(), run=True, store=True)
    done = load(project)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "FixedThresholdClassifier"
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("registry: outputs/registry/churn/1/model.joblib is a pickle saved by an earlier version")
    assert line.endswith("register it again to save it as model.skops")
    records.point_at("model.joblib", (records.run / "model" / "model.joblib").read_bytes() + b"\0", run=True,
                     store=False)  # the store still has the honest hash
    done = load(project)
    assert done.returncode == 1 and "is not what the run store sqlite:///outputs/mlops.db recorded" in done.stderr

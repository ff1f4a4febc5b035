from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from engine import load_model
from engine.errors import UsageError
from engine.files import sha256_file
from engine.registry import ModelIntegrityError, Registry


def make_run(root: Path, name: str, status: str = "succeeded", auc: float = 0.8) -> Path:
    run = root / "runs" / name
    (run / "model").mkdir(parents=True)
    model = DummyClassifier(strategy="prior").fit([[0], [1]], [0, 1])
    joblib.dump(model, run / "model" / "model.joblib")
    record = {"id": f"{name}-0000", "kind": "run", "status": status,
              "model": {"path": "model/model.joblib", "sha256": sha256_file(run / "model" / "model.joblib"),
                        "target": "sklearn.dummy.DummyClassifier"}}
    (run / "run.json").write_text(json.dumps(record))
    (run / "metrics.json").write_text(json.dumps({"metrics": {"roc_auc": auc}}))
    (run / "config.resolved.yaml").write_text("seed: 7\n")
    return run


def test_versions_aliases_and_verified_loading(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    first = registry.register("churn", make_run(tmp_path, "a"))
    second = registry.register("churn", make_run(tmp_path, "b", auc=0.9))
    assert (first["version"], second["version"]) == (1, 2)
    assert second["metrics"] == {"roc_auc": 0.9} and second["config_sha256"]
    registry.promote("churn", 1, "champion")
    registry.promote("churn", 2, "champion")
    entry = registry.read("churn")
    assert entry["aliases"] == {"champion": 2}
    assert [(m["previous"], m["version"]) for m in entry["alias_history"]] == [(None, 1), (1, 2)]
    model = load_model("churn@champion", tmp_path / "registry")
    assert model.predict([[3]]).shape == (1,)
    assert load_model("churn/1", tmp_path / "registry") is not None
    assert registry.resolve("churn")[1]["version"] == 2


@pytest.mark.parametrize("status", ["failed", "failed_quality", "failed_requirements", "interrupted", "running"])
def test_a_run_that_did_not_succeed_is_never_registered(tmp_path: Path, status: str) -> None:
    with pytest.raises(UsageError, match="only a succeeded training run can be registered"):
        Registry(tmp_path / "registry").register("churn", make_run(tmp_path, "x", status=status))


def test_one_changed_byte_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    path = tmp_path / "registry" / "churn" / "1" / "model.joblib"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="refusing to load churn/1"):
        load_model("churn", tmp_path / "registry")


def test_a_registry_edited_to_point_at_another_model_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    other = make_run(tmp_path, "evil")
    joblib.dump(DummyClassifier(strategy="constant", constant=1).fit([[0], [1]], [0, 1]),
                other / "model" / "model.joblib")
    entry = json.loads((tmp_path / "registry" / "churn.json").read_text())
    entry["versions"][0]["model"] = str(Path("..") / "runs" / "evil" / "model" / "model.joblib")
    (tmp_path / "registry" / "churn.json").write_text(json.dumps(entry))
    with pytest.raises(ModelIntegrityError):
        load_model("churn", tmp_path / "registry")


def test_unknown_names_aliases_and_versions(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    with pytest.raises(UsageError, match="no registered model 'chrun'; expected one of: churn"):
        registry.resolve("chrun")
    with pytest.raises(UsageError, match="has no alias 'champion'"):
        registry.resolve("churn@champion")
    with pytest.raises(UsageError, match="has no version 7; expected one of: 1"):
        registry.promote("churn", 7, "champion")

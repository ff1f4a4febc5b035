from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from engine import load_model
from engine.errors import EngineError, UsageError
from engine.files import sha256_file
from engine.stages import model as model_stage
from engine.store import tracking
from engine.store.registry import MAX_NAME_BYTES, ModelIntegrityError, Registry


@pytest.fixture(autouse=True)
def store_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """load_model asks $MLOPS_TRACKING_URI: a store of this test's own, not the repository's."""
    monkeypatch.setenv("MLOPS_TRACKING_URI", f"sqlite:///{tmp_path / 'mlops.db'}")
    yield tmp_path / "mlops.db"


def make_run(root: Path, name: str, status: str = "succeeded", auc: float = 0.8, indexed: bool = True,
             constant: int | None = None) -> Path:
    """A run folder with a skops model, indexed in the test's store."""
    run = root / "runs" / name
    (run / "model").mkdir(parents=True)
    fitted = DummyClassifier(strategy="prior" if constant is None else "constant", constant=constant)
    digest = model_stage.save(fitted.fit([[0], [1]], [0, 1]), run / "model")
    record = {"id": f"{name}-0000", "kind": "run", "status": status, "run_dir": str(run),
              "model": {"path": "model/model.skops", "sha256": digest, "target": "sklearn.dummy.DummyClassifier"}}
    (run / "run.json").write_text(json.dumps(record))
    (run / "metrics.json").write_text(json.dumps({"metrics": {"roc_auc": auc}}))
    (run / "config.resolved.yaml").write_text("seed: 7\n")
    if indexed:
        index(root, record)
    return run


def index(root: Path, record: dict[str, Any]) -> None:
    tracking.track(tracking.open_store(os.environ["MLOPS_TRACKING_URI"], root), record, None)


def store_sql(statement: str, *args: Any) -> None:
    """Run one statement on the test's SQLite store (where the registry keeps its entries)."""
    conn = sqlite3.connect(os.environ["MLOPS_TRACKING_URI"].removeprefix("sqlite:///"))
    with conn:
        conn.execute(statement, args)
    conn.close()


def edit_version(name: str, version: int, **changes: Any) -> None:
    """Edit a registered version's record in the store, as someone with write access to it could."""
    conn = sqlite3.connect(os.environ["MLOPS_TRACKING_URI"].removeprefix("sqlite:///"))
    [record] = conn.execute("SELECT record FROM registry_versions WHERE name = ? AND version = ?", (name, version))
    conn.close()
    store_sql("UPDATE registry_versions SET record = ? WHERE name = ? AND version = ?",
              json.dumps({**json.loads(record[0]), **changes}), name, version)


class Planted:
    """What a malicious pickle runs when it is loaded: it creates a file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Path.touch, (Path(self.marker),))  # Path(marker).touch() on unpickling


def legacy_run(root: Path, name: str, payload: bytes | None = None) -> Path:
    """A run written by an earlier version: its model a pickle, model.joblib."""
    run = root / "runs" / name
    (run / "model").mkdir(parents=True)
    if payload is None:
        joblib.dump(DummyClassifier(strategy="prior").fit([[0], [1]], [0, 1]), run / "model" / "model.joblib")
    else:
        (run / "model" / "model.joblib").write_bytes(payload)
    record = {"id": f"{name}-0000", "kind": "run", "status": "succeeded", "run_dir": str(run),
              "model": {"path": "model/model.joblib", "sha256": sha256_file(run / "model" / "model.joblib")}}
    (run / "run.json").write_text(json.dumps(record))
    index(root, record)
    return run


def register_legacy(registry_root: Path, name: str, run: Path) -> None:
    """What an earlier version's `mlops registry register` wrote (it copied any pickle)."""
    record = json.loads((run / "run.json").read_text())
    target = registry_root / name / "1" / "model.joblib"
    target.parent.mkdir(parents=True)
    shutil.copyfile(run / "model" / "model.joblib", target)
    entry = {"name": name, "aliases": {}, "alias_history": [], "versions": [{
        "version": 1, "run_id": record["id"], "run_dir": str(run), "model": f"{name}/1/model.joblib",
        "model_sha256": record["model"]["sha256"], "metrics": {}, "registered_at": "2026-11-01T00:00:00+00:00"}]}
    (registry_root / f"{name}.json").write_text(json.dumps(entry))


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
    path = tmp_path / "registry" / "churn" / "1" / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="refusing to load churn/1"):
        load_model("churn", tmp_path / "registry")


def test_a_registry_edited_to_point_at_another_model_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    registry.register("other", make_run(tmp_path, "evil", constant=1))
    edit_version("churn", 1, model="other/1/model.skops")  # inside the registry, the hash of churn's model
    with pytest.raises(ModelIntegrityError, match="has sha256 .*, the registry recorded"):
        load_model("churn", tmp_path / "registry")
    edit_version("churn", 1, model=str(Path("..") / "runs" / "evil" / "model" / "model.skops"))
    with pytest.raises(EngineError, match=r"^registry error: the registry in sqlite:///.*mlops.db at versions\[0\]"
                                          r"\.model: expected a path inside the registry ending in model.skops or "
                                          r"model.joblib, got str "):
        load_model("churn", tmp_path / "registry")


def test_a_registry_whose_sha256_was_edited_to_another_model_is_refused_by_the_runs_record(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    registry.register("other", make_run(tmp_path, "evil", constant=1))
    evil = registry.read("other")["versions"][0]
    edit_version("churn", 1, model=evil["model"], model_sha256=evil["model_sha256"])
    with pytest.raises(ModelIntegrityError, match=r"refusing to load churn/1: the registry's sha256 \w{12} for .* "
                                                  r"is not what the run.json in .*/runs/a recorded \(\w{12}\)"):
        load_model("churn", tmp_path / "registry")
    record = json.loads((tmp_path / "runs" / "a" / "run.json").read_text())
    record["model"]["sha256"] = evil["model_sha256"]
    (tmp_path / "runs" / "a" / "run.json").write_text(json.dumps(record))  # run.json edited too: the store
    with pytest.raises(ModelIntegrityError, match=r"is not what the run store sqlite:///.*mlops.db recorded"):
        load_model("churn", tmp_path / "registry")
    index(tmp_path, record)  # all three edited: a skops file of trusted types, which runs no code
    assert load_model("churn", tmp_path / "registry").predict([[0]]).tolist() == [1]


def test_a_skops_model_loads_when_its_run_and_store_row_are_gone(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    run = make_run(tmp_path, "a", indexed=False)
    registry.register("churn", run)
    assert load_model("churn", tmp_path / "registry").predict([[0]]).shape == (1,)  # no store row
    shutil.rmtree(run)
    store_sql("DELETE FROM runs")  # the run's row gone too (the registry's rows stay: they are the registry)
    assert load_model("churn", tmp_path / "registry").predict([[0]]).shape == (1,)


def test_a_legacy_pickle_loads_through_its_recorded_hash_with_a_warning(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    register_legacy(tmp_path / "registry", "churn", legacy_run(tmp_path, "old"))
    with caplog.at_level(logging.WARNING, logger="engine.store.registry"):
        loaded = load_model("churn", tmp_path / "registry")
    assert loaded.predict([[0]]).shape == (1,)
    [line] = [r.getMessage() for r in caplog.records]
    assert "\n" not in line and "churn/1/model.joblib is a pickle saved by an earlier version" in line
    assert "register it again to save it as model.skops" in line


def test_a_legacy_pickle_whose_hash_does_not_match_is_refused(tmp_path: Path) -> None:
    register_legacy(tmp_path / "registry", "churn", legacy_run(tmp_path, "old"))
    path = tmp_path / "registry" / "churn" / "1" / "model.joblib"
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelIntegrityError, match="refusing to load churn/1: .* has sha256 .*, the registry recorded"):
        load_model("churn", tmp_path / "registry")


def test_a_legacy_pickle_whose_run_or_store_row_is_gone_is_refused(tmp_path: Path) -> None:
    run = legacy_run(tmp_path, "old")
    register_legacy(tmp_path / "registry", "churn", run)
    (tmp_path / "mlops.db").unlink()  # an earlier engine's registry file, beside no store
    with pytest.raises(ModelIntegrityError, match=r"refusing to load churn/1: .*model.joblib is a pickle saved by "
                                                  r"an earlier version, which can run code, and the run store "
                                                  r"sqlite:///.*mlops.db cannot confirm its sha256; re-run run old-0000"):
        load_model("churn", tmp_path / "registry")
    shutil.rmtree(run)
    with pytest.raises(ModelIntegrityError, match=r"the run.json in .*old and the run store .* cannot confirm"):
        load_model("churn", tmp_path / "registry")
    assert not (tmp_path / "mlops.db").exists()  # reading the registry or loading never creates a store


def test_a_registry_and_store_edited_to_point_at_a_malicious_pickle_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Planted(str(marker)))
    run = legacy_run(tmp_path, "old")
    register_legacy(tmp_path / "registry", "churn", run)
    (tmp_path / "registry" / "churn" / "1" / "model.joblib").write_bytes(payload)
    entry = json.loads((tmp_path / "registry" / "churn.json").read_text())
    entry["versions"][0]["model_sha256"] = hashlib.sha256(payload).hexdigest()
    (tmp_path / "registry" / "churn.json").write_text(json.dumps(entry))
    record = json.loads((run / "run.json").read_text())
    index(tmp_path, {**record, "model": {"sha256": hashlib.sha256(payload).hexdigest()}})
    with pytest.raises(ModelIntegrityError, match=r"is not what the run.json in .*old recorded"):
        load_model("churn", tmp_path / "registry")
    (run / "run.json").unlink()  # the run deleted as well: a pickle no record confirms
    with pytest.raises(ModelIntegrityError, match="is a pickle saved by an earlier version, which can run code"):
        load_model("churn", tmp_path / "registry")
    assert not marker.exists()
    pickle.loads(payload)  # the payload does what it says when it is unpickled
    assert marker.exists()


def test_a_malicious_pickle_in_place_of_a_skops_file_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Planted(str(marker)))
    registry = Registry(tmp_path / "registry")
    run = make_run(tmp_path, "a")
    registry.register("churn", run)
    digest = hashlib.sha256(payload).hexdigest()
    (tmp_path / "registry" / "churn" / "1" / "model.skops").write_bytes(payload)
    edit_version("churn", 1, model_sha256=digest)
    record = json.loads((run / "run.json").read_text())
    record["model"]["sha256"] = digest
    (run / "run.json").write_text(json.dumps(record))
    index(tmp_path, record)  # registry, run.json and store all agree on the pickle: still not unpickled
    with pytest.raises(ModelIntegrityError, match="model.skops: expected a skops file, got a pickle"):
        load_model("churn", tmp_path / "registry")
    assert not marker.exists()


def test_a_pickle_is_never_registered(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    with pytest.raises(ModelIntegrityError, match="refusing to register .*model.joblib: a pickle saved by an "
                                                  "earlier version"):
        registry.register("churn", legacy_run(tmp_path, "old"))
    assert not (tmp_path / "registry" / "churn").exists() and not (tmp_path / "registry" / "churn.json").exists()


def test_unknown_names_aliases_and_versions(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    with pytest.raises(UsageError, match="no registered model 'chrun'; expected one of: churn"):
        registry.resolve("chrun")
    with pytest.raises(UsageError, match="has no alias 'champion'"):
        registry.resolve("churn@champion")
    with pytest.raises(UsageError, match="has no version 7; expected one of: 1"):
        registry.promote("churn", 7, "champion")


@pytest.mark.parametrize("name", ["../escape", "a/b", "a..b", "..", "/abs", "x" * (MAX_NAME_BYTES + 1), "é" * 126,
                                  "-dash", ""])
def test_a_name_that_is_not_a_file_name_is_refused_before_anything_is_written(tmp_path: Path, name: str) -> None:
    registry = Registry(tmp_path / "registry")
    with pytest.raises(UsageError, match=r"^usage error at model name: expected 1 to 236 bytes of letters, digits, "
                                         r"'_', '\.', '-' starting with a letter or digit, without '\.\.' or '/', "
                                         r"got .*$"):
        registry.register(name, make_run(tmp_path, "a"))
    assert not (tmp_path / "registry").exists() or not any((tmp_path / "registry").iterdir())
    with pytest.raises(UsageError, match="^usage error at model name"):
        registry.read(name)  # mlops registry history NAME


def test_the_longest_name_the_file_system_allows_is_registered_atomically(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    name = "m" * MAX_NAME_BYTES
    registry.register(name, make_run(tmp_path, "a"))
    assert registry.read(name)["versions"][0]["version"] == 1  # its temp file's name was 255 bytes
    assert load_model(name, tmp_path / "registry").predict([[0]]).shape == (1,)


@pytest.mark.parametrize("ref", ["../churn", "churn/../x", "/etc/passwd", "churn/1/../../x"])
def test_show_refuses_a_path(tmp_path: Path, ref: str) -> None:
    with pytest.raises(UsageError, match="usage error"):
        Registry(tmp_path / "registry").resolve(ref)


@pytest.mark.parametrize("edit, where, expected", [
    (lambda e: [], "the top level", "an object with name, versions, aliases, alias_history"),
    (lambda e: {**e, "name": "other"}, "name", "'churn' \\(the file's name\\)"),
    (lambda e: {**e, "versions": {}}, "versions", "a list"),
    (lambda e: {**e, "aliases": []}, "aliases", "an object"),
    (lambda e: {**e, "versions": ["v1"]}, "versions\\[0\\]", "an object"),
    (lambda e: {**e, "versions": [{**e["versions"][0], "version": "1"}]}, "versions\\[0\\]\\.version",
     "a version number >= 1 not used before"),
    (lambda e: {**e, "versions": [{**e["versions"][0], "model_sha256": None}]}, "versions\\[0\\]\\.model_sha256",
     "64 lowercase hex digits"),
    (lambda e: {**e, "versions": [{k: v for k, v in e["versions"][0].items() if k != "run_dir"}]},
     "versions\\[0\\]\\.run_dir", "a non-empty string"),
    (lambda e: {**e, "versions": [{**e["versions"][0], "model": "/etc/passwd"}]}, "versions\\[0\\]\\.model",
     "a path inside the registry ending in model.skops or model.joblib"),
    (lambda e: {**e, "aliases": {"champion": 9}}, "aliases\\.champion", "one of the versions \\[1\\]"),
    (lambda e: {**e, "alias_history": [7]}, "alias_history\\[0\\]", "an object with alias, version, previous, at"),
])
def test_a_registry_file_of_the_wrong_shape_is_one_line(tmp_path: Path, edit: Any, where: str, expected: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier engine's ``<name>.json``, edited, beside a store that has no entry of that name."""
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    registry.promote("churn", 1, "champion")
    path = tmp_path / "registry" / "churn.json"
    path.write_text(json.dumps(edit(registry.read("churn"))))
    monkeypatch.setenv("MLOPS_TRACKING_URI", f"sqlite:///{tmp_path / 'other.db'}")
    registry = Registry(tmp_path / "registry")
    for call in (lambda: registry.read("churn"), lambda: registry.resolve("churn@champion"),
                 lambda: load_model("churn", tmp_path / "registry"), lambda: registry.promote("churn", 1, "x")):
        with pytest.raises(EngineError, match=f"^registry error: {path} at {where}: expected {expected}, got .+$") \
                as raised:
            call()
        assert "\n" not in str(raised.value)


def test_a_store_row_that_is_not_a_version_record_is_one_line(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    registry.promote("churn", 1, "champion")
    store_sql("UPDATE registry_versions SET record = 'not json' WHERE name = 'churn'")
    run = make_run(tmp_path, "b")
    for call in (lambda: registry.read("churn"), lambda: load_model("churn@champion", tmp_path / "registry"),
                 lambda: registry.register("churn", run), lambda: registry.promote("churn", 1, "x")):
        with pytest.raises(EngineError, match=r"^registry error: the registry in sqlite:///.*mlops.db at "
                                              r"versions\[0\]: expected an object, got str \"not json\"$"):
            call()
    assert not (tmp_path / "registry" / "churn" / "2").exists()  # refused before anything was written


def test_a_run_whose_metrics_file_is_not_metrics_is_not_registered(tmp_path: Path) -> None:
    run = make_run(tmp_path, "a")
    (run / "metrics.json").write_text("[1, 2]")
    with pytest.raises(UsageError, match=r"metrics.json: expected an object with the run's metrics, got list \[1, 2\]"):
        Registry(tmp_path / "registry").register("churn", run)
    assert not (tmp_path / "registry").exists()


def test_a_skops_model_holding_an_untrusted_type_is_never_registered(tmp_path: Path) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    run = make_run(tmp_path, "a")
    digest = model_stage.save(Pipeline([("run", FunctionTransformer(func=os.system))]), run / "model")
    record = json.loads((run / "run.json").read_text())
    record["model"]["sha256"] = digest
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(ModelIntegrityError, match=r"refusing to register .*model.skops: expected only scikit-learn, "
                                                  r"numpy and allowlisted estimator types, got (posix|os)\.system$"):
        Registry(tmp_path / "registry").register("churn", run)
    assert not (tmp_path / "registry").exists()


def with_input_schema(run: Path) -> Path:
    """The run's model with its input schema beside it, recorded as the save stage records it."""
    schema = {"features": {"tenure": {"type": "int", "from": ["customers.tenure"]}}, "sources": {}, "key": "id",
              "target": "churned"}
    digest = model_stage.save_input_schema(schema, run / "model")
    record = json.loads((run / "run.json").read_text())
    record["model"]["input_schema"] = {"path": "model/input_schema.json", "sha256": digest}
    (run / "run.json").write_text(json.dumps(record))
    return run


def test_the_input_schema_is_registered_beside_the_model_with_its_sha256(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")
    run = with_input_schema(make_run(tmp_path, "a"))
    version = registry.register("churn", run)
    copied = registry.root / version["input_schema"]
    assert copied == registry.root / "churn" / "1" / "input_schema.json"
    assert copied.read_bytes() == (run / "model" / "input_schema.json").read_bytes()
    assert sha256_file(copied) == version["input_schema_sha256"]
    assert "input_schema" not in registry.register("churn", make_run(tmp_path, "b"))  # a run without one


def test_an_input_schema_changed_after_its_run_is_refused(tmp_path: Path) -> None:
    run = with_input_schema(make_run(tmp_path, "a"))
    path = run / "model" / "input_schema.json"
    path.write_text(path.read_text().replace('"int"', '"float"'))
    with pytest.raises(EngineError, match="input_schema.json does not match the sha256 in its run.json"):
        Registry(tmp_path / "registry").register("churn", run)
    assert not (tmp_path / "registry" / "churn").exists()


def test_a_version_s_files_are_written_before_the_store_s_write_transaction(tmp_path: Path) -> None:
    """The store's write lock, which every other writer waits on, covers a folder rename,
    not the copy of a large model file."""
    registry = Registry(tmp_path / "registry")
    run = make_run(tmp_path, "a")
    seen: list[list[str]] = []
    update = registry.entries.update

    def watched(*args: Any, **kwargs: Any) -> Any:
        staged = list((tmp_path / "registry" / "churn").glob(".staging-*/model.skops"))
        seen.append([p.read_bytes() == (run / "model" / "model.skops").read_bytes() for p in staged])
        return update(*args, **kwargs)

    registry.entries.update = watched  # type: ignore[method-assign]
    registry.register("churn", run)
    assert seen == [[True]]  # one staged copy, complete, when the transaction began
    assert sorted(p.name for p in (tmp_path / "registry" / "churn").iterdir()) == ["1"]  # placed, nothing left
    assert sha256_file(tmp_path / "registry" / "churn" / "1" / "model.skops") == \
        registry.read("churn")["versions"][0]["model_sha256"]


def test_a_registration_whose_transaction_fails_leaves_no_files(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "registry")

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise EngineError("store error: the store is read-only")

    registry.entries.update = failing  # type: ignore[method-assign]
    with pytest.raises(EngineError, match="read-only"):
        registry.register("churn", make_run(tmp_path, "a"))
    assert list((tmp_path / "registry" / "churn").iterdir()) == []


def test_files_left_by_a_registration_that_never_committed_are_replaced(tmp_path: Path) -> None:
    orphan = tmp_path / "registry" / "churn" / "1"
    orphan.mkdir(parents=True)
    (orphan / "model.skops").write_bytes(b"PK\x03\x04 half a model from a crash")
    (orphan / "stray.txt").write_text("x")
    registry = Registry(tmp_path / "registry")
    registry.register("churn", make_run(tmp_path, "a"))
    assert sorted(p.name for p in orphan.iterdir()) == ["model.skops"]
    assert load_model("churn/1", tmp_path / "registry").predict([[0]]).shape == (1,)


def test_a_staging_folder_a_killed_registration_left_is_removed_by_the_next_one(tmp_path: Path) -> None:
    folder = tmp_path / "registry" / "churn"
    stale, fresh = folder / ".staging-killed", folder / ".staging-in-progress"
    for path in (stale, fresh):
        path.mkdir(parents=True)
        (path / "model.skops").write_bytes(b"PK\x03\x04 part of a model")
    os.utime(stale, (0, 0))  # left long ago
    Registry(tmp_path / "registry").register("churn", make_run(tmp_path, "a"))
    assert sorted(p.name for p in folder.iterdir()) == [".staging-in-progress", "1"]  # another's, still writing


def test_a_transaction_the_store_retries_places_the_files_again(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The store re-runs a transaction after a transient error (SQLite busy, a PostgreSQL
    connection reset) once the change has placed the files: the retry finds its staged files."""
    import sqlalchemy.engine
    import sqlalchemy.exc

    registry = Registry(tmp_path / "registry")
    run = make_run(tmp_path, "a")
    commit, calls = sqlalchemy.engine.Connection.commit, []

    def flaky(self: Any) -> None:
        calls.append(1)
        if len(calls) == 1 and (tmp_path / "registry" / "churn" / "1").exists():
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        commit(self)

    monkeypatch.setattr(sqlalchemy.engine.Connection, "commit", flaky)
    assert registry.register("churn", run)["version"] == 1 and len(calls) >= 2
    assert sorted(p.name for p in (tmp_path / "registry" / "churn").iterdir()) == ["1"]
    assert load_model("churn/1", tmp_path / "registry").predict([[0]]).shape == (1,)

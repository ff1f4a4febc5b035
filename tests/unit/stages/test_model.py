from __future__ import annotations

import gc
import io
import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.config import targets
from engine.config.plan import ModelSpec, SplitSpec
from engine.errors import DataError
from engine.files import sha256_file
from engine.stages import evaluate, model, split
from engine.store.registry import ModelIntegrityError, read_model

PREPROCESS = {"numeric_impute": "median", "scale": True, "categorical_impute": "most_frequent", "min_frequency": None}


def spec(model_cfg: dict[str, Any]) -> ModelSpec:
    """The model part of a plan, as compiling a config with this model group makes it."""
    return ModelSpec.from_config(model_cfg, PREPROCESS)


def frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    X = pd.DataFrame({
        "x": np.where(rng.uniform(size=n) < 0.1, np.nan, x),
        "plan": pd.Series(rng.choice(["a", "b", None], size=n), dtype="str"),
        "flag": rng.uniform(size=n) < 0.5,
    })
    y = pd.Series((x + rng.normal(scale=0.5, size=n) > 1).astype(int))
    return X, y


def test_the_pipeline_takes_raw_rows_with_missing_values_and_unseen_categories(tmp_path: Path) -> None:
    X, y = frame()
    pipe = model.build(spec({"_target_": "sklearn.linear_model.LogisticRegression", "C": 0.5}), X)
    model.fit(pipe, X, y, threads=1)
    digest = model.save(pipe, tmp_path)
    assert model.MODEL_FILE == "model.skops"
    assert digest == sha256_file(tmp_path / model.MODEL_FILE)
    assert (tmp_path / "model.skops.sha256").read_text().split()[0] == digest
    loaded = load(tmp_path)
    raw = pd.DataFrame({"x": [np.nan, 2.0], "plan": ["never-seen", None], "flag": [True, False]})
    proba = model.predict_proba(loaded, raw, threads=1)
    assert proba.shape == (2,) and ((proba >= 0) & (proba <= 1)).all()


def load(directory: Path) -> Any:
    """The model saved in ``directory``, read as the registry reads it."""
    return read_model((directory / model.MODEL_FILE).read_bytes(), directory / model.MODEL_FILE)


def test_the_same_fit_gives_the_same_bytes_with_no_clock_or_address_in_the_file(tmp_path: Path) -> None:
    X, y = frame()
    digests = []
    for i in range(2):  # two fits: other objects at other addresses, saved at other times
        pipe = model.build(spec({"_target_": "sklearn.ensemble.RandomForestClassifier", "n_estimators": 10,
                                 "random_state": 3}), X)
        model.fit(pipe, X, y, threads=1)
        digests.append(model.save(model.with_threshold(pipe, 0.3, X, y), tmp_path / str(i)))
    assert digests[0] == digests[1]
    assert (tmp_path / "0" / model.MODEL_FILE).read_bytes() == (tmp_path / "1" / model.MODEL_FILE).read_bytes()
    with zipfile.ZipFile(tmp_path / "0" / model.MODEL_FILE) as archive:
        entries = archive.infolist()
        schema = archive.read("schema.json").decode()
    assert {e.date_time for e in entries} == {(1980, 1, 1, 0, 0, 0)}
    arrays = [e.filename for e in entries if e.filename != "schema.json"]
    assert len(arrays) == len(entries) - 1 and all(re.fullmatch(r"[1-9][0-9]*\.npy", name) for name in arrays)
    assert '"__id__":1,' in schema and "\n" not in schema  # objects numbered from 1, compact JSON


@pytest.mark.parametrize("target", sorted(targets.BUILTIN_TARGETS))
def test_every_allowlisted_estimator_round_trips_with_identical_predictions(target: str, tmp_path: Path) -> None:
    X, y = frame()
    params = {"probability": True} if target.endswith(".SVC") else {"loss": "log_loss"} \
        if target.endswith(".SGDClassifier") else {}
    pipe = model.build(spec({"_target_": target, **params}), X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the default max_iter
        model.fit(pipe, X, y, threads=1)
    decided = model.with_threshold(pipe, 0.4, X, y)
    model.save(decided, tmp_path)
    loaded = load(tmp_path)
    rows = model.as_model_input(X)
    assert type(loaded) is type(decided)
    assert np.array_equal(loaded.predict_proba(rows), decided.predict_proba(rows))
    assert np.array_equal(loaded.predict(rows), decided.predict(rows))


class Planted:
    """A class outside the trusted list whose loading would leave a mark."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("ran")


def skops_file(obj: Any, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save(obj, directory)
    return directory / model.MODEL_FILE


def test_a_class_outside_the_trusted_list_is_refused_before_it_is_built(tmp_path: Path) -> None:
    planted = Planted.__new__(Planted)
    planted.__dict__["marker"] = str(tmp_path / "ran")
    path = skops_file({"model": planted}, tmp_path / "m")
    with pytest.raises(ModelIntegrityError, match=r"refusing to load .*model.skops: expected only scikit-learn, "
                                                  r"numpy and allowlisted estimator types, got "
                                                  r"tests\.unit\.stages\.test_model\.Planted$"):
        read_model(path.read_bytes(), path)
    assert not (tmp_path / "ran").exists()


def test_a_function_from_os_in_a_pipeline_is_refused(tmp_path: Path) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    path = skops_file(Pipeline([("run", FunctionTransformer(func=os.system))]), tmp_path)
    with pytest.raises(ModelIntegrityError, match=r"got (posix|os)\.system$"):
        read_model(path.read_bytes(), path)


def test_a_numpy_class_that_acts_when_dropped_is_not_trusted_for_being_numpy(tmp_path: Path) -> None:
    # Why the trusted list names classes instead of trusting every numpy.* name: a
    # DataSource built from a file deletes the folder it names when it is collected.
    from numpy.lib._datasource import DataSource

    victim = tmp_path / "victim"
    victim.mkdir()
    planted = DataSource.__new__(DataSource)
    planted.__dict__.update(_istmpdest=True, _destpath=str(victim))
    path = skops_file([planted], tmp_path / "m")
    planted._istmpdest = False  # this test's own copy must not delete it either
    with pytest.raises(ModelIntegrityError, match=r"got numpy\.lib\.\S*DataSource$"):
        read_model(path.read_bytes(), path)
    gc.collect()
    assert victim.is_dir()


def test_a_tree_whose_indices_leave_its_nodes_is_refused(tmp_path: Path) -> None:
    # A crafted file of trusted types: predict would read outside the tree's memory.
    from sklearn.tree import DecisionTreeClassifier

    X, y = frame()
    rows = model.as_model_input(X)[["x"]].fillna(0)
    for field, value, problem in (("left_child", 10_000, "a left child outside nodes"),
                                  ("right_child", 0, "a right child outside nodes .* or before its parent"),
                                  ("feature", 7, "a split on a feature outside 0..0")):
        fitted = DecisionTreeClassifier(max_depth=3, random_state=0).fit(rows, y)
        state = fitted.tree_.__getstate__()
        nodes = state["nodes"].copy()
        nodes[field][0] = value
        fitted.tree_.__setstate__({**state, "nodes": nodes})  # never predict with it here
        path = skops_file(fitted, tmp_path / field)
        with pytest.raises(ModelIntegrityError, match=f"a tree of DecisionTreeClassifier: {problem}"):
            read_model(path.read_bytes(), path)


def test_a_boosted_tree_splitting_on_a_feature_it_does_not_have_is_refused(tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = frame()
    fitted = HistGradientBoostingClassifier(max_iter=3).fit(model.as_model_input(X)[["x"]], y)
    nodes = fitted._predictors[0][0].nodes
    nodes["feature_idx"][nodes["is_leaf"] == 0] = 5
    path = skops_file(fitted, tmp_path)
    with pytest.raises(ModelIntegrityError, match="a tree of HistGradientBoostingClassifier: a split on a feature "
                                                  r"outside 0\.\.0$"):
        read_model(path.read_bytes(), path)


def test_a_pickle_or_a_broken_zip_is_refused_without_being_read(tmp_path: Path) -> None:
    import pickle

    with pytest.raises(ModelIntegrityError, match="expected a skops file, got a pickle"):
        read_model(pickle.dumps({"a": 1}), tmp_path / "model.skops")
    with pytest.raises(ModelIntegrityError, match="not a readable skops file: BadZipFile"):
        read_model(b"PK\x03\x04" + b"\0" * 40, tmp_path / "model.skops")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", '{"__class__": "dict"}')
    with pytest.raises(ModelIntegrityError, match="not a readable skops file"):
        read_model(buffer.getvalue(), tmp_path / "model.skops")


def test_a_model_with_large_arrays_is_saved_and_loads(tmp_path: Path) -> None:
    big = {"weights": np.arange(100_000, dtype=float), "fortran": np.asfortranarray(np.ones((300, 40)))}
    digest = model.save(big, tmp_path)
    assert digest == sha256_file(tmp_path / model.MODEL_FILE)
    loaded = load(tmp_path)
    assert np.array_equal(loaded["weights"], big["weights"]) and loaded["fortran"].flags.f_contiguous


def test_out_of_fold_scores_cover_every_training_row_and_repeat_with_the_seed() -> None:
    X, y = frame(n=300)
    pipe = model.build(spec({"_target_": "sklearn.linear_model.LogisticRegression"}), X)
    first = model.out_of_fold_scores(pipe, X, y, folds=3, seed=1, threads=1)
    assert first.shape == (len(X),) and ((first >= 0) & (first <= 1)).all()
    assert np.array_equal(first, model.out_of_fold_scores(pipe, X, y, folds=3, seed=1, threads=1))
    assert not hasattr(pipe.named_steps["model"], "coef_")  # the pipeline itself is not fitted
    with pytest.raises(DataError, match="3 folds need at least 3 positive rows in the training part, it has 2"):
        model.out_of_fold_scores(pipe, X, pd.Series([1, 1] + [0] * (len(X) - 2)), folds=3, seed=1, threads=1)


def test_a_target_off_the_allowlist_is_never_imported() -> None:
    X, _ = frame()
    with pytest.raises(PermissionError):
        model.build(spec({"_target_": "os.system", "command": "true"}), X)


def test_holdout_is_stratified_and_seeded() -> None:
    y = pd.Series([0] * 90 + [1] * 10)
    cfg = {"strategy": "holdout", "test_size": 0.2, "stratify": True, "seed": 1}
    a, b = split.holdout(y, SplitSpec.from_config(cfg)), split.holdout(y, SplitSpec.from_config(cfg))
    assert list(a.test) == list(b.test)
    assert y.loc[a.test].sum() == 2 and len(a.test) == 20
    assert not set(a.train) & set(a.test)


def test_a_single_class_target_cannot_be_split() -> None:
    with pytest.raises(DataError, match="one class only"):
        split.holdout(pd.Series([0] * 10), SplitSpec.from_config({"strategy": "holdout", "test_size": 0.2,
                                                                  "stratify": True, "seed": 1}))


def test_metrics_match_hand_computed_values() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.6, 0.7, 0.4, 0.2, 0.9])
    m = evaluate.holdout_metrics(y, s)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 2)
    assert m["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["accuracy"] == pytest.approx(4 / 6, abs=1e-6)
    assert m["roc_auc"] == pytest.approx(8 / 9, abs=1e-6)


def test_roc_auc_is_none_when_the_holdout_has_one_class() -> None:
    assert evaluate.holdout_metrics(np.array([0, 0]), np.array([0.2, 0.7]))["roc_auc"] is None


@pytest.mark.filterwarnings("ignore:'penalty' was deprecated:FutureWarning")
def test_parameters_sklearn_rejects_together_are_a_config_error() -> None:
    from engine.errors import ConfigError

    X, y = frame()
    pipe = model.build(spec({"_target_": "sklearn.linear_model.LogisticRegression", "penalty": "l1"}), X)
    with pytest.raises(ConfigError, match="LogisticRegression rejected its parameters.*l1"):
        model.fit(pipe, X, y, threads=1)


def test_data_the_estimator_cannot_fit_is_a_data_error() -> None:
    from engine.errors import DataError

    X, _ = frame()
    pipe = model.build(spec({"_target_": "sklearn.linear_model.LogisticRegression"}), X)
    with pytest.raises(DataError, match="could not fit"):
        model.fit(pipe, X, pd.Series([1] * len(X)), threads=1)  # one class


def test_a_feature_mixing_text_and_numbers_is_encoded_as_text() -> None:
    X, y = frame()
    X["mixed"] = pd.Series(["a" if i % 2 else 1 for i in range(len(X))], dtype=object)
    pipe = model.build(spec({"_target_": "sklearn.linear_model.LogisticRegression"}), X)
    model.fit(pipe, X, y, threads=1)


def test_the_training_part_must_have_both_classes() -> None:
    from engine.errors import DataError

    y = pd.Series([0] * 95 + [1] * 5)
    with pytest.raises(DataError, match="one class only"):
        split.holdout(y, SplitSpec.from_config({"strategy": "holdout", "test_size": 0.96, "stratify": False,
                                                "seed": 0}))


@pytest.mark.parametrize("target, kind", [
    ("sklearn.linear_model.LogisticRegression", "coefficients"),
    ("sklearn.ensemble.RandomForestClassifier", "feature_importances"),
    ("sklearn.neighbors.KNeighborsClassifier", "permutation"),
])
def test_importances_are_per_input_feature_and_find_the_signal(target: str, kind: str) -> None:
    X, y = frame(n=600)
    pipe = model.build(spec({"_target_": target}), X)
    model.fit(pipe, X, y, threads=1)
    found, weights = model.importances(pipe, X, y, threads=1, seed=0)
    assert found == kind
    assert list(weights) == ["x", "plan", "flag"]  # one-hot columns summed back onto 'plan'
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert max(weights, key=weights.get) == "x"  # y is made from x only


def test_the_saved_model_predicts_at_its_threshold_and_keeps_the_probabilities(tmp_path: Path) -> None:
    X, y = frame()
    pipe = model.build(spec({"_target_": "sklearn.linear_model.LogisticRegression"}), X)
    model.fit(pipe, X, y, threads=1)
    decided = model.with_threshold(pipe, 0.9, X, y)
    model.save(decided, tmp_path)
    loaded = load(tmp_path)
    proba = model.predict_proba(pipe, X, threads=1)
    assert loaded.threshold == 0.9
    assert np.allclose(loaded.predict_proba(model.as_model_input(X))[:, 1], proba)
    assert (loaded.predict(model.as_model_input(X)) == (proba >= 0.9)).all()
    assert (proba >= 0.5).sum() > (proba >= 0.9).sum()  # the threshold changes decisions


def test_importances_map_one_hot_columns_by_position_not_by_name() -> None:
    # 'plan' = 'type_a' and 'plan_type' = 'a' both make a column named 'plan_type_a'.
    rng = np.random.default_rng(1)
    plan = rng.choice(["type_a", "b"], size=500)
    X = pd.DataFrame({"plan": pd.Series(plan, dtype="str"),
                      "plan_type": pd.Series(rng.choice(["a", "c"], size=500), dtype="str")})
    y = pd.Series((plan == "type_a").astype(int))
    pipe = model.build(spec({"_target_": "sklearn.linear_model.LogisticRegression"}), X)
    model.fit(pipe, X, y, threads=1)
    kind, weights = model.importances(pipe, X, y, threads=1, seed=0)
    assert kind == "coefficients" and weights["plan"] > 0.9 > weights["plan_type"]


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.9, 1.1])
def test_threshold_metrics_agree_with_scikit_learn(threshold: float) -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(3)
    y = (rng.uniform(size=300) < 0.2).astype(int)
    score = np.clip(0.3 * y + rng.uniform(size=300) * 0.7, 0, 1)
    m = evaluate.holdout_metrics(y, score, threshold)
    pred = (score >= threshold).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-6)
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0), abs=1e-6)
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0), abs=1e-6)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-6)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == tuple(skm.confusion_matrix(y, pred, labels=[0, 1]).ravel())


@pytest.mark.parametrize("target, kind", [
    ("sklearn.linear_model.LogisticRegression", "coefficients"),
    ("sklearn.ensemble.RandomForestClassifier", "feature_importances"),
    ("sklearn.ensemble.HistGradientBoostingClassifier", "permutation"),
])
def test_importances_survive_inputs_missing_on_every_row(target: str, kind: str) -> None:
    # The imputers drop an all-missing column, numeric or text, so the model sees fewer inputs
    # than X has: such an input gets 0 instead of shifting every other input's share.
    X, y = frame(n=600)
    X = X.assign(empty_number=np.nan, empty_text=pd.Series([None] * len(X), dtype=object))
    pipe = model.build(spec({"_target_": target}), X)
    model.fit(pipe, X, y, threads=1)
    found, weights = model.importances(pipe, X, y, threads=1, seed=0)
    assert found == kind
    assert list(weights) == ["x", "plan", "flag", "empty_number", "empty_text"]
    assert weights["empty_number"] == weights["empty_text"] == 0.0
    assert max(weights, key=weights.get) == "x"

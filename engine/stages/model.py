"""The model (``conf/model/``): preprocessing plus an allowlisted estimator, in one Pipeline.

Imputation, one-hot encoding and scaling live inside the saved Pipeline, so the model
file takes raw feature rows exactly as the feature stage builds them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.utils import instantiate
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from engine.config import targets
from engine.config.plan import ModelSpec
from engine.errors import ConfigError, DataError, EngineError
from engine.files import atomic_path
from engine.stages.data import type_of

MODEL_FILE = "model.skops"
#: Beside the model: the columns it takes and the source columns they come from.
INPUT_SCHEMA_FILE = "input_schema.json"
#: Deflate level of the model file's entries: level 1 is within 4% of level 3's size
#: and the fastest on a forest of a few hundred trees.
_LEVEL = 1
#: The date every entry of the model file carries: zip's earliest, so no clock is in the file.
_STAMP = (1980, 1, 1, 0, 0, 0)


def build(spec: ModelSpec, X: pd.DataFrame) -> Pipeline:
    """Build the unfitted Pipeline: a ColumnTransformer by dtype, then the estimator.

    The ``_target_`` must be allowlisted (checked again here, not only when the plan
    was compiled, because this is where the import happens).

    Args:
        spec: The estimator and the preprocessing (``plan.model``).
        X: The training features: their dtypes choose each column's branch.
    """
    targets.import_target(spec.target)
    estimator = instantiate({"_target_": spec.target, **spec.params}, _convert_="all")
    preprocess = spec.preprocess
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=preprocess.numeric_impute))]
    if preprocess.scale:
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy=preprocess.categorical_impute, fill_value="missing")),
        ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=preprocess.min_frequency,
                                 sparse_output=False)),
    ]
    columns = ColumnTransformer(
        [("numeric", Pipeline(numeric_steps), numeric), ("categorical", Pipeline(categorical_steps), categorical)],
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", columns), ("model", estimator)])


def as_model_input(X: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as text objects with NaN for missing: SimpleImputer wants one
    missing marker, and OneHotEncoder one type per column (``where(x, plan, 1)`` mixes)."""
    out = X.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]) or pd.api.types.is_bool_dtype(out[column]):
            present = out[column].notna()
            out[column] = out[column].astype(str).astype(object).where(present, np.nan)
    return out


def fit(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, threads: int) -> float:
    """Fit with BLAS/OpenMP pinned to ``threads``; return the seconds spent.

    Raises:
        ConfigError: The estimator rejects its hyper-parameters together (scikit-learn
            checks combinations such as penalty and solver only when fitting starts).
        DataError: The estimator rejects the data.
    """
    start = time.perf_counter()
    try:
        with threadpool_limits(limits=threads):
            pipeline.fit(as_model_input(X), y)
    except (ValueError, TypeError) as exc:
        raise _fit_error(pipeline.named_steps["model"], exc) from exc
    return time.perf_counter() - start


def out_of_fold_scores(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, folds: int, seed: int,
                       threads: int) -> np.ndarray:
    """Scores of the training rows, each from a copy of the model that did not see it.

    ``folds`` stratified, shuffled folds (``seed``), an unfitted clone of ``pipeline``
    (fitted or not) per fold. The decision threshold is chosen on these scores, so the
    hold-out set stays unseen until it is scored.

    Raises:
        DataError: Fewer positive rows in the training part than folds.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    positives = int(np.asarray(y).sum())
    if positives < folds:
        raise DataError(f"data error at business.threshold_folds: {folds} folds need at least {folds} positive "
                        f"rows in the training part, it has {positives}; lower threshold_folds or set it to null")
    try:
        with threadpool_limits(limits=threads):
            scores = cross_val_predict(clone(pipeline), as_model_input(X), y, method="predict_proba",
                                       cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed))
    except (ValueError, TypeError) as exc:
        raise _fit_error(pipeline.named_steps["model"], exc) from exc
    return np.asarray(scores)[:, 1]


def _fit_error(estimator: Any, exc: Exception) -> EngineError:
    """Blame the parameters if the estimator also fails on clean toy data, else the data."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    rng = np.random.default_rng(0)
    toy_X, toy_y = rng.normal(size=(40, 3)), np.arange(40) % 2
    try:
        clone(estimator).fit(toy_X, toy_y)
    except (ValueError, TypeError):
        return ConfigError("model", f"{type(estimator).__name__} rejected its parameters when training "
                                    f"started: {message}")
    return DataError(f"data error at train: {type(estimator).__name__} could not fit the features: {message}")


def predict_proba(pipeline: Pipeline, X: pd.DataFrame, threads: int) -> np.ndarray:
    """Probability of the positive class."""
    with threadpool_limits(limits=threads):
        return pipeline.predict_proba(as_model_input(X))[:, 1]


def save(pipeline: Any, directory: Path) -> str:
    """Save the fitted model atomically with its sha256 beside it; return the hash.

    The file is skops' format (a zip of a JSON schema and ``.npy`` arrays), which
    :func:`engine.store.registry.load_model` reads without running code: it refuses any type
    outside a trusted list before it builds an object. Written here, not with
    ``skops.io.dump``, which stamps every zip entry with the time and names objects and
    arrays by their memory address (``id()``), so two identical models would differ, and
    indents its JSON (90% of its time on a forest). Here every entry carries one fixed
    date, objects are numbered in the order skops meets them, and the JSON is compact:
    the same model gives the same bytes and sha256.
    """
    payload = _skops_bytes(pipeline)
    digest = hashlib.sha256(payload).hexdigest()
    with atomic_path(directory / MODEL_FILE) as tmp:
        tmp.write_bytes(payload)
    with atomic_path(directory / f"{MODEL_FILE}.sha256") as tmp:
        tmp.write_text(f"{digest}  {MODEL_FILE}\n")
    return digest


def input_schema(X: pd.DataFrame, lineage: Mapping[str, frozenset[str]],
                 sources: Mapping[str, Mapping[str, Any]], key: str, target: str) -> dict[str, Any]:
    """What a saved model takes, for serving and monitoring: its inputs and where they come from.

    Args:
        X: The features the Pipeline was fitted on, in its column order.
        lineage: Feature -> the ``source.column`` names it is computed from
            (:meth:`engine.specs.FeatureSpec.lineage`).
        sources: Source name -> its recorded column schema (run.json ``data.<name>.schema``).
        key: The entity key of the feature table.
        target: The target's name.

    Returns:
        ``features``: each input column of the Pipeline, in order, with its type and the
        source columns it is computed from; ``sources``: those raw columns with their
        declared or inferred types; the key and the target.
    """
    features: dict[str, Any] = {}
    raw: dict[str, dict[str, Any]] = {}
    for column in X.columns:
        read = sorted(lineage.get(str(column), frozenset()))
        features[str(column)] = {"type": type_of(X[column].dtype), "from": read}
        for ref in read:
            source, _, name = ref.partition(".")
            recorded = sources.get(source, {}).get(name)
            if recorded is not None:
                raw.setdefault(source, {})[name] = recorded
    return {"features": features, "sources": {s: dict(sorted(c.items())) for s, c in sorted(raw.items())},
            "key": key, "target": target}


def save_input_schema(schema: Mapping[str, Any], directory: Path) -> str:
    """Write the input schema beside the model atomically; return its sha256.

    Its own hash, recorded in run.json beside the model's: the model file's bytes (and
    sha256) stay what they were, and a changed schema file is caught the same way.
    """
    payload = (json.dumps(schema, indent=2) + "\n").encode()
    with atomic_path(directory / INPUT_SCHEMA_FILE) as tmp:
        tmp.write_bytes(payload)
    return hashlib.sha256(payload).hexdigest()


def _skops_bytes(obj: Any) -> bytes:
    """``obj`` in skops' format, byte for byte the same for the same object.

    What ``skops.io.dumps`` does, with a save context that numbers objects and a zip
    whose entries carry no clock.
    """
    import skops

    context_class, zip_class, get_state = _skops_writers()
    buffer = io.BytesIO()
    with zip_class(buffer, "w") as archive:
        context = context_class(zip_file=archive)
        state = get_state(obj, context)
        state["protocol"] = context.protocol
        state["_skops_version"] = skops.__version__
        archive.writestr("schema.json", json.dumps(state, separators=(",", ":")))
        context.clear_memo()
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _skops_writers() -> tuple[Any, type[zipfile.ZipFile], Any]:
    """The save context and zip classes of :func:`_skops_bytes`, and skops' ``get_state``.

    skops is imported on first use (~1 s: it imports every scikit-learn estimator to
    list the ones it trusts). ``SaveContext`` and ``get_state`` are skops' own (private)
    pieces of ``dumps``; the unit tests pin the bytes they give.
    """
    from dataclasses import dataclass, field

    import skops.io  # noqa: F401  (registers how each type is saved)
    from skops.io._utils import SaveContext, get_state

    @dataclass(frozen=True)
    class NumberingContext(SaveContext):  # type: ignore[misc]
        """Objects get 1, 2, 3... in the order skops meets them, not their address: the
        number names an object's ``__id__`` and its array's file in the zip."""

        numbers: dict[int, int] = field(default_factory=dict)

        def memoize(self, obj: Any) -> int:
            key = id(obj)
            if key not in self.memo:
                self.memo[key] = obj  # held until clear_memo(): no address is reused meanwhile
                self.numbers[key] = len(self.numbers) + 1  # from 1: skops ignores a falsy __id__
            return self.numbers[key]

    class FixedZip(zipfile.ZipFile):
        """Entries with one date, permissions and system, deflated at :data:`_LEVEL`."""

        def writestr(self, zinfo_or_arcname: Any, data: Any, compress_type: int | None = None,
                     compresslevel: int | None = None) -> None:
            name = zinfo_or_arcname if isinstance(zinfo_or_arcname, str) else zinfo_or_arcname.filename
            info = zipfile.ZipInfo(name, date_time=_STAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            super().writestr(info, data, compresslevel=_LEVEL)

        def namelist(self) -> Any:
            # skops asks, per array, whether its file is written yet: a view, not a new list
            # each time (quadratic on a forest's thousands of arrays)
            return self.NameToInfo.keys()

    return NumberingContext, FixedZip, get_state


def importances(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, threads: int, seed: int,
                max_rows: int = 2000) -> tuple[str, dict[str, float]]:
    """How much each input feature matters to the fitted model, summing to 1.

    The model's own ``feature_importances_`` or absolute ``coef_`` when it has them
    (coefficients are on the preprocessed, scaled inputs), summed over the one-hot
    columns of a categorical feature; else permutation importance on at most
    ``max_rows`` hold-out rows (the drop in ROC AUC when a column is shuffled).
    An input the imputer dropped (missing on every training row) gets 0.

    Returns:
        The kind (``feature_importances``, ``coefficients`` or ``permutation``) and
        feature -> share of the total, in the order of ``X``'s columns.
    """
    estimator = pipeline.named_steps["model"]
    native = getattr(estimator, "feature_importances_", None)
    kind = "feature_importances"
    if native is None and getattr(estimator, "coef_", None) is not None:
        native, kind = np.abs(np.atleast_2d(estimator.coef_)).sum(axis=0), "coefficients"
    raw = _per_input(pipeline.named_steps["preprocess"], np.asarray(native, dtype=float)) \
        if native is not None else None
    if raw is None:  # no native importances, or outputs that cannot be traced back to inputs
        from sklearn.inspection import permutation_importance

        sample = X.sample(n=min(max_rows, len(X)), random_state=seed) if len(X) > max_rows else X
        scoring = "roc_auc" if y.loc[sample.index].nunique() == 2 else "accuracy"
        with threadpool_limits(limits=threads):
            result = permutation_importance(pipeline, as_model_input(sample), y.loc[sample.index], scoring=scoring,
                                            n_repeats=5, random_state=seed, n_jobs=1)
        raw = dict(zip(X.columns, np.clip(result.importances_mean, 0, None), strict=True))
        kind = "permutation"
    total = sum(raw.values())
    return kind, {c: round(float(raw.get(c, 0.0) / total), 6) if total > 0 else 0.0 for c in X.columns}


def _per_input(columns: ColumnTransformer, values: np.ndarray) -> dict[str, float] | None:
    """Sum output-column values back onto the input columns they came from.

    Each branch's steps are followed input by input: an imputer drops the inputs that
    were missing on every training row (they get nothing), and the one-hot encoder
    writes each remaining input's columns together, in input order; its per-input
    widths say which block is whose (names could be ambiguous: 'plan' + 'type_a' and
    'plan_type' + 'a' both give 'plan_type_a').

    Returns:
        Input column -> summed value; None when the outputs cannot be traced back (a
        transformer this code does not know), where splitting evenly would be a guess.
    """
    out: dict[str, float] = {}
    start = 0
    for _, transformer, inputs in columns.transformers_:
        if transformer == "drop" or not len(inputs):
            continue
        steps = list(transformer.named_steps.values()) if hasattr(transformer, "named_steps") else [transformer]
        kept, widths = [str(c) for c in inputs], None
        try:
            for step in steps:
                if isinstance(step, OneHotEncoder):
                    widths = list(getattr(step, "_n_features_outs", None) or [])
                    break
                if step != "passthrough":
                    kept = [str(c) for c in step.get_feature_names_out(kept)]
            width = len(transformer.get_feature_names_out(inputs)) if transformer != "passthrough" else len(kept)
        except (AttributeError, TypeError, ValueError):
            return None
        widths = [1] * len(kept) if widths is None else widths
        if len(widths) != len(kept) or sum(widths) != width:
            return None
        for column, w in zip(kept, widths, strict=True):
            out[column] = out.get(column, 0.0) + float(values[start:start + w].sum())
            start += w
    return out if start == len(values) else None


def with_threshold(pipeline: Pipeline, threshold: float, X: pd.DataFrame, y: pd.Series) -> Any:
    """The fitted Pipeline wrapped so that ``predict`` uses the chosen threshold.

    scikit-learn's own ``FixedThresholdClassifier`` around a ``FrozenEstimator``: the
    saved model carries its decision threshold (``model.threshold``), ``predict_proba``
    is the Pipeline's, and nothing is refitted (the one-row fit only records classes).
    """
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    wrapped = FixedThresholdClassifier(FrozenEstimator(pipeline), threshold=float(threshold),
                                       response_method="predict_proba")
    return wrapped.fit(as_model_input(X.iloc[:1]), y.iloc[:1])

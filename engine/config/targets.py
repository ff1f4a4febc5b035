"""The ``_target_`` allowlist: which classes a shared config may instantiate.

Configs are code that other people share. Hydra's ``instantiate`` would import and
call any dotted path, ``os.system`` included, so every ``_target_`` in a composed
config must be listed here before anything is instantiated. Projects add their own
estimators through the ``mlops_engine.targets`` entry-point group: each entry point
names a module attribute holding an iterable of dotted paths.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any

from engine.config.origin import ConfigOrigin
from engine.errors import ConfigError

#: scikit-learn classifiers a model config may name (all give predict_proba; RidgeClassifier
#: never does, so it is not here).
BUILTIN_TARGETS = frozenset(
    {
        "sklearn.linear_model.LogisticRegression",
        "sklearn.linear_model.SGDClassifier",
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.ensemble.ExtraTreesClassifier",
        "sklearn.ensemble.GradientBoostingClassifier",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.ensemble.AdaBoostClassifier",
        "sklearn.tree.DecisionTreeClassifier",
        "sklearn.neighbors.KNeighborsClassifier",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.svm.SVC",
        "sklearn.neural_network.MLPClassifier",
        "sklearn.dummy.DummyClassifier",
    }
)


@lru_cache(maxsize=1)
def allowed_targets() -> frozenset[str]:
    """The built-in allowlist plus what installed plugins add."""
    return BUILTIN_TARGETS | listed_by("mlops_engine.targets")


def listed_by(group: str) -> frozenset[str]:
    """The dotted paths installed packages list under an entry-point group: each entry
    point names a module attribute holding an iterable of them."""
    return frozenset(path for entry in entry_points(group=group) for path in entry.load())


def import_target(dotted: str) -> type:
    """Import an allowlisted class by its dotted path.

    Raises:
        PermissionError: The path is not on the allowlist (checked before importing).
    """
    if dotted not in allowed_targets():
        raise PermissionError(dotted)
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def check_targets(cfg: Mapping[str, Any], where: ConfigOrigin | None = None) -> None:
    """Every ``_target_`` anywhere in a job config (plain data, no ``hydra`` node) is allowlisted.

    Raises:
        ConfigError: The first ``_target_`` that is not, naming the closest allowed one.
    """
    where = where or ConfigOrigin()
    for path, value in _targets(cfg, ""):
        if value not in allowed_targets():
            close = difflib.get_close_matches(value, sorted(allowed_targets()), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(path, f"_target_ {value!r} is not on the allowlist of estimators{hint} "
                              "(extend it through the mlops_engine.targets entry point)", where.source_of(path))


def _targets(node: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield child, str(value)
            else:
                yield from _targets(value, child)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{path}.{i}" if path else str(i))

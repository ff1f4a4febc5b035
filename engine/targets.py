"""The ``_target_`` allowlist: which classes a shared config may instantiate.

Configs are code that other people share. Hydra's ``instantiate`` would import and
call any dotted path, ``os.system`` included, so every ``_target_`` in a composed
config must be listed here before anything is instantiated. Projects add their own
estimators through the ``mlops_engine.targets`` entry-point group: each entry point
names a module attribute holding an iterable of dotted paths.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

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
    extra: set[str] = set()
    for entry in entry_points(group="mlops_engine.targets"):
        extra.update(entry.load())
    return BUILTIN_TARGETS | extra


def import_target(dotted: str) -> type:
    """Import an allowlisted class by its dotted path.

    Raises:
        PermissionError: The path is not on the allowlist (checked before importing).
    """
    if dotted not in allowed_targets():
        raise PermissionError(dotted)
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)

"""mlops-engine: a declarative config-as-code engine for machine-learning experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load_model(ref: str, registry: str | Path | None = None, tracking_uri: str | None = None,
               allow_version_mismatch: bool = False) -> Any:
    """The fitted scikit-learn Pipeline registered as ``ref``, verified before it is built.

    Its sha256 is checked against the registry and the run's own records, and the
    skops file is read with a trusted-type list, so a tampered file can run no code
    (see :func:`engine.store.registry.load_model`).

    Args:
        ref: ``churn@champion``, ``churn/3`` or ``churn`` (the latest version).
        registry: The registry folder; default ``$MLOPS_REGISTRY`` or ``outputs/registry``.
        tracking_uri: The metadata store the run was indexed in; default
            ``$MLOPS_TRACKING_URI`` or ``sqlite:///outputs/mlops.db``.
        allow_version_mismatch: Load it even when scikit-learn, numpy, scipy, pandas or
            skops runs at another major version than the model was trained with.

    Raises:
        engine.store.registry.ModelIntegrityError: The file does not match its records, or
            holds types outside the trusted list.
        engine.store.environment.EnvironmentMismatch: Another major version, not allowed
            (another minor version of scikit-learn, numpy or scipy only warns).
    """
    import os

    from engine.store.registry import load_model as _load

    return _load(ref, registry or os.environ.get("MLOPS_REGISTRY", str(Path("outputs") / "registry")), tracking_uri,
                 allow_version_mismatch)

"""mlops-engine: a declarative config-as-code engine for machine-learning experiments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__version__ = "0.1.0"


def load_model(ref: str, registry: str | Path | None = None) -> Any:
    """The fitted scikit-learn Pipeline registered as ``ref``, after checking its sha256.

    Args:
        ref: ``churn@champion``, ``churn/3`` or ``churn`` (the latest version).
        registry: The registry folder; default ``$MLOPS_REGISTRY`` or ``outputs/registry``.

    Raises:
        engine.registry.ModelIntegrityError: The file does not match the registry.
    """
    import os

    from engine.registry import load_model as _load

    return _load(ref, registry or os.environ.get("MLOPS_REGISTRY", str(Path("outputs") / "registry")))

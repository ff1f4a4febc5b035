"""mlops-engine: a declarative config-as-code engine for machine-learning experiments."""

from __future__ import annotations

__version__ = "0.1.0"

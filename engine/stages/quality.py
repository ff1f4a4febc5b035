"""Data quality (``conf/quality/``): rules by dimension and the quality gate.

Placeholder until the rule engine lands: rules are validated by their schema and
listed in the run record, but not yet executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def declared(quality_cfg: Mapping[str, Any]) -> dict[str, str]:
    """The declared rules, name -> dimension."""
    return {name: rule["dimension"] for name, rule in (quality_cfg.get("rules") or {}).items()}

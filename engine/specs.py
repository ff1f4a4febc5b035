"""Declarations parsed from config groups, apart from the code that executes them.

Validation reads these to check a config without touching data; the stages read the
same objects to execute it, so a config is parsed one way only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine import expr
from engine.errors import ConfigError

DERIVED = "features.derived."


@dataclass(frozen=True)
class FeatureSpec:
    """The expressions of the ``features`` group, parsed and ordered.

    Args:
        expressions: Config path (``features.derived.avg_expenditure``) -> parsed tree.
        derived_order: Derived feature names, each after the names it reads.
    """

    expressions: Mapping[str, expr.Node]
    derived_order: tuple[str, ...]

    @classmethod
    def from_config(cls, features_cfg: Mapping[str, Any]) -> FeatureSpec:
        """Parse population, derived features and target of a ``features`` group.

        Raises:
            ConfigError: An expression does not parse, or derived features read each
                other in a cycle; the path names the key.
        """
        found: dict[str, str] = {}
        if features_cfg.get("population"):
            found["features.population"] = features_cfg["population"]
        for name, text in (features_cfg.get("derived") or {}).items():
            found[f"{DERIVED}{name}"] = text
        found["features.target.expr"] = features_cfg["target"]["expr"]
        parsed: dict[str, expr.Node] = {}
        for path, text in found.items():
            try:
                parsed[path] = expr.parse(text)
            except expr.ExpressionError as exc:
                raise ConfigError(path, f"invalid expression {text!r}: {exc}") from exc
        derived = {p.removeprefix(DERIVED): node for p, node in parsed.items() if p.startswith(DERIVED)}
        try:
            order = expr.dependency_order(derived)
        except expr.ExpressionError as exc:
            first = str(exc).removeprefix("cycle: ").split(" ")[0]
            raise ConfigError(f"{DERIVED}{first}", f"derived features must not read themselves, got a {exc}") from exc
        return cls(parsed, tuple(order))

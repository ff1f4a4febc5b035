"""Key metrics by stakeholder, and the business requirements on them (declarations).

``conf/business/`` names what each stakeholder looks at and what a model must meet.
This module parses those declarations; validation reads them before any data is read,
and ``engine/stages/business.py`` executes them on a trained model.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError

#: Each stakeholder's key metrics: the names ``metrics.json`` groups them under.
STAKEHOLDERS: dict[str, tuple[str, ...]] = {
    "data_scientist": ("accuracy", "roc_auc", "f1", "precision", "recall", "log_loss", "brier"),
    "subject_matter_expert": ("share_churners_caught", "customers_contacted_per_month",
                              "contacted_at_risk_share", "needless_offers_per_month"),
    "business": ("net_value_per_month", "revenue_saved_per_month", "false_positive_cost_per_month",
                 "customers_retained_per_month"),
}

#: What each metric means, for the terminal and the report.
DESCRIPTIONS: dict[str, str] = {
    "accuracy": "share of hold-out customers classified right",
    "roc_auc": "chance a churner is ranked above a stayer",
    "f1": "harmonic mean of precision and recall",
    "precision": "share of flagged customers who churned",
    "recall": "share of churners flagged",
    "log_loss": "cross-entropy of the predicted probabilities (lower is better)",
    "brier": "calibration: mean squared error of the probabilities (lower is better)",
    "share_churners_caught": "share of the month's churners who get the offer",
    "customers_contacted_per_month": "offers sent a month",
    "contacted_at_risk_share": "share of contacted customers who were really about to churn "
                               "(customer happiness: fewer needless offers)",
    "needless_offers_per_month": "offers sent to customers who would have stayed",
    "net_value_per_month": "revenue saved minus the discounts given away, $ a month",
    "revenue_saved_per_month": "what retained churners pay at the discounted price, $ a month",
    "false_positive_cost_per_month": "discounts given to customers who would have stayed, $ a month",
    "customers_retained_per_month": "churners who stay because of the offer",
}

#: The requirements that are not a bound on a metric: name -> (kind, what it measures).
SPECIAL: dict[str, tuple[str, str]] = {
    "max_train_seconds": ("speed", "seconds to fit the model"),
    "max_predict_ms_per_1000": ("speed", "milliseconds to score 1,000 hold-out rows"),
    "max_run_seconds": ("budget", "wall seconds of the whole run"),
    "transparency": ("transparency", "feature importances the model exposes"),
    "protected_columns": ("compliance", "columns no model feature may use"),
    "personal_data": ("compliance", "columns that may never reach the feature table"),
}

#: ``transparency`` values: the model's own importances or coefficients only, or
#: permutation importance accepted as the fallback.
TRANSPARENCY = ("native", "any")


def known_metrics() -> tuple[str, ...]:
    """Every metric a requirement may bound, in stakeholder order."""
    return tuple(name for names in STAKEHOLDERS.values() for name in names)


@dataclass(frozen=True)
class Requirement:
    """One business requirement.

    Args:
        name: Its key under ``business.requirements`` (``min_roc_auc``).
        kind: speed, accuracy, transparency, compliance or budget.
        value: The required bound, level or column list.
        hard: A hard requirement fails the run; a soft one warns.
        metric: For ``min_<metric>`` / ``max_<metric>``: the metric bounded.
        bound: ``min`` or ``max`` for numeric requirements, else None.
    """

    name: str
    kind: str
    value: Any
    hard: bool = True
    metric: str | None = None
    bound: str | None = None


def parse(business_cfg: Mapping[str, Any]) -> tuple[Requirement, ...]:
    """Parse ``business.requirements`` (null entries are switched off).

    Raises:
        ConfigError: A ``min_``/``max_`` requirement names an unknown metric, or
            ``soft_requirements`` names a requirement that is not declared.
    """
    declared = business_cfg.get("requirements") or {}
    soft = list(business_cfg.get("soft_requirements") or [])
    for i, name in enumerate(soft):
        if name not in declared:
            raise ConfigError(f"business.soft_requirements.{i}", f"names no requirement: {name!r}; expected one of: "
                              f"{', '.join(declared) or '(none declared)'}")
    metrics = known_metrics()
    out = []
    for name, value in declared.items():
        if value is None:
            continue
        hard = name not in soft
        if name in SPECIAL:
            out.append(Requirement(name, SPECIAL[name][0], value, hard, bound="max" if name.startswith("max_")
                                   else None))
            continue
        bound, _, metric = name.partition("_")
        if bound not in ("min", "max") or metric not in metrics:
            close = difflib.get_close_matches(metric or name, metrics, n=1)
            hint = f"did you mean {bound}_{close[0]}? " if close and bound in ("min", "max") else ""
            raise ConfigError(f"business.requirements.{name}",
                              f"unknown requirement; {hint}expected min_<metric> or max_<metric> with a known metric "
                              f"({', '.join(metrics)}) or one of: {', '.join(SPECIAL)}")
        out.append(Requirement(name, "accuracy", value, hard, metric=metric, bound=bound))
    return tuple(out)

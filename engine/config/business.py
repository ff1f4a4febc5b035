"""The ``business`` group as declarations: the economics, each stakeholder's key
metrics, and the business requirements on them.

``conf/business/`` says what a model is worth, what each stakeholder looks at and what
a model must meet. This module parses those declarations into a :class:`BusinessSpec`
(``engine.config.plan.compile`` does, once, before any data is read), and
``engine/stages/business.py`` executes them on a trained model.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError

#: The decision-threshold policy that picks the threshold of most net value.
BEST = "best"

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


@dataclass(frozen=True)
class Economics:
    """The business inputs of ``conf/business/``, one field per YAML key.

    Args:
        customers: Customers scored each month.
        price: $ a customer pays a month.
        churners_per_month: Customers who cancel in an average month.
        retention_effect: Share of contacted churners the offer keeps.
        discounted_price: $ a month a kept customer pays after the offer.
        false_positive_cost: $ a month given away to a contacted customer who would
            have stayed; ``None`` means ``price - discounted_price``.
        expected_share_caught: The design-time guess of the share of churners a model
            finds (the mission's 80%), for the simple estimate made before any model.
    """

    customers: int
    price: float
    churners_per_month: float
    retention_effect: float
    discounted_price: float
    false_positive_cost: float | None = None
    expected_share_caught: float | None = None

    @classmethod
    def from_config(cls, business_cfg: Mapping[str, Any]) -> Economics:
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in business_cfg.items() if k in fields})

    @property
    def stayers_per_month(self) -> float:
        return max(self.customers - self.churners_per_month, 0.0)

    @property
    def cost_per_needless_offer(self) -> float:
        if self.false_positive_cost is not None:
            return float(self.false_positive_cost)
        return max(self.price - self.discounted_price, 0.0)

    @property
    def break_even_precision(self) -> float:
        """The share of contacted customers who must be real churners for offers to pay:
        cost / (cost + what a contacted churner brings), 2 / (2 + 0.5 x 8) = 1/3 here."""
        gain = self.retention_effect * self.discounted_price
        cost = self.cost_per_needless_offer
        return cost / (cost + gain) if cost + gain > 0 else 0.0


@dataclass(frozen=True)
class BusinessSpec:
    """The ``business`` group, parsed: what :func:`engine.stages.business.assess` and the
    requirements gate read.

    Args:
        economics: The inputs that value a model.
        requirements: The parsed ``business.requirements`` (:func:`parse`).
        threshold: The decision threshold: ``best`` (most net value) or a number.
        threshold_folds: Folds of out-of-fold training scores to choose ``best`` on;
            None chooses it on the hold-out set.
        inputs: The group as declared, without the requirements: ``metrics.json``
            records it as the valuation's inputs.
    """

    economics: Economics
    requirements: tuple[Requirement, ...] = ()
    threshold: str | float = BEST
    threshold_folds: int | None = None
    inputs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, business_cfg: Mapping[str, Any],
                    requirements: tuple[Requirement, ...] | None = None) -> BusinessSpec:
        """Build the spec of a ``business`` group.

        Args:
            business_cfg: The resolved ``business`` group.
            requirements: Its requirements, when already parsed; else parsed here.

        Raises:
            ConfigError: A requirement does not parse (see :func:`parse`).
        """
        return cls(
            economics=Economics.from_config(business_cfg),
            requirements=parse(business_cfg) if requirements is None else requirements,
            threshold=business_cfg.get("threshold", BEST),
            threshold_folds=business_cfg.get("threshold_folds"),
            inputs={k: v for k, v in business_cfg.items() if k not in ("requirements", "soft_requirements")},
        )

    @property
    def tunes_threshold(self) -> bool:
        """Whether the best threshold is chosen on out-of-fold training scores."""
        return bool(self.threshold_folds) and self.threshold == BEST

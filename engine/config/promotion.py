"""The champion gate as a declaration: what ``conf/promotion/`` may say, parsed and checked.

``mlops validate`` scores a candidate and the champion on the same rows and applies
this policy (:mod:`engine.run.validate`). Every rule compares an *improvement*: the
candidate's value minus the champion's, or the other way round for metrics where lower
is better, so ``min_change: -0.002`` always reads "no worse by more than 0.002".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ConfigError

#: The metrics the gate computes for both models (the hold-out metrics of a run and
#: the business value at each model's own threshold).
METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier", "net_value_per_month",
           "revenue_saved_per_month", "churners_caught_per_month")
#: Where a lower value is the better one: their improvement is champion minus candidate.
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
DECISIONS = ("estimate", "lower_bound")


@dataclass(frozen=True)
class MetricRule:
    """The smallest improvement of one metric a candidate may show.

    Args:
        metric: One of :data:`METRICS`.
        min_change: The improvement must be at least this (absolute, in the metric's unit).
        min_relative_change: The improvement divided by the champion's absolute value
            must be at least this (-0.05: at most 5% worse).
    """

    metric: str
    min_change: float | None = None
    min_relative_change: float | None = None

    def describe(self) -> str:
        """The rule as the report states it, e.g. ``change >= -0.002``."""
        parts = []
        if self.min_change is not None:
            parts.append(f"change >= {self.min_change:g}")
        if self.min_relative_change is not None:
            parts.append(f"relative change >= {self.min_relative_change:+.1%}")
        return " and ".join(parts)


@dataclass(frozen=True)
class PromotionSpec:
    """The ``promotion`` group, parsed.

    Args:
        rules: One rule per metric, in declaration order.
        decide_on: ``estimate``: the observed improvement must meet each rule;
            ``lower_bound``: the lower end of its bootstrap interval must.
        requirements_must_pass: The candidate's business requirements must all pass.
        latency_p99_ms: The p99 single-row latency budget of the candidate (None: none).
        latency_rows: How many single rows are timed, at most.
        latency_max_seconds: No more rows are timed after this long.
        evaluation_as_of: None: the candidate's hold-out rows; a date: every row of the
            population at that cut-off.
        resamples: Paired bootstrap resamples (0: no intervals).
        confidence: The intervals' coverage.
        seed: The bootstrap's seed.
    """

    rules: tuple[MetricRule, ...] = ()
    decide_on: str = "estimate"
    requirements_must_pass: bool = True
    latency_p99_ms: float | None = None
    latency_rows: int = 200
    latency_max_seconds: float = 3.0
    evaluation_as_of: str | None = None
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 0
    declared: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, promotion_cfg: Mapping[str, Any] | None, seed: int = 0) -> PromotionSpec:
        """Parse a ``promotion`` group (the schema has checked its shape); None: no rules.

        Raises:
            ConfigError: A metric the gate does not compute, naming the known ones.
        """
        if not promotion_cfg:
            return cls(seed=seed)
        rules = []
        for metric, bounds in (promotion_cfg.get("metrics") or {}).items():
            if metric not in METRICS:
                raise ConfigError(f"promotion.metrics.{metric}", f"unknown metric; expected one of: {', '.join(METRICS)}")
            rules.append(MetricRule(metric, bounds.get("min_change"), bounds.get("min_relative_change")))
        latency = promotion_cfg.get("latency") or {}
        bootstrap = promotion_cfg.get("bootstrap") or {}
        as_of = (promotion_cfg.get("evaluation") or {}).get("as_of")
        return cls(
            rules=tuple(rules),
            decide_on=promotion_cfg.get("decide_on", "estimate"),
            requirements_must_pass=bool(promotion_cfg.get("requirements_must_pass", True)),
            latency_p99_ms=latency.get("p99_ms") if latency.get("rows") is not None or "rows" not in latency
            else None,
            latency_rows=int(latency.get("rows") or 200),
            latency_max_seconds=float(latency.get("max_seconds", 3.0)),
            evaluation_as_of=None if as_of is None else str(as_of),
            resamples=int(bootstrap.get("resamples", 1000)),
            confidence=float(bootstrap.get("confidence", 0.95)),
            seed=int(bootstrap.get("seed", seed)),
            declared=dict(promotion_cfg),
        )

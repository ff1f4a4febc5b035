"""What the model is worth (``conf/business/``): added value and each stakeholder's metrics.

The hold-out set is a sample of one month's customers, so its confusion matrix at a
decision threshold scales to the configured population:

* churners caught a month   = churners_per_month x recall (tp / (tp + fn))
* needless offers a month   = (customers - churners_per_month) x fp / (fp + tn)
* customers retained        = churners caught x retention_effect
* revenue saved             = customers retained x discounted_price
* cost of false positives   = needless offers x false_positive_cost (the discount
  given away to customers who would have stayed)
* net value                 = revenue saved - cost of false positives

The threshold that maximises net value is searched over every distinct hold-out score.
Choosing it on the hold-out set makes the value at that threshold optimistic by the
noise of one sample; the value at 0.5 is reported beside it for that reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_curve

# Economics is declared in engine.config.business (the plan reads it); importing it from here still works.
from engine.config.business import BEST, STAKEHOLDERS, BusinessSpec, Economics, Requirement  # noqa: F401
from engine.stages import evaluate

DEFAULT_THRESHOLD = 0.5

def simple_estimate(churners_per_month: float, share_caught: float, retention_effect: float,
                    discounted_price: float) -> float:
    """The mission's back-of-the-envelope value per month.

    churners caught x share who stay after the offer x what they then pay:
    1,000 churners x 80% caught x 50% kept x $8 = $3,200 a month.
    """
    return churners_per_month * share_caught * retention_effect * discounted_price


def value_at(economics: Economics, tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """The monthly value of acting on a confusion matrix, scaled to the population."""
    recall = tp / (tp + fn) if tp + fn else 0.0
    false_alarm_rate = fp / (fp + tn) if fp + tn else 0.0
    columns = _value(economics, np.asarray([recall]), np.asarray([false_alarm_rate]))
    return {name: round(float(column[0]), _DECIMALS.get(name, 2)) for name, column in columns.items()}


def value_of_rates(economics: Economics, recall: np.ndarray, false_alarm_rate: np.ndarray) -> dict[str, np.ndarray]:
    """The monthly value columns for arrays of recall and false-alarm rate (e.g. one
    entry per threshold, or per bootstrap resample)."""
    return _value(economics, np.asarray(recall, dtype=float), np.asarray(false_alarm_rate, dtype=float))


def value_curve(economics: Economics, y_true: np.ndarray, y_score: np.ndarray) -> dict[str, np.ndarray]:
    """Net value at every distinct hold-out score used as the threshold.

    Returns:
        ``threshold`` (descending, the first is +inf: nobody contacted), ``recall``,
        ``false_alarm_rate`` and ``net_value`` arrays of the same length. A customer is
        contacted when their score is at or above the threshold.
    """
    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=float)
    if len(np.unique(y_true)) < 2:  # roc_curve needs both classes; score each threshold by hand
        thresholds = np.concatenate([[np.inf], np.unique(y_score)[::-1]])
        positives, negatives = max(int(y_true.sum()), 1), max(int((1 - y_true).sum()), 1)
        tpr = np.array([((y_score >= t) & (y_true == 1)).sum() / positives for t in thresholds])
        fpr = np.array([((y_score >= t) & (y_true == 0)).sum() / negatives for t in thresholds])
    else:
        fpr, tpr, thresholds = roc_curve(y_true, y_score, drop_intermediate=False)
    # To the cent with Python's round, as value_at reports it (np.round differs on halves).
    net = np.array([round(v, 2) for v in _value(economics, tpr, fpr)["net_value_per_month"].tolist()])
    return {"threshold": thresholds, "recall": tpr, "false_alarm_rate": fpr, "net_value": net}


def best_threshold(economics: Economics, y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The hold-out score that, used as the threshold, maximises net value a month.

    Ties go to the highest threshold (fewest offers). When contacting nobody is
    worth most, the answer lies just above the highest score: the model flags no one.
    """
    curve = value_curve(economics, y_true, y_score)
    best = int(np.argmax(curve["net_value"]))  # first maximum = highest threshold
    threshold = float(curve["threshold"][best])
    if not np.isfinite(threshold):  # contacting nobody is best
        return float(np.nextafter(np.max(y_score), np.inf)) if len(y_score) else 1.0
    return threshold


def top_precision(y_true: np.ndarray, y_score: np.ndarray, share: float = 0.01) -> float | None:
    """The share of churners among the top ``share`` of hold-out scores (at least one row)."""
    if len(y_score) == 0:
        return None
    k = max(1, int(round(share * len(y_score))))
    top = np.argsort(-np.asarray(y_score, dtype=float), kind="stable")[:k]
    return round(float(np.asarray(y_true)[top].mean()), 6)


def stakeholder_metrics(data_scientist: Mapping[str, Any], value: Mapping[str, float]) -> dict[str, dict[str, Any]]:
    """Group the hold-out metrics and the value at one threshold by stakeholder."""
    merged = {**data_scientist, **value}
    return {group: {name: merged.get(name) for name in names} for group, names in STAKEHOLDERS.items()}


def design_estimate(economics: Economics) -> dict[str, Any] | None:
    """The mission's simple estimate from the design-time share caught (None if unset)."""
    if economics.expected_share_caught is None:
        return None
    return {
        "churners_per_month": economics.churners_per_month,
        "share_caught": economics.expected_share_caught,
        "retention_effect": economics.retention_effect,
        "discounted_price": economics.discounted_price,
        "per_month": round(simple_estimate(economics.churners_per_month, economics.expected_share_caught,
                                           economics.retention_effect, economics.discounted_price), 2),
    }


def estimate_line(estimate: Mapping[str, Any], label: str) -> str:
    """``1,000 churners x 80% caught x 50% kept x $8 = $3,200 a month``."""
    return (f"{label}: {estimate['churners_per_month']:,.0f} churners x {estimate['share_caught']:.0%} caught x "
            f"{estimate['retention_effect']:.0%} kept x ${estimate['discounted_price']:,.2f}".replace(".00", "")
            + f" = ${estimate['per_month']:,.0f} a month")


def assess(spec: BusinessSpec, y_true: np.ndarray, scores: np.ndarray,
           tuning: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """What ``metrics.json`` holds: the metrics at the chosen threshold (``threshold:
    best`` or a number), grouped by stakeholder, with the value at 0.5 and at the best
    threshold beside them and the simple estimates.

    Args:
        spec: The parsed ``business`` group (``plan.business``).
        y_true, scores: The hold-out labels and scores every metric is computed on.
        tuning: Labels and out-of-fold scores of the training part
            (``threshold_folds``): the best threshold is chosen on them, not on the
            hold-out set, whose value is then an honest estimate.
    """
    economics = spec.economics
    policy = spec.threshold
    best = best_threshold(economics, *(tuning if tuning is not None else (y_true, scores)))
    chosen = best if policy == BEST else float(policy)
    chosen_on = f"out-of-fold training scores, {spec.threshold_folds} folds" \
        if tuning is not None else "the hold-out set"
    ranking = evaluate.ranking_metrics(y_true, scores)
    at: dict[str, dict[str, Any]] = {}
    for label, threshold in (("default", DEFAULT_THRESHOLD), ("best", best), ("chosen", chosen)):
        ds = evaluate.holdout_metrics(y_true, scores, threshold, ranking)
        at[label] = {**ds, **value_at(economics, ds["tp"], ds["fp"], ds["fn"], ds["tn"])}
    share = at["chosen"]["share_churners_caught"]
    model_estimate = {
        "churners_per_month": economics.churners_per_month, "share_caught": share,
        "retention_effect": economics.retention_effect, "discounted_price": economics.discounted_price,
        "per_month": round(simple_estimate(economics.churners_per_month, share, economics.retention_effect,
                                           economics.discounted_price), 2),
    }
    return {
        "metrics": at["chosen"],
        "stakeholders": stakeholder_metrics(at["chosen"], at["chosen"]),
        "threshold": {"chosen": chosen, "policy": "best net value" if policy == BEST else "fixed",
                      "default": DEFAULT_THRESHOLD, "best": best, "best_chosen_on": chosen_on},
        "business": {
            "inputs": dict(spec.inputs),
            "design_estimate": design_estimate(economics),
            "break_even_precision": round(economics.break_even_precision, 6),
            "top_1pct_precision": top_precision(y_true, scores, 0.01),
            "model_estimate": model_estimate,
            "at_default_threshold": at["default"],
            "at_best_threshold": at["best"],
        },
    }


def _value(economics: Economics, recall: np.ndarray, false_alarm_rate: np.ndarray) -> dict[str, np.ndarray]:
    """The value columns for arrays of recall and false-alarm rate (one entry per threshold)."""
    caught = economics.churners_per_month * recall
    needless = economics.stayers_per_month * false_alarm_rate
    retained = caught * economics.retention_effect
    saved = retained * economics.discounted_price
    cost = needless * economics.cost_per_needless_offer
    contacted = caught + needless
    at_risk = np.divide(caught, contacted, out=np.zeros_like(caught, dtype=float), where=contacted > 0)
    return {
        "share_churners_caught": recall,
        "churners_caught_per_month": caught,
        "customers_contacted_per_month": contacted,
        "needless_offers_per_month": needless,
        "contacted_at_risk_share": at_risk,
        "customers_retained_per_month": retained,
        "revenue_saved_per_month": saved,
        "false_positive_cost_per_month": cost,
        "net_value_per_month": saved - cost,
    }


#: Decimals each value is reported with: shares to 6, counts and dollars to cents.
_DECIMALS = {"share_churners_caught": 6, "contacted_at_risk_share": 6}


# ------------------------------------------------------------------ requirements gate

@dataclass(frozen=True)
class Verdict:
    """A requirement checked against what the run measured.

    Args:
        requirement: The requirement's name (``min_roc_auc``).
        kind: speed, accuracy, transparency, compliance or budget.
        required: The bound or level asked for.
        observed: What the run measured.
        passed: Whether it holds.
        hard: A failed hard requirement fails the run; a soft one warns.
        detail: One line: what failed and by how much.
    """

    requirement: str
    kind: str
    required: Any
    observed: Any
    passed: bool
    hard: bool
    detail: str

    @property
    def verdict(self) -> str:
        return "passed" if self.passed else ("failed" if self.hard else "warned")

    def to_json(self) -> dict[str, Any]:
        return {"requirement": self.requirement, "kind": self.kind, "required": self.required,
                "observed": self.observed, "verdict": self.verdict, "hard": self.hard, "detail": self.detail}


def check_bounds(requirements: tuple[Requirement, ...], observed: Mapping[str, Any]) -> list[Verdict]:
    """Numeric requirements (metrics, speed, budget) against the run's measurements.

    Args:
        requirements: The parsed ``business.requirements``.
        observed: Metric name -> value, plus ``train_seconds``, ``predict_ms_per_1000``
            and ``run_seconds``.
    """
    measured = {"max_train_seconds": "train_seconds", "max_predict_ms_per_1000": "predict_ms_per_1000",
                "max_run_seconds": "run_seconds"}
    out = []
    for req in requirements:
        if req.bound is None:
            continue
        key = req.metric or measured[req.name]
        value = observed.get(key)
        if value is None:
            out.append(Verdict(req.name, req.kind, req.value, None, False, req.hard,
                               f"{key} could not be measured on this hold-out set"))
            continue
        ok = value >= req.value if req.bound == "min" else value <= req.value
        sign = ">=" if req.bound == "min" else "<="
        detail = f"{key} {_num(value)} {'meets' if ok else 'misses'} {sign} {_num(req.value)}"
        if not ok:
            detail += f" by {_num(abs(value - req.value))}"
        out.append(Verdict(req.name, req.kind, req.value, value, ok, req.hard, detail))
    return out


def check_transparency(requirements: tuple[Requirement, ...], importance_kind: str | None) -> list[Verdict]:
    """``transparency: native`` needs the model's own importances or coefficients;
    ``any`` accepts permutation importance as the fallback."""
    out = []
    for req in (r for r in requirements if r.name == "transparency"):
        ok = importance_kind is not None and (req.value == "any" or importance_kind != "permutation")
        detail = (f"importances from {importance_kind}" if ok else
                  f"the model exposes no feature importances or coefficients (got {importance_kind or 'none'}); "
                  f"required {req.value}")
        out.append(Verdict(req.name, req.kind, req.value, importance_kind, ok, req.hard, detail))
    return out


def check_compliance(requirements: tuple[Requirement, ...], lineage: Mapping[str, frozenset[str]],
                     table_columns: list[str], model_columns: list[str],
                     source_columns: Mapping[str, list[str]]) -> tuple[list[Verdict], list[str]]:
    """Protected columns may not feed a model feature; personal data may not reach the table.

    Checked on the feature table the run actually built, through each column's lineage,
    so a derived feature computed from a protected column fails by that column's name.

    Args:
        requirements: The parsed ``business.requirements``.
        lineage: Feature name -> the ``source.column`` set it is computed from.
        table_columns: Every feature column of the feature table.
        model_columns: The columns the model is trained on.
        source_columns: Source name -> its columns, to warn about a listed column that
            no source has.

    Returns:
        The verdicts, and warnings for listed columns that no source has.
    """
    verdicts, warnings = [], []
    for req in (r for r in requirements if r.kind == "compliance"):
        columns = model_columns if req.name == "protected_columns" else table_columns
        offending: dict[str, list[str]] = {}
        for listed in req.value:
            for feature in columns:
                reads = lineage.get(feature, frozenset({f"?.{feature}"}))
                if any(_same_column(listed, read) for read in reads) or feature == listed:
                    offending.setdefault(listed, []).append(feature)
            if not any(_same_column(listed, f"{s}.{c}") for s, cols in source_columns.items() for c in cols):
                warnings.append(f"business.requirements.{req.name}: no source has a column {listed!r}; "
                                f"sources: {', '.join(sorted(source_columns))}")
        where = "model features" if req.name == "protected_columns" else "the feature table"
        if offending:
            detail = "; ".join(f"{column} reaches {where} through {', '.join(features)}"
                               for column, features in offending.items())
        else:
            detail = f"none of {', '.join(req.value) or '(none)'} reaches {where}"
        verdicts.append(Verdict(req.name, req.kind, list(req.value), sorted(offending), not offending, req.hard,
                                detail))
    return verdicts, warnings


def _same_column(listed: str, read: str) -> bool:
    """``age`` matches ``customers.age``; ``customers.age`` matches only itself."""
    return read == listed if "." in listed else read.split(".", 1)[-1] == listed


def _num(value: float) -> str:
    return f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"

"""The champion gate's arithmetic: metrics by counting cells, paired bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from engine.config.business import Economics
from engine.config.promotion import MetricRule, PromotionSpec
from engine.run import validate
from engine.stages import business

ECONOMICS = Economics(customers=100_000, price=10.0, churners_per_month=1000, retention_effect=0.5,
                      discounted_price=8.0, false_positive_cost=2.0)


def scores(rows: int = 3000, seed: int = 3, decimals: int | None = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=rows) < 0.05).astype(int)
    s = 1 / (1 + np.exp(-(rng.normal(size=rows) + 1.5 * y - 2.5)))
    return y, (np.round(s, decimals) if decimals else s)  # rounding: many ties, as trees give


@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_point_metrics_equal_scikit_learn_and_the_business_value(decimals: int | None) -> None:
    y, s = scores(decimals=decimals)
    threshold = 0.2
    got = validate.point_metrics(ECONOMICS, y, s, threshold)
    pred = (s >= threshold).astype(int)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    # clipped as the run clips (engine.stages.evaluate), so a score of 0 or 1 stays finite
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(s, 1e-15, 1 - 1e-15)), abs=1e-12)
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, s), abs=1e-12)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0), abs=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-12)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred).ravel()
    value = business.value_at(ECONOMICS, int(tp), int(fp), int(fn), int(tn))
    assert got["net_value_per_month"] == pytest.approx(value["net_value_per_month"], abs=0.01)


def test_the_bootstrap_interval_is_the_loop_over_resamples_with_roc_auc_score() -> None:
    y, s = scores(rows=800)
    rng = np.random.default_rng(9)
    other = np.clip(s + rng.normal(0, 0.05, len(s)), 0, 1)
    spec = PromotionSpec(resamples=90, seed=4, confidence=0.9)
    got = validate.paired_bootstrap(ECONOMICS, y, {"candidate": other, "champion": s},
                                    {"candidate": 0.2, "champion": 0.2}, spec)
    draws_rng, diffs = np.random.default_rng(4), []
    for start in range(0, spec.resamples, validate.CHUNK):
        for idx in draws_rng.integers(0, len(y), size=(min(validate.CHUNK, spec.resamples - start), len(y))):
            diffs.append(skm.roc_auc_score(y[idx], other[idx]) - skm.roc_auc_score(y[idx], s[idx]))
    assert got["roc_auc"] == pytest.approx((np.percentile(diffs, 5), np.percentile(diffs, 95)), abs=1e-12)
    assert got["log_loss"][0] <= got["log_loss"][1]


def test_improvement_counts_lower_as_better_for_losses() -> None:
    assert validate.improvement("roc_auc", 0.8, 0.75) == pytest.approx(0.05)
    assert validate.improvement("log_loss", 0.30, 0.35) == pytest.approx(0.05)


def test_a_rule_passes_or_fails_by_its_margin() -> None:
    values = {"improvement": -0.01, "interval": [-0.03, 0.01], "champion": 0.8}
    assert validate._apply(MetricRule("roc_auc", min_change=-0.02), values, "estimate")["passed"]
    failed = validate._apply(MetricRule("roc_auc", min_change=-0.02), values, "lower_bound")
    assert not failed["passed"] and failed["line"] == "roc_auc: change -0.03 < -0.02 (short by 0.01)"
    relative = validate._apply(MetricRule("roc_auc", min_relative_change=-0.01), values, "estimate")
    assert not relative["passed"] and "relative change" in relative["line"]


def test_evaluation_rows_of_another_kind_than_the_champion_was_trained_on_are_refused() -> None:
    import json as _json

    import pandas as pd

    from engine.errors import DataError
    from engine.stages import domain

    trained = pd.DataFrame({"plan": ["annual", "monthly"], "n_orders": [1, 2], "vip": [True, False]})
    payload = _json.dumps(domain.profile(trained)).encode()
    same = pd.DataFrame({"plan": ["family"], "n_orders": [2.5], "vip": [False], "extra": ["x"]})
    validate._check_types(payload, validate.Rows(same, np.array([1]), ""), "champion churn@champion")  # no error
    validate._check_types(None, validate.Rows(same.assign(plan=[3]), np.array([1]), ""), "champion")  # no domain
    for column, value, words in (("plan", 3, "'plan' was string in its training data and is integer"),
                                 ("n_orders", "2", "'n_orders' was integer in its training data and is string"),
                                 ("vip", 1.0, "'vip' was boolean in its training data and is number")):
        with pytest.raises(DataError, match=words):
            validate._check_types(payload, validate.Rows(same.assign(**{column: [value]}), np.array([1]), ""),
                                  "champion churn@champion")

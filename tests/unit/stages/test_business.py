"""What the model is worth: value from a confusion matrix, the best threshold, the gate."""

from __future__ import annotations

import numpy as np
import pytest

from engine.config import business as kpis
from engine.errors import ConfigError
from engine.stages import business

MISSION = business.Economics(customers=100_000, price=10.0, churners_per_month=1000, retention_effect=0.5,
                             discounted_price=8.0, false_positive_cost=2.0, expected_share_caught=0.8)


def test_the_missions_simple_estimate_is_3200_dollars_a_month() -> None:
    assert business.simple_estimate(1000, 0.8, 0.5, 8.0) == pytest.approx(3200.0)
    estimate = business.design_estimate(MISSION)
    assert estimate is not None and estimate["per_month"] == 3200.0
    assert business.estimate_line(estimate, "simple estimate") == \
        "simple estimate: 1,000 churners x 80% caught x 50% kept x $8 = $3,200 a month"


def test_value_scales_the_confusion_matrix_to_the_population() -> None:
    # Hold-out: 10 churners, 990 stayers; the model flags 8 churners and 99 stayers.
    value = business.value_at(MISSION, tp=8, fp=99, fn=2, tn=891)
    assert value["share_churners_caught"] == 0.8
    assert value["churners_caught_per_month"] == 800.0
    assert value["customers_retained_per_month"] == 400.0
    assert value["revenue_saved_per_month"] == 3200.0            # the mission's $3,200
    assert value["needless_offers_per_month"] == pytest.approx(99_000 * 0.1)
    assert value["false_positive_cost_per_month"] == pytest.approx(9900 * 2.0)
    assert value["net_value_per_month"] == pytest.approx(3200.0 - 19_800.0)
    assert value["customers_contacted_per_month"] == pytest.approx(800 + 9900)
    assert value["contacted_at_risk_share"] == pytest.approx(800 / 10_700, abs=1e-6)


def test_the_false_positive_cost_defaults_to_the_discount() -> None:
    economics = business.Economics(customers=100, price=10.0, churners_per_month=10, retention_effect=0.5,
                                   discounted_price=7.0)
    assert economics.cost_per_needless_offer == 3.0


def test_the_best_threshold_maximises_net_value_and_beats_every_other_threshold() -> None:
    rng = np.random.default_rng(0)
    y = (rng.uniform(size=5000) < 0.05).astype(int)
    score = np.clip(0.05 + 0.5 * y + rng.normal(scale=0.2, size=y.size), 0, 1)
    economics = business.Economics(customers=100_000, price=10.0, churners_per_month=5000, retention_effect=0.5,
                                   discounted_price=8.0, false_positive_cost=2.0)
    best = business.best_threshold(economics, y, score)

    def net(t: float) -> float:
        pred = score >= t
        return business.value_at(economics, int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum()),
                                 int((~pred & (y == 1)).sum()), int((~pred & (y == 0)).sum()))["net_value_per_month"]

    assert all(net(best) >= net(t) for t in np.linspace(0, 1, 101))
    assert net(best) > net(0.5) and net(best) > 0


def test_when_no_offer_pays_the_best_threshold_contacts_nobody() -> None:
    y = np.array([0, 0, 0, 1])
    score = np.array([0.9, 0.8, 0.7, 0.1])  # the churner is ranked last
    best = business.best_threshold(MISSION, y, score)
    assert best > 0.9 and not (score >= best).any()


def test_requirements_on_unknown_metrics_list_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"business.requirements.min_roc_acu: unknown requirement; did you mean "
                                          r"min_roc_auc\?.*accuracy, roc_auc"):
        kpis.parse({"requirements": {"min_roc_acu": 0.9}})
    with pytest.raises(ConfigError, match="soft_requirements.0: names no requirement: 'max_foo'"):
        kpis.parse({"requirements": {"min_roc_auc": 0.9}, "soft_requirements": ["max_foo"]})


def test_bounds_fail_by_how_much_and_soft_ones_only_warn() -> None:
    reqs = kpis.parse({"requirements": {"min_roc_auc": 0.99, "max_brier": 0.3, "max_train_seconds": 1.0,
                                        "min_f1": None},
                       "soft_requirements": ["max_train_seconds"]})
    verdicts = {v.requirement: v for v in business.check_bounds(reqs, {"roc_auc": 0.81, "brier": 0.1,
                                                                       "train_seconds": 2.5})}
    assert set(verdicts) == {"min_roc_auc", "max_brier", "max_train_seconds"}  # null is off
    assert verdicts["min_roc_auc"].verdict == "failed"
    assert verdicts["min_roc_auc"].detail == "roc_auc 0.81 misses >= 0.99 by 0.18"
    assert verdicts["max_brier"].verdict == "passed"
    assert verdicts["max_train_seconds"].verdict == "warned"


def test_transparency_native_refuses_permutation_importance() -> None:
    native = kpis.parse({"requirements": {"transparency": "native"}})
    anything = kpis.parse({"requirements": {"transparency": "any"}})
    assert business.check_transparency(native, "permutation")[0].verdict == "failed"
    assert business.check_transparency(native, "coefficients")[0].verdict == "passed"
    assert business.check_transparency(anything, "permutation")[0].verdict == "passed"


def test_compliance_follows_derived_features_back_to_the_protected_column() -> None:
    features = {
        "entity": {"key": "id", "source": "customers"},
        "attributes": {"plan": "customers.plan"},
        "groups": {},
        "derived": {"age_band": "clip(age / 10, 1, 9)", "initial": "first_name", "plan_x": "plan"},
        "target": {"name": "y", "expr": "churned"},
    }
    from engine.config.features import lineage

    reqs = kpis.parse({"requirements": {"protected_columns": ["age", "crm.religion"],
                                        "personal_data": ["customers.first_name"]}})
    verdicts, warnings = business.check_compliance(
        reqs, lineage(features), table_columns=["plan", "age_band", "initial", "plan_x"],
        model_columns=["plan", "age_band", "plan_x"],
        source_columns={"customers": ["id", "plan", "age", "first_name"], "crm": ["id"]})
    by_name = {v.requirement: v for v in verdicts}
    assert by_name["protected_columns"].verdict == "failed"
    assert by_name["protected_columns"].detail == "age reaches model features through age_band"
    assert by_name["personal_data"].verdict == "failed"
    assert "customers.first_name reaches the feature table through initial" in by_name["personal_data"].detail
    assert warnings == ["business.requirements.protected_columns: no source has a column 'crm.religion'; "
                        "sources: crm, customers"]


def test_offers_pay_only_above_the_break_even_precision() -> None:
    assert MISSION.break_even_precision == pytest.approx(1 / 3)  # $2 lost per stayer, $4 won per churner
    # Every churner caught (1,000) and 20/990 of the 99,000 stayers (2,000): 1 in 3 contacted
    # would churn, exactly break-even.
    at = business.value_at(MISSION, tp=10, fp=20, fn=0, tn=970)
    assert at["contacted_at_risk_share"] == pytest.approx(1 / 3, abs=1e-6)
    assert at["net_value_per_month"] == pytest.approx(0.0, abs=0.01)
    assert business.value_at(MISSION, tp=10, fp=10, fn=0, tn=980)["net_value_per_month"] > 0
    assert business.value_at(MISSION, tp=10, fp=30, fn=0, tn=960)["net_value_per_month"] < 0


def test_top_precision_reads_the_highest_scores() -> None:
    y = np.array([0] * 98 + [1, 1])
    score = np.linspace(0, 1, 100)
    assert business.top_precision(y, score, 0.01) == 1.0
    assert business.top_precision(y, score, 0.05) == pytest.approx(0.4)


def test_assess_reports_the_chosen_threshold_and_the_value_at_half_beside_it() -> None:
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=2000) < 0.05).astype(int)
    score = np.clip(0.05 + 0.6 * y + rng.normal(scale=0.15, size=y.size), 0, 1)
    cfg = {"customers": 100_000, "price": 10.0, "churners_per_month": 5000, "retention_effect": 0.5,
           "discounted_price": 8.0, "false_positive_cost": 2.0, "expected_share_caught": 0.8, "threshold": "best",
           "requirements": {"min_roc_auc": 0.6}}
    best = business.assess(kpis.BusinessSpec.from_config(cfg), y, score)
    assert best["threshold"]["chosen"] == best["threshold"]["best"] == best["metrics"]["threshold"]
    assert best["metrics"]["net_value_per_month"] >= best["business"]["at_default_threshold"]["net_value_per_month"]
    assert best["business"]["design_estimate"]["per_month"] == 16_000.0
    assert "requirements" not in best["business"]["inputs"]
    fixed = business.assess(kpis.BusinessSpec.from_config({**cfg, "threshold": 0.3}), y, score)
    assert fixed["threshold"]["chosen"] == 0.3 and fixed["threshold"]["policy"] == "fixed"
    assert fixed["metrics"]["recall"] == pytest.approx(((score >= 0.3) & (y == 1)).sum() / y.sum(), abs=1e-6)
    share = fixed["business"]["model_estimate"]["share_caught"]
    assert fixed["business"]["model_estimate"]["per_month"] == pytest.approx(5000 * share * 0.5 * 8.0, abs=0.01)


def test_the_value_curve_rounds_to_the_cent_as_the_reported_value_does() -> None:
    # 674.325 exactly between two cents: numpy and Python round it differently.
    economics = business.Economics(customers=100_000, price=12.0, churners_per_month=1000, retention_effect=0.3,
                                   discounted_price=9.99, false_positive_cost=2.0)
    y_true = np.array([1] * 40 + [0] * 960)
    y_score = np.array([0.9] * 9 + [0.1] * 31 + [0.05] * 960)
    curve = business.value_curve(economics, y_true, y_score)
    at = int(np.flatnonzero(curve["threshold"] == 0.9)[0])
    reported = business.value_at(economics, tp=9, fp=0, fn=31, tn=960)["net_value_per_month"]
    assert curve["net_value"][at] == reported == 674.33


def test_with_out_of_fold_scores_the_best_threshold_is_chosen_on_them_not_on_the_hold_out() -> None:
    cfg = {"customers": 100_000, "price": 10.0, "churners_per_month": 5000, "retention_effect": 0.5,
           "discounted_price": 8.0, "false_positive_cost": 2.0, "threshold": "best", "threshold_folds": 3}
    y_test = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    on_holdout = business.assess(kpis.BusinessSpec.from_config({**cfg, "threshold_folds": None}), y_test, scores)
    assert on_holdout["threshold"]["best"] == 0.8  # both churners, no needless offer: hand-picked by the test set
    assert on_holdout["threshold"]["best_chosen_on"] == "the hold-out set"
    y_train = np.array([1, 0, 1] + [0] * 100)
    oof = np.array([0.95, 0.9, 0.6] + [0.1] * 100)  # on training scores, 0.6 catches both for one needless offer
    tuned = business.assess(kpis.BusinessSpec.from_config(cfg), y_test, scores, tuning=(y_train, oof))
    assert tuned["threshold"]["best"] == tuned["threshold"]["chosen"] == 0.6
    assert tuned["threshold"]["best_chosen_on"] == "out-of-fold training scores, 3 folds"
    assert tuned["metrics"]["threshold"] == 0.6 and tuned["metrics"]["fp"] == 2  # scored on the hold-out at 0.6

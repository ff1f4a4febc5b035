"""What the model is worth, by stakeholder, and the requirements gate: the real ``mlops run``."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.store.registry import read_model
from tests.conftest import project_registry, read_json, run_dirs, run_mlops

# Trained runs under several business configs: slow, run by `pytest -m slow` and CI.
pytestmark = pytest.mark.slow

MISSION_LINE = "simple estimate (design): 1,000 churners x 80% caught x 50% kept x $8 = $3,200 a month"


def test_a_run_reports_value_and_key_metrics_by_stakeholder(project: Path) -> None:
    done = run_mlops(project, "run")
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert MISSION_LINE in output
    assert "data scientist: accuracy=" in output and "subject-matter expert: " in output
    assert "business: net value $" in output
    (run,) = run_dirs(project)
    metrics = read_json(run / "metrics.json")
    groups = metrics["stakeholders"]
    assert list(groups) == ["data_scientist", "subject_matter_expert", "business"]
    assert set(groups["data_scientist"]) == {"accuracy", "roc_auc", "f1", "precision", "recall", "log_loss", "brier"}
    assert {"share_churners_caught", "customers_contacted_per_month", "contacted_at_risk_share"} <= \
        set(groups["subject_matter_expert"])
    assert {"net_value_per_month", "revenue_saved_per_month"} <= set(groups["business"])
    # The chosen (best) threshold is worth at least the default's value, and is stored with the model.
    money = metrics["business"]
    assert money["at_best_threshold"]["net_value_per_month"] >= money["at_default_threshold"]["net_value_per_month"]
    assert metrics["threshold"]["chosen"] == metrics["threshold"]["best"] == metrics["metrics"]["threshold"]
    assert money["design_estimate"]["per_month"] == 3200.0
    record = read_json(run / "run.json")
    assert record["model"]["threshold"] == metrics["threshold"]["chosen"]
    model_file = run / "model" / "model.skops"
    assert hashlib.sha256(model_file.read_bytes()).hexdigest() == record["model"]["sha256"]
    assert read_model(model_file.read_bytes(), model_file).threshold == metrics["threshold"]["chosen"]
    assert metrics["importances"]["kind"] == "coefficients"
    assert set(metrics["importances"]["values"]) == set(record["stages"]["features"]["features"])
    verdicts = read_json(run / "requirements.json")["verdicts"]
    assert {v["requirement"] for v in verdicts} >= {"min_roc_auc", "max_train_seconds", "protected_columns",
                                                    "personal_data", "transparency", "max_run_seconds"}
    assert all(v["verdict"] == "passed" for v in verdicts)


def test_a_fixed_threshold_is_used_as_configured(project: Path) -> None:
    done = run_mlops(project, "run", "business.threshold=0.3",
                     "business.requirements.min_net_value_per_month=null")
    assert done.returncode == 0, done.stderr
    metrics = read_json(run_dirs(project)[0] / "metrics.json")
    assert metrics["threshold"]["chosen"] == 0.3 and metrics["threshold"]["policy"] == "fixed"
    assert metrics["metrics"]["threshold"] == 0.3


def test_a_failed_hard_requirement_fails_the_run_and_it_cannot_be_registered(project: Path) -> None:
    done = run_mlops(project, "run", "business.requirements.min_roc_auc=0.99")
    assert done.returncode == 4
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlops: requirements gate failed: min_roc_auc: roc_auc 0.")
    assert "misses >= 0.99 by 0." in line
    (run,) = run_dirs(project)
    record = read_json(run / "run.json")
    assert record["status"] == "failed_requirements"
    assert record["requirements"]["min_roc_auc"] == "failed"
    refused = run_mlops(project, "registry", "register", str(run), "--name", "churn")
    assert refused.returncode == 2
    assert "is 'failed_requirements'" in refused.stderr
    assert project_registry(project).names() == []


def test_a_protected_column_used_as_a_feature_fails_compliance_by_name_before_training(project: Path) -> None:
    done = run_mlops(project, "run", "+features.attributes.age=customers.age",
                     "+features.derived.age_band='clip(age / 10, 1, 9)'")
    assert done.returncode == 4
    assert "protected_columns: customers.age" not in done.stderr  # listed as 'age', named as listed
    assert "protected_columns: age reaches model features through age, age_band" in done.stderr
    record = read_json(run_dirs(project)[0] / "run.json")
    assert record["status"] == "failed_requirements"
    assert "train" not in record["stages"]  # a non-compliant model is never fitted


def test_personal_data_may_not_reach_the_feature_table_even_unused(project: Path) -> None:
    done = run_mlops(project, "run", "+features.derived.name_length=first_name",
                     "features.use=[order_behaviour]")
    assert done.returncode == 4
    assert "personal_data: first_name reaches the feature table through name_length" in done.stderr


def test_a_soft_requirement_warns_and_the_run_succeeds(project: Path) -> None:
    done = run_mlops(project, "run", "business.requirements.max_train_seconds=0.000001",
                     "business.soft_requirements=[max_train_seconds]",
                     "business.requirements.protected_columns=[age,religion]")
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "soft requirement max_train_seconds not met: train_seconds" in output
    assert "no source has a column 'religion'" in output
    assert read_json(run_dirs(project)[0] / "run.json")["requirements"]["max_train_seconds"] == "warned"


@pytest.mark.parametrize("overrides, words", [
    (["business.price=-1"], "config error at business.price (override business.price=-1): must be a number >= 0"),
    (["~business.churners_per_month"], "config error at business.churners_per_month"),
    (["+business.requirements.min_roc_acu=0.9"], "unknown requirement; did you mean min_roc_auc? expected min_<metric>"),
    (["business.threshold=1.5"], "config error at business.threshold (override business.threshold=1.5): must be "
                                 "'best' or a number in [0, 1], got 1.5"),
    (["business.churners_per_month=200000"], ("config error at business.churners_per_month (override "
                                              "business.churners_per_month=200000): must be at most business.customers "
                                              "(the customers scored each month, 100000), got 200000")),
])
def test_bad_business_config_exits_2_with_one_line(project: Path, overrides: list[str], words: str) -> None:
    done = run_mlops(project, "run", *overrides)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert words in line


def test_a_classifier_without_probabilities_is_a_config_error(project: Path) -> None:
    done = run_mlops(project, "run", "model._target_=sklearn.linear_model.SGDClassifier", "~model.C",
                     "~model.max_iter", "+model.loss=hinge")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "config error at model" in line and "SGDClassifier gives no predict_proba" in line


def test_the_entity_key_counts_as_a_column_of_the_feature_table(project: Path) -> None:
    done = run_mlops(project, "run", "business.requirements.personal_data=[customer_id]")
    assert done.returncode == 4
    assert "personal_data: customer_id reaches the feature table through customer_id" in done.stderr


def test_the_best_threshold_can_be_chosen_out_of_fold_leaving_the_hold_out_unseen(project: Path) -> None:
    done = run_mlops(project, "run", "business.threshold_folds=3", "business.false_positive_cost=0.1",
                     "business.requirements.min_net_value_per_month=null")
    assert done.returncode == 0, done.stderr
    run_dir = run_dirs(project)[-1]
    threshold = read_json(run_dir / "metrics.json")["threshold"]
    assert threshold["best_chosen_on"] == "out-of-fold training scores, 3 folds"
    assert threshold["chosen"] == threshold["best"]
    assert read_json(run_dir / "run.json")["stages"]["train"]["threshold_folds_s"] > 0
    bad = run_mlops(project, "run", "business.threshold_folds=1")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "mlops: config error at business.threshold_folds (override " \
                                 "business.threshold_folds=1): must be an integer >= 2 or null, got 1"

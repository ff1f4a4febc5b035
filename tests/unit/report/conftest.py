"""Run directories and sweep folders for the report's tests, written by hand.

They take the shapes the run stages write (the real conf/ composed, synthetic hold-out
predictions), so each edge case (a missing file, a failed run, hostile strings in a
config) is fast to build. The browser test in tests/functional/test_report.py covers
a report of a real run.
"""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from engine.config.business import STAKEHOLDERS
from engine.stages import business
from tests.conftest import compose_config

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    return compose_config()


def write_run(run_dir: Path, cfg: dict[str, Any], *, status: str = "succeeded", upto: str = "requirements",
              error: dict[str, Any] | None = None) -> Path:
    """A run directory as the run stages leave it after stage ``upto``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stages = ["validate", "ingest", "quality", "features", "split", "train", "evaluate", "save", "requirements"]
    done = stages[: stages.index(upto) + 1]
    record = {
        "id": "0123456789abcdef0123456789abcdef", "name": cfg.get("name", "churn"), "status": status,
        "error": error, "started_at": "2026-11-27T10:00:00.000+00:00", "ended_at": "2026-11-27T10:00:02.500+00:00",
        "duration_s": 2.5, "run_dir": str(run_dir), "kind": "run",
        "stages": {s: {"status": "succeeded", "duration_s": 0.1 * (i + 1)} for i, s in enumerate(done)},
        "provenance": {"git": {"commit": "a" * 40, "dirty": True, "diff_sha256": "b" * 64},
                       "python": "3.11.7", "platform": "Linux", "packages": {"scikit-learn": "1.9.1"},
                       "command": ["mlops run"], "overrides": ["model.C=0.5"], "project_dir": "/project"},
        "data": {"customers": {"type": "csv", "location": "/project/data/churn/customers.csv", "rows": 400,
                               "fingerprint": "sha256:" + "c" * 64}},
    }
    if "features" in done:
        record["stages"]["features"]["features"] = ["plan", "orders_30d", "tenure_days"]
    if "save" in done:
        record["model"] = {"path": "model/model.joblib", "sha256": "d" * 64, "target": cfg["model"]["_target_"]}
    (run_dir / "run.json").write_text(json.dumps(record))
    (run_dir / "config.resolved.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if "quality" in done:
        (run_dir / "quality.json").write_text(json.dumps(quality_json()))
    if "evaluate" in done:
        y_true, y_score = predictions()
        economics = business.Economics.from_config(cfg["business"])
        best = business.best_threshold(economics, y_true, y_score)
        pd.DataFrame({"customer_id": np.arange(len(y_true)), "y_true": y_true, "y_score": y_score,
                      "y_pred": (y_score >= best).astype("int64")}).to_parquet(run_dir / "predictions.parquet")
        (run_dir / "metrics.json").write_text(json.dumps(metrics_json(economics, y_true, y_score, best)))
    if "requirements" in done:
        (run_dir / "requirements.json").write_text(json.dumps({"verdicts": [
            {"requirement": "min_roc_auc", "kind": "accuracy", "required": 0.6, "observed": 0.81,
             "verdict": "passed", "hard": True, "detail": "roc_auc 0.81 meets >= 0.6"},
            {"requirement": "max_predict_ms_per_1000", "kind": "speed", "required": 1, "observed": 3.2,
             "verdict": "warned", "hard": False, "detail": "predict_ms_per_1000 3.2 misses <= 1 by 2.2"}]}))
    return run_dir


def predictions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y_true = (rng.random(400) < 0.1).astype("int64")
    y_score = np.clip(0.35 * y_true + 0.65 * rng.random(400), 0, 1)
    return y_true, y_score


def quality_json() -> dict[str, Any]:
    return {
        "as_of": "2026-10-01T00:00:00", "gate": "passed", "failed_errors": [], "failed_warnings": ["plausible_age"],
        "scores": {"accuracy": {"passed": 1, "rules": 2, "score": 0.5},
                   "completeness": {"passed": 1, "rules": 1, "score": 1.0}},
        "rules": [
            {"rule": "plausible_age", "check": "between", "dimension": "accuracy", "severity": "warn",
             "passed": False, "observed": 0.97, "threshold": ">= 0.99 of rows", "unexpected": 12,
             "denominator": 400, "denominator_kind": "non-null rows", "description": "Adults <b>only</b>.",
             "examples": [{"key": 100027, "value": 130}, {"key": 100030, "value": -1}]},
            {"rule": "known_plan", "check": "in_set", "dimension": "accuracy", "severity": "error", "passed": True,
             "observed": 1.0, "threshold": ">= 1.0 of rows", "unexpected": 0, "denominator": 400, "examples": []},
            {"rule": "last_name_present", "check": "not_null", "dimension": "completeness", "severity": "warn",
             "passed": True, "observed": 1.0, "threshold": ">= 0.95 of rows", "unexpected": 0, "denominator": 400,
             "examples": []},
        ],
    }


def metrics_json(economics: business.Economics, y_true: np.ndarray, y_score: np.ndarray,
                 best: float) -> dict[str, Any]:
    def at(threshold: float) -> dict[str, Any]:
        flagged = y_score >= threshold
        tp, fp = int((flagged & (y_true == 1)).sum()), int((flagged & (y_true == 0)).sum())
        fn, tn = int((~flagged & (y_true == 1)).sum()), int((~flagged & (y_true == 0)).sum())
        ds = {"accuracy": (tp + tn) / len(y_true), "roc_auc": 0.81, "f1": 0.3, "precision": tp / max(tp + fp, 1),
              "recall": tp / max(tp + fn, 1), "log_loss": 0.4, "brier": 0.09, "threshold": threshold,
              "tp": tp, "fp": fp, "fn": fn, "tn": tn}
        return {**ds, **business.value_at(economics, tp, fp, fn, tn)}

    chosen = at(best)
    model_estimate = {"churners_per_month": 1000, "share_caught": chosen["share_churners_caught"],
                      "retention_effect": 0.5, "discounted_price": 8.0}
    model_estimate["per_month"] = business.simple_estimate(*model_estimate.values())
    return {
        "metrics": chosen,
        "stakeholders": {g: {n: chosen.get(n) for n in names} for g, names in STAKEHOLDERS.items()},
        "threshold": {"chosen": best, "policy": "best net value", "default": 0.5, "best": best},
        "business": {"design_estimate": {"churners_per_month": 1000, "share_caught": 0.8, "retention_effect": 0.5,
                                         "discounted_price": 8.0, "per_month": 3200.0},
                     "model_estimate": model_estimate, "at_default_threshold": at(0.5), "at_best_threshold": chosen},
        "importances": {"kind": "coefficients", "values": {"plan": 0.2, "orders_30d": 0.9, "tenure_days": -0.1}},
        "speed": {"train_seconds": 0.1, "predict_ms_per_1000": 3.2},
    }


def section_ids(page: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"', page)


def images(page: str) -> list[bytes]:
    return [base64.b64decode(data) for data in IMG.findall(page)]


def write_sweep(sweep_dir: Path, resolved: dict[str, Any]) -> Path:
    """Three jobs over model x C; job 2 failed with a config error, job 0 is best."""
    jobs = [("0", "logistic", "1.0", "succeeded", 0.81), ("1", "random_forest", "0.1", "succeeded", 0.77),
            ("2", "logistic", "0.1", "failed", None)]
    rows = []
    for job, model, c, status, auc in jobs:
        overrides = [f"model={model}", f"model.C={c}", "experiment=compare_models"]
        if job == "0":
            write_run(sweep_dir / job, {**resolved, "hypothesis": "Forests catch more churners."})
        else:
            (sweep_dir / job).mkdir(parents=True)
            (sweep_dir / job / "run.json").write_text(json.dumps({"id": f"{job}" * 32, "status": status}))
        (sweep_dir / job / ".hydra").mkdir(exist_ok=True)
        (sweep_dir / job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        rows.append({"job": job, "run": (job * 8), "status": status, "roc_auc": auc if auc is not None else "",
                     "f1": 0.3 if auc else "", "overrides": " ".join(overrides)})
    with open(sweep_dir / "leaderboard.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["job", "run", "status", "roc_auc", "f1", "overrides"])
        writer.writeheader()
        writer.writerows(rows)
    (sweep_dir / "summary.json").write_text(json.dumps({
        "metric": "roc_auc", "mode": "max", "jobs": 3, "succeeded": 2, "best": rows[0], "wall_time_s": 12.5,
        "failed": [{"job": "2", "run": "22222222", "status": "failed",
                    "error": "config error at split.test_size: must be < 1, got 1.5"}]}))
    return sweep_dir

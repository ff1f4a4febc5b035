"""engine.report: the HTML report of a run and of a sweep, from the files they leave.

The run directories here are written by hand in the shapes the run stages write
(the real conf/ composed, synthetic hold-out predictions), so each edge case (a missing
file, a failed run, hostile strings in a config) is fast to build. The browser test in
tests/functional/test_report.py covers a report of a real run.
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

from engine import report
from engine.config.business import STAKEHOLDERS
from engine.errors import UsageError
from engine.report import run as run_report
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


def test_a_run_report_has_every_section_and_its_plots(tmp_path: Path, resolved: dict[str, Any]) -> None:
    run_dir = write_run(tmp_path / "run", resolved)
    path = report.write_run_report(run_dir)
    assert path == run_dir / "report.html"
    page = path.read_text()
    assert section_ids(page) == ["config", "quality", "features", "metrics", "value", "curves", "requirements",
                                 "provenance"]
    # importances, ROC, precision-recall, confusion matrix, value curve
    pngs = images(page)
    assert len(pngs) == 5 and all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs)
    assert "1,000 churners x 80% caught x 50% kept x $8 = $3,200 a month" in page
    assert "Top features: <strong>orders_30d</strong>, <strong>plan</strong>, <strong>tenure_days</strong>" in page
    for group in ("Data scientist", "Subject-matter expert", "Business"):
        assert f">{group}</h3>" in page
    assert "chance a churner is ranked above a stayer" in page  # kpis.DESCRIPTIONS
    assert "at 0.5 (default)" in page and "(best)" in page
    assert "min_roc_auc" in page and 'class="badge warn">warned' in page
    assert "a" * 40 in page and "sha256:cccccccccccc" in page  # git commit, data fingerprint
    assert "model.C=0.5" in page  # the overrides
    assert "Not in this report" not in page and "could not be rendered" not in page


def test_the_page_is_self_contained_without_scripts(tmp_path: Path, resolved: dict[str, Any]) -> None:
    page = report.write_run_report(write_run(tmp_path / "run", resolved)).read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "an external resource"
    assert "default-src 'none'; img-src data:" in page  # the browser refuses any fetch
    assert "@import" not in page and "url(" not in page


def test_every_string_from_configs_and_data_is_escaped(tmp_path: Path, resolved: dict[str, Any]) -> None:
    hostile = '<script>alert("x")</script>'
    cfg = {**resolved, "hypothesis": hostile, "name": "<b>churn</b>",
           "model": {**resolved["model"], "note": hostile}}
    cfg["data"] = {**cfg["data"], "sources": {**cfg["data"]["sources"],
                                              "customers": {**cfg["data"]["sources"]["customers"],
                                                            "path": 'x"><img src=x onerror=alert(1)>'}}}
    page = report.render_run(write_run(tmp_path / "run", cfg))
    assert "<script" not in page.lower() and "<b>churn</b>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "Adults &lt;b&gt;only&lt;/b&gt;." in page  # a rule description from quality.json


def test_missing_requirements_json_leaves_its_section_out(tmp_path: Path, resolved: dict[str, Any]) -> None:
    run_dir = write_run(tmp_path / "run", resolved)
    (run_dir / "requirements.json").unlink()
    page = report.render_run(run_dir)
    assert "requirements" not in section_ids(page)
    assert len(images(page)) == 5


def test_a_run_that_failed_the_quality_gate_shows_its_status_and_error(tmp_path: Path,
                                                                       resolved: dict[str, Any]) -> None:
    error = {"type": "QualityGateError", "message": "quality gate failed: 1 rule(s) of severity error failed: "
                                                    "plausible_age (details in quality.json)"}
    run_dir = write_run(tmp_path / "run", resolved, status="failed_quality", upto="quality", error=error)
    page = report.write_run_report(run_dir).read_text()
    assert section_ids(page) == ["config", "quality", "provenance"]
    assert 'class="badge bad">failed quality' in page
    assert 'role="alert"><strong>The quality gate stopped this run.' in page and error["message"] in page
    assert "<code>metrics.json</code>: not written" in page and "<code>predictions.parquet</code>" in page
    assert images(page) == []


def test_a_crashed_run_shows_its_traceback(tmp_path: Path, resolved: dict[str, Any]) -> None:
    error = {"type": "ZeroDivisionError", "message": "division by zero", "traceback": "Traceback ...\n  x = 1 / 0"}
    run_dir = write_run(tmp_path / "run", resolved, status="failed", upto="train", error=error)
    page = report.render_run(run_dir)
    assert "This run failed." in page and "<summary>traceback</summary>" in page and "x = 1 / 0" in page


def test_a_run_dir_with_only_run_json_and_broken_files_still_reports(tmp_path: Path,
                                                                      resolved: dict[str, Any]) -> None:
    run_dir = write_run(tmp_path / "run", resolved, status="failed", upto="validate",
                        error={"type": "ConfigError", "message": "config error at model.C: must be > 0"})
    (run_dir / "config.resolved.yaml").unlink()
    (run_dir / "metrics.json").write_text("{ not json")
    (run_dir / "predictions.parquet").write_bytes(b"not parquet")
    page = report.render_run(run_dir)
    assert section_ids(page) == ["provenance"]
    assert "<code>metrics.json</code>: unreadable" in page and "<code>predictions.parquet</code>: unreadable" in page
    assert "config error at model.C: must be &gt; 0" in page


def test_an_old_metrics_json_without_stakeholders_still_groups_the_metrics(tmp_path: Path,
                                                                          resolved: dict[str, Any]) -> None:
    run_dir = write_run(tmp_path / "run", resolved)
    (run_dir / "metrics.json").write_text(json.dumps({"metrics": {"roc_auc": 0.8, "f1": 0.2}}))
    page = report.render_run(run_dir)
    assert "metrics" in section_ids(page) and "0.8000" in page
    assert "could not be rendered" not in page


def test_one_class_hold_out_has_no_curves_but_a_confusion_matrix(tmp_path: Path, resolved: dict[str, Any]) -> None:
    run_dir = write_run(tmp_path / "run", resolved)
    frame = pd.read_parquet(run_dir / "predictions.parquet").assign(y_true=0)
    frame.to_parquet(run_dir / "predictions.parquet")
    page = report.render_run(run_dir)
    assert "one class only" in page and "could not be rendered" not in page


def test_not_a_run_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a run directory; expected a folder with run.json"):
        report.write_run_report(tmp_path)
    with pytest.raises(UsageError, match="not a sweep folder"):
        report.write_sweep_report(tmp_path)


# ------------------------------------------------------------------ sweeps


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


def test_a_sweep_report_has_the_leaderboard_a_plot_per_parameter_and_the_best_run(
        tmp_path: Path, resolved: dict[str, Any]) -> None:
    sweep_dir = write_sweep(tmp_path / "sweep", resolved)
    assert report.is_sweep_dir(sweep_dir) and not report.is_run_dir(sweep_dir)
    path = report.write_sweep_report(sweep_dir)
    assert path == sweep_dir / "report.html"
    page = path.read_text()
    assert section_ids(page)[:5] == ["sweep-hypothesis", "leaderboard", "parameters", "failed", "best"]
    assert "best-config" in section_ids(page) and "best-curves" in section_ids(page)
    assert "Forests catch more churners." in page  # the best run's hypothesis
    # swept: model (categorical) and model.C (numeric); experiment= is common to every job
    assert "roc_auc against model:" in page and "roc_auc against model.C:" in page
    assert "Every job also ran with <code>experiment=compare_models</code>" in page
    assert "config error at split.test_size: must be &lt; 1, got 1.5" in page
    assert "12.5 s" in page
    assert len(images(page)) == 2 + 5  # two parameter plots, then the best run's five


def test_a_sweep_report_links_the_jobs_that_have_a_report(tmp_path: Path, resolved: dict[str, Any]) -> None:
    sweep_dir = write_sweep(tmp_path / "sweep", resolved)
    report.write_run_report(sweep_dir / "0")
    assert '<a href="0/report.html">0</a>' in report.render_sweep(sweep_dir)


def test_a_sweep_without_leaderboard_csv_reads_its_jobs(tmp_path: Path, resolved: dict[str, Any]) -> None:
    sweep_dir = write_sweep(tmp_path / "sweep", resolved)
    (sweep_dir / "leaderboard.csv").unlink()
    page = report.render_sweep(sweep_dir)
    assert "leaderboard" in section_ids(page) and "could not be rendered" not in page


def test_the_value_curve_agrees_with_the_value_in_metrics_json(tmp_path: Path, resolved: dict[str, Any]) -> None:
    run_dir = write_run(tmp_path / "run", resolved)
    money = json.loads((run_dir / "metrics.json").read_text())["business"]
    curve = run_report._value_curve(run_report.RunFiles.load(run_dir))
    assert curve is not None
    assert curve.at(0.5) == pytest.approx(money["at_default_threshold"]["net_value_per_month"], abs=0.01)
    best = money["at_best_threshold"]
    assert curve.at(best["threshold"]) == pytest.approx(best["net_value_per_month"], abs=0.01)
    assert curve.at(1.5) == curve.nobody == 0.0  # above every score: nobody gets the offer

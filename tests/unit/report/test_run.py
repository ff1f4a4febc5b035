"""engine.report.run: the HTML report of a run, from the files it leaves."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from engine import report
from engine.errors import UsageError
from engine.report import run as run_report
from tests.unit.report.conftest import images, section_ids, write_run


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


def test_the_value_curve_agrees_with_the_value_in_metrics_json(tmp_path: Path, resolved: dict[str, Any]) -> None:
    run_dir = write_run(tmp_path / "run", resolved)
    money = json.loads((run_dir / "metrics.json").read_text())["business"]
    curve = run_report._value_curve(run_report.RunFiles.load(run_dir))
    assert curve is not None
    assert curve.at(0.5) == pytest.approx(money["at_default_threshold"]["net_value_per_month"], abs=0.01)
    best = money["at_best_threshold"]
    assert curve.at(best["threshold"]) == pytest.approx(best["net_value_per_month"], abs=0.01)
    assert curve.at(1.5) == curve.nobody == 0.0  # above every score: nobody gets the offer

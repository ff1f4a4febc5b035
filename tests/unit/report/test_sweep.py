"""engine.report.sweep: the HTML report of a sweep, from the folder it leaves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import report
from engine.errors import UsageError
from tests.unit.report.conftest import images, section_ids, write_sweep


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


def test_not_a_sweep_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a sweep folder"):
        report.write_sweep_report(tmp_path)

"""Launcher plugins chosen in config: submitit (local) in CI, Ray in local mode under a marker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_mlops, sweep_jobs


@pytest.mark.slow
def test_tune_forest_with_the_submitit_local_launcher(project: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    done = run_mlops(project, "run", "-m", "experiment=tune_forest", "hydra/launcher=submitit_local")
    assert done.returncode == 0, done.stderr
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    jobs = sweep_jobs(sweep)
    assert sorted(jobs) == ["0", "1", "2", "3"]
    assert {r["status"] for r in jobs.values()} == {"succeeded"}
    assert len({r["pid"] for r in jobs.values()} | {0}) == 5  # one worker process per job
    for job in jobs:  # logging works in the worker processes: each job has its log
        assert "succeeded in" in (sweep / job / "run.log").read_text()
    progress = [line for line in done.stdout.splitlines() if "] sweep: " in line]
    assert progress and "4/4 jobs done, 0 failed" in progress[-1]  # seen from the parent
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["jobs"] == 4 and summary["succeeded"] == 4 and summary["metric"] == "roc_auc"
    assert summary["best"]["roc_auc"] == max(r["metrics"]["roc_auc"] for r in jobs.values())
    assert (sweep / "leaderboard.csv").read_text().count("\n") == 5


@pytest.mark.slow
def test_a_bad_job_under_submitit_is_one_line_and_exit_2(project: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    done = run_mlops(project, "run", "-m", "experiment=tune_forest", "hydra/launcher=submitit_local",
                     "model.max_depth=4", "model.n_estimators=-5")
    assert done.returncode == 2  # the worker's ConfigError comes back through submitit's result file
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlops: config error at model.n_estimators (override model.n_estimators=-5)")
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    assert [r["status"] for r in sweep_jobs(sweep).values()] == ["failed"]
    summary = json.loads((sweep / "summary.json").read_text())  # written by the worker
    assert [f["job"] for f in summary["failed"]] == ["0"] and "n_estimators" in summary["failed"][0]["error"]


@pytest.mark.ray
@pytest.mark.slow
def test_tune_forest_with_the_ray_launcher_in_local_mode(project: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    done = run_mlops(project, "run", "-m", "experiment=tune_forest", "hydra/launcher=ray",
                     "+hydra.launcher.ray.init.num_cpus=2", "model.n_estimators=20")
    assert done.returncode == 0, done.stderr
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    jobs = sweep_jobs(sweep)
    assert sorted(jobs) == ["0", "1"] and {r["status"] for r in jobs.values()} == {"succeeded"}
    assert all("succeeded in" in (sweep / job / "run.log").read_text() for job in jobs)
    assert json.loads((sweep / "summary.json").read_text())["succeeded"] == 2

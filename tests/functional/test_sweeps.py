"""Sweeps: a progress line per finished job, and the summary in the sweep's folder."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest

from tests.conftest import run_dirs, run_mlops, sweep_jobs

# Sweeps of several trained jobs through the real command: slow, run by `pytest -m slow` and CI.
pytestmark = pytest.mark.slow


def test_a_sweep_reports_progress_and_leaves_a_leaderboard_with_its_failed_jobs(project: Path) -> None:
    done = run_mlops(project, "run", "-m", "model=logistic,random_forest", "split.test_size=0.25,1.5", "report=true")
    assert done.returncode == 2  # two jobs had a bad config; the others ran
    progress = [line for line in done.stdout.splitlines() if "] sweep: " in line]
    assert [line.split("sweep: ")[1].split(" jobs")[0] for line in progress] == ["1/4", "2/4", "3/4", "4/4"]
    assert "2 failed" in progress[-1] and "best roc_auc" in progress[-1]
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    with open(sweep / "leaderboard.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["succeeded", "succeeded", "failed", "failed"]
    assert float(rows[0]["roc_auc"]) >= float(rows[1]["roc_auc"])
    assert "model=" in rows[0]["overrides"]
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["jobs"] == 4 and summary["succeeded"] == 2
    assert summary["best"]["run"] == rows[0]["run"]
    assert [f["job"] for f in summary["failed"]] == ["1", "3"]
    assert all("split.test_size" in f["error"] for f in summary["failed"])
    assert summary["wall_time_s"] > 0
    assert (sweep / "leaderboard.md").read_text().startswith("# Sweep ")
    # report=true: each succeeded job and the sweep itself got a report.html
    assert (sweep / "report.html").is_file() and (sweep / "0" / "report.html").is_file()


def test_a_parallel_sweep_with_the_joblib_launcher(project: Path) -> None:
    import pytest

    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    done = run_mlops(project, "run", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     "model=logistic,random_forest", "split.test_size=0.25,1.5")
    assert done.returncode == 2  # the bad jobs' error comes back from the worker as one line
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlops: config error at split.test_size")
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    statuses = sorted(r["status"] for r in sweep_jobs(sweep).values())
    assert statuses == ["failed", "failed", "succeeded", "succeeded"]
    listed = run_mlops(project, "runs", "--format", "json", "--columns", "id,status")
    assert sorted(r["status"] for r in json.loads(listed.stdout)) == statuses  # both workers indexed


def test_jobs_in_one_process_do_not_leak_into_each_other(project: Path) -> None:
    # random_state: null makes the forest draw from numpy's global generator: alone or as
    # the second job after another forest has used it, the job must give the same model.
    job = ["model=random_forest", "model.random_state=null", "model.n_estimators=20", "report=false"]
    assert run_mlops(project, "run", *job).returncode == 0
    (alone,) = run_dirs(project)
    swept = run_mlops(project, "run", "-m", "model=random_forest", "model.random_state=null",
                      "model.n_estimators=10,20", "report=false")
    assert swept.returncode == 0, swept.stderr
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    second = sweep / "1"
    assert json.loads((second / "run.json").read_text())["model"]["target"].endswith("RandomForestClassifier")
    assert (second / "metrics.json").read_bytes() == (alone / "metrics.json").read_bytes()
    assert (second / "model" / "model.skops.sha256").read_text() == \
        (alone / "model" / "model.skops.sha256").read_text()
    # Each job's log holds its own lines only. (The sweep's progress lines come from a polling
    # thread and land in whichever job's log is open; they name the best run so far, which
    # may be the first job: with the demo's churn signal, the 10-tree forest scores higher.)
    first_id = json.loads((sweep / "0" / "run.json").read_text())["id"][:8]
    log = "".join(line for line in (second / "run.log").read_text().splitlines(keepends=True)
                  if "sweep: " not in line)
    assert first_id not in log and "validate: started" in log and log.count("validate: started") == 1


def test_max_failures_stops_launching_a_grid_and_fail_fast_is_one(project: Path) -> None:
    # Jobs in order: (logistic, 1.5) bad, (logistic, 0.25) good, (forest, 1.5) bad, (forest, 0.25) good.
    grid = ["run", "-m", "hydra/sweeper=mlops_grid", "model=logistic,random_forest", "split.test_size=1.5,0.25",
            "report=false"]
    fast = run_mlops(project, *grid, "hydra.sweeper.max_failures=1")
    assert fast.returncode == 2
    (line,) = fast.stderr.strip().splitlines()
    assert line.startswith("mlops: config error at split.test_size")
    assert "sweep stopped: 1 job(s) failed (max_failures=1); 3 of 4 jobs not launched" in fast.stdout
    (first,) = (project / "outputs" / "sweeps").glob("*/*")
    assert sorted(p.name for p in first.iterdir() if p.is_dir() and p.name.isdigit()) == ["0"]
    two = run_mlops(project, *grid, "hydra.sweeper.max_failures=2")
    assert two.returncode == 2
    assert "sweep stopped: 2 job(s) failed (max_failures=2); 1 of 4 jobs not launched" in two.stdout
    (second,) = [p for p in (project / "outputs" / "sweeps").glob("*/*") if p != first]
    assert json.loads((second / "summary.json").read_text())["succeeded"] == 1
    bad = run_mlops(project, *grid, "hydra.sweeper.max_failures=0")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "mlops: config error at hydra.sweeper.max_failures: must be an integer >= 1 or " \
                                 "null, got 0"


@pytest.mark.parametrize("max_failures", ["null", "1"])
def test_a_grid_with_a_group_option_that_does_not_exist_fails_before_any_job(project: Path, max_failures: str) -> None:
    done = run_mlops(project, "run", "-m", "hydra/sweeper=mlops_grid", f"hydra.sweeper.max_failures={max_failures}",
                     "model=logistic,random_forest,lgbm", "model.random_state=1,2", "report=false")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlops: config error at model") and "unknown option 'lgbm'" in line
    assert not list((project / "outputs").glob("sweeps/*/*/*/run.json"))  # no job ran


def test_compare_models_on_the_joblib_launcher_runs_in_parallel_and_registers_a_challenger(project: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    done = run_mlops(project, "run", "-m", "experiment=compare_models", "hydra/launcher=joblib",
                     "hydra.launcher.n_jobs=3", "report=false")
    assert done.returncode == 0, done.stderr
    (sweep,) = (project / "outputs" / "sweeps").glob("*/*")
    records = list(sweep_jobs(sweep).values())
    assert [r["status"] for r in records] == ["succeeded"] * 3
    # Each job ran in a worker process, and their runs overlapped in time.
    assert len({r["pid"] for r in records}) == 3
    spans = sorted((r["started_at"], r["ended_at"]) for r in records)
    assert any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))
    with open(sweep / "leaderboard.csv") as handle:
        best = next(csv.DictReader(handle))
    assert "registered as churn/1 and aliased challenger" in done.stdout
    shown = run_mlops(project, "registry", "show", "churn@challenger").stdout
    assert f"run_id: {best['run']}" in shown or best["run"][:8] in shown

"""The MLflow mirror against a real local MLflow with an SQLite backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import read_json, run_dirs, run_mlops

mlflow = pytest.importorskip("mlflow")


def mlflow_runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("churn")
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.slow
def test_sweep_jobs_are_mirrored_as_child_runs(project: Path, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_mlops(project, "run", "-m", "model=logistic,random_forest", f"tracking.mlflow.uri={uri}")
    assert done.returncode == 0, done.stderr
    runs = mlflow_runs(uri)
    parents = [r for r in runs if "mlops.sweep_dir" in r.data.tags]
    children = [r for r in runs if "mlops.run_id" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    ours = {read_json(job / "run.json")["id"] for job in run_dirs(project, "sweeps")}
    assert {r.data.tags["mlops.run_id"] for r in children} == ours
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert run.info.status == "FINISHED"
        assert 0.5 < run.data.metrics["roc_auc"] < 1.0
        assert run.data.params["split.test_size"] == "0.25"
        assert "mlflow.runName" in run.data.tags


@pytest.mark.slow
def test_a_failing_mlflow_never_fails_the_run_and_sync_replays_it(project: Path, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where MLflow needs a folder")
    broken = f"sqlite:///{tmp_path / 'blocker' / 'mlflow.db'}"
    done = run_mlops(project, "run", f"tracking.mlflow.uri={broken}")
    assert done.returncode == 0, done.stderr
    assert "mlflow: run" in done.stdout and "sync-mlflow" in done.stdout
    (run,) = run_dirs(project)
    record = read_json(run / "run.json")
    assert record["status"] == "succeeded" and record["mlflow"]["synced"] is False
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    synced = run_mlops(project, "runs", "sync-mlflow", "--uri", uri)
    assert synced.returncode == 0 and "mirrored 1 run(s)" in synced.stdout
    (mirrored,) = mlflow_runs(uri)
    assert mirrored.data.tags["mlops.run_id"] == record["id"]
    assert read_json(run / "run.json")["mlflow"]["synced"] is True
    again = run_mlops(project, "runs", "sync-mlflow", "--uri", uri)
    assert "mirrored 0 run(s)" in again.stdout  # already mirrored: nothing twice

"""The metadata store through the real mlops command."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MLOPS, read_json, run_dirs, run_mlops

# Sweeps and killed runs through the real command: slow, run by `pytest -m slow` and CI.
pytestmark = pytest.mark.slow


def test_a_sweep_is_listed_sorted_filtered_and_shown(project: Path) -> None:
    done = run_mlops(project, "run", "-m", "model=logistic,random_forest", "split.test_size=0.25,0.3")
    assert done.returncode == 0, done.stderr
    listed = run_mlops(project, "runs", "--sort", "metrics.roc_auc", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == 4
    aucs = [r["metrics.roc_auc"] for r in rows]
    assert aucs == sorted(aucs, reverse=True)
    forests = run_mlops(project, "runs", "--where", "params.model._target_ ~ Forest and metrics.roc_auc > 0",
                        "--format", "csv", "--columns", "id,params.split.test_size")
    lines = forests.stdout.strip().splitlines()
    assert lines[0] == "id,params.split.test_size"
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["0.25", "0.3"]
    shown = run_mlops(project, "show", "latest")
    assert shown.returncode == 0 and "(succeeded)" in shown.stdout and "model._target_:" in shown.stdout
    prefix = rows[0]["id"][:6]
    assert run_mlops(project, "show", prefix).stdout.startswith(f"run {rows[0]['id']}")
    bad = run_mlops(project, "runs", "--where", "metrics.roc_auc >")
    assert bad.returncode == 2 and bad.stderr.startswith("mlops: usage error: --where")
    # compare two runs that differ in the model only: only the changed keys are shown
    pair = [r for r in json.loads(run_mlops(project, "runs", "--format", "json", "--columns",
                                            "id,params.split.test_size").stdout)
            if r["params.split.test_size"] == 0.25]
    compared = run_mlops(project, "compare", pair[0]["id"], pair[1]["id"])
    assert compared.returncode == 0, compared.stderr
    config_lines = compared.stdout.split("config (")[1].split("metrics (")[0].strip().splitlines()[1:]
    assert config_lines and all(line.split()[0].startswith("model.") for line in config_lines)
    assert "split.test_size" not in compared.stdout.split("metrics (")[0]
    latest = run_mlops(project, "show", "latest").stdout.splitlines()[0]
    reproduced = run_mlops(project, "reproduce", "latest")
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    for item in ("metrics", "predictions", "model"):
        assert f"identical  {item}" in reproduced.stdout
    # neither a reproduction nor a quality run is `latest`, and a quality run has no model
    assert run_mlops(project, "quality").returncode == 0
    assert run_mlops(project, "show", "latest").stdout.splitlines()[0] == latest
    kinds = json.loads(run_mlops(project, "runs", "--format", "json", "--columns",
                                 "kind,params.model._target_,params.data.dir").stdout)
    assert sorted(r["kind"] for r in kinds) == ["quality", "reproduction", "run", "run", "run", "run"]
    (quality,) = [r for r in kinds if r["kind"] == "quality"]
    assert quality["params.model._target_"] is None and quality["params.data.dir"] is not None


def test_reproduce_refuses_when_the_data_changed(project: Path) -> None:
    assert run_mlops(project, "run").returncode == 0
    customers = project / "data" / "churn" / "customers.csv"
    lines = customers.read_text().splitlines()
    lines[1] = lines[1].replace(",monthly,", ",annual,") if ",monthly," in lines[1] else lines[1].replace(
        ",annual,", ",monthly,")
    customers.write_text("\n".join(lines) + "\n")
    refused = run_mlops(project, "reproduce", "latest")
    assert refused.returncode == 2
    assert "differs  data: source customers fingerprint was" in refused.stdout
    assert "pass --force" in refused.stderr
    forced = run_mlops(project, "reproduce", "latest", "--force")
    assert forced.returncode in (0, 5)
    assert "reproduce: run" in forced.stdout


def test_kill_9_during_training_shows_interrupted_and_reindex_agrees(project: Path) -> None:
    proc = subprocess.Popen([MLOPS, "run", "model=random_forest", "model.n_estimators=3000", "model.max_depth=null"],
                            cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        dirs = run_dirs(project)
        if dirs and (dirs[0] / "run.json").exists() and "train" in read_json(dirs[0] / "run.json")["stages"]:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (run,) = run_dirs(project)
    assert read_json(run / "run.json")["status"] == "running"  # nothing could close it
    listed = json.loads(run_mlops(project, "runs", "--format", "json", "--columns", "id,status").stdout)
    assert [r["status"] for r in listed] == ["interrupted"]
    assert read_json(run / "run.json")["status"] == "interrupted"
    (project / "outputs" / "mlops.db").unlink()
    reindexed = run_mlops(project, "runs", "reindex")
    assert reindexed.returncode == 0 and "indexed 1 run(s)" in reindexed.stdout
    listed = json.loads(run_mlops(project, "runs", "--format", "json", "--columns", "status").stdout)
    assert listed == [{"status": "interrupted"}]


def test_register_promote_load_and_refuse_a_changed_file(project: Path) -> None:
    assert run_mlops(project, "run").returncode == 0
    registered = run_mlops(project, "registry", "register", "latest", "--name", "churn")
    assert registered.returncode == 0 and registered.stdout.startswith("registered churn/1 from run")
    promoted = run_mlops(project, "registry", "promote", "churn/1", "--alias", "champion")
    assert promoted.stdout.strip() == "churn@champion -> v1"
    script = ("import engine, pandas as pd, sys\n"
              "m = engine.load_model('churn@champion')\n"
              "X = pd.read_parquet(sys.argv[1])\n"
              "print(len(m.predict_proba(X)))\n")
    run = run_dirs(project)[0]
    features = read_json(run / "run.json")["stages"]["features"]["features"]
    import pandas as pd

    rows = pd.read_parquet(sorted((project / "outputs" / "feature_store" / "tables").glob("*.parquet"),
                                  key=lambda p: p.stat().st_size)[-1])
    rows.loc[:, features].head(5).to_parquet(project / "rows.parquet")
    python = Path(MLOPS).parent / "python"
    done = subprocess.run([str(python), "-c", script, str(project / "rows.parquet")], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "5"
    model_file = project / "outputs" / "registry" / "churn" / "1" / "model.skops"
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0xFF
    model_file.write_bytes(bytes(data))
    done = subprocess.run([str(python), "-c", script, str(project / "rows.parquet")], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "ModelIntegrityError: registry error: refusing to load churn/1" in done.stderr


def test_a_failed_run_cannot_be_registered(project: Path) -> None:
    assert run_mlops(project, "run", "quality=strict").returncode == 3
    done = run_mlops(project, "registry", "register", str(run_dirs(project)[0]), "--name", "churn")
    assert done.returncode == 2
    assert "is 'failed_quality' (run); only a succeeded training run can be registered" in done.stderr


def test_a_sweep_registers_its_best_run_as_challenger(project: Path) -> None:
    done = run_mlops(project, "run", "experiment=compare_models", "hydra.sweeper.params.model='logistic,random_forest'")
    assert done.returncode == 0, done.stderr
    assert "registered as churn/1 and aliased challenger" in done.stdout
    listed = json.loads(run_mlops(project, "runs", "--format", "json", "--sort", "metrics.roc_auc",
                                  "--columns", "id,metrics.roc_auc").stdout)
    shown = run_mlops(project, "registry", "show", "churn@challenger").stdout
    assert f"run_id: {listed[0]['id']}" in shown

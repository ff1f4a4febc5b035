"""The metadata store through the real mlops command."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import MLOPS, read_json, run_dirs, run_mlops


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
    reproduced = run_mlops(project, "reproduce", "latest")
    assert reproduced.returncode == 0, reproduced.stdout + reproduced.stderr
    for item in ("metrics", "predictions", "model"):
        assert f"identical  {item}" in reproduced.stdout


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
    assert "pass --force" in refused.stdout
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

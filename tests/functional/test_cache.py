"""The run cache: ``cache=true`` reuses a succeeded run with the same config, data and code."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MLOPS, read_json, run_dirs, run_mlops


def test_a_cached_run_is_reused_and_says_which(project: Path) -> None:
    first = run_mlops(project, "run")  # cache off: still records its key, so later runs can reuse it
    assert first.returncode == 0, first.stderr
    again = run_mlops(project, "run", "cache=true", "+hypothesis=another_wording")
    assert again.returncode == 0, again.stderr
    original, reused = run_dirs(project)
    first_record, record = read_json(original / "run.json"), read_json(reused / "run.json")
    assert f"reused run {first_record['id'][:8]}" in again.stdout
    assert record["reused"]["run"] == first_record["id"]
    assert "train" not in record["stages"]
    assert record["model"]["sha256"] == first_record["model"]["sha256"]
    assert (reused / "metrics.json").read_bytes() == (original / "metrics.json").read_bytes()
    # ... and it is an ordinary succeeded run: it can be registered.
    assert run_mlops(project, "registry", "register", str(reused), "--name", "churn").returncode == 0


def test_a_changed_config_or_a_corrupted_model_is_not_reused(project: Path) -> None:
    assert run_mlops(project, "run").returncode == 0
    changed = run_mlops(project, "run", "cache=true", "model.C=0.5")
    assert changed.returncode == 0 and "reused run" not in changed.stdout
    (first, _) = run_dirs(project)
    (first / "model" / "model.skops").write_bytes(b"not the model")
    again = run_mlops(project, "run", "cache=true")
    assert again.returncode == 0 and "reused run" not in again.stdout
    assert "has no model matching its record; not reused" in again.stdout + again.stderr
    assert "train" in read_json(run_dirs(project)[-1] / "run.json")["stages"]


@pytest.mark.slow
def test_a_killed_sweep_resumes_running_only_the_jobs_that_did_not_succeed(project: Path) -> None:
    # A hold-out of 4,000 customers holds a handful of churners, so its ROC AUC is partly luck
    # (logistic at test_size 0.2: 0.53); every job must succeed here, whatever its score.
    sweep = ["run", "-m", "cache=true", "model=logistic,random_forest", "split.test_size=0.2,0.3",
             "business.requirements.min_roc_auc=null"]
    proc = subprocess.Popen([MLOPS, *sweep], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 180
    for line in proc.stdout:
        if "sweep: 2/4 jobs" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the worst case
    proc.wait(timeout=30)
    (killed,) = (project / "outputs" / "sweeps").glob("*/*")
    done_before = [d for d in killed.iterdir() if d.is_dir() and (d / "run.json").exists()
                   and read_json(d / "run.json")["status"] == "succeeded"]
    assert len(done_before) == 2

    resumed = run_mlops(project, *sweep)
    assert resumed.returncode == 0, resumed.stderr
    (second,) = [p for p in (project / "outputs" / "sweeps").glob("*/*") if p != killed]
    records = [read_json(d / "run.json") for d in sorted(second.iterdir()) if (d / "run.json").exists()]
    assert len(records) == 4 and all(r["status"] == "succeeded" for r in records)
    retrained = [r for r in records if "train" in r["stages"]]
    reused = [r for r in records if r.get("reused")]
    assert len(retrained) == 2 and len(reused) == 2  # jobs re-executed == jobs unfinished
    assert {r["reused"]["run"] for r in reused} == {read_json(d / "run.json")["id"] for d in done_before}
    summary = json.loads((second / "summary.json").read_text())
    assert summary["succeeded"] == 4

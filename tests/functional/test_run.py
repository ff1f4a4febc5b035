"""The real ``mlops`` command in a subprocess, on a small project in tmp_path."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MLOPS, read_json, run_dirs, run_mlops

RUN_FILES = ["config.resolved.yaml", "run.json", "quality.json", "metrics.json", "requirements.json",
             "predictions.parquet",
             "model/model.skops", "model/model.skops.sha256", ".hydra/config.yaml",
             ".hydra/hydra.yaml", ".hydra/overrides.yaml"]


def only_run(project: Path) -> Path:
    dirs = run_dirs(project)
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_an_override_run_writes_the_complete_record(project: Path) -> None:
    done = run_mlops(project, "run", "model=random_forest", "model.n_estimators=50", "report=true")
    assert done.returncode == 0, done.stderr
    run = only_run(project)
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    record = read_json(run / "run.json")
    assert record["status"] == "succeeded"
    assert set(record["stages"]) == {"validate", "ingest", "quality", "features", "compliance", "split", "train",
                                     "evaluate", "save", "requirements"}
    assert all(stage["status"] == "succeeded" for stage in record["stages"].values())
    assert record["seed"] == 7 and record["determinism"]["threads"] == 1
    assert set(record["data"]) == {"customers", "crm", "contacts", "orders"}
    assert all(d["fingerprint"].startswith("sha256:") for d in record["data"].values())
    sha = hashlib.sha256((run / "model/model.skops").read_bytes()).hexdigest()
    assert record["model"]["sha256"] == sha
    prov = record["provenance"]
    assert prov["overrides"] == ["model=random_forest", "model.n_estimators=50", "report=true"]
    assert prov["python"] and prov["packages"]["scikit-learn"]
    assert "git" in prov
    metrics = read_json(run / "metrics.json")["metrics"]
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        assert isinstance(metrics[key], float), key
    assert 0.5 < metrics["roc_auc"] < 1.0
    resolved = (run / "config.resolved.yaml").read_text()
    assert "n_estimators: 50" in resolved and "${" not in resolved
    # Progress: a start and an end line per stage, then the run dir and headline metrics.
    assert done.stdout.count(": started") == 10 and done.stdout.count(": done in") == 10
    *_, last, report = done.stdout.strip().splitlines()
    assert "succeeded" in last and str(run.relative_to(project)) in last and "roc_auc=" in last
    assert report.endswith(f"report: {run.relative_to(project)}/report.html") and (run / "report.html").is_file()


def test_the_same_command_twice_gives_identical_metrics_and_model(project: Path) -> None:
    for _ in range(2):
        assert run_mlops(project, "run", "model=random_forest", "model.n_estimators=30").returncode == 0
    first, second = run_dirs(project)
    assert first != second
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes()
    assert read_json(first / "run.json")["model"]["sha256"] == read_json(second / "run.json")["model"]["sha256"]
    assert (first / "predictions.parquet").read_bytes() == (second / "predictions.parquet").read_bytes()


BAD_CONFIGS = [
    # (overrides, key path named in the error, words expected in it)
    (["model.n_estimators=-5"], "model.n_estimators", "unknown key"),
    (["model=random_forest", "model.n_estimators=-5"], "model.n_estimators", "Got -5"),
    (["+split.test_sise=0.3"], "split.test_sise", "unknown key; did you mean 'test_size'"),
    (["split.test_size=abc"], "split.test_size", "must be a number > 0 and < 1, got 'abc'"),
    (["split.test_size=1.5"], "split.test_size", "must be a number > 0 and < 1, got 1.5"),
    (["model=xgboost_deluxe"], "model", "expected one of: gradient_boosting, logistic, random_forest"),
    (["~split.stratify"], "split.stratify", "missing required key"),
    (["model._target_=os.system"], "model._target_", "'os.system' is not on the allowlist"),
    (["model=random_forest", "model.max_features=lots"], "model.max_features", "max_features"),
    (["features.derived.avg_expenditure=n_orders.__class__"], "features.derived.avg_expenditure",
     "attribute access is not allowed"),
]


@pytest.mark.parametrize(("overrides", "path", "words"), BAD_CONFIGS, ids=[" ".join(c[0]) for c in BAD_CONFIGS])
def test_a_bad_config_exits_2_with_one_line(project: Path, overrides: list[str], path: str, words: str) -> None:
    done = run_mlops(project, "run", *overrides)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[0].startswith(f"mlops: config error at {path}")
    assert words in lines[0]
    for run in run_dirs(project):  # composition errors stop before a run dir exists
        record = read_json(run / "run.json")
        assert record["status"] == "failed"
        assert record["error"]["type"] == "ConfigError"
        assert not (run / "model").exists() and not (run / "metrics.json").exists()


def test_the_config_file_is_named_when_a_key_came_from_it(project: Path) -> None:
    bad = project / "conf" / "model" / "random_forest.yaml"
    bad.write_text(bad.read_text().replace("n_estimators: 200", "n_estimators: -5"))
    done = run_mlops(project, "run", "model=random_forest")
    assert done.returncode == 2
    assert done.stderr.startswith("mlops: config error at model.n_estimators (conf/model/random_forest.yaml): ")


def test_bad_data_exits_2_and_records_the_failure(project: Path) -> None:
    done = run_mlops(project, "run", "data.sources.orders.path=missing/orders.parquet")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "file not found" in done.stderr
    assert read_json(only_run(project) / "run.json")["status"] == "failed"


def test_a_two_point_sweep_writes_two_succeeded_runs(project: Path) -> None:
    done = run_mlops(project, "run", "-m", "model=logistic,random_forest", "seed=3")
    assert done.returncode == 0, done.stderr
    jobs = run_dirs(project, "sweeps")
    assert len(jobs) == 2
    targets = set()
    for job in jobs:
        record = read_json(job / "run.json")
        assert record["status"] == "succeeded"
        targets.add(record["model"]["target"])
    assert targets == {"sklearn.linear_model.LogisticRegression", "sklearn.ensemble.RandomForestClassifier"}
    assert sum("succeeded in" in line for line in done.stdout.splitlines()) == 2  # one line per finished job


def test_hydra_features_work_unchanged(project: Path) -> None:
    done = run_mlops(project, "run", "--cfg", "job", "--resolve", "model=gradient_boosting")
    assert done.returncode == 0
    assert "sklearn.ensemble.GradientBoostingClassifier" in done.stdout
    assert not run_dirs(project)


def test_no_conf_folder_is_a_usage_error(tmp_path: Path) -> None:
    done = run_mlops(tmp_path, "--help")
    assert done.returncode == 0 and "usage: mlops" in done.stdout
    done = run_mlops(tmp_path, "run")
    assert done.returncode == 2
    assert done.stderr.strip() == f"mlops: usage error: no conf/ folder in {tmp_path}; run mlops from a project " \
                                  "folder or pass --config-dir DIR"


@pytest.mark.parametrize(("args", "words"), [
    (["run", "--bogus"], "mlops: usage error: unrecognized arguments: --bogus (see mlops run --help)"),
    (["run", "--config-dir", "/nonexistent"], "Additional config directory '/nonexistent' not found"),
    (["run", "=5"], "mlops: usage error: Config group override must be a string or a list"),
    (["run", "hydra.run.dir=/proc/no-such-dir"], "mlops: config error at hydra.run.dir: must be a folder inside the "
                                                 "outputs root"),
    ([], "mlops: usage error: a command is required; expected one of: run, quality"),
    (["features"], "mlops: usage error: features needs an action; expected one of: list, show"),
    (["registry"], "mlops: usage error: registry needs an action; expected one of: register, list"),
])
def test_bad_command_lines_exit_2_with_one_line(project: Path, args: list[str], words: str) -> None:
    done = run_mlops(project, *args)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(words) or words in line


def test_a_hyper_parameter_combination_sklearn_refuses_exits_2(project: Path) -> None:
    done = run_mlops(project, "run", "+model.penalty=l1")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("mlops: config error at model: LogisticRegression rejected its parameters")
    record = read_json(only_run(project) / "run.json")
    assert record["status"] == "failed" and not (only_run(project) / "model").exists()


def test_an_unknown_command_lists_the_commands(tmp_path: Path) -> None:
    done = run_mlops(tmp_path, "rnu")
    assert done.returncode == 2
    assert "unknown command 'rnu'; expected one of: run, quality" in done.stderr


def test_sigterm_the_moment_run_json_appears_closes_the_run_as_interrupted(project: Path) -> None:
    # The earliest a watcher can see the run: SIGTERM is an interrupt from before run.json exists.
    proc = subprocess.Popen([MLOPS, "run"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((project / "outputs").glob("runs/*/*/run.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.001)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert read_json(only_run(project) / "run.json")["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_run_leaves_it_interrupted_never_succeeded(project: Path, sig: signal.Signals) -> None:
    # Slow enough to be caught mid-training: a big forest on the default-size data.
    # SIGINT as a terminal's Ctrl-C sends it: a shell starting tests in the background
    # (`.ci/run &`) makes its children ignore SIGINT, and Python keeps that inherited
    # SIG_IGN, so restore the default for the run under test.
    proc = subprocess.Popen([MLOPS, "run", "model=random_forest", "model.n_estimators=3000", "model.max_depth=null"],
                            cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = run_dirs(project)
        if runs and (runs[0] / "run.json").exists() and "train" in read_json(runs[0] / "run.json")["stages"]:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the run never reached training")
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    record = read_json(only_run(project) / "run.json")
    assert record["status"] == "interrupted"
    assert record["stages"]["train"]["status"] == "interrupted"
    assert not (only_run(project) / "model").exists()

"""The mlops_optuna sweeper: a study in SQLite resumes after a kill, and n_trials is a total."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MLOPS, run_mlops

optuna = pytest.importorskip("optuna")

STUDY = ["experiment=tune_optuna", "hydra.sweeper.n_trials=4", "model.n_estimators=int(interval(10, 40))"]


def _study(project: Path) -> optuna.Study:
    return optuna.load_study(study_name="tune_optuna-churn", storage=f"sqlite:///{project}/outputs/optuna.db")


def _states(project: Path) -> list[str]:
    return [t.state.name for t in _study(project).get_trials(deepcopy=False)]


def _start(project: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    log = project / "first.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    with open(log, "w") as out:
        process = subprocess.Popen([MLOPS, "run", *args], cwd=project, stdout=out, stderr=subprocess.STDOUT,
                                   text=True, env=env)
    return process, log


def _wait_for_third_job(project: Path, process: subprocess.Popen[str], log: Path) -> None:
    deadline = time.monotonic() + 120
    while not list((project / "outputs" / "sweeps").glob("*/*/2/.hydra")):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


@pytest.mark.slow
def test_a_killed_study_resumes_and_runs_only_the_missing_trials(project: Path) -> None:
    process, log = _start(project, *STUDY)
    _wait_for_third_job(project, process, log)  # two trials told, the third one running
    process.kill()  # SIGKILL: nothing is cleaned up
    process.wait(timeout=30)
    states = _states(project)
    assert states.count("COMPLETE") == 2 and states.count("RUNNING") <= 1, states
    first = {t.number: (t.params, t.user_attrs["run_id"]) for t in _study(project).trials if t.state.name == "COMPLETE"}

    done = run_mlops(project, "run", *STUDY)
    assert done.returncode == 0, done.stderr
    assert "2 of 4 trials complete" in done.stdout and "launching 2" in done.stdout
    study = _study(project)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4  # the total, as configured
    assert {t.number: (t.params, t.user_attrs["run_id"]) for t in complete if t.number in first} == first
    for trial in study.trials:  # the trial the kill interrupted is a FAIL, with the reason
        if trial.state.name == "FAIL":
            assert "was killed" in trial.user_attrs["error"]
    second = sorted((project / "outputs" / "sweeps").glob("*/*"))[-1]
    assert sorted(p.name for p in second.glob("[0-9]*")) == ["0", "1"]  # only the missing ones ran
    best = json.loads((second / "optuna_best.json").read_text())
    assert best["value"] == max(t.value for t in complete) and best["complete_trials"] == 4

    again = run_mlops(project, "run", *STUDY)  # complete: nothing to run
    assert again.returncode == 0 and "launching 0" in again.stdout
    assert _states(project).count("COMPLETE") == 4


@pytest.mark.slow
def test_sigterm_marks_the_running_trial_failed_and_exits_130(project: Path) -> None:
    process, log = _start(project, *STUDY[:1], "hydra.sweeper.n_trials=2")
    deadline = time.monotonic() + 120
    while not list((project / "outputs" / "sweeps").glob("*/*/0/run.json")):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130, log.read_text()
    (trial,) = _study(project).trials
    assert trial.state.name == "FAIL" and "interrupted" in trial.user_attrs["error"]


@pytest.mark.slow
def test_bad_search_space_and_bad_sampler_are_one_line_and_exit_2(project: Path) -> None:
    done = run_mlops(project, "run", "experiment=tune_optuna", "model.max_depth=interval(9, 2)")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "mlops: config error at command line (model.max_depth=interval(9, 2)): 'model.max_depth=interval(9, 2)': "
        "an interval needs a lower bound below its upper bound"]
    done = run_mlops(project, "run", "experiment=tune_optuna", "hydra.sweeper.sampler=grid")
    assert done.returncode == 2
    assert done.stderr.strip() == ("mlops: config error at hydra.sweeper.sampler: unknown sampler 'grid'; "
                                   "expected one of: tpe, random, qmc")
